"""identity/lookup/entity and identity/lookup/group: find one object by id, name, alias id or alias name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.identity.crud import Record
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


async def _find(fd: FieldData, *finders: Callable[..., Awaitable[Record | None]]) -> Record | None:
    """The object the one given criterion names; ``finders`` are by id, name, alias id, and (accessor, alias name)."""
    by_id, by_name, by_alias_id, by_alias = finders
    how = _criterion(fd)
    if how == "id":
        return await by_id(fd.get("id"))
    if how == "name":
        return await by_name(fd.get("name"))
    if how == "alias_id":
        return await by_alias_id(fd.get("alias_id"))
    return await by_alias(fd.get("alias_mount_accessor"), fd.get("alias_name"))


def paths(b: IdentityBackend) -> list[Path]:
    store = b.store

    async def entity(req: Request, fd: FieldData) -> Response | None:
        rec = await _find(fd, store.entity, store.entity_by_name, store.entity_by_alias_id, store.entity_by_alias)
        return None if rec is None else Response(data=await entity_json(b.ctx, store, rec))

    async def group(req: Request, fd: FieldData) -> Response | None:
        rec = await _find(fd, store.group, store.group_by_name, store.group_by_alias_id, store.group_by_alias)
        return None if rec is None else Response(data=group_json(b.ctx, rec))

    return [
        Path(r"lookup/entity", {Operation.UPDATE: entity}, _FIELDS, summary="Query an entity."),
        Path(r"lookup/group", {Operation.UPDATE: group}, _FIELDS, summary="Query a group."),
    ]
