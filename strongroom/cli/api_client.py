"""The small HTTP client the operator commands use: address and token from flags or the environment."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import click
import httpx


class ApiError(Exception):
    def __init__(self, status: int, messages: list[str]) -> None:
        super().__init__("; ".join(messages) or f"HTTP {status}")
        self.status = status
        self.messages = messages


class ApiClient:
    def __init__(self, addr: str, token: str = "", ca_cert: str = "") -> None:
        self.addr = addr.rstrip("/")
        self.token = token
        verify: Any = ca_cert or True
        self._http = httpx.Client(base_url=self.addr, timeout=30.0, verify=verify)

    def request(self, method: str, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"X-Vault-Request": "true"}
        if self.token:
            headers["X-Vault-Token"] = self.token
        try:
            resp = self._http.request(method, f"/v1/{path}", json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(0, [f"cannot reach {self.addr}: {type(exc).__name__}"]) from None
        if resp.status_code == 204 or not resp.content:
            if resp.status_code >= 400:
                raise ApiError(resp.status_code, [])
            return {}
        try:
            body = resp.json()
        except ValueError:
            raise ApiError(resp.status_code, [f"unexpected response ({resp.status_code})"]) from None
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, list(body.get("errors") or []))
        return body


def env_addr() -> str:
    return os.environ.get("STRONGROOM_ADDR") or os.environ.get("VAULT_ADDR") or "http://127.0.0.1:8200"


def env_token() -> str:
    token = os.environ.get("STRONGROOM_TOKEN") or os.environ.get("VAULT_TOKEN") or ""
    if not token:
        path = os.path.expanduser("~/.vault-token")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                token = fh.read().strip()
    return token


def api_client_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --addr/--token/--ca-cert (defaulting to STRONGROOM_* then VAULT_*) and passes ``api``."""

    @click.option("--addr", default=None, help="Server address (STRONGROOM_ADDR or VAULT_ADDR).")
    @click.option("--token", default=None, help="Token (STRONGROOM_TOKEN or VAULT_TOKEN).")
    @click.option("--ca-cert", default=None, help="CA bundle to verify the server (STRONGROOM_CACERT or VAULT_CACERT).")
    @functools.wraps(fn)
    def wrapper(*args: Any, addr: str | None, token: str | None, ca_cert: str | None, **kwargs: Any) -> Any:
        ca = ca_cert or os.environ.get("STRONGROOM_CACERT") or os.environ.get("VAULT_CACERT") or ""
        api = ApiClient(addr or env_addr(), token if token is not None else env_token(), ca)
        return fn(*args, api=api, **kwargs)

    return wrapper
