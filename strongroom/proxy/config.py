"""The staff proxy's configuration file (TOML)::

listen = "127.0.0.1:8300"
upstream = "https://strongroom.internal:8200"
upstream_ca_cert = "/etc/ssl/strongroom.pem"     # optional
# the proxy's own Strongroom identity: its ServiceAccount (kubernetes login) or a token file
login = "kubernetes"                              # or "token" with token_file / $STRONGROOM_PROXY_TOKEN
    k8s_role = "staff-proxy"                          # the kubernetes auth role (else $STRONGROOM_K8S_ROLE)
token_file = "/run/secrets/proxy-token"
child_policies = ["web-user"]
child_ttl = "5m"
cookie_secure = true                              # the UI cookie only over HTTPS
csrf_key_file = "/run/secrets/proxy-csrf-key"     # optional: share it between replicas (else random per process)
mpa_broker = "https://mpa.internal:8400"          # optional: MPA requests and reviews in the UI

[step_up]                                         # optional: WebAuthn step-up (strongroom.proxy.webauthn)
rp_id = "strongroom.internal"
origin = "https://strongroom.internal"
ttl = "5m"
reveal = true                                     # revealing a value in the UI needs a step-up
paths = ["secret/data/k8s/*/prod/*"]              # API paths refused without a step-up
credentials_db = "/var/lib/strongroom-proxy/webauthn.db"
proof_key_file = "/run/secrets/step-up-proof-key"  # optional: step-up proofs for the MPA broker (same key there)

[idp]
issuer = "https://idp.example.com"
audience = "strongroom"
jwks_url = "https://idp.example.com/.well-known/jwks.json"   # or jwks_file = "..."
user_claim = "sub"
algorithms = ["RS256", "ES256"]
leeway = 30
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.framework.durations import parse_duration


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class IdpConfig:
    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: str | None = None
    user_claim: str = "sub"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway: int = 30


@dataclass(frozen=True)
class ProxyConfig:
    upstream: str
    idp: IdpConfig
    listen: str = "127.0.0.1:8300"
    upstream_ca_cert: str | None = None
    login: str = "token"
    k8s_role: str | None = None
    token_file: str | None = None
    child_policies: tuple[str, ...] = ("web-user",)
    child_ttl: int = 300
    cookie_secure: bool = True
    csrf_key_file: str | None = None
    # [step_up]: WebAuthn step-up (strongroom.proxy.webauthn.StepUpConfig), None when not configured
    step_up: Any = None
    # the MPA broker's address (strongroom mpa serve), for the UI's request list and review actions; optional
    mpa_broker: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)

    def csrf_key(self) -> bytes | None:
        """The key CSRF tokens are derived with; ``None`` means each process picks a random one."""
        if not self.csrf_key_file:
            return None
        try:
            key = Path(self.csrf_key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read csrf_key_file: {exc.strerror}") from None
        if len(key) < 32:
            raise ConfigError("csrf_key_file must hold at least 32 bytes")
        return key

    def proxy_token(self) -> str:
        value = os.environ.get("STRONGROOM_PROXY_TOKEN")
        if not value and self.token_file:
            value = Path(self.token_file).read_text(encoding="utf-8").strip()
        if not value:
            raise ConfigError("no proxy token: set token_file or STRONGROOM_PROXY_TOKEN")
        return value


def parse_step_up(doc: Any) -> Any:
    from strongroom.proxy.webauthn import parse_config

    return parse_config(doc)


def load(path: str) -> ProxyConfig:
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read proxy config {path}: {exc}") from None
    idp = doc.get("idp")
    if not isinstance(idp, dict) or not idp.get("issuer") or not idp.get("audience"):
        raise ConfigError("[idp] needs issuer and audience")
    if not (idp.get("jwks_url") or idp.get("jwks_file")):
        raise ConfigError("[idp] needs jwks_url or jwks_file")
    if not doc.get("upstream"):
        raise ConfigError("upstream is required")
    login = doc.get("login", "token")
    if login not in ("token", "kubernetes"):
        raise ConfigError("login must be 'token' or 'kubernetes'")
    try:
        ttl = parse_duration(doc.get("child_ttl", "5m"))
    except ValueError:
        raise ConfigError("child_ttl is not a duration") from None
    return ProxyConfig(
        upstream=str(doc["upstream"]).rstrip("/"),
        listen=str(doc.get("listen", "127.0.0.1:8300")),
        upstream_ca_cert=doc.get("upstream_ca_cert"),
        login=login,
        k8s_role=doc.get("k8s_role"),
        token_file=doc.get("token_file"),
        child_policies=tuple(doc.get("child_policies", ["web-user"])),
        child_ttl=max(30, ttl),
        cookie_secure=bool(doc.get("cookie_secure", True)),
        csrf_key_file=doc.get("csrf_key_file"),
        step_up=parse_step_up(doc.get("step_up")),
        mpa_broker=str(doc["mpa_broker"]).rstrip("/") if doc.get("mpa_broker") else None,
        idp=IdpConfig(
            issuer=idp["issuer"],
            audience=idp["audience"],
            jwks_url=idp.get("jwks_url"),
            jwks_file=idp.get("jwks_file"),
            user_claim=idp.get("user_claim", "sub"),
            algorithms=tuple(idp.get("algorithms", ["RS256", "ES256"])),
            leeway=int(idp.get("leeway", 30)),
        ),
    )
