"""The synchronous client and the ``path(name, version)`` handle services use."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from strongroom.secretstore import engine
from strongroom.secretstore.common import ClientState, PathState, http_client_kwargs, request_kwargs
from strongroom.secretstore.engine import Op, Sleep
from strongroom.secretstore.settings import Settings


class Client(ClientState):
    """A workload's connection to Strongroom: logs in with its ServiceAccount, keeps and renews the token.

    ``Client()`` needs no arguments inside a pod; every setting can be given explicitly or through the environment.
    """

    def __init__(self, settings: Settings | None = None, *, http: httpx.Client | None = None, **overrides: Any) -> None:
        super().__init__(settings, overrides)
        self._http = http or httpx.Client(**http_client_kwargs(self.settings))
        self._lock = threading.Lock()

    def _run(self, op: Op) -> Any:
        value: Any = None
        while True:
            try:
                action = op.send(value)
            except StopIteration as done:
                return done.value
            if isinstance(action, Sleep):
                time.sleep(action.seconds)
                value = None
            else:
                try:
                    value = self._http.request(**request_kwargs(action))
                except httpx.TransportError as exc:
                    value = exc

    def token(self) -> str:
        """A valid Strongroom token for this workload (logging in or renewing as needed)."""
        with self._lock:
            return self._run(self._engine.token())

    def request(self, method: str, path: str, json: dict[str, Any] | None = None, describe: str | None = None) -> Any:
        """An authenticated API call (``path`` under ``/v1/``) with the library's retries and typed errors."""
        return self._run(self._engine.call(method, path, json, describe))

    def read(self, name: str, version: str) -> Any:
        return self._run(self._engine.read(name, version))

    def path(self, name: str, version: str) -> SecretPath:
        return SecretPath(self, name, version)

    def ready(self) -> bool:
        """For readiness probes: True when this workload can log in and the server answers."""
        try:
            return bool(self._run(self._engine.ready()))
        except Exception:  # noqa: BLE001 - a probe answers yes or no
            return False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SecretPath(PathState):
    """``secret/k8s/<ns>/<sa>/<name>/<version>``, key ``data``: read it as a string, bytes or JSON."""

    _client: Client

    def string(self) -> str:
        return engine.as_string(self._client.read(self.name, self.version), self.path)

    def bytes(self) -> bytes:
        return engine.as_bytes(self._client.read(self.name, self.version), self.path)

    def json(self) -> Any:
        return engine.as_json(self._client.read(self.name, self.version), self.path)

    def __repr__(self) -> str:
        return f"SecretPath({self.name!r}, {self.version!r})"
