"""identity/lookup/entity and identity/lookup/group: find one object by id, name, alias id or alias name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.identity.shapes import entity_json, group_json
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.identity.backend import IdentityBackend

_FIELDS = {
    "type": Field(FieldType.STRING, "Unused; kept for compatibility."),
    "id": Field(FieldType.STRING, "ID of the object."),
    "name": Field(FieldType.STRING, "Name of the object."),
    "alias_id": Field(FieldType.STRING, "ID of the alias."),
    "alias_name": Field(FieldType.STRING, "Name of the alias; requires alias_mount_accessor."),
    "alias_mount_accessor": Field(FieldType.STRING, "Accessor of the mount the alias belongs to."),
}


def _criterion(fd: FieldData) -> str:
    given = [k for k in ("id", "name", "alias_id", "alias_name") if fd.get(k)]
    if not given:
        raise InvalidRequest("missing lookup criteria: one of 'id', 'name', 'alias_id' or 'alias_name' is required")
    if len(given) > 1:
        raise InvalidRequest("only one of 'id', 'name', 'alias_id' or 'alias_name' may be given")
    if given[0] == "alias_name" and not fd.get("alias_mount_accessor"):
        raise InvalidRequest("missing 'alias_mount_accessor'")
    return given[0]


def paths(b: IdentityBackend) -> list[Path]:
    store = b.store

    async def entity(req: Request, fd: FieldData) -> Response | None:
        how = _criterion(fd)
        rec: dict[str, Any] | None
        if how == "id":
            rec = await store.entity(fd.get("id"))
        elif how == "name":
            rec = await store.entity_by_name(fd.get("name"))
        elif how == "alias_id":
            rec = await store.entity_by_alias_id(fd.get("alias_id"))
        else:
            rec = await store.entity_by_alias(fd.get("alias_mount_accessor"), fd.get("alias_name"))
        return None if rec is None else Response(data=await entity_json(b.ctx, store, rec))

    async def group(req: Request, fd: FieldData) -> Response | None:
        how = _criterion(fd)
        rec: dict[str, Any] | None
        if how == "id":
            rec = await store.group(fd.get("id"))
        elif how == "name":
            rec = await store.group_by_name(fd.get("name"))
        elif how == "alias_id":
            rec = await store.group_by_alias_id(fd.get("alias_id"))
        else:
            rec = await store.group_by_alias(fd.get("alias_mount_accessor"), fd.get("alias_name"))
        return None if rec is None else Response(data=group_json(b.ctx, rec))

    return [
        Path(r"lookup/entity", {Operation.UPDATE: entity}, _FIELDS, summary="Query an entity."),
        Path(r"lookup/group", {Operation.UPDATE: group}, _FIELDS, summary="Query a group."),
    ]
