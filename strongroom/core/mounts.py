"""The mount table and the router: which backend serves a path (longest mount prefix wins)."""

from __future__ import annotations

import importlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from strongroom import crypto
from strongroom.core.logical import InvalidRequest
from strongroom.framework.backend import Backend

# type -> "module:Class". Backends are imported only when mounted.
ENGINE_TYPES: dict[str, str] = {
    "kv": "strongroom.engines.kv.backend:KVBackend",
    "generic": "strongroom.engines.kv.backend:KVBackend",  # Vault's old name for kv version 1, still accepted
    "cubbyhole": "strongroom.engines.cubbyhole:CubbyholeBackend",
    "database": "strongroom.engines.database.backend:DatabaseBackend",
    "transit": "strongroom.engines.transit.backend:TransitBackend",
    "pki": "strongroom.engines.pki.backend:PKIBackend",
    "aws": "strongroom.engines.aws.backend:AWSBackend",
    "totp": "strongroom.engines.totp.backend:TOTPBackend",
    "identity": "strongroom.engines.identity.backend:IdentityBackend",
    "system": "strongroom.core.system.backend:SystemBackend",
}
AUTH_TYPES: dict[str, str] = {
    "token": "strongroom.auth.token.backend:TokenBackend",
    "kubernetes": "strongroom.auth.kubernetes.backend:KubernetesBackend",
    "jwt": "strongroom.auth.jwt.backend:JWTBackend",
    "oidc": "strongroom.auth.jwt.backend:JWTBackend",
    "approle": "strongroom.auth.approle.backend:AppRoleBackend",
    "userpass": "strongroom.auth.userpass.backend:UserpassBackend",
}
# mounts that always exist and cannot be disabled or moved
SINGLETON_ENGINES = {"sys/": "system", "cubbyhole/": "cubbyhole", "identity/": "identity"}
SINGLETON_AUTH = {"token/": "token"}
# paths nobody may mount over
_PROTECTED_PREFIXES = ("sys/", "auth/", "cubbyhole/", "identity/")


@dataclass
class MountEntry:
    path: str  # "secret/" (engines) or "kubernetes/" (auth; served at "auth/kubernetes/")
    type: str
    uuid: str
    accessor: str
    is_auth: bool = False
    description: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    local: bool = False
    seal_wrap: bool = False
    external_entropy_access: bool = False
    created: float = 0.0

    @property
    def route_path(self) -> str:
        return ("auth/" + self.path) if self.is_auth else self.path

    @property
    def storage_prefix(self) -> str:
        return f"auth/{self.uuid}/" if self.is_auth else f"logical/{self.uuid}/"

    def to_api(self) -> dict[str, Any]:
        cfg = {
            "default_lease_ttl": int(self.config.get("default_lease_ttl", 0)),
            "max_lease_ttl": int(self.config.get("max_lease_ttl", 0)),
            "force_no_cache": bool(self.config.get("force_no_cache", False)),
        }
        for key in (
            "listing_visibility",
            "passthrough_request_headers",
            "allowed_response_headers",
        ):
            if key in self.config:
                cfg[key] = self.config[key]
        out: dict[str, Any] = {
            "accessor": self.accessor,
            "config": cfg,
            "description": self.description,
            "external_entropy_access": self.external_entropy_access,
            "local": self.local,
            "options": self.options or None,
            "plugin_version": "",
            "running_plugin_version": "v0.1.0+builtin.strongroom",
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.type,
            "uuid": self.uuid,
        }
        if self.is_auth:
            out.pop("external_entropy_access")
        return out


def new_mount(
    path: str,
    mtype: str,
    *,
    is_auth: bool,
    description: str = "",
    config: dict[str, Any] | None = None,
    options: dict[str, str] | None = None,
    local: bool = False,
    seal_wrap: bool = False,
) -> MountEntry:
    accessor_type = mtype if mtype != "kv" else "kv"
    accessor = f"auth_{accessor_type}_{crypto.random_hex(4)}" if is_auth else f"{accessor_type}_{crypto.random_hex(4)}"
    return MountEntry(
        path=path,
        type=mtype,
        uuid=crypto.new_uuid(),
        accessor=accessor,
        is_auth=is_auth,
        description=description,
        config=dict(config or {}),
        options=dict(options or {}),
        local=local,
        seal_wrap=seal_wrap,
        created=time.time(),
    )


def normalize_mount_path(path: str) -> str:
    path = path.strip("/")
    if not path:
        raise InvalidRequest("path cannot be empty")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or any(c in path for c in "*+{}\\ \t\n"):
        raise InvalidRequest(f"invalid mount path {path!r}")
    return path + "/"


def backend_class(mtype: str, is_auth: bool) -> type[Backend]:
    table = AUTH_TYPES if is_auth else ENGINE_TYPES
    target = table.get(mtype)
    if target is None:
        kind = "auth method" if is_auth else "secrets engine"
        raise InvalidRequest(f"plugin not found in the catalog: {mtype} (no {kind} of that type)")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


@dataclass
class Route:
    entry: MountEntry
    backend: Backend


class Router:
    """Longest-prefix lookup over mount paths: one dict probe per path segment, independent of the mount count."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def add(self, entry: MountEntry, backend: Backend) -> None:
        self._routes[entry.route_path] = Route(entry, backend)

    def remove(self, route_path: str) -> Route | None:
        return self._routes.pop(route_path, None)

    def clear(self) -> None:
        self._routes.clear()

    def match(self, path: str) -> tuple[Route, str] | None:
        """The route for ``path`` and the path relative to the mount."""
        # candidates are the path itself (as a mount root) and every prefix ending in "/"
        probe = path if path.endswith("/") else path + "/"
        idx = len(probe)
        while idx > 0:
            candidate = probe[:idx]
            route = self._routes.get(candidate)
            if route is not None:
                return route, path[len(candidate) :] if len(path) >= len(candidate) else ""
            idx = probe.rfind("/", 0, idx - 1) + 1
        return None

    def get(self, route_path: str) -> Route | None:
        return self._routes.get(route_path)

    def by_accessor(self, accessor: str) -> Route | None:
        for route in self._routes.values():
            if route.entry.accessor == accessor:
                return route
        return None

    def entries(self, is_auth: bool) -> list[MountEntry]:
        return sorted((r.entry for r in self._routes.values() if r.entry.is_auth == is_auth), key=lambda e: e.path)

    def conflicts(self, route_path: str) -> bool:
        """Vault refuses a mount inside or around an existing one."""
        for existing in self._routes:
            if existing.startswith(route_path) or route_path.startswith(existing):
                return True
        return route_path.startswith(_PROTECTED_PREFIXES) and not route_path.startswith("auth/")


async def holds_write_once_data(route: Route) -> bool:
    """Whether the mount is write-once and holds anything: such a mount may be neither disabled nor moved nor
    replaced, by anyone (removing it would erase values that must stay readable, and re-creating it would let a key
    take a second value)."""
    is_write_once = getattr(route.backend, "is_write_once", None)
    if is_write_once is None or not await is_write_once():
        return False
    # the engine's own bookkeeping (its write-once marker under sys/, its config) is not data
    return any(child not in ("sys/", "config") for child in await route.backend.ctx.storage.list())


def refuse_write_once(route: Route, action: str) -> InvalidRequest:
    return InvalidRequest(
        f"cannot {action} {route.entry.route_path}: it is a write-once mount that holds secrets, which must stay "
        "readable; only an empty write-once mount may be removed or moved"
    )


def mount_table_json(entries: list[MountEntry]) -> list[dict[str, Any]]:
    return [asdict(e) for e in entries]
