"""Drive the KV backend directly, the way the pipeline does: route, validate fields, existence check, handle.

Storage is the real barrier over in-memory storage, so every record the engine writes is encrypted and path-bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strongroom import crypto
from strongroom.core.barrier import Barrier, BarrierView
from strongroom.core.logical import LogicalError, Operation, Request
from strongroom.engines.kv.backend import KVBackend
from strongroom.engines.kv.storage import metadata_key, version_key
from strongroom.framework import BackendContext
from strongroom.storage.memory import InMemoryStorage


@dataclass
class Result:
    status: int
    data: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    operation: Operation | None = None  # after the existence check: CREATE or UPDATE for writes

    @property
    def error(self) -> str:
        return "; ".join(self.errors)


class KV:
    def __init__(self, backend: KVBackend, view: BarrierView, storage: InMemoryStorage) -> None:
        self.backend = backend
        self.view = view
        self.storage = storage

    @classmethod
    async def create(cls, options: dict[str, str] | None = None, services: dict[str, Any] | None = None) -> KV:
        storage = InMemoryStorage()
        barrier = Barrier(storage)
        await barrier.initialize(crypto.new_key())
        view = barrier.view("logical/test-mount/")
        ctx = BackendContext(
            storage=view,
            mount_path="secret/",
            mount_type="kv",
            mount_accessor="kv_test",
            options={"version": "2", **(options or {})},
            services=dict(services or {}),
        )
        backend = KVBackend(ctx)
        await backend.initialize()
        return cls(backend, view, storage)

    async def request(self, operation: Operation | str, path: str, data: dict[str, Any] | None = None) -> Result:
        op = Operation(operation)
        if op is Operation.LIST and not path.endswith("/"):
            path += "/"  # as the HTTP layer does
        req = Request(operation=op, path=path, data=dict(data or {}), storage=self.view, mount_point="secret/")
        try:
            p, params = self.backend.route(path)
            req.params = params
            fd = self.backend.field_data(p, req, params)
            if op in (Operation.CREATE, Operation.UPDATE):
                exists = await self.backend.exists(p, req, fd)
                op = Operation.CREATE if exists is False else Operation.UPDATE
                req.operation = op
            resp = await self.backend.handle(p, req, fd)
        except LogicalError as exc:
            return Result(exc.status, errors=exc.messages, operation=op)
        if resp is None:
            return Result(204, operation=op)
        if resp.data is None and not resp.warnings:
            return Result(resp.status or 204, operation=op)
        return Result(resp.status or 200, resp.data, list(resp.warnings), operation=op)

    # shorthands
    async def read(self, path: str, **data: Any) -> Result:
        return await self.request(Operation.READ, path, data)

    async def write(self, path: str, data: dict[str, Any] | None = None) -> Result:
        return await self.request(Operation.UPDATE, path, data)

    async def patch(self, path: str, data: dict[str, Any]) -> Result:
        return await self.request(Operation.PATCH, path, data)

    async def delete(self, path: str) -> Result:
        return await self.request(Operation.DELETE, path)

    async def list(self, path: str, **data: Any) -> Result:
        return await self.request(Operation.LIST, path, data)

    async def put(self, key: str, secret: dict[str, Any], **options: Any) -> Result:
        body: dict[str, Any] = {"data": secret}
        if options:
            body["options"] = options
        return await self.write(f"data/{key}", body)

    # what is really in storage (decrypted by the barrier)
    async def stored_version(self, key: str, version: int) -> Any:
        return await self.view.get_json(version_key(key, version))

    async def stored_metadata(self, key: str) -> Any:
        return await self.view.get_json(metadata_key(key))

    def raw_bytes(self) -> bytes:
        return b"".join(self.storage._data.values())
