"""What the sync and asyncio clients share: HTTP settings, request shaping, and the engine-backed state.

Only the I/O loop differs between the two clients, so everything else lives here once.
"""

from __future__ import annotations

from typing import Any

from strongroom.secretstore.engine import Engine, HttpCall
from strongroom.secretstore.settings import Settings


def http_client_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "base_url": f"{settings.addr}/v1/",
        "timeout": settings.timeout,
        "verify": settings.ca_cert or True,
        "headers": {"X-Vault-Request": "true"},
    }


def request_kwargs(call: HttpCall) -> dict[str, Any]:
    headers = {"X-Vault-Token": call.token} if call.token else {}
    return {"method": call.method, "url": call.path, "json": call.json, "headers": headers}


class ClientState:
    """Settings (environment plus explicit overrides) and the sans-I/O engine that runs on them."""

    def __init__(self, settings: Settings | None, overrides: dict[str, Any]) -> None:
        base = settings or Settings.from_env()
        self.settings = Settings(**{**base.__dict__, **overrides}) if overrides else base
        self._engine = Engine(self.settings)

    @property
    def addr(self) -> str:
        return self.settings.addr

    @property
    def namespace(self) -> str:
        return self._engine.identity.namespace

    @property
    def service_account(self) -> str:
        return self._engine.identity.service_account


class PathState:
    """A secret's name and version, and the KV path the engine maps them to."""

    def __init__(self, client: ClientState, name: str, version: str) -> None:
        self._client = client
        self.name = name
        self.version = version

    @property
    def path(self) -> str:
        return self._client._engine.secret_path(self.name, self.version)
