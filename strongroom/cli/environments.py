"""Named environments (``s101`` staging, ``prod``) from a TOML user config, and a logged-in API session for one.

Config file: ``--config`` flag, else ``$STRONGROOM_CONFIG``, else ``<user config dir>/strongroom/config.toml``::

    [environments.s101]
    address = "https://strongroom.s101.example.internal:8200"
    ca_cert = "/etc/ssl/strongroom-s101.pem"   # optional
    login = "proxy"          # "proxy": the address is the staff proxy, send the IdP token
                             # "jwt": log in at auth/<jwt_mount>/login with the IdP token
                             # "token": a Strongroom token from --token / STRONGROOM_TOKEN
    jwt_role = "engineer"
    jwt_mount = "jwt"
    idp_token_file = "~/.config/company/idp-token"   # else $STRONGROOM_IDP_TOKEN
    # optional: the transport key fingerprints this environment may present; anything else is refused, so a
    # TLS-terminating box in between cannot swap in a key of its own
    transport_fingerprints = ["SHA256:..."]

``--addr``/``STRONGROOM_ADDR`` and ``--token``/``STRONGROOM_TOKEN`` override the environment's address and login.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
import httpx

STAGING = "s101"
DEFAULTS: dict[str, dict[str, Any]] = {
    "s101": {"address": "https://strongroom.s101.internal:8200", "login": "proxy"},
    "prod": {"address": "https://strongroom.prod.internal:8200", "login": "proxy"},
}
LOGIN_METHODS = ("proxy", "jwt", "token")


class UsageError(click.UsageError):
    """Exit status 2."""


class ApiError(Exception):
    def __init__(self, status: int, errors: list[str], path: str) -> None:
        super().__init__(f"{path}: HTTP {status}: {'; '.join(errors) or 'no detail'}")
        self.status = status
        self.errors = errors
        self.path = path


@dataclass(frozen=True)
class Environment:
    name: str
    address: str
    login: str = "proxy"
    ca_cert: str | None = None
    jwt_role: str = "engineer"
    jwt_mount: str = "jwt"
    idp_token_file: str | None = None
    token: str | None = None  # from --token / STRONGROOM_TOKEN only, never from the file
    transport_fingerprints: tuple[str, ...] = ()

    @property
    def is_production(self) -> bool:
        return self.name == "prod"


def config_path(explicit: str | None = None) -> Path:
    chosen = explicit or os.environ.get("STRONGROOM_CONFIG")
    if chosen:
        return Path(chosen).expanduser()
    return Path(click.get_app_dir("strongroom")) / "config.toml"


def load(path: Path) -> dict[str, Environment]:
    raw: dict[str, dict[str, Any]] = {k: dict(v) for k, v in DEFAULTS.items()}
    if path.exists():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read config {path}: {exc}") from None
        for name, table in (doc.get("environments") or {}).items():
            if not isinstance(table, dict):
                raise UsageError(f"config {path}: [environments.{name}] must be a table")
            raw.setdefault(name, {}).update(table)
    envs = {}
    for name, table in raw.items():
        login = table.get("login", "proxy")
        if login not in LOGIN_METHODS:
            raise UsageError(f"config {path}: environment {name}: login must be one of {', '.join(LOGIN_METHODS)}")
        if "token" in table:
            raise UsageError(f"config {path}: do not store tokens in the config file; use STRONGROOM_TOKEN")
        envs[name] = Environment(
            name=name,
            address=str(table.get("address", "")).rstrip("/"),
            login=login,
            ca_cert=table.get("ca_cert"),
            jwt_role=table.get("jwt_role", "engineer"),
            jwt_mount=str(table.get("jwt_mount", "jwt")).strip("/"),
            idp_token_file=table.get("idp_token_file"),
            transport_fingerprints=tuple(str(f) for f in table.get("transport_fingerprints") or ()),
        )
    return envs


def select(envs: dict[str, Environment], name: str, addr: str | None = None, token: str | None = None) -> Environment:
    if name not in envs:
        raise UsageError(f"unknown environment {name!r}; known: {', '.join(sorted(envs))}")
    env = envs[name]
    addr = addr or os.environ.get("STRONGROOM_ADDR")
    token = token or os.environ.get("STRONGROOM_TOKEN")
    if addr:
        env = replace(env, address=addr.rstrip("/"))
    if token:
        env = replace(env, login="token", token=token)
    return env


def _idp_token(env: Environment) -> str:
    value = os.environ.get("STRONGROOM_IDP_TOKEN")
    if not value and env.idp_token_file:
        try:
            value = Path(env.idp_token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the IdP token file {env.idp_token_file}: {exc.strerror}") from None
    if not value:
        raise UsageError(
            f"no credentials for {env.name}: set STRONGROOM_IDP_TOKEN (staff login) or STRONGROOM_TOKEN / --token"
        )
    return value


class Session:
    """An authenticated connection to one environment's Vault-compatible API."""

    def __init__(self, env: Environment, timeout: float = 30.0) -> None:
        self.env = env
        if not env.address:
            raise UsageError(f"environment {env.name} has no address; set it in the config or pass --addr")
        self._http = httpx.Client(
            base_url=f"{env.address}/v1/",
            timeout=timeout,
            verify=env.ca_cert or True,
            headers={"X-Vault-Request": "true"},
        )

    def login(self) -> None:
        env = self.env
        if env.login == "token":
            if not env.token:
                raise UsageError(f"environment {env.name} logs in with a token: pass --token or set STRONGROOM_TOKEN")
            self._http.headers["X-Vault-Token"] = env.token
        elif env.login == "proxy":
            # The staff proxy verifies the IdP token and inserts a short-lived child token for this person.
            self._http.headers["Authorization"] = f"Bearer {_idp_token(env)}"
        else:
            body = self.call("POST", f"auth/{env.jwt_mount}/login", {"role": env.jwt_role, "jwt": _idp_token(env)})
            self._http.headers["X-Vault-Token"] = body["auth"]["client_token"]

    def call(
        self, method: str, path: str, json: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> Any:
        try:
            resp = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise ApiError(0, [f"cannot reach {self.env.address}: {type(exc).__name__}"], path) from None
        if resp.status_code == 204:
            return None
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code >= 400:
            errors = body.get("errors") if isinstance(body, dict) else None
            raise ApiError(resp.status_code, [str(e) for e in errors or []], path)
        return body

    def list(self, path: str) -> list[str]:
        try:
            # GET ?list=true rather than the LIST verb: some HTTP stacks in between refuse unknown verbs
            body = self.call("GET", path, params={"list": "true"})
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise
        return list(((body or {}).get("data") or {}).get("keys") or [])

    def close(self) -> None:
        self._http.close()
