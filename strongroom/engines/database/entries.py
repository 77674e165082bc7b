"""What the database engine stores behind the barrier: connections and roles.

Storage keys (inside the mount's own barrier view): ``config/<name>`` (a connection, its root password included:
the barrier encrypts it, and no read path returns it), ``role/<name>``, ``serviceaccounts/config`` and
``serviceaccount/<namespace>/<name>`` (the persisted ServiceAccount cache).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from strongroom.core.barrier import BarrierView
from strongroom.core.logical import InvalidRequest

# Vault's database leases default to the mount's TTL; the reference's choice is one week
DEFAULT_TTL = 7 * 24 * 3600


@dataclass
class Connection:
    name: str
    plugin_name: str
    connection_details: dict[str, Any]
    allowed_roles: list[str] = field(default_factory=list)
    verify_connection: bool = True
    root_rotation_statements: list[str] = field(default_factory=list)
    password_policy: str = ""
    username_template: str = ""
    # set by rotate-root before it changes the database password, cleared after the new one is stored
    pending_password: str = ""

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Connection:
        return cls(**doc)


@dataclass
class Role:
    name: str
    db_name: str
    creation_statements: list[str] = field(default_factory=list)
    revocation_statements: list[str] = field(default_factory=list)
    rollback_statements: list[str] = field(default_factory=list)
    renew_statements: list[str] = field(default_factory=list)
    default_ttl: int = 0
    max_ttl: int = 0
    # set for roles resolved from a ServiceAccount, never stored
    dynamic_from: str = ""

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Role:
        return cls(**{k: v for k, v in doc.items() if k != "dynamic_from"})

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("dynamic_from")
        return doc


async def get_connection(storage: BarrierView, name: str) -> Connection | None:
    doc = await storage.get_json(f"config/{name}")
    return None if doc is None else Connection.from_json(doc)


async def require_connection(storage: BarrierView, name: str) -> Connection:
    """The stored connection; a request naming one that does not exist is the caller's mistake (400)."""
    conn = await get_connection(storage, name)
    if conn is None:
        raise InvalidRequest(f"database connection {name!r} is not configured")
    return conn


async def put_connection(storage: BarrierView, conn: Connection) -> None:
    await storage.put_json(f"config/{conn.name}", asdict(conn))


async def get_role(storage: BarrierView, name: str) -> Role | None:
    doc = await storage.get_json(f"role/{name}")
    return None if doc is None else Role.from_json(doc)


async def put_role(storage: BarrierView, role: Role) -> None:
    await storage.put_json(f"role/{role.name}", role.to_json())


def parse_statements(value: Any, field_name: str) -> list[str]:
    """Vault's statement input: a string of ``;``-separated statements, a list, or either of those base64-encoded."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise InvalidRequest(f"{field_name} must be a string or a list of strings")
        return [v for v in value if v.strip()]
    if not isinstance(value, str):
        raise InvalidRequest(f"{field_name} must be a string or a list of strings")
    text = value.strip()
    if text and " " not in text:
        try:
            decoded = base64.b64decode(text, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded = ""
        if decoded:
            text = decoded.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list) and all(isinstance(v, str) for v in items):
            return [v for v in items if v.strip()]
    return [text] if text else []
