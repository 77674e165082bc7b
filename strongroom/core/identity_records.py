"""The identity store's records: how entities, aliases and groups look in storage, and small helpers on them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from strongroom import crypto


def key_name(name: str) -> str:
    """A name as one safe storage key segment, whatever it contains ('/', '..', unicode)."""
    return name.encode().hex() or "-"


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


@dataclass(slots=True)
class Entity:
    id: str
    name: str
    policies: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    disabled: bool = False

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Entity:
        return cls(rec["id"], rec["name"], list(rec.get("policies") or []), dict(rec.get("metadata") or {}),
                   bool(rec.get("disabled")))


def group_ids_of(rec: dict[str, Any]) -> list[str]:
    """Groups an entity is directly in: internal ones by membership, external ones by its logins."""
    ids = list(rec.get("direct_group_ids") or [])
    for gids in (rec.get("external_group_ids") or {}).values():
        ids.extend(g for g in gids if g not in ids)
    return ids


def new_entity_record(name: str, stamp: str) -> dict[str, Any]:
    eid = crypto.new_uuid()
    return {
        "id": eid, "name": name or f"entity_{eid[:8]}", "metadata": {}, "policies": [], "disabled": False,
        "creation_time": stamp, "last_update_time": stamp, "aliases": [], "direct_group_ids": [],
        "external_group_ids": {},
    }


def new_alias(entity_id: str, accessor: str, mount_type: str, mount_path: str, name: str,
              stamp: str) -> dict[str, Any]:
    return {
        "id": crypto.new_uuid(), "canonical_id": entity_id, "mount_accessor": accessor, "mount_type": mount_type,
        "mount_path": mount_path, "name": name, "metadata": {}, "custom_metadata": {}, "creation_time": stamp,
        "last_update_time": stamp, "local": False, "merged_from_canonical_ids": None,
    }
