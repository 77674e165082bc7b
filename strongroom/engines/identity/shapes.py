"""Vault's JSON shapes for identity objects, and the small input coercions the identity API shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.identity import group_ids_of
from strongroom.core.logical import InvalidRequest

if TYPE_CHECKING:
    from strongroom.core.identity import IdentityStore
    from strongroom.framework.backend import BackendContext

NAMESPACE_ID = "root"


def string_map(name: str, value: Any) -> dict[str, str]:
    """Vault's key-value pairs: a JSON object of strings or a list of ``key=value`` strings."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return dict(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        out: dict[str, str] = {}
        for item in value:
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise InvalidRequest(f"invalid key value pair {item!r} in {name}")
            out[key] = val
        return out
    raise InvalidRequest(f"error converting input for field {name!r}: expected map of strings")


def id_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise InvalidRequest(f"error converting input for field {name!r}: expected list of strings")


def policy_list(values: list[str]) -> list[str]:
    """Normalised policy names. ``root`` can never come through identity (CVE-2025-5999: an operator able to edit
    entities or groups must not be able to mint root by naming it, in any casing or spacing)."""
    names = sorted({p.strip().lower() for p in values if p.strip()})
    if "root" in names:
        raise InvalidRequest('the "root" policy cannot be assigned to an entity or group')
    return names


def resolve_mount(ctx: BackendContext, accessor: str) -> tuple[str, str]:
    """(mount path, mount type) of an auth mount accessor, or 400 if no such mount exists."""
    core = ctx.services.get("core")
    if core is None:
        return "", ""
    route = core.router.by_accessor(accessor)
    if route is None:
        raise InvalidRequest(f"invalid mount accessor {accessor!r}")
    return route.entry.route_path, route.entry.type


def _mount_of(ctx: BackendContext, alias: dict[str, Any]) -> tuple[str, str]:
    core = ctx.services.get("core")
    route = core.router.by_accessor(alias["mount_accessor"]) if core is not None else None
    if route is None:
        return alias.get("mount_path", ""), alias.get("mount_type", "")
    return route.entry.route_path, route.entry.type


def entity_alias_json(ctx: BackendContext, alias: dict[str, Any]) -> dict[str, Any]:
    path, mtype = _mount_of(ctx, alias)
    return {
        "canonical_id": alias["canonical_id"],
        "creation_time": alias.get("creation_time", ""),
        "custom_metadata": alias.get("custom_metadata") or None,
        "id": alias["id"],
        "last_update_time": alias.get("last_update_time", ""),
        "local": bool(alias.get("local")),
        "merged_from_canonical_ids": alias.get("merged_from_canonical_ids"),
        "metadata": alias.get("metadata") or None,
        "mount_accessor": alias["mount_accessor"],
        "mount_path": path,
        "mount_type": mtype,
        "name": alias["name"],
        "namespace_id": NAMESPACE_ID,
    }


async def entity_json(ctx: BackendContext, store: IdentityStore, rec: dict[str, Any]) -> dict[str, Any]:
    direct = group_ids_of(rec)
    inherited = await store.inherited_group_ids(direct)
    return {
        "aliases": [entity_alias_json(ctx, a) for a in rec.get("aliases", [])],
        "creation_time": rec.get("creation_time", ""),
        "direct_group_ids": direct,
        "disabled": bool(rec.get("disabled")),
        "group_ids": direct + inherited,
        "id": rec["id"],
        "inherited_group_ids": inherited,
        "last_update_time": rec.get("last_update_time", ""),
        "merged_entity_ids": None,
        "metadata": rec.get("metadata") or None,
        "name": rec["name"],
        "namespace_id": NAMESPACE_ID,
        "policies": rec.get("policies") or [],
    }


def group_alias_json(ctx: BackendContext, alias: dict[str, Any] | None) -> dict[str, Any]:
    if not alias:
        return {}
    path, mtype = _mount_of(ctx, alias)
    return {
        "canonical_id": alias["canonical_id"],
        "creation_time": alias.get("creation_time", ""),
        "id": alias["id"],
        "last_update_time": alias.get("last_update_time", ""),
        "merged_from_canonical_ids": alias.get("merged_from_canonical_ids"),
        "metadata": alias.get("metadata"),
        "mount_accessor": alias["mount_accessor"],
        "mount_path": path,
        "mount_type": mtype,
        "name": alias["name"],
        "namespace_id": NAMESPACE_ID,
    }


def group_json(ctx: BackendContext, rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "alias": group_alias_json(ctx, rec.get("alias")),
        "creation_time": rec.get("creation_time", ""),
        "id": rec["id"],
        "last_update_time": rec.get("last_update_time", ""),
        "member_entity_ids": rec.get("member_entity_ids") or [],
        "member_group_ids": rec.get("member_group_ids") or None,
        "metadata": rec.get("metadata") or None,
        "modify_index": int(rec.get("modify_index", 0)),
        "name": rec["name"],
        "namespace_id": NAMESPACE_ID,
        "parent_group_ids": rec.get("parent_group_ids") or None,
        "policies": rec.get("policies") or [],
        "type": rec["type"],
    }
