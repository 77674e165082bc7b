"""The background loop every live secret in the client library runs (database and AWS credentials, certificates).

A :class:`Renewer` holds one value (credentials, a certificate), acts on it on a background thread when it is due,
and on failure backs off exponentially with jitter (:func:`strongroom.backoff.delay`), forever, without sleeping past
the point where the value it holds runs out. :class:`LeaseRenewer` adds what leased credentials share: renew at a
jittered share of the lease, fetch new credentials when renewal no longer helps, revoke on close.
Subclasses say what they fetch and how they name it; the timing rules live here once.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, Self, TypeVar

import httpx

from strongroom import backoff
from strongroom.secretstore.errors import PermissionDenied, Unavailable

_jitter = random.SystemRandom()

T = TypeVar("T")


class Retry(Exception):
    """A transient failure: back off and try again."""


class Refetch(Exception):
    """The lease cannot be renewed any more: get new credentials."""


def renew_delay(duration: float, share: float, jitter: float, rng: Callable[[float, float], float]) -> float:
    """``share`` of ``duration``, spread by ±``jitter`` of it so a fleet does not act in step; never negative."""
    return max(0.0, duration * rng(share - jitter, share + jitter))


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with jitter in [50 %, 100 %] of the step; ``attempt`` counts from 1."""
    return backoff.delay(attempt - 1, base=initial, cap=maximum, jitter=backoff.HALF_JITTER, uniform=_jitter.uniform)


def pod_role(role: str, client: Any) -> str:
    """Inside a pod, ``role`` names the dynamic role built for this ServiceAccount: ``k8s_<role>_<sa>_<namespace>``."""
    if role.startswith("k8s_") or client is None:
        return role
    try:
        namespace, account = client.namespace, client.service_account
    except Exception:  # not in a pod (no ServiceAccount files): the caller asked for a plain role
        return role
    if not namespace or not account:
        return role
    return f"k8s_{role}_{account}_{namespace}"


def check_names(role: str, mount: str) -> None:
    if not re.fullmatch(r"[\w][\w.-]*", role) or not re.fullmatch(r"[\w][\w./-]*", mount.strip("/")):
        raise ValueError("role and mount must be plain names")


class Renewer(Generic[T]):
    """One live value, refreshed on a background thread. Subclasses implement :meth:`_step` and :meth:`_expiry`."""

    _what = "secret"  # for messages: "no <what> yet"
    _log = logging.getLogger(__name__)

    def _connect(
        self,
        client: Any,
        addr: str | None,
        token_provider: Callable[[], str] | None,
        ca_cert: str | None,
    ) -> Any:
        """Resolve the client, token source and server; returns the client (``None`` if not needed)."""
        if client is None and (addr is None or token_provider is None):
            from strongroom import secretstore

            client = secretstore.default_client()
        self._token = token_provider or (client.token if hasattr(client, "token") else client)
        settings = getattr(client, "settings", None)
        addr = addr or getattr(client, "addr", None) or getattr(settings, "addr", None)
        if not addr:
            raise ValueError("no Strongroom address")
        if ca_cert is None:
            ca_cert = getattr(settings, "ca_cert", None)
        self._endpoint = (addr, ca_cert)
        self._current: T | None = None
        self._installs = 0
        self._lock = threading.Lock()
        self._have = threading.Event()
        self._stop = threading.Event()
        return client

    def _start(
        self,
        *,
        path: str,
        name: str,
        thread_name: str,
        on_change: Callable[[T], None] | None,
        backoff_range: tuple[float, float],
        stats: dict[str, Any],
        http: httpx.Client | None,
    ) -> None:
        addr, ca_cert = self._endpoint  # connected only now: nothing to close if the caller's names were refused
        self._http = http or httpx.Client(base_url=f"{addr.rstrip('/')}/v1/", timeout=30.0, verify=ca_cert or True)
        self._path = path
        self._name = name  # who this is for, in log lines: "rw", "role workload"
        self._on_change = on_change
        self._backoff = backoff_range
        self.stats: dict[str, Any] = {**stats, "failures": 0, "last_error": ""}
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    # --- what the application uses -----------------------------------------------------------------------------

    def ready(self) -> bool:
        """For readiness probes: True while an unexpired value is held."""
        value = self._current
        return value is not None and self._expiry(value) > time.time()

    def wait(self, timeout: float | None = None) -> T:
        """Block until a value is held; raises :class:`Unavailable` after ``timeout`` (retries continue)."""
        if not self._have.wait(timeout):
            raise Unavailable(self._path, f"no {self._what} yet ({self.stats['last_error'] or 'waiting'})")
        return self.current()

    def current(self) -> T:
        with self._lock:
            if self._current is None:
                raise Unavailable(self._path, f"no {self._what} yet")
            return self._current

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _halt(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    # --- what subclasses provide -------------------------------------------------------------------------------

    def _step(self, current: T | None) -> float:
        """Fetch or renew; returns when (``time.time()``) to act next. Raises Retry/Refetch/PermissionDenied."""
        raise NotImplementedError

    def _expiry(self, value: T) -> float:
        """When ``value`` stops being usable (``time.time()`` seconds)."""
        raise NotImplementedError

    def _after_failure(self) -> None:
        """Called after every failed step, once the retry is scheduled."""

    # --- the background loop -----------------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        due = 0.0  # when to act next (time.time())
        while not self._stop.is_set():
            if self._stop.wait(max(0.0, due - time.time())):
                return
            current = self._current
            try:
                due = self._step(current)
                attempt = 0
            except (Retry, Refetch, PermissionDenied) as exc:
                attempt += 1
                self.stats["failures"] += 1
                self.stats["last_error"] = str(exc)
                delay = backoff_delay(attempt, *self._backoff)
                if current is not None:
                    # never sleep past the point where the value held runs out
                    delay = min(delay, max(0.5, (self._expiry(current) - time.time()) / 2))
                self._log.warning("%s for %s: %s; retrying in %.1fs", self._what, self._name, exc, delay)
                self._after_failure()
                due = time.time() + delay

    def _install(self, value: T, changed: bool) -> None:
        with self._lock:
            self._current = value
            self._installs += 1
        self._have.set()
        if changed:
            self._notify(value)

    def _notify(self, value: T) -> None:
        if self._on_change is not None:
            try:
                self._on_change(value)
            except Exception:
                self._log.exception("on_change callback for %s %s failed", self._what, self._name)

    def _call(
        self, method: str, path: str, json: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        try:
            token = self._token()
        except Exception as exc:
            raise Retry(f"no Strongroom token: {type(exc).__name__}") from None
        try:
            resp = self._http.request(method, path, json=json, params=params, headers={"X-Vault-Token": token})
        except httpx.HTTPError as exc:
            raise Retry(f"cannot reach Strongroom: {type(exc).__name__}") from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise Retry(f"Strongroom answered {resp.status_code}")
        try:
            body = resp.json() if resp.content else {}
        except ValueError:
            raise Retry(f"unexpected response ({resp.status_code})") from None
        errors = "; ".join(body.get("errors") or []) if isinstance(body, dict) else ""
        if resp.status_code == 403:
            raise PermissionDenied(path)
        if resp.status_code >= 400:
            if path.startswith("sys/leases/renew"):
                raise Refetch(errors or f"renewal refused ({resp.status_code})")
            raise Retry(errors or f"Strongroom answered {resp.status_code}")
        return body


class _Leased(Protocol):
    @property
    def lease_id(self) -> str: ...
    @property
    def lease_duration(self) -> int: ...
    @property
    def expires_at(self) -> float: ...
    @property
    def renewable(self) -> bool: ...


L = TypeVar("L", bound=_Leased)


class LeaseRenewer(Renewer[L]):
    """Leased credentials: renewed at a jittered share of the lease, fetched anew when renewal no longer helps."""

    renew_at = 0.8
    jitter = 0.05
    # below this share of the original lease left after a renewal, renewing further is pointless: fetch new ones
    grace = 0.2

    def _fetch(self) -> L:
        raise NotImplementedError

    def _is_fallback(self, creds: L) -> bool:
        """A stand-in that was never issued: not renewed, not revoked, valid until real credentials arrive."""
        return False

    def _expiry(self, value: L) -> float:
        return float("inf") if self._is_fallback(value) else value.expires_at

    def _step(self, current: L | None) -> float:
        if current is None or self._is_fallback(current) or time.time() >= current.expires_at:
            creds = self._fetch()
        else:
            try:
                creds = self._renew(current)
            except Refetch:
                creds = self._fetch()
        return time.time() + renew_delay(creds.lease_duration, self.renew_at, self.jitter, _jitter.uniform)

    def _renew(self, creds: L) -> L:
        if not creds.renewable:
            raise Refetch("lease is not renewable")
        try:
            body = self._call(
                "PUT", "sys/leases/renew", {"lease_id": creds.lease_id, "increment": creds.lease_duration}
            )
        except PermissionDenied as exc:
            raise Refetch(str(exc)) from None
        granted = int(body.get("lease_duration") or 0)
        if granted < creds.lease_duration * self.grace:
            # the max TTL is close: renewals cannot keep these credentials alive much longer
            raise Refetch("lease is near its max TTL")
        # the holders' records are frozen dataclasses; the protocol cannot say so
        expires = time.time() + granted
        renewed: L = dataclasses.replace(creds, expires_at=expires, renewable=True)  # type: ignore[type-var]
        self.stats["renewals"] += 1
        self._install(renewed, changed=False)
        return renewed

    def _fetched(self, creds: L) -> L:
        self.stats["fetches"] += 1
        self._install(creds, changed=True)
        return creds

    def close(self, revoke: bool = False) -> None:
        """Stop renewing; with ``revoke`` the lease is revoked at once (so the database user or IAM user is
        deleted)."""
        self._halt()
        creds = self._current
        if revoke and creds is not None and not self._is_fallback(creds):
            try:
                self._call("PUT", "sys/leases/revoke", {"lease_id": creds.lease_id})
            except (Retry, Refetch, PermissionDenied):
                self._log.warning("revoking the lease of %s for %s on close failed", self._what, self._name)
        self._http.close()
