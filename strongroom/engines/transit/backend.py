"""The transit secrets engine: encryption as a service with named keys, as Vault's ``transit`` engine.

Paths: ``keys`` (create/read/list/delete, ``config``, ``rotate``, ``trim``, ``import``, ``import_version``),
``wrapping_key``, ``encrypt``/``decrypt``/``rewrap``, ``datakey``, ``export``, ``backup``/``restore``, ``random``,
``hash``, ``hmac``, ``sign``/``verify``, and ``keys/<name>/attestation`` (attestation-bound decryption, see
:mod:`strongroom.engines.transit.attestation`). Key material stays in the mount's barrier view; primitives live in
:mod:`strongroom.engines.transit.crypto` only.

Auto-rotation: a background task started by :meth:`initialize` and cancelled by :meth:`cleanup`. The core builds
backends only on the active node (a standby tears its mounts down, calling ``cleanup``), so rotation runs on exactly
one node. Every ``STRONGROOM_TRANSIT_ROTATE_CHECK`` seconds (default 60) it rotates each key whose
``auto_rotate_period`` has passed since its latest version was created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from strongroom.engines.transit import path_attestation, path_crypt, path_export, path_keys, path_sign, path_util
from strongroom.engines.transit.keys import KeyStore
from strongroom.framework import Backend, BackendContext

log = logging.getLogger(__name__)


def _check_interval() -> float:
    try:
        return max(0.05, float(os.environ.get("STRONGROOM_TRANSIT_ROTATE_CHECK", "60")))
    except ValueError:
        return 60.0


class TransitBackend(Backend):
    type = "transit"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.keys = KeyStore(ctx.storage)
        self._rotator: asyncio.Task[None] | None = None
        self.paths = [
            *path_keys.paths(self),
            *path_attestation.paths(self),
            *path_crypt.paths(self),
            *path_sign.paths(self),
            *path_export.paths(self),
            *path_util.paths(self),
        ]

    @property
    def dev(self) -> bool:
        """Whether this is a dev server (the only kind that honours the attestation test clock)."""
        return bool(getattr(self.ctx.services.get("core"), "dev", False))

    async def initialize(self) -> None:
        self._rotator = asyncio.create_task(self._rotate_forever(), name=f"transit-autorotate-{self.ctx.mount_path}")

    async def cleanup(self) -> None:
        if self._rotator is not None:
            self._rotator.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rotator
            self._rotator = None

    async def _rotate_forever(self) -> None:
        interval = _check_interval()
        while True:
            await asyncio.sleep(interval)
            if not getattr(self.ctx.services.get("core"), "background_elected", True):
                continue  # another worker of this node runs background work (strongroom/scaleout/)
            try:
                await self.rotate_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a storage hiccup must not end rotation for good
                log.warning("transit auto-rotation on %s failed: %s", self.ctx.mount_path, type(exc).__name__)

    async def rotate_due(self) -> list[str]:
        """Rotate every key whose auto-rotation period has elapsed; returns their names."""
        rotated = []
        for name in await self.keys.names():
            if name.endswith("/"):
                continue
            async with self.keys.lock(name):
                policy = await self.keys.get(name, for_update=True)
                if policy is None or policy.auto_rotate_period <= 0:
                    continue
                if policy.imported and not policy.allow_imported_key_rotation:
                    continue
                latest = policy.keys.get(policy.latest_version)
                if latest is not None and time.time() - latest.time >= policy.auto_rotate_period:
                    policy.rotate()
                    await self.keys.put(policy)
                    rotated.append(name)
        if rotated:
            log.info("transit: auto-rotated %d key(s) on %s", len(rotated), self.ctx.mount_path)
        return rotated
