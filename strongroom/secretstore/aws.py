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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from strongroom.secretstore import renewal
from strongroom.secretstore.errors import Unavailable
from strongroom.secretstore.renewal import Retry as _Retry
from strongroom.secretstore.renewal import pod_role as _pod_role

log = logging.getLogger(__name__)

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


class AWSCredentials(renewal.LeaseRenewer[AWSKeys]):
    _what = "AWS credentials"
    _log = log
    renew_at, jitter, grace = RENEW_AT, JITTER, GRACE

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
        client = self._connect(client, addr, token_provider, ca_cert)
        self.role_name = role_name or _pod_role(role, client)
        renewal.check_names(self.role_name, mount)
        self.mount = mount.strip("/")
        self._ttl = ttl
        self._start(
            path=f"{self.mount}/creds/{self.role_name}",
            name=self.role_name,
            thread_name=f"aws-creds-{self.role_name}",
            on_change=on_change,
            backoff_range=(backoff_initial, backoff_max),
            stats={"fetches": 0, "renewals": 0},
            http=http,
        )

    # --- what the application uses -----------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Bumped on every install, so botocore knows to re-read."""
        return self._installs

    def snapshot(self) -> tuple[int, AWSKeys]:
        with self._lock:
            if self._current is None:
                raise Unavailable(self._path, "no AWS credentials yet")
            return self._installs, self._current

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

    # --- what the renewal loop asks of AWS credentials ---------------------------------------------------------

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
        return self._fetched(creds)


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


def aws_credentials(role: str = "app", **kwargs: Any) -> AWSCredentials:
    """Start a live AWS credential holder for this service (see the module documentation)."""
    return AWSCredentials(role, **kwargs)
