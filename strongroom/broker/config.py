"""The broker's configuration file (TOML): where it listens and stores, whom it trusts, and the credential kinds.

Example::

    [broker]
    listen = "127.0.0.1:8300"
    public_url = "https://mpa.example.com"     # the OIDC issuer Kubernetes is configured with
    storage = "sqlite:///var/lib/strongroom-mpa/broker.db"   # or "postgresql://…"
    audit_log = "/var/log/strongroom-mpa/audit.jsonl"
    production = true

    [idp]
    issuer = "https://idp.example.com"
    audience = "strongroom-mpa"
    jwks_url = "https://idp.example.com/.well-known/jwks.json"
    groups_claim = "groups"
    person_claim = "employee_id"           # the same for all of one human's accounts; required in production

    [strongroom]
    addr = "https://strongroom.example.com"

    [seed]
    file = "/var/lib/strongroom-mpa/seed.json"
    token_file = "/run/keys/broker-seed-token"   # may only call transit/decrypt/<key>: useless without attestation
    transit_mount = "transit"              # the seed is ciphertext under this attestation-bound transit key
    transit_key = "broker-seed"
    attestor = "nitro"                     # or "local" with insecure = true (never with production = true)

    [notify]
    slack_webhook = "https://hooks.slack.com/services/…"
    critical_webhook = "https://hooks.slack.com/services/…"

    [step_up]                              # optional: approve and break-glass need a WebAuthn step-up proof
    proof_key_file = "/run/keys/step-up-proof-key"   # shared with the staff proxy ([step_up] proof_key_file)

    [break_glass]
    groups = ["sre-oncall"]
    duration = "5m"
    remind_every = "15m"                   # page again while nobody has acknowledged a break-glass use

    [kinds.k8s-admin]
    type = "kubernetes"
    request_groups = ["platform"]
    approve_groups = ["platform"]
    approvals = 1
    max_duration = "15m"
    request_ttl = "1h"
    audience = "kubernetes"
    groups = ["mpa:cluster-admin"]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.framework.durations import parse_duration

KIND_TYPES = {"kubernetes", "strongroom-admin", "database", "broker-deploy"}
DEFAULT_MAX_DURATION = 15 * 60
DEFAULT_REQUEST_TTL = 60 * 60


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class KindConfig:
    name: str
    type: str
    request_groups: tuple[str, ...]
    approve_groups: tuple[str, ...]
    approvals: int = 1
    max_duration: int = DEFAULT_MAX_DURATION
    request_ttl: int = DEFAULT_REQUEST_TTL
    break_glass: bool = True
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IdpConfig:
    issuer: str
    audience: str
    jwks_url: str
    groups_claim: str = "groups"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    person_claim: str = ""


@dataclass(frozen=True)
class SeedConfig:
    file: str
    token_file: str
    transit_mount: str = "transit"
    transit_key: str = "broker-seed"
    local_ca_file: str = ""
    attestor: str = "nitro"
    insecure: bool = False


@dataclass(frozen=True)
class BrokerConfig:
    listen: str
    public_url: str
    storage: str
    audit_log: str
    idp: IdpConfig
    seed: SeedConfig
    kinds: dict[str, KindConfig]
    production: bool = True
    strongroom_addr: str | None = None
    slack_webhook: str | None = None
    critical_webhook: str | None = None
    break_glass_groups: tuple[str, ...] = ()
    break_glass_duration: int = 5 * 60
    break_glass_remind_every: int = 15 * 60
    oidc_algorithm: str = "RS256"
    # [step_up] proof_key_file: approving and break-glass need the staff proxy's WebAuthn step-up proof
    step_up_proof_key_file: str | None = None

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)


def _groups(section: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = section.get(key, [])
    if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
        raise ConfigError(f"{where}.{key} must be a list of group names")
    return tuple(value)


def _duration(section: dict[str, Any], key: str, default: int, where: str) -> int:
    try:
        seconds = parse_duration(section.get(key, default))
    except ValueError:
        raise ConfigError(f"{where}.{key} is not a duration") from None
    if seconds <= 0:
        raise ConfigError(f"{where}.{key} must be positive")
    return seconds


def _kind(name: str, raw: dict[str, Any]) -> KindConfig:
    where = f"kinds.{name}"
    kind_type = raw.get("type")
    if kind_type not in KIND_TYPES:
        raise ConfigError(f"{where}.type must be one of {sorted(KIND_TYPES)}")
    approvals = raw.get("approvals", 2 if kind_type == "broker-deploy" else 1)
    if not isinstance(approvals, int) or isinstance(approvals, bool) or approvals < 1:
        raise ConfigError(f"{where}.approvals must be a positive integer")
    if kind_type == "broker-deploy" and approvals < 2:
        raise ConfigError(f"{where}: changing the allowed build measurement needs at least two approvers")
    approve_groups = _groups(raw, "approve_groups", where)
    if not approve_groups:
        raise ConfigError(f"{where}.approve_groups must name at least one group")
    known = {"type", "request_groups", "approve_groups", "approvals", "max_duration", "request_ttl", "break_glass"}
    return KindConfig(
        name=name,
        type=kind_type,
        request_groups=_groups(raw, "request_groups", where),
        approve_groups=approve_groups,
        approvals=approvals,
        max_duration=_duration(raw, "max_duration", DEFAULT_MAX_DURATION, where),
        request_ttl=_duration(raw, "request_ttl", DEFAULT_REQUEST_TTL, where),
        break_glass=bool(raw.get("break_glass", kind_type != "broker-deploy")) and kind_type != "broker-deploy",
        options={k: v for k, v in raw.items() if k not in known},
    )


# Claims that name an account, not a human: one person with two accounts has two of each.
_ACCOUNT_CLAIMS = {"sub", "email", "name", "preferred_username", "upn", "oid", "jti"}


def _person_claim(idp: dict[str, Any], production: bool) -> str:
    """The claim that says which human an account belongs to, used for "the same person" in every review check.

    Without it the broker can only compare subjects and emails, so one person with two IdP accounts could approve
    their own request: a production broker refuses to start without one.
    """
    claim = idp.get("person_claim", "")
    if not isinstance(claim, str):
        raise ConfigError("idp.person_claim must be the name of a claim")
    claim = claim.strip()
    if claim in _ACCOUNT_CLAIMS or (claim and claim == idp.get("groups_claim", "groups")):
        raise ConfigError(f"idp.person_claim = {claim!r} names an account, not a person: use a claim that all of "
                          "one human's accounts share, such as an HR employee id")
    if production and not claim:
        raise ConfigError("idp.person_claim is required in production: without a claim that all of one human's "
                          "accounts share (e.g. an HR employee id), approvers cannot be resolved to people, and one "
                          "person with two IdP accounts could approve their own request")
    return claim


def parse_config(raw: dict[str, Any], base_dir: Path | None = None) -> BrokerConfig:
    base = base_dir or Path.cwd()

    def path(value: str) -> str:
        return str((base / value).resolve()) if value else value

    broker = raw.get("broker", {})
    idp = raw.get("idp", {})
    seed = raw.get("seed", {})
    notify = raw.get("notify", {})
    bg = raw.get("break_glass", {})
    if "kek_file" in seed:
        raise ConfigError("seed.kek_file is gone: the seed is transit ciphertext that Strongroom releases only to an "
                          "attested build; give seed.token_file (a token for transit/decrypt/<key>) instead")
    for section, keys in (("idp", ("issuer", "audience", "jwks_url")), ("seed", ("file", "token_file"))):
        for key in keys:
            if not isinstance(raw.get(section, {}).get(key), str):
                raise ConfigError(f"{section}.{key} is required")
    production = broker.get("production", True)
    attestor = seed.get("attestor", "nitro")
    if attestor not in ("nitro", "local"):
        raise ConfigError("seed.attestor must be 'nitro' or 'local'")
    if attestor == "local" and (production is not False or seed.get("insecure") is not True):
        raise ConfigError("the local attestor is insecure: it needs seed.insecure = true and broker.production = false")
    kinds = {name: _kind(name, body) for name, body in raw.get("kinds", {}).items()}
    if not kinds:
        raise ConfigError("at least one [kinds.NAME] section is required")
    listen = broker.get("listen", "127.0.0.1:8300")
    storage = broker.get("storage", "sqlite:///broker.db")
    if storage.startswith("sqlite:///"):
        storage = "sqlite:///" + path(storage.removeprefix("sqlite:///"))
    public_url = broker.get("public_url", f"http://{listen}").rstrip("/")
    if production is not False:
        # Kubernetes only trusts an https issuer, and an IdP key set fetched in clear could be swapped in transit.
        for name, url in (("broker.public_url", public_url), ("idp.jwks_url", idp["jwks_url"])):
            if not url.startswith("https://"):
                raise ConfigError(f"{name} must be an https:// URL in production")
    person_claim = _person_claim(idp, production is not False)
    algorithm = broker.get("oidc_algorithm", "RS256")
    if algorithm not in ("RS256", "ES256"):
        raise ConfigError("broker.oidc_algorithm must be RS256 or ES256")
    return BrokerConfig(
        listen=listen,
        public_url=public_url,
        storage=storage,
        audit_log=path(broker.get("audit_log", "broker-audit.jsonl")),
        production=production is not False,
        idp=IdpConfig(
            issuer=idp["issuer"], audience=idp["audience"], jwks_url=idp["jwks_url"],
            groups_claim=idp.get("groups_claim", "groups"), person_claim=person_claim,
        ),
        seed=SeedConfig(file=path(seed["file"]), token_file=path(seed["token_file"]), attestor=attestor,
                        insecure=seed.get("insecure") is True,
                        transit_mount=str(seed.get("transit_mount", "transit")).strip("/"),
                        transit_key=str(seed.get("transit_key", "broker-seed")),
                        local_ca_file=path(seed.get("local_ca_file", "local-attestor-ca.pem"))),
        kinds=kinds,
        strongroom_addr=raw.get("strongroom", {}).get("addr"),
        slack_webhook=notify.get("slack_webhook"),
        critical_webhook=notify.get("critical_webhook"),
        break_glass_groups=_groups(bg, "groups", "break_glass"),
        break_glass_duration=_duration(bg, "duration", 5 * 60, "break_glass"),
        break_glass_remind_every=_duration(bg, "remind_every", 15 * 60, "break_glass"),
        oidc_algorithm=algorithm,
        step_up_proof_key_file=path(raw["step_up"]["proof_key_file"]) if raw.get("step_up", {}).get("proof_key_file")
        else None,
    )


def load_config(file: str | Path) -> BrokerConfig:
    p = Path(file)
    try:
        raw = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read broker config {p}: {exc}") from None
    return parse_config(raw, p.parent)
