"""Live AWS credentials for a service: ``secretstore.aws_credentials(role="app")``.

    creds = aws_credentials("app")
    s3 = boto3.Session(botocore_session=creds.botocore_session()).client("s3")   # always the current keys

Inside a pod the role asked for is ``k8s_<role>_<service-account>_<namespace>`` on the ``aws`` mount (the dynamic
role that assumes the IAM role named by the ServiceAccount's ``aws-role-arn`` annotation); pass ``role_name=`` for
any other role. The renewal, backoff and readiness rules are the database credentials' (see
:mod:`strongroom.secretstore.database`): a background thread renews a renewable lease (IAM users) at about 80 % of
its duration and fetches new credentials when renewal is impossible — always for STS credentials, which cannot be
renewed — before the current ones expire; errors back off exponentially with jitter, forever, without sleeping past
the current credentials' expiry. ``ready()`` is False until credentials are held and after they expire.

The botocore credentials object it hands out re-reads the holder whenever new credentials were installed, so a
long-lived boto3 client switches keys by itself. boto3/botocore are imported only when this module is used.
"""

from __future__ import annotations

import datetime as dt
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
GRACE = 0.2  # below this share of the lease left after a renewal, fetch new credentials instead


@dataclass(frozen=True)
class AWSKeys:
    access_key: str
    secret_key: str
    session_token: str | None
    lease_id: str
    lease_duration: int
    expires_at: float  # time.time() seconds
    renewable: bool

    def __repr__(self) -> str:  # never the secret key or session token
        return f"AWSKeys(access_key={self.access_key!r}, lease_id={self.lease_id!r})"


class _Retry(Exception):
    """A transient failure: back off and try again."""


class _Refetch(Exception):
    """The lease cannot be renewed any more: get new credentials."""


class AWSCredentials:
    def __init__(
        self,
        role: str = "app",
        *,
        client: Any = None,
        addr: str | None = None,
        token_provider: Callable[[], str] | None = None,
        role_name: str | None = None,
        mount: str = "aws",
        ttl: str | int | None = None,
        on_change: Callable[[AWSKeys], None] | None = None,
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
        settings = getattr(client, "settings", None)
        addr = addr or getattr(client, "addr", None) or getattr(settings, "addr", None)
        if not addr:
            raise ValueError("no Strongroom address")
        if ca_cert is None:
            ca_cert = getattr(settings, "ca_cert", None)
        self.role_name = role_name or _pod_role(role, client)
        if not re.fullmatch(r"[\w][\w.-]*", self.role_name) or not re.fullmatch(r"[\w][\w./-]*", mount.strip("/")):
            raise ValueError("role and mount must be plain names")
        self.mount = mount.strip("/")
        self._path = f"{self.mount}/creds/{self.role_name}"
        self._ttl = ttl
        self._http = http or httpx.Client(base_url=f"{addr.rstrip('/')}/v1/", timeout=30.0, verify=ca_cert or True)
        self._on_change = on_change
        self._backoff = (backoff_initial, backoff_max)
        self._current: AWSKeys | None = None
        self.generation = 0  # bumped on every install, so botocore knows to re-read
        self._lock = threading.Lock()
        self._have = threading.Event()
        self._stop = threading.Event()
        self.stats: dict[str, Any] = {"fetches": 0, "renewals": 0, "failures": 0, "last_error": ""}
        self._thread = threading.Thread(target=self._run, name=f"aws-creds-{self.role_name}", daemon=True)
        self._thread.start()

    # --- what the application uses -----------------------------------------------------------------------------

    def ready(self) -> bool:
        """For readiness probes: True while unexpired credentials are held."""
        creds = self._current
        return creds is not None and creds.expires_at > time.time()

    def wait(self, timeout: float | None = None) -> AWSKeys:
        """Block until credentials are held; raises :class:`Unavailable` after ``timeout`` (retries continue)."""
        if not self._have.wait(timeout):
            raise Unavailable(self._path, f"no AWS credentials yet ({self.stats['last_error'] or 'waiting'})")
        return self.current()

    def current(self) -> AWSKeys:
        with self._lock:
            if self._current is None:
                raise Unavailable(self._path, "no AWS credentials yet")
            return self._current

    def snapshot(self) -> tuple[int, AWSKeys]:
        with self._lock:
            if self._current is None:
                raise Unavailable(self._path, "no AWS credentials yet")
            return self.generation, self._current

    def botocore_credentials(self, timeout: float | None = 30.0) -> Any:
        """A botocore ``RefreshableCredentials`` that always carries the holder's current keys."""
        self.wait(timeout)
        return _live_credentials(self)

    def botocore_session(self, timeout: float | None = 30.0) -> Any:
        """A botocore session whose credential chain starts with these credentials: pass it to ``boto3.Session``."""
        import botocore.session

        provider = _provider(self.botocore_credentials(timeout))
        session = botocore.session.Session()
        session.get_component("credential_provider").insert_before("env", provider)
        return session

    def close(self, revoke: bool = False) -> None:
        """Stop renewing; with ``revoke`` the lease is revoked at once (an IAM user is deleted)."""
        self._stop.set()
        self._thread.join(timeout=10)
        creds = self._current
        if revoke and creds is not None:
            try:
                self._call("PUT", "sys/leases/revoke", {"lease_id": creds.lease_id})
            except (_Retry, _Refetch, PermissionDenied):
                log.warning("revoking AWS lease for %s on close failed", self.role_name)
        self._http.close()

    def __enter__(self) -> AWSCredentials:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the background loop -----------------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        due = 0.0
        while not self._stop.is_set():
            if self._stop.wait(max(0.0, due - time.time())):
                return
            creds = self._current
            try:
                if creds is None or time.time() >= creds.expires_at:
                    creds = self._fetch()
                else:
                    try:
                        creds = self._renew(creds)
                    except _Refetch:
                        creds = self._fetch()
                attempt = 0
                share = _jitter.uniform(RENEW_AT - JITTER, RENEW_AT + JITTER)
                due = time.time() + max(0.0, creds.lease_duration * share)
            except (_Retry, _Refetch, PermissionDenied) as exc:
                attempt += 1
                self.stats["failures"] += 1
                self.stats["last_error"] = str(exc)
                delay = backoff.delay(attempt - 1, base=self._backoff[0], cap=self._backoff[1],
                                      jitter=backoff.HALF_JITTER, uniform=_jitter.uniform)  # fmt: skip
                if creds is not None:
                    delay = min(delay, max(0.5, (creds.expires_at - time.time()) / 2))
                log.warning("AWS credentials for %s: %s; retrying in %.1fs", self.role_name, exc, delay)
                due = time.time() + delay

    def _fetch(self) -> AWSKeys:
        # a GET with ?ttl=, as Vault reads it: kubernetes-reader grants read, not update, on the creds path
        body = self._call("GET", self._path, params={"ttl": str(self._ttl)} if self._ttl else None)
        data = body.get("data") or {}
        duration = int(body.get("lease_duration") or 0)
        creds = AWSKeys(
            access_key=str(data.get("access_key") or ""),
            secret_key=str(data.get("secret_key") or ""),
            session_token=data.get("session_token") or data.get("security_token") or None,
            lease_id=str(body.get("lease_id", "")),
            lease_duration=duration,
            expires_at=time.time() + duration,
            renewable=bool(body.get("renewable")),
        )
        if not creds.access_key or not creds.secret_key or duration <= 0:
            raise _Retry("the server returned incomplete credentials")
        self.stats["fetches"] += 1
        self._install(creds, changed=True)
        return creds

    def _renew(self, creds: AWSKeys) -> AWSKeys:
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
            raise _Refetch("lease is near its max TTL")
        renewed = AWSKeys(creds.access_key, creds.secret_key, creds.session_token, creds.lease_id,
                          creds.lease_duration, time.time() + granted, True)  # fmt: skip
        self.stats["renewals"] += 1
        self._install(renewed, changed=False)
        return renewed

    def _install(self, creds: AWSKeys, changed: bool) -> None:
        with self._lock:
            self._current = creds
            self.generation += 1
        self._have.set()
        if changed and self._on_change is not None:
            try:
                self._on_change(creds)
            except Exception:
                log.exception("on_change callback for AWS credentials %s failed", self.role_name)

    def _call(
        self, method: str, path: str, json: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        try:
            token = self._token()
        except Exception as exc:
            raise _Retry(f"no Strongroom token: {type(exc).__name__}") from None
        try:
            resp = self._http.request(method, path, json=json, params=params, headers={"X-Vault-Token": token})
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


def _live_credentials(holder: AWSCredentials) -> Any:
    from botocore.credentials import RefreshableCredentials

    class LiveCredentials(RefreshableCredentials):  # type: ignore[misc]
        """Refreshes from the holder (no network) whenever it installed new keys, not on botocore's own clock."""

        _seen = -1

        def refresh_needed(self, refresh_in: int | None = None) -> bool:
            if holder.generation != self._seen:
                return True
            return bool(super().refresh_needed(refresh_in))

    def load() -> dict[str, Any]:
        generation, keys = holder.snapshot()
        creds._seen = generation
        expiry = dt.datetime.fromtimestamp(keys.expires_at, dt.UTC)
        return {"access_key": keys.access_key, "secret_key": keys.secret_key, "token": keys.session_token,
                "expiry_time": expiry.isoformat()}  # fmt: skip

    generation, keys = holder.snapshot()
    creds = LiveCredentials(
        access_key=keys.access_key,
        secret_key=keys.secret_key,
        token=keys.session_token,
        expiry_time=dt.datetime.fromtimestamp(keys.expires_at, dt.UTC),
        refresh_using=load,
        method="strongroom",
        advisory_timeout=2,
        mandatory_timeout=1,
    )
    creds._seen = generation
    return creds


def _provider(credentials: Any) -> Any:
    from botocore.credentials import CredentialProvider

    class StrongroomProvider(CredentialProvider):  # type: ignore[misc]
        METHOD = "strongroom"
        CANONICAL_NAME = "Strongroom"

        def load(self) -> Any:
            return credentials

    return StrongroomProvider()


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


def aws_credentials(role: str = "app", **kwargs: Any) -> AWSCredentials:
    """Start a live AWS credential holder for this service (see the module documentation)."""
    return AWSCredentials(role, **kwargs)
