"""What the aws engine stores behind the barrier: the root configuration, the lease configuration and roles.

Storage keys (inside the mount's own barrier view): ``config/root`` (the engine's own access key and secret key: the
barrier encrypts them and no read path returns the secret key), ``config/lease``, ``config/dynamic-roles``,
``role/<name>``, and the ServiceAccount cache of :mod:`strongroom.engines.database.serviceaccounts`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from strongroom.core.barrier import BarrierView

IAM_USER = "iam_user"
ASSUMED_ROLE = "assumed_role"
FEDERATION_TOKEN = "federation_token"  # noqa: S105 - a credential type name
SESSION_TOKEN = "session_token"  # noqa: S105 - a credential type name
CREDENTIAL_TYPES = (IAM_USER, ASSUMED_ROLE, FEDERATION_TOKEN, SESSION_TOKEN)
STS_TYPES = (ASSUMED_ROLE, FEDERATION_TOKEN, SESSION_TOKEN)

# Vault leaves IAM-user leases to the mount's default TTL (32 days); a credential nobody renews should die sooner
DEFAULT_LEASE = 3600
DEFAULT_LEASE_MAX = 24 * 3600
DEFAULT_STS_TTL = 3600  # Vault's creds/sts ``ttl`` default


@dataclass
class RootConfig:
    access_key: str = ""
    secret_key: str = ""
    region: str = ""
    iam_endpoint: str = ""
    sts_endpoint: str = ""
    sts_region: str = ""
    max_retries: int = -1  # -1: the SDK's default
    username_template: str = ""
    # the key ID a rotate-root replaced, until AWS confirms it is deleted (see path_config_rotate_root)
    retiring_access_key: str = ""

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RootConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})

    def public(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("secret_key")
        return doc


@dataclass
class LeaseConfig:
    lease: int = 0
    lease_max: int = 0


@dataclass
class DynamicRolesConfig:
    """Which role ARNs a ServiceAccount annotation may name; ``{{namespace}}``/``{{service_account}}`` are filled in."""

    allowed_role_arns: list[str] = field(default_factory=list)


@dataclass
class Role:
    name: str
    credential_type: str
    role_arns: list[str] = field(default_factory=list)
    policy_arns: list[str] = field(default_factory=list)
    policy_document: str = ""
    iam_groups: list[str] = field(default_factory=list)
    iam_tags: dict[str, str] = field(default_factory=dict)
    session_tags: dict[str, str] = field(default_factory=dict)
    external_id: str = ""
    default_sts_ttl: int = 0
    max_sts_ttl: int = 0
    user_path: str = ""
    permissions_boundary_arn: str = ""
    # set for roles resolved from a ServiceAccount, never stored
    dynamic_from: str = ""

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Role:
        names = {f.name for f in fields(cls)} - {"dynamic_from"}
        return cls(**{k: v for k, v in doc.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("dynamic_from")
        return doc

    def view(self) -> dict[str, Any]:
        """Vault's role read shape."""
        doc = self.to_json()
        doc.pop("name")
        if self.dynamic_from:
            doc["dynamic_from"] = self.dynamic_from
        return doc


async def get_root(storage: BarrierView) -> RootConfig:
    doc = await storage.get_json("config/root")
    return RootConfig() if doc is None else RootConfig.from_json(doc)


async def put_root(storage: BarrierView, config: RootConfig) -> None:
    await storage.put_json("config/root", asdict(config))


async def get_lease(storage: BarrierView) -> LeaseConfig | None:
    doc = await storage.get_json("config/lease")
    return None if doc is None else LeaseConfig(**doc)


async def get_dynamic(storage: BarrierView) -> DynamicRolesConfig:
    doc = await storage.get_json("config/dynamic-roles")
    return DynamicRolesConfig() if doc is None else DynamicRolesConfig(**doc)


async def get_role(storage: BarrierView, name: str) -> Role | None:
    doc = await storage.get_json(f"role/{name}")
    return None if doc is None else Role.from_json(doc)


async def put_role(storage: BarrierView, role: Role) -> None:
    await storage.put_json(f"role/{role.name}", role.to_json())
