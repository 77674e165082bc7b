"""identity/entity: create, read, update, delete and list entities by id or name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import NotFound, Operation, Request, Response
from strongroom.engines.identity.shapes import entity_json, policy_list, string_map
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.identity.backend import IdentityBackend

_FIELDS = {
    "name": Field(FieldType.STRING, "Name of the entity."),
    "id": Field(FieldType.STRING, "ID of the entity. If set, updates the corresponding existing entity."),
    "metadata": Field(FieldType.ANY, "Metadata to be associated with the entity (map or list of key=value)."),
    "policies": Field(FieldType.COMMA_STRING_LIST, "Policies to be tied to the entity."),
    "disabled": Field(FieldType.BOOL, "If set true, tokens tied to this identity will not be able to be used."),
}


def paths(b: IdentityBackend) -> list[Path]:
    async def write(req: Request, fd: FieldData, *, entity_id: str = "", name: str = "",
                    by_name: bool = False) -> Response | None:
        values: dict[str, object] = {}
        if fd.has("metadata"):
            values["metadata"] = string_map("metadata", fd.get("metadata"))
        if fd.has("policies"):
            values["policies"] = policy_list(fd.get("policies"))
        if fd.has("disabled"):
            values["disabled"] = fd.get("disabled")
        rec, created = await b.store.write_entity(entity_id=entity_id, name=name, values=values, by_name=by_name)
        if not created:
            return None
        return Response(data={"aliases": None, "id": rec["id"], "name": rec["name"]})

    async def create(req: Request, fd: FieldData) -> Response | None:
        return await write(req, fd, entity_id=fd.get("id") or "", name=fd.get("name") or "")

    async def by_id_write(req: Request, fd: FieldData) -> Response | None:
        return await write(req, fd, entity_id=fd.get("id"), name=fd.get("name") or "")

    async def by_id_read(req: Request, fd: FieldData) -> Response:
        rec = await b.store.entity(fd.get("id"))
        if rec is None:
            raise NotFound()
        return Response(data=await entity_json(b.ctx, b.store, rec))

    async def by_id_delete(req: Request, fd: FieldData) -> None:
        await b.store.delete_entity(fd.get("id"))

    async def by_name_write(req: Request, fd: FieldData) -> Response | None:
        return await write(req, fd, name=fd.get("name"), by_name=True)

    async def by_name_read(req: Request, fd: FieldData) -> Response:
        rec = await b.store.entity_by_name(fd.get("name"))
        if rec is None:
            raise NotFound()
        return Response(data=await entity_json(b.ctx, b.store, rec))

    async def by_name_delete(req: Request, fd: FieldData) -> None:
        rec = await b.store.entity_by_name(fd.get("name"))
        if rec is not None:
            await b.store.delete_entity(rec["id"])

    async def list_ids(req: Request, fd: FieldData) -> Response:
        keys = await b.store.list_ids("entity")
        info: dict[str, object] = {}
        for eid in keys:
            rec = await b.store.entity(eid)
            if rec is not None:
                info[eid] = {"name": rec["name"], "aliases": [
                    {k: a.get(k, "") for k in ("id", "mount_accessor", "mount_path", "mount_type", "name")}
                    for a in rec.get("aliases", [])]}
        return Response.list_keys(keys, key_info=info)

    async def list_names(req: Request, fd: FieldData) -> Response:
        return Response.list_keys(sorted(bytes.fromhex(k).decode() for k in await b.store.view.list_all(
            "idx/entity-name/") if k != "-"))

    id_fields = {**_FIELDS, "id": Field(FieldType.STRING, "ID of the entity.", in_path=True)}
    name_fields = {**_FIELDS, "name": Field(FieldType.STRING, "Name of the entity.", in_path=True)}
    return [
        Path(r"entity/?", {Operation.UPDATE: create}, _FIELDS, summary="Create a new entity or update one."),
        Path(r"entity/id/?", {Operation.LIST: list_ids}, {}, summary="List entity ids."),
        Path(r"entity/id/(?P<id>[^/]+)", {Operation.UPDATE: by_id_write, Operation.READ: by_id_read,
                                          Operation.DELETE: by_id_delete}, id_fields,
             summary="Manage an entity by id."),
        Path(r"entity/name/?", {Operation.LIST: list_names}, {}, summary="List entity names."),
        Path(r"entity/name/(?P<name>.+)", {Operation.UPDATE: by_name_write, Operation.READ: by_name_read,
                                           Operation.DELETE: by_name_delete}, name_fields,
             summary="Manage an entity by name."),
    ]
