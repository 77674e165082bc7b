"""Live database credentials for a service: ``secretstore.database.database_credentials(role="rw")``.

    creds = database_credentials("rw", on_change=lambda c: pool.reconnect(c.username, c.password))
    creds.wait(timeout=30)            # block start-up until the first credentials are held (or raise Unavailable)
    connect(creds.username, creds.password)

Inside a pod the role asked for is ``k8s_<role>_<service-account>_<namespace>`` (the dynamic role built from the
ServiceAccount's annotations); pass ``role_name=`` to ask for any other role. A background thread then:

- renews the lease at about 80 % of its duration (uniform jitter of +-5 % of the lease, so a fleet does not renew in
  step), asking for the lease's original duration each time;
- when renewal is impossible (the lease is gone, expired, not renewable, or its max TTL leaves less than a fifth of a
  lease) fetches new credentials and calls ``on_change`` so the application can reconnect;
- on errors (server unreachable, 5xx, permission problems) backs off exponentially with jitter and keeps trying,
  forever; while the current credentials are still valid it keeps renewing them, after that it fetches new ones.

``ready()`` is False until the first credentials are held. ``fallback=(username, password)`` (off by default) is used
only while no credentials could be fetched, and every use is logged at ERROR level: it exists for rollouts.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from strongroom.secretstore import renewal
from strongroom.secretstore.renewal import Retry as _Retry
from strongroom.secretstore.renewal import backoff_delay as backoff_delay
from strongroom.secretstore.renewal import pod_role as _pod_role

log = logging.getLogger(__name__)
_jitter = random.SystemRandom()

RENEW_AT = 0.8
JITTER = 0.05
# below this share of the original lease left after a renewal, renewing further is pointless: fetch new credentials
GRACE = 0.2


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    lease_id: str
    lease_duration: int
    expires_at: float  # time.time() seconds
    renewable: bool = True
    fallback: bool = False

    def __repr__(self) -> str:  # never the password
        return f"Credentials(username={self.username!r}, lease_id={self.lease_id!r}, fallback={self.fallback})"


def renew_delay(lease_duration: float, rng: Callable[[float, float], float] = _jitter.uniform) -> float:
    """Seconds from issue (or last renewal) to the next renewal: about 80 % of the lease, jittered."""
    return renewal.renew_delay(lease_duration, RENEW_AT, JITTER, rng)


class DatabaseCredentials(renewal.LeaseRenewer[Credentials]):
    _what = "database credentials"
    _log = log
    renew_at, jitter, grace = RENEW_AT, JITTER, GRACE

    def __init__(
        self,
        role: str = "rw",
        *,
        client: Any = None,
        addr: str | None = None,
        token_provider: Callable[[], str] | None = None,
        role_name: str | None = None,
        mount: str = "database",
        on_change: Callable[[Credentials], None] | None = None,
        fallback: tuple[str, str] | None = None,
        ca_cert: str | None = None,
        backoff_initial: float = 10.0,
        backoff_max: float = 300.0,
        http: httpx.Client | None = None,
    ) -> None:
        client = self._connect(client, addr, token_provider, ca_cert)
        self.role_name = role_name or _pod_role(role, client)
        renewal.check_names(self.role_name, mount)
        self.mount = mount.strip("/")
        self._fallback = fallback
        self._start(
            path=f"{self.mount}/creds/{self.role_name}",
            name=self.role_name,
            thread_name=f"db-creds-{self.role_name}",
            on_change=on_change,
            backoff_range=(backoff_initial, backoff_max),
            stats={"fetches": 0, "renewals": 0},
            http=http,
        )

    # --- what the application uses -----------------------------------------------------------------------------

    @property
    def username(self) -> str:
        return self.current().username

    @property
    def password(self) -> str:
        return self.current().password

    # --- what the renewal loop asks of database credentials ----------------------------------------------------

    def _is_fallback(self, creds: Credentials) -> bool:
        return creds.fallback

    def _fetch(self) -> Credentials:
        body = self._call("GET", self._path)
        data = body.get("data") or {}
        duration = int(body.get("lease_duration") or 0)
        creds = Credentials(
            username=str(data.get("username", "")),
            password=str(data.get("password", "")),
            lease_id=str(body.get("lease_id", "")),
            lease_duration=duration,
            expires_at=time.time() + duration,
            renewable=bool(body.get("renewable")),
        )
        if not creds.username or not creds.lease_id or duration <= 0:
            raise _Retry("the server returned incomplete credentials")
        return self._fetched(creds)

    def _after_failure(self) -> None:
        if self._fallback is None or (self._current is not None and not self._current.fallback):
            return
        log.error(
            "USING FALLBACK DATABASE CREDENTIALS for %s (user %s): Strongroom could not issue credentials",
            self.role_name,
            self._fallback[0],
        )
        if self._current is None:
            fb = Credentials(self._fallback[0], self._fallback[1], "", 0, float("inf"), False, fallback=True)
            self._install(fb, changed=True)


def database_credentials(role: str = "rw", **kwargs: Any) -> DatabaseCredentials:
    """Start a live credential object for this service (see the module documentation)."""
    return DatabaseCredentials(role, **kwargs)
