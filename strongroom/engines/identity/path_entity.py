"""identity/entity: create, read, update, delete and list entities by id or name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from strongroom.core.logical import Request, Response
from strongroom.engines.identity.crud import Kind, Record, id_paths, name_paths
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

_KIND = Kind("entity", "entity", "an")


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

    async def read(key: str, find: Callable[[str], Awaitable[Record | None]]) -> Record | None:
        rec = await find(key)
        return None if rec is None else await entity_json(b.ctx, b.store, rec)

    return [
        *id_paths(
            _KIND, _FIELDS, "Create a new entity or update one.",
            write=lambda req, fd, entity_id: write(req, fd, entity_id=entity_id, name=fd.get("name") or ""),
            read=lambda entity_id: read(entity_id, b.store.entity),
            delete=lambda entity_id: b.store.delete_entity(entity_id), list_ids=list_ids,
        ),
        *name_paths(
            _KIND, _FIELDS, lambda: b.store.view,
            write=lambda req, fd, name: write(req, fd, name=name, by_name=True),
            read=lambda name: read(name, b.store.entity_by_name), find=lambda name: b.store.entity_by_name(name),
            delete=lambda entity_id: b.store.delete_entity(entity_id),
        ),
    ]
