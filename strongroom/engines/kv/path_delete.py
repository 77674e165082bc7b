"""``delete/<path>`` and ``undelete/<path>``: soft-delete chosen versions of a key, or bring them back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.kv.common import edit_versions
from strongroom.engines.kv.storage import KeyMetadata, VersionMetadata, deletion_time, validate_key_path
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.kv.backend import KVBackend


def _fields(what: str) -> dict[str, Field]:
    return {
        "path": Field(FieldType.STRING, "Location of the secret.", in_path=True),
        "versions": Field(FieldType.INT_LIST, f"The versions to {what}."),
    }


def _versions(fd: FieldData) -> list[int]:
    versions = fd.get("versions") or []
    if not versions:
        raise InvalidRequest("No version number provided")
    return versions


def paths(b: KVBackend) -> list[Path]:
    async def delete_versions(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        versions = _versions(fd)

        def soft_delete(meta: KeyMetadata, vm: VersionMetadata, now: int) -> bool:
            if not vm.is_live(now):
                return False
            vm.deletion_time = now
            return True

        await edit_versions(b, req, key, versions, soft_delete)
        return None

    async def undelete_versions(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        versions = _versions(fd)
        store = b.store(req)
        config = await store.config()

        def restore(meta: KeyMetadata, vm: VersionMetadata, now: int) -> bool:
            if vm.destroyed:
                return False
            # a restored version starts a fresh delete_version_after period, as in Vault
            vm.deletion_time = deletion_time(now, config.delete_version_after, meta.delete_version_after)
            return True

        await edit_versions(b, req, key, versions, restore)
        return None

    return [
        Path(
            pattern=r"delete/(?P<path>.+)",
            fields=_fields("soft-delete: their data is kept but no longer returned by reads"),
            operations={Operation.UPDATE: delete_versions},
            summary="Mark versions of a key as deleted.",
        ),
        Path(
            pattern=r"undelete/(?P<path>.+)",
            fields=_fields("restore, so that reads return their data again"),
            operations={Operation.UPDATE: undelete_versions},
            summary="Restore soft-deleted versions of a key.",
        ),
    ]
