"""KV version 1: one unversioned JSON map per path, stored as written (Vault's passthrough backend).

On a ``write_once`` mount an existing entry can be neither overwritten nor deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.engines.kv.common import folder_prefix, is_valid_key, list_all
from strongroom.engines.kv.storage import validate_key_path
from strongroom.engines.kv.write_once import quote
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView
    from strongroom.engines.kv.backend import KVBackend

_PREFIX = "entries/"
FIELDS = {"path": Field(FieldType.STRING, "Location of the secret.", in_path=True)}


def paths(b: KVBackend) -> list[Path]:
    def view(req: Request) -> BarrierView:
        return (req.storage if req.storage is not None else b.ctx.storage).sub(_PREFIX)

    async def exists(req: Request, fd: FieldData) -> bool:
        key = fd.get("path")
        return is_valid_key(key) and await view(req).get(key) is not None

    async def read(req: Request, fd: FieldData) -> Response | None:
        data = await view(req).get_json(validate_key_path(fd.get("path")))
        if data is None:
            raise NotFound()
        return Response(data=data)

    async def write(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        if not req.data:
            raise InvalidRequest("missing data fields")
        async with b.lock(key):
            if await b.is_write_once() and await view(req).get(key) is not None:
                raise InvalidRequest(f"this mount is write-once: {quote(key)} already exists; write a new key instead")
            await view(req).put_json(key, dict(req.data))
        return None

    async def delete(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        async with b.lock(key):
            if await b.is_write_once() and await view(req).get(key) is not None:
                raise InvalidRequest(f"this mount is write-once: {quote(key)} cannot be deleted")
            await view(req).delete(key)
        return None

    async def list_keys(req: Request, fd: FieldData) -> Response | None:
        prefix = folder_prefix(fd)
        return Response.list_keys(await list_all(lambda after, n: view(req).list(prefix, after, n)))

    return [
        Path(
            pattern=r"(?P<path>.*)",
            fields=FIELDS,
            operations={
                Operation.READ: read,
                Operation.CREATE: write,
                Operation.UPDATE: write,
                Operation.DELETE: delete,
                Operation.LIST: list_keys,
            },
            existence_check=exists,
            summary="Read, write, delete and list unversioned key/value data.",
        )
    ]
