"""Every configurable object type: how it is named in the files, read from the server, written and removed.

Each kind talks to the server only through the Vault HTTP API. ``rank`` is the dependency order apply follows
(audit devices first so every later change is recorded; mounts and auth methods before what lives under them;
policies before the roles and groups that name them); deletes run in the reverse order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strongroom.cli.api_client import ApiClient, ApiError

Key = tuple[str, ...]
Fields = dict[str, Any]

_SYSTEM_MOUNTS = frozenset({"sys", "cubbyhole", "identity"})
_ROLE_MOUNT_TYPES = frozenset({"kubernetes", "jwt", "oidc", "approle"})
_CONFIG_MOUNT_TYPES = frozenset({"kubernetes", "jwt", "oidc"})
# Vault still returns the pre-``token_*`` names of role fields; only the ``token_*`` ones are managed
_LEGACY_ALIASES = {
    "policies": "token_policies", "ttl": "token_ttl", "max_ttl": "token_max_ttl", "period": "token_period",
    "num_uses": "token_num_uses", "bound_cidrs": "token_bound_cidrs",
}


def _list(api: ApiClient, path: str) -> list[str]:
    try:
        return list((api.request("GET", f"{path}?list=true").get("data") or {}).get("keys") or [])
    except ApiError as exc:
        if exc.status == 404:
            return []
        raise


def _read(api: ApiClient, path: str) -> Fields | None:
    try:
        return dict(api.request("GET", path).get("data") or {})
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _without_legacy(data: Fields) -> Fields:
    return {k: v for k, v in data.items() if not (k in _LEGACY_ALIASES and _LEGACY_ALIASES[k] in data)}


@dataclass
class Live:
    """What the server has: its mount tables (read once per plan) and every object, by kind and key."""

    api: ApiClient
    mounts: dict[str, Fields] = field(default_factory=dict)
    auths: dict[str, Fields] = field(default_factory=dict)
    group_names: dict[str, str] = field(default_factory=dict)  # identity group id -> name

    def load_mounts(self) -> None:
        def table(path: str) -> dict[str, Fields]:
            data = self.api.request("GET", path).get("data") or {}
            return {k.rstrip("/"): v for k, v in data.items() if isinstance(v, dict)}

        self.mounts, self.auths = table("sys/mounts"), table("sys/auth")

    def mounts_of(self, types: frozenset[str], auth: bool) -> list[str]:
        table = self.auths if auth else self.mounts
        return sorted(p for p, e in table.items() if e.get("type") in types)


@dataclass
class Ctx:
    """What a write needs: the API (holding the apply token) and the mount types known so far."""

    api: ApiClient
    live: Live
    auth_types: dict[str, str]  # auth mount path -> type, desired over live


@dataclass(frozen=True)
class Kind:
    name: str
    labels: tuple[str, ...]  # what each label means, for messages
    rank: int
    read: Callable[[Live], dict[Key, Fields]]
    create: Callable[[Ctx, Key, Fields], None]
    update: Callable[[Ctx, Key, Fields, Fields], None]  # (ctx, key, changed fields, all desired fields)
    delete: Callable[[Ctx, Key, Fields], None] | None
    sensitive: frozenset[str] = frozenset()  # must come from env()/file(); never read back from the server
    immutable: frozenset[str] = frozenset()  # a change means replace (delete, then create)
    destroys: bool = False  # deleting or replacing it loses data
    parent: str = ""  # the mount kind whose objects these are ("" for top-level ones)

    def address(self, key: Key) -> str:
        return self.name + "".join(f' "{k}"' for k in key)


# --- mounts -------------------------------------------------------------------------------------------------------


def _mount_fields(entry: Fields) -> Fields:
    cfg = entry.get("config") or {}
    return {
        "type": entry.get("type", ""),
        "description": entry.get("description", ""),
        "local": bool(entry.get("local", False)),
        "seal_wrap": bool(entry.get("seal_wrap", False)),
        "options": dict(entry.get("options") or {}),
        "default_lease_ttl": int(cfg.get("default_lease_ttl") or 0),
        "max_lease_ttl": int(cfg.get("max_lease_ttl") or 0),
    }


def _mount_kind(name: str, rank: int, auth: bool) -> Kind:
    prefix = "sys/auth" if auth else "sys/mounts"

    def read(live: Live) -> dict[Key, Fields]:
        table = live.auths if auth else live.mounts
        skip = {"token"} if auth else _SYSTEM_MOUNTS
        return {(p,): _mount_fields(e) for p, e in table.items() if p not in skip and e.get("type") not in skip}

    def create(ctx: Ctx, key: Key, f: Fields) -> None:
        body: Fields = {k: f[k] for k in ("type", "description", "local", "seal_wrap", "options") if k in f}
        body["config"] = {k: f[k] for k in ("default_lease_ttl", "max_lease_ttl") if k in f}
        ctx.api.request("POST", f"{prefix}/{key[0]}", body)
        ctx.live.load_mounts()

    def update(ctx: Ctx, key: Key, changed: Fields, f: Fields) -> None:
        body = {k: v for k, v in changed.items() if k in ("description", "options", "default_lease_ttl",
                                                          "max_lease_ttl")}
        if body:
            ctx.api.request("POST", f"{prefix}/{key[0]}/tune", body)

    def delete(ctx: Ctx, key: Key, f: Fields) -> None:
        ctx.api.request("DELETE", f"{prefix}/{key[0]}")
        ctx.live.load_mounts()

    return Kind(name, ("path",), rank, read, create, update, delete,
                immutable=frozenset({"type", "local", "seal_wrap"}), destroys=True)


# --- audit devices ------------------------------------------------------------------------------------------------


def _audit_read(live: Live) -> dict[Key, Fields]:
    data = live.api.request("GET", "sys/audit").get("data") or {}
    return {
        (p.rstrip("/"),): {"type": e.get("type", ""), "description": e.get("description", ""),
                           "local": bool(e.get("local", False)), "options": dict(e.get("options") or {})}
        for p, e in data.items() if isinstance(e, dict)
    }


def _audit_create(ctx: Ctx, key: Key, f: Fields) -> None:
    ctx.api.request("PUT", f"sys/audit/{key[0]}", f)


def _audit_update(ctx: Ctx, key: Key, changed: Fields, f: Fields) -> None:
    raise AssertionError("audit devices are replaced, never updated")


def _audit_delete(ctx: Ctx, key: Key, f: Fields) -> None:
    ctx.api.request("DELETE", f"sys/audit/{key[0]}")


# --- policies -----------------------------------------------------------------------------------------------------


def _policy_read(live: Live) -> dict[Key, Fields]:
    out: dict[Key, Fields] = {}
    for name in _list(live.api, "sys/policies/acl"):
        if name == "root":
            continue
        data = _read(live.api, f"sys/policies/acl/{name}")
        if data is not None:
            out[(name,)] = {"policy": data.get("policy", "")}
    return out


def _policy_write(ctx: Ctx, key: Key, f: Fields, *_: Any) -> None:
    ctx.api.request("PUT", f"sys/policies/acl/{key[0]}", {"policy": f["policy"]})


def _policy_update(ctx: Ctx, key: Key, changed: Fields, f: Fields) -> None:
    _policy_write(ctx, key, f)


def _policy_delete(ctx: Ctx, key: Key, f: Fields) -> None:
    ctx.api.request("DELETE", f"sys/policies/acl/{key[0]}")


# --- objects at a path under a mount or a fixed prefix -----------------------------------------------------------


def _path_kind(
    name: str, rank: int, *, mount_types: frozenset[str] | None, auth: bool, segment: str | Callable[[str], str],
    skip: frozenset[str] = frozenset(), sensitive: frozenset[str] = frozenset(), fixed: str = "",
) -> Kind:
    """Objects at ``<mount>/<segment>/<name>`` (or ``<fixed>/<name>``), written whole by POST, removed by DELETE."""

    def base(ctx_auth_types: dict[str, str], key: Key) -> str:
        if fixed:
            return fixed
        seg = segment if isinstance(segment, str) else segment(ctx_auth_types.get(key[0], ""))
        return f"{'auth/' if auth else ''}{key[0]}/{seg}"

    def read(live: Live) -> dict[Key, Fields]:
        out: dict[Key, Fields] = {}
        if fixed:
            groups: list[tuple[Key, str]] = [((), fixed)]
        else:
            assert mount_types is not None
            types = {p: (live.auths if auth else live.mounts)[p].get("type", "") for p in
                     live.mounts_of(mount_types, auth)}
            groups = [((p,), base(types, (p,))) for p in types]
        for prefix_key, path in groups:
            for item in _list(live.api, path):
                data = _read(live.api, f"{path}/{item}")
                if data is not None:
                    out[(*prefix_key, item)] = {k: v for k, v in _without_legacy(data).items() if k not in skip}
        return out

    def create(ctx: Ctx, key: Key, f: Fields) -> None:
        ctx.api.request("POST", f"{base(ctx.auth_types, key)}/{key[-1]}", f)

    def update(ctx: Ctx, key: Key, changed: Fields, f: Fields) -> None:
        # Vault's role writes merge into what exists, and some fields may only be set at creation: send the changes
        # (a sensitive value is among them only when the plan resends secrets)
        ctx.api.request("POST", f"{base(ctx.auth_types, key)}/{key[-1]}", changed)

    def delete(ctx: Ctx, key: Key, f: Fields) -> None:
        ctx.api.request("DELETE", f"{base(ctx.auth_types, key)}/{key[-1]}")

    labels = ("name",) if fixed else ("mount", "name")
    return Kind(name, labels, rank, read, create, update, delete, sensitive=sensitive,
                parent="" if fixed else ("auth_method" if auth else "secrets_engine"))


# --- auth method configuration (no delete: it goes with its mount) -------------------------------------------------

_AUTH_CONFIG_SENSITIVE = frozenset({"token_reviewer_jwt", "oidc_client_secret"})


def _auth_config_read(live: Live) -> dict[Key, Fields]:
    out: dict[Key, Fields] = {}
    for mount in live.mounts_of(_CONFIG_MOUNT_TYPES, True):
        data = _read(live.api, f"auth/{mount}/config")
        if data:
            # ``token_reviewer_jwt_set`` and the like only say a secret exists: kept aside for export, never compared
            out[(mount,)] = {(f"_{k}" if k.endswith("_set") else k): v for k, v in data.items()}
    return out


def _auth_config_write(ctx: Ctx, key: Key, f: Fields) -> None:
    ctx.api.request("POST", f"auth/{key[0]}/config", f)


def _auth_config_update(ctx: Ctx, key: Key, changed: Fields, f: Fields) -> None:
    # a config write replaces the whole configuration, so the secrets named in the files are sent again
    _auth_config_write(ctx, key, f)


# --- identity groups and their aliases ----------------------------------------------------------------------------


def _group_read(live: Live) -> dict[Key, Fields]:
    out: dict[Key, Fields] = {}
    live.group_names.clear()
    for name in _list(live.api, "identity/group/name"):
        data = _read(live.api, f"identity/group/name/{name}")
        if data is None:
            continue
        live.group_names[str(data.get("id"))] = name
        out[(name,)] = {"type": data.get("type", "internal"), "policies": list(data.get("policies") or []),
                        "metadata": dict(data.get("metadata") or {})}
    return out


def _group_write(ctx: Ctx, key: Key, f: Fields) -> None:
    ctx.api.request("POST", f"identity/group/name/{key[0]}", f)


def _group_update(ctx: Ctx, key: Key, changed: Fields, f: Fields) -> None:
    _group_write(ctx, key, {k: v for k, v in f.items() if k != "type"})


def _group_delete(ctx: Ctx, key: Key, f: Fields) -> None:
    ctx.api.request("DELETE", f"identity/group/name/{key[0]}")


def _alias_read(live: Live) -> dict[Key, Fields]:
    out: dict[Key, Fields] = {}
    try:
        data = live.api.request("GET", "identity/group-alias/id?list=true").get("data") or {}
    except ApiError as exc:
        if exc.status != 404:
            raise
        data = {}
    for alias_id, info in (data.get("key_info") or {}).items():
        mount = str(info.get("mount_path", "")).removeprefix("auth/").rstrip("/")
        group = live.group_names.get(str(info.get("canonical_id")), str(info.get("canonical_id")))
        out[(mount, str(info.get("name")))] = {"group": group, "_id": alias_id}
    return out


def _alias_body(ctx: Ctx, key: Key, f: Fields) -> Fields:
    ctx.live.load_mounts()
    entry = ctx.live.auths.get(key[0])
    if entry is None:
        raise ApiError(400, [f"identity_group_alias {key}: no auth method at {key[0]}"])
    group = _read(ctx.api, f"identity/group/name/{f['group']}")
    if group is None:
        raise ApiError(400, [f"identity_group_alias {key}: no identity group {f['group']!r}"])
    return {"name": key[1], "mount_accessor": entry.get("accessor"), "canonical_id": group.get("id")}


def _alias_create(ctx: Ctx, key: Key, f: Fields) -> None:
    ctx.api.request("POST", "identity/group-alias", _alias_body(ctx, key, f))


def _alias_update(ctx: Ctx, key: Key, changed: Fields, f: Fields) -> None:
    ctx.api.request("POST", f"identity/group-alias/id/{f['_id']}", _alias_body(ctx, key, f))


def _alias_delete(ctx: Ctx, key: Key, f: Fields) -> None:
    ctx.api.request("DELETE", f"identity/group-alias/id/{f['_id']}")


# --- database connections (connection_details flattened as Vault's write takes them) --------------------------------


def _db_conn_read(live: Live) -> dict[Key, Fields]:
    out: dict[Key, Fields] = {}
    for mount in live.mounts_of(frozenset({"database"}), False):
        for name in _list(live.api, f"{mount}/config"):
            data = _read(live.api, f"{mount}/config/{name}")
            if data is None:
                continue
            details = data.pop("connection_details", None) or {}
            data.pop("plugin_version", None)
            out[(mount, name)] = {**data, **{k: v for k, v in details.items() if k != "password"}}
    return out


# --- transit keys: created with their immutable shape, tuned through /config ------------------------------------

_TRANSIT_CREATE = ("type", "derived", "exportable", "allow_plaintext_backup", "auto_rotate_period")
_TRANSIT_FIELDS = ("type", "derived", "exportable", "allow_plaintext_backup", "auto_rotate_period", "deletion_allowed",
                   "min_decryption_version", "min_encryption_version")


def _transit_read(live: Live) -> dict[Key, Fields]:
    out: dict[Key, Fields] = {}
    for mount in live.mounts_of(frozenset({"transit"}), False):
        for name in _list(live.api, f"{mount}/keys"):
            data = _read(live.api, f"{mount}/keys/{name}")
            if data is not None:
                out[(mount, name)] = {k: data[k] for k in _TRANSIT_FIELDS if k in data}
    return out


def _transit_config(ctx: Ctx, key: Key, f: Fields) -> None:
    body = {k: v for k, v in f.items() if k not in ("type", "derived")}
    if body:
        ctx.api.request("POST", f"{key[0]}/keys/{key[1]}/config", body)


def _transit_create(ctx: Ctx, key: Key, f: Fields) -> None:
    ctx.api.request("POST", f"{key[0]}/keys/{key[1]}", {k: f[k] for k in _TRANSIT_CREATE if k in f})
    _transit_config(ctx, key, {k: v for k, v in f.items() if k not in _TRANSIT_CREATE})


def _transit_update(ctx: Ctx, key: Key, changed: Fields, f: Fields) -> None:
    _transit_config(ctx, key, changed)


def _transit_delete(ctx: Ctx, key: Key, f: Fields) -> None:
    ctx.api.request("POST", f"{key[0]}/keys/{key[1]}/config", {"deletion_allowed": True})
    ctx.api.request("DELETE", f"{key[0]}/keys/{key[1]}")


def _role_segment(mount_type: str) -> str:
    return "users" if mount_type == "userpass" else "role"


KINDS: tuple[Kind, ...] = (
    Kind("audit", ("path",), 0, _audit_read, _audit_create, _audit_update, _audit_delete,
         immutable=frozenset({"type", "description", "local", "options"}), destroys=True),
    _mount_kind("secrets_engine", 10, auth=False),
    _mount_kind("auth_method", 10, auth=True),
    Kind("auth_config", ("mount",), 20, _auth_config_read, _auth_config_write, _auth_config_update, None,
         sensitive=_AUTH_CONFIG_SENSITIVE, parent="auth_method"),
    Kind("policy", ("name",), 30, _policy_read, _policy_write, _policy_update, _policy_delete),
    _path_kind("token_role", 40, mount_types=None, auth=False, segment="", fixed="auth/token/roles",
               skip=frozenset({"name"})),
    _path_kind("auth_role", 40, mount_types=_ROLE_MOUNT_TYPES, auth=True, segment=_role_segment),
    _path_kind("auth_user", 40, mount_types=frozenset({"userpass"}), auth=True, segment="users",
               sensitive=frozenset({"password"})),
    dataclasses.replace(
        _path_kind("database_connection", 40, mount_types=frozenset({"database"}), auth=False, segment="config",
                   sensitive=frozenset({"password"})),
        read=_db_conn_read,
    ),
    _path_kind("database_role", 50, mount_types=frozenset({"database"}), auth=False, segment="roles"),
    Kind("transit_key", ("mount", "name"), 40, _transit_read, _transit_create, _transit_update, _transit_delete,
         immutable=frozenset({"type", "derived"}), destroys=True, parent="secrets_engine"),
    _path_kind("pki_role", 40, mount_types=frozenset({"pki"}), auth=False, segment="roles"),
    Kind("identity_group", ("name",), 60, _group_read, _group_write, _group_update, _group_delete,
         immutable=frozenset({"type"})),
    Kind("identity_group_alias", ("mount", "name"), 70, _alias_read, _alias_create, _alias_update, _alias_delete,
         parent="auth_method"),
)
BY_NAME = {k.name: k for k in KINDS}
