"""``cubbyhole/``: private storage per token. Each token sees only its own space, which dies with the token.

Response wrapping keeps a wrapped response in the wrapping token's cubbyhole (``response`` and ``wrapinfo``), written
and read by :mod:`strongroom.core.wrapping` through :meth:`CubbyholeBackend.put_for_token` and ``get_for_token``.
"""

from __future__ import annotations

from typing import Any

from strongroom.core.barrier import BarrierView
from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.core.tokens import BATCH_HASH_PREFIX
from strongroom.framework import Backend, BackendContext, Field, FieldData, FieldType, Path


class CubbyholeBackend(Backend):
    type = "cubbyhole"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        fields = {"path": Field(FieldType.STRING, "Location of the secret.", in_path=True)}
        self.paths = [
            Path(
                r"(?P<path>.*)",
                {
                    Operation.READ: self.read,
                    Operation.UPDATE: self.write,
                    Operation.CREATE: self.write,
                    Operation.DELETE: self.delete,
                    Operation.LIST: self.list,
                },
                fields,
                existence_check=self.exists_check,
                summary="Store, read, list and delete the caller's private secrets.",
            )
        ]

    def _view(self, req: Request) -> BarrierView:
        if not req.caller.token_hash:
            raise InvalidRequest("client token empty")
        if req.caller.token_hash.startswith(BATCH_HASH_PREFIX):
            # a batch token is never stored, so nothing could ever destroy a cubbyhole made for it
            raise InvalidRequest('cubbyhole operations are only supported by "service" type tokens')
        return self.ctx.storage.sub(f"{req.caller.token_hash}/")

    async def exists_check(self, req: Request, fd: FieldData) -> bool:
        return await self._view(req).get(fd.get("path")) is not None

    async def read(self, req: Request, fd: FieldData) -> Response:
        value = await self._view(req).get_json(fd.get("path"))
        if value is None:
            raise NotFound()
        return Response(data=value)

    async def write(self, req: Request, fd: FieldData) -> None:
        path = fd.get("path")
        if not path or path.endswith("/"):
            raise InvalidRequest("missing path")
        if not req.data:
            raise InvalidRequest("missing data fields")
        await self._view(req).put_json(path, req.data)

    async def delete(self, req: Request, fd: FieldData) -> None:
        await self._view(req).delete(fd.get("path"))

    async def list(self, req: Request, fd: FieldData) -> Response:
        return Response.list_keys(await self._view(req).list_all(fd.get("path")))

    async def put_for_token(self, token_hash: str, key: str, value: dict[str, Any]) -> None:
        await self.ctx.storage.sub(f"{token_hash}/").put_json(key, value)

    async def get_for_token(self, token_hash: str, key: str) -> dict[str, Any] | None:
        value = await self.ctx.storage.sub(f"{token_hash}/").get_json(key)
        return value if isinstance(value, dict) else None

    async def revoke_for_token(self, token_hash: str) -> None:
        await self.ctx.storage.sub(f"{token_hash}/").delete_prefix()
