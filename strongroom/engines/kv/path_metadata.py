"""``metadata/<path>``: a key's settings and version history; LIST of keys and folders; removing a key entirely."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.engines.kv import custom_metadata, write_once
from strongroom.engines.kv.common import folder_prefix, is_valid_key, list_all
from strongroom.engines.kv.storage import KeyMetadata, format_time, now_ns, validate_key_path
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.durations import format_duration

if TYPE_CHECKING:
    from strongroom.engines.kv.backend import KVBackend

_CAS_MANDATED = '"cas_required" set to false, but is mandated by backend config. This value will be ignored.'

FIELDS = {
    "path": Field(FieldType.STRING, "Location of the secret.", in_path=True),
    "cas_required": Field(
        FieldType.BOOL,
        "If true the key will require the cas parameter to be set on all write requests. If false, the backend's "
        "configuration will be used.",
    ),
    "max_versions": Field(
        FieldType.INT, "The number of versions to keep. If not set, the backend's configured max version is used."
    ),
    "delete_version_after": Field(
        FieldType.DURATION,
        "The length of time before a version is deleted. If not set, the backend's configured delete_version_after "
        "is used. A zero duration clears the current setting.",
    ),
    "custom_metadata": Field(
        FieldType.MAP, "User-provided key-value pairs describing the secret, independent of its versions."
    ),
    "after": Field(FieldType.STRING, "LIST only: return keys after this one (pagination)."),
    "limit": Field(FieldType.INT, "LIST only: return at most this many keys (0: all)."),
}


def describe(meta: KeyMetadata) -> dict[str, Any]:
    return {
        "versions": {str(n): meta.versions[n].describe_with_author() for n in sorted(meta.versions)},
        "current_version": meta.current_version,
        "oldest_version": meta.oldest_version,
        "created_time": format_time(meta.created_time),
        "updated_time": format_time(meta.updated_time),
        "max_versions": meta.max_versions,
        "cas_required": meta.cas_required,
        "delete_version_after": format_duration(meta.delete_version_after),
        "custom_metadata": meta.custom_metadata,
    }


def _max_versions(fd: FieldData) -> int | None:
    if not fd.has("max_versions"):
        return None
    value = fd.get("max_versions")
    if value < 0 or value >= 2**32:
        raise InvalidRequest("max_versions must be between 0 and 4294967295")
    return int(value)


async def _apply_settings(
    b: KVBackend, meta: KeyMetadata, max_versions: int | None, cas: tuple[Any, bool], dva: tuple[Any, bool]
) -> None:
    """Set the given settings (each with whether it was given); a write-once mount refuses shorter retention."""
    (cas_required, has_cas), (delete_after, has_dva) = cas, dva
    if await b.is_write_once():
        write_once.refuse_retention_change(
            meta,
            meta.max_versions if max_versions is None else max_versions,
            delete_after if has_dva else meta.delete_version_after,
        )
    if max_versions is not None:
        meta.max_versions = max_versions
    if has_cas:
        meta.cas_required = cas_required
    if has_dva:
        meta.delete_version_after = delete_after


def paths(b: KVBackend) -> list[Path]:
    async def exists(req: Request, fd: FieldData) -> bool:
        key = fd.get("path")
        return is_valid_key(key) and await b.store(req).metadata(key) is not None

    async def read(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        meta = await b.store(req).metadata(key)
        if meta is None:
            raise NotFound()
        return Response(data=describe(meta))

    async def write(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        max_versions = _max_versions(fd)
        cas_required, has_cas = fd.get_ok("cas_required")
        dva, has_dva = fd.get_ok("delete_version_after")
        raw_custom, has_custom = fd.get_ok("custom_metadata")
        if max_versions is None and not (has_cas or has_dva or has_custom):
            return None
        custom: dict[str, str] = {}
        if has_custom:
            custom = custom_metadata.parse(raw_custom)
            custom_metadata.validate(custom)
        store = b.store(req)
        config = await store.config()
        warnings = [_CAS_MANDATED] if has_cas and config.cas_required and not cas_required else []
        async with b.lock(key):
            meta = await store.metadata(key)
            if meta is None:
                now = now_ns()
                meta = KeyMetadata(key=key, created_time=now, updated_time=now)
            await _apply_settings(b, meta, max_versions, (cas_required, has_cas), (dva, has_dva))
            if has_custom:
                meta.custom_metadata = custom
            await store.commit(meta)
        return Response(warnings=warnings) if warnings else None

    async def patch(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        max_versions = _max_versions(fd)
        raw_custom, has_custom = fd.get_ok("custom_metadata")
        if has_custom:
            custom_metadata.validate(custom_metadata.parse(raw_custom, skip_nulls=True))
        store = b.store(req)
        config = await store.config()
        async with b.lock(key):
            meta = await store.metadata(key)
            if meta is None:
                raise NotFound()
            cas_required, has_cas = fd.get_ok("cas_required")
            warnings = [_CAS_MANDATED] if has_cas and config.cas_required and not cas_required else []
            dva, has_dva = fd.get_ok("delete_version_after")
            await _apply_settings(b, meta, max_versions, (cas_required, has_cas), (dva, has_dva))
            if has_custom:
                # JSON merge patch of the map: null removes a key, a value sets it
                merged = dict(meta.custom_metadata or {})
                for name, value in raw_custom.items():
                    if value is None:
                        merged.pop(name, None)
                    else:
                        merged[name] = custom_metadata.parse({name: value})[name]
                custom_metadata.validate(merged)
                meta.custom_metadata = merged
            await store.commit(meta)
        return Response(warnings=warnings) if warnings else None

    async def delete(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        store = b.store(req)
        async with b.lock(key):
            meta = await store.metadata(key)
            if meta is None:
                return None
            if await b.is_write_once():
                write_once.refuse_metadata_delete(meta)
            await store.remove_key(meta)
        return None

    async def list_keys(req: Request, fd: FieldData) -> Response | None:
        prefix = folder_prefix(fd)
        after = fd.get("after") or ""
        limit = fd.get("limit") or 0
        if limit < 0:
            raise InvalidRequest("limit must be a non-negative integer")
        store = b.store(req)
        if limit:
            return Response.list_keys(await store.list_page(prefix, after, limit))
        # only this folder's immediate children are ever held
        return Response.list_keys(await list_all(lambda start, n: store.list_page(prefix, start, n), after))

    return [
        Path(
            pattern=r"metadata/(?P<path>.*)",
            fields=FIELDS,
            operations={
                Operation.READ: read,
                Operation.CREATE: write,
                Operation.UPDATE: write,
                Operation.PATCH: patch,
                Operation.DELETE: delete,
                Operation.LIST: list_keys,
            },
            existence_check=exists,
            summary="Read and write a key's settings and version history; list keys; remove a key and every version.",
            description=(
                "LIST returns the keys and folders (ending in '/') under a folder. DELETE permanently removes the "
                "key's metadata and all of its versions."
            ),
        )
    ]
