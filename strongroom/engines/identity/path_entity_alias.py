"""identity/entity-alias: tie a name on an auth mount to an entity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import Request, Response
from strongroom.engines.identity.crud import Kind, Record, id_paths
from strongroom.engines.identity.shapes import entity_alias_json, resolve_mount, string_map
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.identity.backend import IdentityBackend

_FIELDS = {
    "id": Field(FieldType.STRING, "ID of the entity alias. If set, updates the corresponding entity alias."),
    "name": Field(FieldType.STRING, "Name of the alias: the caller's identifier in the auth method."),
    "canonical_id": Field(FieldType.STRING, "Entity ID to which this alias belongs."),
    "entity_id": Field(FieldType.STRING, "Deprecated: use canonical_id."),
    "mount_accessor": Field(FieldType.STRING, "Accessor of the auth mount the alias belongs to."),
    "custom_metadata": Field(FieldType.ANY, "User-provided key-value pairs."),
}

_KIND = Kind("entity-alias", "entity alias", "an")


def paths(b: IdentityBackend) -> list[Path]:
    async def write(req: Request, fd: FieldData, alias_id: str) -> Response:
        accessor = fd.get("mount_accessor") or ""
        mount_path, mount_type = resolve_mount(b.ctx, accessor) if accessor else ("", "")
        custom = string_map("custom_metadata", fd.get("custom_metadata")) if fd.has("custom_metadata") else None
        alias, _ = await b.store.write_entity_alias(
            alias_id=alias_id, name=fd.get("name"), canonical_id=fd.get("canonical_id") or fd.get("entity_id"),
            mount_accessor=accessor or None, mount_type=mount_type, mount_path=mount_path, custom_metadata=custom,
        )
        return Response(data={"canonical_id": alias["canonical_id"], "id": alias["id"]})

    async def read(alias_id: str) -> Record | None:
        owner = await b.store.entity_by_alias_id(alias_id)
        if owner is None:
            return None
        alias = next(a for a in owner["aliases"] if a["id"] == alias_id)
        return entity_alias_json(b.ctx, alias)

    async def list_ids(req: Request, fd: FieldData) -> Response:
        keys: list[str] = []
        info: dict[str, object] = {}
        for alias_id, entity_id in await b.store.alias_ids():
            owner = await b.store.entity(entity_id)
            alias = next((a for a in (owner or {}).get("aliases", []) if a["id"] == alias_id), None)
            if alias is None:
                continue
            keys.append(alias_id)
            shaped = entity_alias_json(b.ctx, alias)
            info[alias_id] = {k: shaped[k] for k in ("canonical_id", "custom_metadata", "local", "mount_accessor",
                                                      "mount_path", "mount_type", "name")}
        return Response.list_keys(keys, key_info=info)

    return id_paths(
        _KIND, _FIELDS, "Create a new entity alias.",
        write=write, read=read, delete=lambda alias_id: b.store.delete_entity_alias(alias_id), list_ids=list_ids,
    )
