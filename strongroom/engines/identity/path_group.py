"""identity/group: internal groups (explicit members) and external groups (membership from an auth method)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import NotFound, Operation, Request, Response
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

    async def create(req: Request, fd: FieldData) -> Response:
        return await write(req, fd, group_id=fd.get("id") or "", name=fd.get("name") or "")

    async def by_id_write(req: Request, fd: FieldData) -> Response:
        return await write(req, fd, group_id=fd.get("id"), name=fd.get("name") or "")

    async def by_id_read(req: Request, fd: FieldData) -> Response:
        rec = await b.store.group(fd.get("id"))
        if rec is None:
            raise NotFound()
        return Response(data=group_json(b.ctx, rec))

    async def by_id_delete(req: Request, fd: FieldData) -> None:
        await b.store.delete_group(fd.get("id"))

    async def by_name_write(req: Request, fd: FieldData) -> Response:
        return await write(req, fd, name=fd.get("name"), by_name=True)

    async def by_name_read(req: Request, fd: FieldData) -> Response:
        rec = await b.store.group_by_name(fd.get("name"))
        if rec is None:
            raise NotFound()
        return Response(data=group_json(b.ctx, rec))

    async def by_name_delete(req: Request, fd: FieldData) -> None:
        rec = await b.store.group_by_name(fd.get("name"))
        if rec is not None:
            await b.store.delete_group(rec["id"])

    async def list_ids(req: Request, fd: FieldData) -> Response:
        keys = await b.store.list_ids("group")
        info: dict[str, Any] = {}
        for gid in keys:
            rec = await b.store.group(gid)
            if rec is not None:
                info[gid] = {"name": rec["name"], "num_member_entities": len(rec.get("member_entity_ids") or []),
                             "num_parent_groups": len(rec.get("parent_group_ids") or [])}
        return Response.list_keys(keys, key_info=info)

    async def list_names(req: Request, fd: FieldData) -> Response:
        return Response.list_keys(sorted(bytes.fromhex(k).decode() for k in await b.store.view.list_all(
            "idx/group-name/") if k != "-"))

    id_fields = {**_FIELDS, "id": Field(FieldType.STRING, "ID of the group.", in_path=True)}
    name_fields = {**_FIELDS, "name": Field(FieldType.STRING, "Name of the group.", in_path=True)}
    return [
        Path(r"group/?", {Operation.UPDATE: create}, _FIELDS, summary="Create a new group or update one."),
        Path(r"group/id/?", {Operation.LIST: list_ids}, {}, summary="List group ids."),
        Path(r"group/id/(?P<id>[^/]+)", {Operation.UPDATE: by_id_write, Operation.READ: by_id_read,
                                         Operation.DELETE: by_id_delete}, id_fields, summary="Manage a group by id."),
        Path(r"group/name/?", {Operation.LIST: list_names}, {}, summary="List group names."),
        Path(r"group/name/(?P<name>.+)", {Operation.UPDATE: by_name_write, Operation.READ: by_name_read,
                                          Operation.DELETE: by_name_delete}, name_fields,
             summary="Manage a group by name."),
    ]
