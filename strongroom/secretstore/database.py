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
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from strongroom import backoff
from strongroom.secretstore.errors import PermissionDenied, Unavailable

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


class _Retry(Exception):
    """A transient failure: back off and try again."""


class _Refetch(Exception):
    """The lease cannot be renewed any more: get new credentials."""


def renew_delay(lease_duration: float, rng: Callable[[float, float], float] = _jitter.uniform) -> float:
    """Seconds from issue (or last renewal) to the next renewal: about 80 % of the lease, jittered."""
    return max(0.0, lease_duration * rng(RENEW_AT - JITTER, RENEW_AT + JITTER))


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with jitter in [50 %, 100 %] of the step; ``attempt`` counts from 1."""
    return backoff.delay(attempt - 1, base=initial, cap=maximum, jitter=backoff.HALF_JITTER, uniform=_jitter.uniform)


class DatabaseCredentials:
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
        if client is None and (addr is None or token_provider is None):
            from strongroom import secretstore

            client = secretstore.default_client()
        if token_provider is None:
            token_provider = client.token if hasattr(client, "token") else client
        self._token = token_provider
        addr = addr or client.addr
        if ca_cert is None and client is not None:
            ca_cert = getattr(getattr(client, "settings", None), "ca_cert", None)
        self.role_name = role_name or _pod_role(role, client)
        if not re.fullmatch(r"[\w][\w.-]*", self.role_name) or not re.fullmatch(r"[\w][\w./-]*", mount.strip("/")):
            raise ValueError("role and mount must be plain names")
        self.mount = mount.strip("/")
        self._path = f"{self.mount}/creds/{self.role_name}"
        self._http = http or httpx.Client(base_url=f"{addr.rstrip('/')}/v1/", timeout=30.0, verify=ca_cert or True)
        self._on_change = on_change
        self._fallback = fallback
        self._backoff = (backoff_initial, backoff_max)
        self._current: Credentials | None = None
        self._lock = threading.Lock()
        self._have = threading.Event()
        self._stop = threading.Event()
        self.stats: dict[str, Any] = {"fetches": 0, "renewals": 0, "failures": 0, "last_error": ""}
        self._thread = threading.Thread(target=self._run, name=f"db-creds-{self.role_name}", daemon=True)
        self._thread.start()

    # --- what the application uses -----------------------------------------------------------------------------

    def ready(self) -> bool:
        """For readiness probes: True while unexpired credentials (or, if enabled and needed, the fallback) are held."""
        creds = self._current
        return creds is not None and (creds.fallback or creds.expires_at > time.time())

    def wait(self, timeout: float | None = None) -> Credentials:
        """Block until credentials are held; raises :class:`Unavailable` after ``timeout`` (retries continue)."""
        if not self._have.wait(timeout):
            raise Unavailable(self._path, f"no database credentials yet ({self.stats['last_error'] or 'waiting'})")
        return self.current()

    def current(self) -> Credentials:
        with self._lock:
            if self._current is None:
                raise Unavailable(self._path, "no database credentials yet")
            return self._current

    @property
    def username(self) -> str:
        return self.current().username

    @property
    def password(self) -> str:
        return self.current().password

    def close(self, revoke: bool = False) -> None:
        """Stop renewing; with ``revoke`` the lease (and so the database user) is revoked at once."""
        self._stop.set()
        self._thread.join(timeout=10)
        creds = self._current
        if revoke and creds is not None and not creds.fallback:
            try:
                self._call("PUT", "sys/leases/revoke", {"lease_id": creds.lease_id})
            except (_Retry, _Refetch, PermissionDenied):
                log.warning("revoking database lease for %s on close failed", self.role_name)
        self._http.close()

    def __enter__(self) -> DatabaseCredentials:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the background loop -----------------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        due = 0.0  # when to act next (time.time())
        while not self._stop.is_set():
            if self._stop.wait(max(0.0, due - time.time())):
                return
            creds = self._current
            try:
                if creds is None or creds.fallback or time.time() >= creds.expires_at:
                    creds = self._fetch()
                else:
                    try:
                        creds = self._renew(creds)
                    except _Refetch:
                        creds = self._fetch()
                attempt = 0
                due = time.time() + renew_delay(creds.lease_duration)
            except (_Retry, _Refetch, PermissionDenied) as exc:
                attempt += 1
                self.stats["failures"] += 1
                self.stats["last_error"] = str(exc)
                delay = backoff_delay(attempt, *self._backoff)
                if creds is not None and not creds.fallback:
                    # never sleep past the point where the current credentials run out
                    delay = min(delay, max(0.5, (creds.expires_at - time.time()) / 2))
                log.warning("database credentials for %s: %s; retrying in %.1fs", self.role_name, exc, delay)
                self._use_fallback_if_needed()
                due = time.time() + delay

    def _fetch(self) -> Credentials:
        body = self._call("GET", f"{self.mount}/creds/{self.role_name}")
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
        self.stats["fetches"] += 1
        self._install(creds, changed=True)
        return creds

    def _renew(self, creds: Credentials) -> Credentials:
        if not creds.renewable:
            raise _Refetch("lease is not renewable")
        try:
            body = self._call(
                "PUT", "sys/leases/renew", {"lease_id": creds.lease_id, "increment": creds.lease_duration}
            )
        except PermissionDenied as exc:
            raise _Refetch(str(exc)) from None
        granted = int(body.get("lease_duration") or 0)
        if granted < creds.lease_duration * GRACE:
            # the max TTL is close: renewals cannot keep these credentials alive much longer
            raise _Refetch("lease is near its max TTL")
        renewed = Credentials(
            creds.username, creds.password, creds.lease_id, creds.lease_duration, time.time() + granted, True
        )
        self.stats["renewals"] += 1
        self._install(renewed, changed=False)
        return renewed

    def _install(self, creds: Credentials, changed: bool) -> None:
        with self._lock:
            self._current = creds
        self._have.set()
        if changed and self._on_change is not None:
            try:
                self._on_change(creds)
            except Exception:
                log.exception("on_change callback for database credentials %s failed", self.role_name)

    def _use_fallback_if_needed(self) -> None:
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

    def _call(self, method: str, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            token = self._token()
        except Exception as exc:
            raise _Retry(f"no Strongroom token: {type(exc).__name__}") from None
        try:
            resp = self._http.request(method, path, json=json, headers={"X-Vault-Token": token})
        except httpx.HTTPError as exc:
            raise _Retry(f"cannot reach Strongroom: {type(exc).__name__}") from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise _Retry(f"Strongroom answered {resp.status_code}")
        try:
            body = resp.json() if resp.content else {}
        except ValueError:
            raise _Retry(f"unexpected response ({resp.status_code})") from None
        errors = "; ".join(body.get("errors") or []) if isinstance(body, dict) else ""
        if resp.status_code == 403:
            raise PermissionDenied(path)
        if resp.status_code >= 400:
            if path.startswith("sys/leases/renew"):
                raise _Refetch(errors or f"renewal refused ({resp.status_code})")
            raise _Retry(errors or f"Strongroom answered {resp.status_code}")
        return body


def _pod_role(role: str, client: Any) -> str:
    if role.startswith("k8s_") or client is None:
        return role
    try:
        namespace, account = client.namespace, client.service_account
    except Exception:  # not in a pod (no ServiceAccount files): the caller asked for a plain role
        return role
    if not namespace or not account:
        return role
    return f"k8s_{role}_{account}_{namespace}"


def database_credentials(role: str = "rw", **kwargs: Any) -> DatabaseCredentials:
    """Start a live credential object for this service (see the module documentation)."""
    return DatabaseCredentials(role, **kwargs)
