"""Steps several KV paths take alike: checking a key, finding a requested version, editing versions, listing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, NotFound, Request
from strongroom.engines.kv import write_once
from strongroom.engines.kv.storage import KeyMetadata, KVStore, VersionMetadata, now_ns, validate_key_path
from strongroom.framework import FieldData

if TYPE_CHECKING:
    from strongroom.engines.kv.backend import KVBackend

LIST_PAGE = 1000


def is_valid_key(key: str) -> bool:
    """Existence checks answer False for a malformed key: the handler refuses it, and nothing can have that name."""
    try:
        validate_key_path(key)
    except InvalidRequest:
        return False
    return True


def folder_prefix(fd: FieldData) -> str:
    prefix = validate_key_path(fd.get("path"), folder=True)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix


async def list_all(page: Callable[[str, int], Awaitable[list[str]]], after: str = "") -> list[str]:
    """Every key ``page(after, limit)`` yields, fetched a page at a time so storage is never read whole."""
    keys: list[str] = []
    while True:
        batch = await page(after, LIST_PAGE)
        keys.extend(batch)
        if len(batch) < LIST_PAGE:
            return keys
        after = batch[-1]


async def requested_version(store: KVStore, key: str, fd: FieldData) -> tuple[KeyMetadata, int, VersionMetadata]:
    """The key's metadata and the version ``version`` names (0 or absent: the current one); 404 when either is gone."""
    meta = await store.metadata(key)
    if meta is None:
        raise NotFound()
    requested = fd.get("version") or 0
    number = requested if requested > 0 else meta.current_version
    vm = meta.versions.get(number)
    if vm is None:
        raise NotFound()
    return meta, number, vm


async def edit_versions(
    b: KVBackend,
    req: Request,
    key: str,
    versions: list[int],
    edit: Callable[[KeyMetadata, VersionMetadata, int], bool],
    *,
    drop_data: bool = False,
) -> None:
    """Under the key's lock, ``edit(meta, version, now)`` each listed version that exists, which says if it changed.

    A missing key is not an error (as in Vault). A write-once mount refuses before anything changes. With
    ``drop_data`` the changed versions' data is removed in the same commit as the metadata.
    """
    store = b.store(req)
    async with b.lock(key):
        meta = await store.metadata(key)
        if meta is None:
            return
        if await b.is_write_once():
            write_once.refuse_delete(meta)
        now = now_ns()
        changed = [n for n in versions if (vm := meta.versions.get(n)) is not None and edit(meta, vm, now)]
        await store.commit(meta, remove_versions=changed if drop_data else ())
