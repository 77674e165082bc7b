"""identity/group: internal groups (explicit members) and external groups (membership from an auth method)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import Request, Response
from strongroom.engines.identity.crud import Kind, Record, id_paths, name_paths
from strongroom.engines.identity.shapes import group_json, id_list, policy_list, string_map
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.identity.backend import IdentityBackend

_FIELDS = {
    "id": Field(FieldType.STRING, "ID of the group. If set, updates the corresponding existing group."),
    "name": Field(FieldType.STRING, "Name of the group."),
    "type": Field(FieldType.STRING, "Type of the group, 'internal' or 'external'. Defaults to 'internal'."),
    "metadata": Field(FieldType.ANY, "Metadata to be associated with the group."),
    "policies": Field(FieldType.COMMA_STRING_LIST, "Policies to be tied to the group."),
    "member_group_ids": Field(FieldType.ANY, "Group IDs to be assigned as group members (list or comma string)."),
    "member_entity_ids": Field(FieldType.ANY, "Entity IDs to be assigned as group members (list or comma string)."),
}

_KIND = Kind("group", "group", "a")


def paths(b: IdentityBackend) -> list[Path]:
    async def write(req: Request, fd: FieldData, *, group_id: str = "", name: str = "",
                    by_name: bool = False) -> Response:
        values: dict[str, Any] = {}
        if fd.get("type"):
            values["type"] = fd.get("type").lower()
        if fd.has("metadata"):
            values["metadata"] = string_map("metadata", fd.get("metadata"))
        if fd.has("policies"):
            values["policies"] = policy_list(fd.get("policies"))
        for key in ("member_group_ids", "member_entity_ids"):
            if fd.get(key) is not None:  # hvac sends null for "not given"
                values[key] = id_list(key, fd.get(key))
        rec, _ = await b.store.write_group(group_id=group_id, name=name, values=values, by_name=by_name)
        return Response(data={"id": rec["id"], "name": rec["name"]})

    async def list_ids(req: Request, fd: FieldData) -> Response:
        keys = await b.store.list_ids("group")
        info: dict[str, Any] = {}
        for gid in keys:
            rec = await b.store.group(gid)
            if rec is not None:
                info[gid] = {"name": rec["name"], "num_member_entities": len(rec.get("member_entity_ids") or []),
                             "num_parent_groups": len(rec.get("parent_group_ids") or [])}
        return Response.list_keys(keys, key_info=info)

    async def read(key: str, find: Callable[[str], Awaitable[Record | None]]) -> Record | None:
        rec = await find(key)
        return None if rec is None else group_json(b.ctx, rec)

    return [
        *id_paths(
            _KIND, _FIELDS, "Create a new group or update one.",
            write=lambda req, fd, group_id: write(req, fd, group_id=group_id, name=fd.get("name") or ""),
            read=lambda group_id: read(group_id, b.store.group),
            delete=lambda group_id: b.store.delete_group(group_id), list_ids=list_ids,
        ),
        *name_paths(
            _KIND, _FIELDS, lambda: b.store.view,
            write=lambda req, fd, name: write(req, fd, name=name, by_name=True),
            read=lambda name: read(name, b.store.group_by_name), find=lambda name: b.store.group_by_name(name),
            delete=lambda group_id: b.store.delete_group(group_id),
        ),
    ]
