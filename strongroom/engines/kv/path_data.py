"""``data/<path>``: read a version, write a new one (with check-and-set), PATCH it, soft-delete the latest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, LogicalError, NotFound, Operation, Request, Response
from strongroom.engines.kv import write_once
from strongroom.engines.kv.common import is_valid_key, requested_version
from strongroom.engines.kv.storage import KeyMetadata, deletion_time, now_ns, validate_key_path
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.kv.backend import KVBackend

MAX_NESTING = 100

FIELDS = {
    "path": Field(FieldType.STRING, "Location of the secret.", in_path=True),
    "version": Field(FieldType.INT, "If provided during a read, the value at the version number will be returned."),
    "options": Field(
        FieldType.MAP,
        'Options for writing a KV entry. "cas": 0 writes only if the key does not exist; a non-zero value writes only '
        "if the key's current version matches it.",
    ),
    "data": Field(FieldType.MAP, "The contents of the data map will be stored and returned on read."),
    "transport": Field(
        FieldType.STRING, "A transport-encrypted envelope holding the data map, instead of plaintext 'data'."
    ),
}


def check_and_set(fd: FieldData, mount_cas_required: bool, meta: KeyMetadata) -> None:
    """Vault's ``validateCheckAndSetOption``: ``cas`` must match the current version when given or required."""
    options = fd.get("options") or {}
    if "cas" in options:
        if _parse_cas(options["cas"]) != meta.current_version:
            raise InvalidRequest("check-and-set parameter did not match the current version")
    elif mount_cas_required or meta.cas_required:
        raise InvalidRequest("check-and-set parameter required for this call")


def _parse_cas(raw: Any) -> int:
    # Weakly typed like Vault's mapstructure decode: null is 0, booleans are 0/1, numeric strings are accepted.
    if raw is None:
        return 0
    if isinstance(raw, bool | int):
        return int(raw)
    if isinstance(raw, float) and raw == raw and abs(raw) < 2**63:
        return int(raw)
    if isinstance(raw, str):
        try:
            return int(raw, 0) if raw.strip() else 0
        except ValueError:
            pass
    raise InvalidRequest("error parsing check-and-set parameter")


def check_nesting(value: Any) -> None:
    """Refuse data nested deeper than Vault's subkeys limit; the encoder, envelope and audit all nest it further."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > MAX_NESTING:
            raise InvalidRequest(f"data is nested too deeply: at most {MAX_NESTING} levels are allowed")
        stack.extend((child, depth + 1) for child in children)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def paths(b: KVBackend) -> list[Path]:
    async def exists(req: Request, fd: FieldData) -> bool:
        key = fd.get("path")
        return is_valid_key(key) and await b.store(req).metadata(key) is not None

    async def read(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        store = b.store(req)
        meta, number, vm = await requested_version(store, key, fd)
        body: dict[str, Any] = {"data": None, "metadata": meta.version_summary(number)}
        if not vm.is_live(now_ns()):
            # Vault answers a deleted or destroyed version with 404 and still shows its metadata.
            return Response(data=body, status=404)
        data = await store.version_data(key, number)
        if data is None:
            # Reads take no lock: a concurrent write may have just slid this version out of the kept window.
            fresh = await store.metadata(key)
            if fresh is None or number not in fresh.versions or not fresh.versions[number].is_live(now_ns()):
                raise NotFound()
            raise LogicalError("could not find version data", status=500)
        body["data"] = data
        return Response(data=body)

    async def write(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        data = await _input_data(b, fd, f"{req.mount_point}data/{key}")
        store = b.store(req)
        config = await store.config()
        async with b.lock(key):
            existing = await store.metadata(key)
            if existing is not None and req.operation is Operation.CREATE:
                # authorised as a create (the key did not exist), but another write made it meanwhile: a
                # create-only caller must not add a version, so make the client ask again
                raise InvalidRequest(f'"{key}" was created by another request while this one was in flight; retry')
            meta = existing or KeyMetadata(key=key)
            once = await b.is_write_once()
            if once:
                write_once.refuse_new_version(meta)
            check_and_set(fd, config.cas_required, meta)
            created = now_ns()
            # a write-once version never expires on a timer
            deleted = None if once else deletion_time(created, config.delete_version_after, meta.delete_version_after)
            _, removed = meta.add_version(created, deleted, config.max_versions, _author(req))
            await store.commit(meta, (meta.current_version, data), removed)
        return Response(data=meta.version_summary(meta.current_version))

    async def patch(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        if not fd.has("data"):
            raise InvalidRequest("no data provided")
        store = b.store(req)
        async with b.lock(key):
            meta = await store.metadata(key)
            if meta is None:
                raise NotFound()
            if await b.is_write_once():
                write_once.refuse_new_version(meta)
            config = await store.config()
            check_and_set(fd, config.cas_required, meta)
            current = meta.current_version
            vm = meta.versions.get(current)
            if vm is None:
                raise NotFound()
            if not vm.is_live(now_ns()):
                return Response(data=meta.version_summary(current), status=404)
            existing = await store.version_data(key, current)
            if existing is None:
                raise LogicalError("could not find version data", status=500)
            patch_data = fd.get("data")
            check_nesting(patch_data)
            patched = merge_patch(existing, patch_data)
            check_nesting(patched)
            created = now_ns()
            deleted = deletion_time(created, config.delete_version_after, meta.delete_version_after)
            _, removed = meta.add_version(created, deleted, config.max_versions, _author(req))
            await store.commit(meta, (meta.current_version, patched), removed)
        return Response(data=meta.version_summary(meta.current_version))

    async def delete(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        store = b.store(req)
        async with b.lock(key):
            meta = await store.metadata(key)
            if meta is None:
                return None
            if await b.is_write_once():
                write_once.refuse_delete(meta)
            latest = meta.versions.get(meta.current_version)
            now = now_ns()
            if latest is None or not latest.is_live(now):
                return None
            latest.deletion_time = now
            await store.commit(meta)
        return None

    return [
        Path(
            # no trailing slash: "data/a/" is not a key
            pattern=r"data/(?P<path>.*?[^/])",
            fields=FIELDS,
            operations={
                Operation.READ: read,
                Operation.CREATE: write,
                Operation.UPDATE: write,
                Operation.PATCH: patch,
                Operation.DELETE: delete,
            },
            existence_check=exists,
            summary="Write, patch, read and delete data in the key-value store.",
            description=(
                "Each write creates a new version. A read returns the latest version unless 'version' is given; a "
                "deleted or destroyed version answers 404 with its metadata. DELETE soft-deletes the latest version."
            ),
        )
    ]


def _author(req: Request) -> str:
    caller = req.caller
    return caller.display_name + (f" ({caller.entity_id})" if caller.entity_id else "")


async def _input_data(b: KVBackend, fd: FieldData, destination: str) -> dict[str, Any]:
    data, has_data = fd.get_ok("data")
    envelope, has_envelope = fd.get_ok("transport")
    if has_data and has_envelope:
        raise InvalidRequest("provide either data or transport, not both")
    if not has_envelope:
        if not has_data:
            raise InvalidRequest("no data provided")
        check_nesting(data)
        return data
    service = b.transport()
    if service is None:
        raise InvalidRequest("transport encryption is not available on this server")
    try:
        # the envelope is bound to the path it was sealed for: replaying it to another path fails to open
        plaintext = await service.decrypt_json(envelope, path=destination)
    except Exception:
        # Whatever went wrong stays here: its details could describe the plaintext.
        raise InvalidRequest("invalid transport envelope") from None
    if not isinstance(plaintext, dict):
        raise InvalidRequest("invalid transport envelope")
    check_nesting(plaintext)
    return plaintext
