"""Assembles a running broker from its configuration and its released seed keys, and owns the background work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from strongroom.broker.audit_log import HashChainLog
from strongroom.broker.config import BrokerConfig
from strongroom.broker.events import EventSink
from strongroom.broker.idp import IdpVerifier
from strongroom.broker.kinds.base import CredentialKind
from strongroom.broker.kinds.broker_deploy import BrokerDeployKind
from strongroom.broker.kinds.database import DatabaseKind
from strongroom.broker.kinds.kubernetes import KubernetesKind
from strongroom.broker.kinds.strongroom_admin import StrongroomAdminKind
from strongroom.broker.models import Identity
from strongroom.broker.notify import SlackNotifier
from strongroom.broker.oidc import OidcIssuer
from strongroom.broker.retry import RetryQueue
from strongroom.broker.seed import SeedKeys
from strongroom.broker.service import Broker
from strongroom.broker.store import RequestStore, open_store
from strongroom.broker.strongroom_client import StrongroomClient

log = logging.getLogger(__name__)


class BrokerRuntime:
    def __init__(
        self,
        config: BrokerConfig,
        seed: SeedKeys,
        *,
        measurement: str = "",
        clock: Callable[[], float] = time.time,
        store: RequestStore | None = None,
        sweep_interval: float = 5.0,
        retry_base_delay: float = 0.5,
    ) -> None:
        self.config = config
        self.measurement = measurement
        self.sweep_interval = sweep_interval
        self.http = httpx.AsyncClient(timeout=15.0)
        self.oidc = OidcIssuer(seed.oidc_private_key_pem, config.public_url)
        self.idp = IdpVerifier(config.idp)
        self.strongroom = (
            StrongroomClient(config.strongroom_addr, seed.strongroom_token, client=self.http)
            if config.strongroom_addr and seed.strongroom_token else None
        )
        self.log = HashChainLog(config.audit_log, seed.audit_mac_key)
        self.slack_queue = RetryQueue("slack", SlackNotifier(self.http).post, base_delay=retry_base_delay,
                                      on_give_up=lambda item, why: self.events.delivery_failed("slack", why))
        self.forward_queue = (
            RetryQueue("strongroom-audit", self._forward, base_delay=retry_base_delay,
                       on_give_up=lambda item, why: self.events.delivery_failed("strongroom-audit", why))
            if self.strongroom else None
        )
        self.events = EventSink(self.log, forwarder=self.forward_queue, slack=self.slack_queue,
                                slack_url=config.slack_webhook, critical_url=config.critical_webhook, clock=clock)
        kinds: dict[str, CredentialKind] = {}
        for name, kc in config.kinds.items():
            if kc.type == "kubernetes":
                kinds[name] = KubernetesKind(self.oidc, kc.options)
            elif kc.type == "strongroom-admin":
                kinds[name] = StrongroomAdminKind(self.strongroom, kc.options)
            elif kc.type == "database":
                kinds[name] = DatabaseKind(self.strongroom, kc.options)
            else:
                kinds[name] = BrokerDeployKind(self.strongroom, kc.options, mount=config.seed.transit_mount,
                                               key=config.seed.transit_key)
        self.broker = Broker(config, store or open_store(config.storage), kinds, self.events, clock)
        self._sweeper: asyncio.Task[None] | None = None

    async def _forward(self, record: dict[str, Any]) -> None:
        assert self.strongroom is not None
        await self.strongroom.send_audit_events([record])

    def kinds_for(self, who: Identity) -> list[dict[str, Any]]:
        groups = set(who.groups)
        out = []
        for kc in self.config.kinds.values():
            out.append({
                "name": kc.name, "type": kc.type, "approvals": kc.approvals, "max_duration": kc.max_duration,
                "request_ttl": kc.request_ttl, "approve_groups": list(kc.approve_groups),
                "may_request": bool(groups & set(kc.request_groups)),
                "may_approve": bool(groups & set(kc.approve_groups)),
                "may_break_glass": kc.break_glass and bool(groups & set(self.config.break_glass_groups)),
            })
        return out

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.broker.sweep()
            except Exception:  # the sweeper must outlive any one bad request
                log.exception("sweep failed")
            await asyncio.sleep(self.sweep_interval)

    async def start(self) -> None:
        self.slack_queue.start()
        if self.forward_queue:
            self.forward_queue.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="mpa-sweeper")
        self.events.emit("broker-started", None, None, details={"measurement": self.measurement})

    async def stop(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.slack_queue.drain(2.0)
        if self.forward_queue:
            await self.forward_queue.drain(2.0)
            await self.forward_queue.stop()
        await self.slack_queue.stop()
        await self.http.aclose()
        self.broker.store.close()
