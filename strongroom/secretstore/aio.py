"""The asyncio client: the same logic as :mod:`strongroom.secretstore.client`, run on ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from strongroom.secretstore import engine
from strongroom.secretstore.common import ClientState, PathState, http_client_kwargs, request_kwargs
from strongroom.secretstore.engine import Op, Sleep
from strongroom.secretstore.settings import Settings


class AsyncClient(ClientState):
    def __init__(
        self, settings: Settings | None = None, *, http: httpx.AsyncClient | None = None, **overrides: Any
    ) -> None:
        super().__init__(settings, overrides)
        self._http = http or httpx.AsyncClient(**http_client_kwargs(self.settings))
        self._lock = asyncio.Lock()

    async def _run(self, op: Op) -> Any:
        value: Any = None
        while True:
            try:
                action = op.send(value)
            except StopIteration as done:
                return done.value
            if isinstance(action, Sleep):
                await asyncio.sleep(action.seconds)
                value = None
            else:
                try:
                    value = await self._http.request(**request_kwargs(action))
                except httpx.TransportError as exc:
                    value = exc

    async def token(self) -> str:
        async with self._lock:
            return await self._run(self._engine.token())

    async def request(
        self, method: str, path: str, json: dict[str, Any] | None = None, describe: str | None = None
    ) -> Any:
        return await self._run(self._engine.call(method, path, json, describe))

    async def read(self, name: str, version: str) -> Any:
        return await self._run(self._engine.read(name, version))

    def path(self, name: str, version: str) -> AsyncSecretPath:
        return AsyncSecretPath(self, name, version)

    async def ready(self) -> bool:
        try:
            return bool(await self._run(self._engine.ready()))
        except Exception:  # noqa: BLE001 - a probe answers yes or no
            return False

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncSecretPath(PathState):
    _client: AsyncClient

    async def string(self) -> str:
        return engine.as_string(await self._client.read(self.name, self.version), self.path)

    async def bytes(self) -> bytes:
        return engine.as_bytes(await self._client.read(self.name, self.version), self.path)

    async def json(self) -> Any:
        return engine.as_json(await self._client.read(self.name, self.version), self.path)


_default: AsyncClient | None = None


def default_client() -> AsyncClient:
    global _default
    if _default is None:
        _default = AsyncClient()
    return _default


def path(name: str, version: str) -> AsyncSecretPath:
    """``await secretstore.aio.path("canary", "2019-05-11").string()``"""
    return default_client().path(name, version)


async def ready() -> bool:
    return await default_client().ready()
