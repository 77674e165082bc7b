"""``destroy/<path>``: permanently remove the data of chosen versions; their metadata records the destruction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.kv.common import edit_versions
from strongroom.engines.kv.storage import KeyMetadata, VersionMetadata, validate_key_path
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.kv.backend import KVBackend

FIELDS = {
    "path": Field(FieldType.STRING, "Location of the secret.", in_path=True),
    "versions": Field(FieldType.INT_LIST, "The versions to destroy. Their data will be permanently deleted."),
}


def paths(b: KVBackend) -> list[Path]:
    async def destroy(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        versions = fd.get("versions") or []
        if not versions:
            raise InvalidRequest("no version number provided")

        def destroy_data(meta: KeyMetadata, vm: VersionMetadata, now: int) -> bool:
            if vm.destroyed:
                return False
            vm.destroyed = True
            return True

        await edit_versions(b, req, key, versions, destroy_data, drop_data=True)
        return None

    return [
        Path(
            pattern=r"destroy/(?P<path>.+)",
            fields=FIELDS,
            operations={Operation.UPDATE: destroy},
            summary="Permanently remove the data of versions of a key.",
        )
    ]
