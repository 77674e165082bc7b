"""sys/mounts and sys/auth: enable, disable, read and tune secrets engines and auth methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, NotFound, Operation, PermissionDenied, Request, Response
from strongroom.core.mounts import (
    MountEntry,
    Route,
    backend_class,
    holds_write_once_data,
    new_mount,
    normalize_mount_path,
    refuse_write_once,
)
from strongroom.core.system.path_internal_ui import caller_has_sudo
from strongroom.core.tokens import SYSTEM_MAX_TTL
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.durations import parse_duration

if TYPE_CHECKING:
    from strongroom.core.core import Core

_TTL_KEYS = ("default_lease_ttl", "max_lease_ttl")
_LIST_KEYS = ("passthrough_request_headers", "allowed_response_headers")
# Vault lets a mount exempt keys from audit HMAC; here secrets never reach the audit log in clear, for anyone
_REFUSED_KEYS = ("audit_non_hmac_request_keys", "audit_non_hmac_response_keys")


def _parse_config(raw: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = dict(current or {})
    for key, value in raw.items():
        if key in _REFUSED_KEYS and value not in (None, "", []):
            raise InvalidRequest(f"{key} is not supported: audit entries always HMAC every value")
        if key in _TTL_KEYS:
            if value in ("", None):
                continue
            if value == "system":
                cfg.pop(key, None)
                continue
            try:
                cfg[key] = parse_duration(value)
            except ValueError:
                raise InvalidRequest(f"invalid {key}: {value!r}") from None
        elif key in _LIST_KEYS:
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidRequest(f"{key} must be a list of strings")
            cfg[key] = value
        elif key == "listing_visibility":
            if value not in ("", "hidden", "unauth"):
                raise InvalidRequest("listing_visibility must be one of '', 'hidden', 'unauth'")
            cfg[key] = value
        elif key in ("force_no_cache",):
            cfg[key] = bool(value)
    d, m = cfg.get("default_lease_ttl", 0), cfg.get("max_lease_ttl", 0)
    if m and m > SYSTEM_MAX_TTL:
        raise InvalidRequest("given max_lease_ttl is greater than system max lease TTL")
    if d and m and d > m:
        raise InvalidRequest("given default_lease_ttl is greater than given max_lease_ttl")
    return cfg


def _parse_options(raw: Any, current: dict[str, str] | None = None) -> dict[str, str]:
    if raw is None:
        return dict(current or {})
    if not isinstance(raw, dict) or not all(isinstance(v, str | int | bool) for v in raw.values()):
        raise InvalidRequest("options must be a map of strings")
    out = dict(current or {})
    for k, v in raw.items():
        out[k] = str(v).lower() if isinstance(v, bool) else str(v)
    if current and current.get("write_once") == "true" and out.get("write_once") != "true":
        raise InvalidRequest("write_once cannot be turned off on a mount that has it: its secrets stay immutable")
    return out


async def write_once_removal_refused(core: Core, req: Request, route: Route, action: str) -> bool:
    """Issue 18's rule for write-once mounts, stricter than Vault: one that holds data is never removed or moved (a
    400 for everyone, root included); an empty one only by a caller with ``sudo`` on the request path. True when the
    caller lacks that sudo."""
    if await holds_write_once_data(route):
        raise refuse_write_once(route, action)
    is_write_once = getattr(route.backend, "is_write_once", None)
    if is_write_once is None or not await is_write_once():
        return False
    return not await caller_has_sudo(core, req, req.full_path, req.operation)


def paths(core: Core) -> list[Path]:
    def table(is_auth: bool) -> dict[str, Any]:
        return {e.path: e.to_api() for e in core.router.entries(is_auth)}

    def lookup(is_auth: bool, raw: str) -> MountEntry:
        path = normalize_mount_path(raw)
        route = core.router.get(("auth/" if is_auth else "") + path)
        if route is None:
            raise InvalidRequest(f"no {'auth' if is_auth else 'secret'} engine mount at {path}")
        return route.entry

    def make_handlers(is_auth: bool) -> tuple[Any, ...]:
        async def read_all(req: Request, fd: FieldData) -> Response:
            return Response(data=table(is_auth), inject_top_level=True)

        async def enable(req: Request, fd: FieldData) -> Response | None:
            path = normalize_mount_path(fd.get("path"))
            mtype = fd.get("type")
            if not mtype:
                raise InvalidRequest("backend type must be specified as a string")
            options = _parse_options(fd.get("options"))
            if mtype in ("kv-v1", "kv-v2"):
                mtype, options["version"] = "kv", mtype[-1]
            if mtype == "kv" and "version" not in options:
                options["version"] = "1"
            if not is_auth and path.startswith(("auth/", "sys/", "cubbyhole/", "identity/")):
                raise InvalidRequest(f"cannot mount at reserved path {path!r}")
            if mtype in ("system", "identity", "cubbyhole", "token"):
                raise InvalidRequest(f"cannot mount a second {mtype!r} backend")
            backend_class(mtype, is_auth).validate_options(options)
            entry = new_mount(
                path,
                mtype,
                is_auth=is_auth,
                description=fd.get("description"),
                config=_parse_config(fd.get("config") or {}),
                options=options,
                local=fd.get("local"),
                seal_wrap=fd.get("seal_wrap"),
            )
            if core.router.get(entry.route_path) is not None:
                raise InvalidRequest(f"path is already in use at {path}")
            await core.mount(entry)
            return None

        async def read_one(req: Request, fd: FieldData) -> Response:
            path = normalize_mount_path(fd.get("path"))
            route = core.router.get(("auth/" if is_auth else "") + path)
            if route is None:
                raise NotFound() if not is_auth else InvalidRequest(f"no auth mount at {path}")
            return Response(data=route.entry.to_api(), inject_top_level=True)

        async def disable(req: Request, fd: FieldData) -> Response | None:
            path = normalize_mount_path(fd.get("path"))
            route = core.router.get(("auth/" if is_auth else "") + path)
            if route is not None and await write_once_removal_refused(core, req, route, "disable"):
                raise PermissionDenied("disabling a write-once mount requires sudo")
            await core.unmount(("auth/" if is_auth else "") + path)
            return None

        async def read_tune(req: Request, fd: FieldData) -> Response:
            entry = lookup(is_auth, fd.get("path"))
            cfg = entry.to_api()["config"]
            data = {
                "default_lease_ttl": cfg["default_lease_ttl"] or SYSTEM_MAX_TTL,
                "max_lease_ttl": cfg["max_lease_ttl"] or SYSTEM_MAX_TTL,
                "force_no_cache": cfg["force_no_cache"],
                "description": entry.description,
                "options": entry.options or None,
            }
            for key in _LIST_KEYS + ("listing_visibility",):
                if key in entry.config:
                    data[key] = entry.config[key]
            if entry.is_auth:
                data["token_type"] = entry.config.get("token_type") or "default-service"
            return Response(data=data, inject_top_level=True)  # Vault injects everything under sys/mounts|auth/

        async def write_tune(req: Request, fd: FieldData) -> Response | None:
            entry = lookup(is_auth, fd.get("path"))
            raw_cfg = {
                k: v for k, v in fd.raw.items() if k in _TTL_KEYS + _LIST_KEYS + _REFUSED_KEYS + ("listing_visibility",)
            }
            new_cfg = _parse_config(raw_cfg, entry.config)
            new_opts = _parse_options(fd.raw.get("options"), entry.options)
            if entry.type in ("kv", "generic") and entry.options.get("version", "1") != new_opts.get("version", "1"):
                raise InvalidRequest(
                    "changing the KV version of an existing mount is not supported; mount a new path and copy the data"
                )
            backend_class(entry.type, entry.is_auth).validate_options(new_opts)
            entry.config = new_cfg
            if "description" in fd.raw:
                entry.description = fd.get("description")
            entry.options.clear()
            entry.options.update(new_opts)
            route = core.router.get(entry.route_path)
            if route is not None:
                route.backend.ctx.options.clear()
                route.backend.ctx.options.update(new_opts)
            await core.update_mount(entry)
            return None

        return read_all, enable, read_one, disable, read_tune, write_tune

    fields = {
        "path": Field(FieldType.STRING, "The path to mount to.", required=True),
        "type": Field(FieldType.STRING, "The type of the backend."),
        "description": Field(FieldType.STRING, "User-friendly description for this mount.", default=""),
        "config": Field(FieldType.MAP, "Configuration for this mount, such as default_lease_ttl."),
        "options": Field(FieldType.MAP, "Backend-specific options, such as version=2 for kv."),
        "local": Field(FieldType.BOOL, "Mark the mount as local (not replicated).", default=False),
        "seal_wrap": Field(FieldType.BOOL, "Whether to turn on seal wrapping.", default=False),
        "plugin_name": Field(FieldType.STRING, "Deprecated: the plugin name."),
        "external_entropy_access": Field(FieldType.BOOL, "Unused.", default=False),
    }
    tune_fields = {
        "path": Field(FieldType.STRING, "The mount to tune.", required=True),
        "default_lease_ttl": Field(FieldType.ANY, "Default lease TTL."),
        "max_lease_ttl": Field(FieldType.ANY, "Maximum lease TTL."),
        "description": Field(FieldType.STRING, "Description."),
        "options": Field(FieldType.MAP, "Backend options."),
        "listing_visibility": Field(FieldType.STRING, "Listing visibility in the UI."),
        "audit_non_hmac_request_keys": Field(FieldType.ANY, "Request keys not HMAC'd in audit."),
        "audit_non_hmac_response_keys": Field(FieldType.ANY, "Response keys not HMAC'd in audit."),
        "passthrough_request_headers": Field(FieldType.ANY, "Headers passed to the backend."),
        "allowed_response_headers": Field(FieldType.ANY, "Headers the backend may set."),
    }
    out: list[Path] = []
    for prefix, is_auth in (("mounts", False), ("auth", True)):
        read_all, enable, read_one, disable, read_tune, write_tune = make_handlers(is_auth)
        sudo = is_auth  # Vault: auth/* is root-protected; mounts/* is not
        out += [
            Path(rf"{prefix}/?", {Operation.READ: read_all}, summary=f"List the {prefix}."),
            Path(
                rf"{prefix}/(?P<path>.+?)/tune/?",
                {Operation.READ: read_tune, Operation.UPDATE: write_tune},
                tune_fields,
                sudo=sudo,
                summary="Tune a mount.",
            ),
            Path(
                rf"{prefix}/(?P<path>.+?)/?",
                {Operation.READ: read_one, Operation.UPDATE: enable, Operation.DELETE: disable},
                fields,
                sudo=sudo,
                summary=f"Enable, read or disable one of the {prefix}.",
            ),
        ]
    return out
