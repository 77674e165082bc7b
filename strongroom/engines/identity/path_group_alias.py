"""identity/group-alias: the name an auth method's groups claim uses for an external group."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import Request, Response
from strongroom.engines.identity.crud import Kind, Record, id_paths
from strongroom.engines.identity.shapes import group_alias_json, resolve_mount
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.identity.backend import IdentityBackend

_FIELDS = {
    "id": Field(FieldType.STRING, "ID of the group alias. If set, updates the corresponding existing alias."),
    "name": Field(FieldType.STRING, "Name of the group alias: the group's name in the auth method."),
    "mount_accessor": Field(FieldType.STRING, "Accessor of the auth mount the alias belongs to."),
    "canonical_id": Field(FieldType.STRING, "ID of the external group the alias belongs to."),
}

_KIND = Kind("group-alias", "group alias", "a")


def paths(b: IdentityBackend) -> list[Path]:
    async def write(req: Request, fd: FieldData, alias_id: str) -> Response:
        accessor = fd.get("mount_accessor") or ""
        mount_path, mount_type = resolve_mount(b.ctx, accessor) if accessor else ("", "")
        alias, _ = await b.store.write_group_alias(
            alias_id=alias_id, name=fd.get("name"), mount_accessor=accessor or None,
            canonical_id=fd.get("canonical_id"), mount_type=mount_type, mount_path=mount_path,
        )
        return Response(data={"canonical_id": alias["canonical_id"], "id": alias["id"]})

    async def read(alias_id: str) -> Record | None:
        group = await b.store.group_by_alias_id(alias_id)
        if group is None or not group.get("alias"):
            return None
        return group_alias_json(b.ctx, group["alias"])

    async def list_ids(req: Request, fd: FieldData) -> Response:
        keys: list[str] = []
        info: dict[str, Any] = {}
        for alias_id in await b.store.group_alias_ids():
            group = await b.store.group_by_alias_id(alias_id)
            if group is None or not group.get("alias"):
                continue
            keys.append(alias_id)
            shaped = group_alias_json(b.ctx, group["alias"])
            info[alias_id] = {k: shaped[k] for k in ("canonical_id", "mount_accessor", "mount_path", "mount_type",
                                                      "name")}
        return Response.list_keys(keys, key_info=info)

    return id_paths(
        _KIND, _FIELDS, "Create a new group alias.",
        write=write, read=read, delete=lambda alias_id: b.store.delete_group_alias(alias_id), list_ids=list_ids,
    )
