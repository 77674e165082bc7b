"""auth/<mount>/role/<name>: the role, its per-field endpoints and its role ID.

A role's role ID is indexed by its HMAC (``role_id/<HMAC>``) so that login finds the role without a scan; the role and
its index always change in one storage transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.auth.approle.common import MAX_HMAC_INPUT, canonical, parse_cidr_blocks
from strongroom.auth.token_fields import TOKEN_FIELDS, TokenParams
from strongroom.core.logical import InvalidRequest, LogicalError, NotFound, Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.auth.approle.backend import AppRoleBackend

ROLE = generic_name("role_name")
ROLE_NAME_FIELD = Field(FieldType.STRING, "Name of the role (at most 4096 bytes).", in_path=True)

FIELDS: dict[str, Field] = {
    "role_name": ROLE_NAME_FIELD,
    "bind_secret_id": Field(FieldType.BOOL, "Require a secret_id at login (default true).", default=True),
    "secret_id_bound_cidrs": Field(FieldType.COMMA_STRING_LIST, "CIDR blocks allowed to log in with this role."),
    "bound_cidr_list": Field(FieldType.COMMA_STRING_LIST, 'Deprecated: use "secret_id_bound_cidrs".'),
    "secret_id_num_uses": Field(FieldType.INT, "Logins each secret ID allows (0: unlimited).", default=0),
    "secret_id_ttl": Field(FieldType.DURATION, "Lifetime of secret IDs (0: no expiry).", default=0),
    "role_id": Field(FieldType.STRING, "The role ID (default: a random UUID)."),
    "local_secret_ids": Field(FieldType.BOOL, "Secret IDs are cluster-local; only settable at creation.",
                              default=False),
    **TOKEN_FIELDS,
}

_NO_CONSTRAINT = "at least one constraint should be enabled on the role"


def role_missing(name: str) -> LogicalError:
    return LogicalError(f'role "{name}" does not exist', status=404)


def validate_constraints(role: dict[str, Any]) -> None:
    """Vault's rule: a role without a secret ID and without CIDR bindings would let anyone holding the (non-secret)
    role ID in."""
    token = TokenParams.from_dict(role.get("token"))
    if not (role["bind_secret_id"] or role["secret_id_bound_cidrs"] or token.token_bound_cidrs):
        raise InvalidRequest(_NO_CONSTRAINT)


def role_json(role: dict[str, Any]) -> dict[str, Any]:
    data = TokenParams.from_dict(role.get("token")).response_data()
    for legacy in ("ttl", "max_ttl", "num_uses", "bound_cidrs"):
        data.pop(legacy, None)  # AppRole never had these spellings
    data.update({
        "bind_secret_id": role["bind_secret_id"],
        "secret_id_bound_cidrs": list(role["secret_id_bound_cidrs"]),
        "secret_id_num_uses": role["secret_id_num_uses"],
        "secret_id_ttl": role["secret_id_ttl"],
        "local_secret_ids": role["local_secret_ids"],
    })
    return data


def _cidrs(values: list[str], message: str) -> list[str]:
    parsed = parse_cidr_blocks(values)
    if parsed is None:
        raise InvalidRequest(message)
    return parsed


async def save_role(b: AppRoleBackend, name: str, role: dict[str, Any], previous_role_id: str) -> None:
    """Write the role and its role-ID index together; a role ID belongs to one role only."""
    validate_constraints(role)
    storage = b.ctx.storage
    index = f"role_id/{b.hmac('role_id', role['role_id'])}"
    owner = await storage.get_json(index)
    if owner is not None and owner.get("name") != name:
        raise InvalidRequest("role_id already in use")
    puts: dict[str, Any] = {f"role/{name}": role, index: {"name": name}}
    if previous_role_id and previous_role_id != role["role_id"]:
        puts[f"role_id/{b.hmac('role_id', previous_role_id)}"] = None
    await storage.transaction(puts)


@dataclass(frozen=True)
class _FieldPath:
    """One of Vault's ``role/<name>/<field>`` endpoints: read, set or reset a single property of the role."""

    suffix: str
    field: str
    ftype: FieldType
    default: Any
    in_token: bool = False  # the value lives in the role's TokenParams, under the name ``field``
    role_key: str = ""  # otherwise: the role record's key (defaults to ``field``)
    check: Callable[[Any], Any] | None = None  # validates (and may normalise) a new value

    @property
    def key(self) -> str:
        return self.role_key or self.field


def _non_negative(field: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value < 0:
            raise InvalidRequest(f"{field} cannot be negative")
        return value

    return check


def _cidr_check(value: Any) -> Any:
    if not value:
        raise InvalidRequest("missing bound_cidr_list")
    return _cidrs(value, "failed to validate CIDR blocks")


_FIELD_PATHS = (
    _FieldPath("secret-id-num-uses", "secret_id_num_uses", FieldType.INT, 0,
               check=_non_negative("secret_id_num_uses")),
    _FieldPath("secret-id-ttl", "secret_id_ttl", FieldType.DURATION, 0),
    _FieldPath("bind-secret-id", "bind_secret_id", FieldType.BOOL, True),
    _FieldPath("secret-id-bound-cidrs", "secret_id_bound_cidrs", FieldType.COMMA_STRING_LIST, [],
               check=_cidr_check),
    _FieldPath("bound-cidr-list", "bound_cidr_list", FieldType.COMMA_STRING_LIST, [],
               role_key="secret_id_bound_cidrs", check=_cidr_check),
    _FieldPath("token-bound-cidrs", "token_bound_cidrs", FieldType.COMMA_STRING_LIST, [],
               in_token=True),
    _FieldPath("token-ttl", "token_ttl", FieldType.DURATION, 0, in_token=True),
    _FieldPath("token-max-ttl", "token_max_ttl", FieldType.DURATION, 0, in_token=True),
    _FieldPath("token-num-uses", "token_num_uses", FieldType.INT, 0, in_token=True),
    _FieldPath("period", "token_period", FieldType.DURATION, 0, in_token=True),
)


def paths(b: AppRoleBackend) -> list[Path]:
    storage = b.ctx.storage

    def name_of(fd: FieldData) -> str:
        name = canonical(fd.get("role_name") or "")
        if len(name) > MAX_HMAC_INPUT:
            raise InvalidRequest(f"role_name is longer than maximum of {MAX_HMAC_INPUT} bytes")
        return name

    async def exists(req: Request, fd: FieldData) -> bool:
        return await b.role(name_of(fd)) is not None

    async def write(req: Request, fd: FieldData) -> Response | None:
        name = name_of(fd)
        async with storage.lock(f"role/{name}"):
            old = await b.role(name)
            creating = old is None
            role: dict[str, Any] = dict(old) if old else {
                "name": name, "role_id": "", "bind_secret_id": True, "secret_id_num_uses": 0, "secret_id_ttl": 0,
                "secret_id_bound_cidrs": [], "local_secret_ids": False, "token": {},
            }
            warnings: list[str] = []
            token = TokenParams.from_dict(role.get("token"))
            token.update(fd)
            if token.token_type in ("default-service", "default-batch"):
                token.token_type = token.token_type.removeprefix("default-")
                warnings.append(f"default-{token.token_type} has no useful meaning; adjusting to {token.token_type}")
            role["token"] = token.to_dict()
            if fd.has("local_secret_ids"):
                if not creating:
                    raise InvalidRequest("local_secret_ids can only be modified during role creation")
                role["local_secret_ids"] = fd.get("local_secret_ids")
            previous = role["role_id"]
            if fd.has("role_id"):
                role["role_id"] = fd.get("role_id")
            elif creating:
                role["role_id"] = crypto.new_uuid()
            if not role["role_id"]:
                raise InvalidRequest("invalid role_id supplied, or failed to generate a role_id")
            if fd.has("bind_secret_id"):
                role["bind_secret_id"] = fd.get("bind_secret_id")
            for key in ("secret_id_bound_cidrs", "bound_cidr_list"):
                if fd.has(key):
                    role["secret_id_bound_cidrs"] = _cidrs(fd.get(key), "invalid CIDR blocks")
                    break
            if fd.has("secret_id_num_uses"):
                role["secret_id_num_uses"] = fd.get("secret_id_num_uses")
            if role["secret_id_num_uses"] < 0:
                raise InvalidRequest("secret_id_num_uses cannot be negative")
            if fd.has("secret_id_ttl"):
                role["secret_id_ttl"] = fd.get("secret_id_ttl")
            await save_role(b, name, role, previous)
        return Response(warnings=warnings) if warnings else None

    async def read(req: Request, fd: FieldData) -> Response:
        role = await b.role(name_of(fd))
        if role is None:
            raise NotFound()
        return Response(data=role_json(role))

    async def delete(req: Request, fd: FieldData) -> None:
        name = name_of(fd)
        async with storage.lock(f"role/{name}"):
            role = await b.role(name)
            if role is None:
                return
            await flush_secret_ids(b, name)
            await storage.transaction({f"role/{name}": None, f"role_id/{b.hmac('role_id', role['role_id'])}": None})

    async def list_roles(req: Request, fd: FieldData) -> Response:
        return Response.list_keys(await storage.list_all("role/"))

    async def read_role_id(req: Request, fd: FieldData) -> Response:
        role = await b.role(name_of(fd))
        if role is None:
            raise NotFound()
        return Response(data={"role_id": role["role_id"]})

    async def update_role_id(req: Request, fd: FieldData) -> None:
        name = name_of(fd)
        async with storage.lock(f"role/{name}"):
            role = await b.role(name)
            if role is None:
                raise role_missing(name)
            new_id = fd.get("role_id") or ""
            if not new_id:
                raise InvalidRequest("missing role_id")
            previous, role["role_id"] = role["role_id"], new_id
            await save_role(b, name, role, previous)

    async def read_policies(req: Request, fd: FieldData) -> Response:
        role = await b.role(name_of(fd))
        if role is None:
            raise NotFound()
        return Response(data={"token_policies": TokenParams.from_dict(role.get("token")).token_policies})

    async def write_policies(req: Request, fd: FieldData) -> None:
        if not fd.has("token_policies") and not fd.has("policies"):
            raise InvalidRequest("missing token_policies")
        await _modify(b, name_of(fd), lambda role: _set_token(role, fd))

    async def delete_policies(req: Request, fd: FieldData) -> None:
        await _modify(b, name_of(fd), lambda role: _reset_token(role, "token_policies", []), missing_ok=True)

    async def read_local(req: Request, fd: FieldData) -> Response:
        role = await b.role(name_of(fd))
        if role is None:
            raise NotFound()
        return Response(data={"local_secret_ids": role["local_secret_ids"]})

    out = [
        Path(r"role/?", {Operation.LIST: list_roles}, {}, summary="List roles."),
        Path(rf"role/{ROLE}", {Operation.CREATE: write, Operation.UPDATE: write, Operation.READ: read,
                               Operation.DELETE: delete}, FIELDS, existence_check=exists,
             summary="Register a role or update its options."),
        Path(rf"role/{ROLE}/role-id", {Operation.READ: read_role_id, Operation.UPDATE: update_role_id},
             {"role_name": ROLE_NAME_FIELD, "role_id": Field(FieldType.STRING, "The role's new role ID.")},
             summary="Read or set the role's role ID."),
        Path(rf"role/{ROLE}/policies",
             {Operation.READ: read_policies, Operation.UPDATE: write_policies, Operation.DELETE: delete_policies},
             {"role_name": ROLE_NAME_FIELD, "token_policies": TOKEN_FIELDS["token_policies"],
              "policies": TOKEN_FIELDS["policies"]}, summary="The role's token policies."),
        Path(rf"role/{ROLE}/local-secret-ids", {Operation.READ: read_local}, {"role_name": ROLE_NAME_FIELD},
             summary="Whether the role's secret IDs are cluster-local."),
    ]
    out.extend(_field_path(b, spec, name_of) for spec in _FIELD_PATHS)
    return out


def _set_token(role: dict[str, Any], fd: FieldData) -> None:
    token = TokenParams.from_dict(role.get("token"))
    token.update(fd)
    role["token"] = token.to_dict()


def _reset_token(role: dict[str, Any], attr: str, default: Any) -> None:
    token = TokenParams.from_dict(role.get("token"))
    setattr(token, attr, default)
    role["token"] = token.to_dict()


async def _modify(b: AppRoleBackend, name: str, change: Callable[[dict[str, Any]], None], *,
                  missing_ok: bool = False) -> None:
    async with b.ctx.storage.lock(f"role/{name}"):
        role = await b.role(name)
        if role is None:
            if missing_ok:
                return
            raise role_missing(name)
        change(role)
        await save_role(b, name, role, role["role_id"])


def _field_path(b: AppRoleBackend, spec: _FieldPath, name_of: Callable[[FieldData], str]) -> Path:
    async def read(req: Request, fd: FieldData) -> Response:
        role = await b.role(name_of(fd))
        if role is None:
            raise NotFound()
        if spec.in_token:
            value = getattr(TokenParams.from_dict(role.get("token")), spec.field)
        else:
            value = role[spec.key]
        resp = Response(data={spec.field: value})
        if spec.field == "bound_cidr_list":
            resp.warnings.append('The "bound_cidr_list" field is deprecated and will be removed. '
                                 'Please use "secret_id_bound_cidrs" instead.')
        return resp

    async def update(req: Request, fd: FieldData) -> None:
        if not fd.has(spec.field):
            raise InvalidRequest(f"missing {spec.field}")

        def change(role: dict[str, Any]) -> None:
            if spec.in_token:
                _set_token(role, fd)
                return
            value = fd.get(spec.field)
            role[spec.key] = spec.check(value) if spec.check is not None else value

        await _modify(b, name_of(fd), change)

    async def delete(req: Request, fd: FieldData) -> None:
        def change(role: dict[str, Any]) -> None:
            default = list(spec.default) if isinstance(spec.default, list) else spec.default
            if spec.in_token:
                _reset_token(role, spec.field, default)
            else:
                role[spec.key] = default

        await _modify(b, name_of(fd), change, missing_ok=True)

    field = TOKEN_FIELDS.get(spec.field) or FIELDS.get(spec.field) or Field(spec.ftype)
    return Path(rf"role/{ROLE}/{spec.suffix}",
                {Operation.READ: read, Operation.UPDATE: update, Operation.DELETE: delete},
                {"role_name": ROLE_NAME_FIELD, spec.field: field}, summary=f"The role's {spec.field}.")


async def flush_secret_ids(b: AppRoleBackend, role_name: str) -> None:
    """Remove every secret ID of a role together with its accessor."""
    storage = b.ctx.storage
    folder = b.secret_folder(role_name)
    puts: dict[str, Any] = {}
    for child in await storage.list_all(folder):
        entry = await storage.get_json(folder + child)
        if entry is not None and entry.get("secret_id_accessor"):
            puts[f"accessor/{b.hmac('accessor', entry['secret_id_accessor'])}"] = None
        puts[folder + child] = None
    if puts:
        await storage.transaction(puts)
