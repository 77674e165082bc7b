"""auth/<mount>/role/<name>/secret-id and friends: issue, list, look up and destroy a role's secret IDs.

A secret ID is returned once, at issue, and stored only as a keyed HMAC. Its entry and its accessor's entry are
written and removed together in one storage transaction, so neither can outlive the other.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from strongroom import crypto
from strongroom.auth.approle.common import MAX_HMAC_INPUT, canonical, cidr_subset, parse_cidr_blocks
from strongroom.auth.approle.path_role import ROLE, ROLE_NAME_FIELD, role_missing
from strongroom.auth.token_fields import TokenParams
from strongroom.core.logical import InvalidRequest, LogicalError, NotFound, Operation, Request, Response
from strongroom.core.tokens import SYSTEM_MAX_TTL
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.auth.approle.backend import AppRoleBackend

ISSUE_FIELDS: dict[str, Field] = {
    "role_name": ROLE_NAME_FIELD,
    "metadata": Field(FieldType.ANY, "Metadata tied to the secret ID: a JSON object (or its JSON text) of strings; "
                                     "it is copied into the login token's metadata."),
    "cidr_list": Field(FieldType.COMMA_STRING_LIST, "CIDR blocks the secret ID may be used from; a subset of the "
                                                    "role's secret_id_bound_cidrs."),
    "token_bound_cidrs": Field(FieldType.COMMA_STRING_LIST, "CIDR blocks the issued tokens are bound to; a subset "
                                                            "of the role's token_bound_cidrs."),
    "num_uses": Field(FieldType.INT, "Logins this secret ID allows; at most the role's secret_id_num_uses."),
    "ttl": Field(FieldType.DURATION, "Lifetime of this secret ID; at most the role's secret_id_ttl."),
}
CUSTOM_FIELDS = {**ISSUE_FIELDS, "secret_id": Field(FieldType.STRING, "The secret ID to assign.")}
SECRET_FIELDS = {"role_name": ROLE_NAME_FIELD, "secret_id": Field(FieldType.STRING, "The secret ID.")}
ACCESSOR_FIELDS = {"role_name": ROLE_NAME_FIELD,
                   "secret_id_accessor": Field(FieldType.STRING, "The accessor of the secret ID.")}

_ZERO_TIME = "0001-01-01T00:00:00Z"


def timestamp(t: float) -> str:
    """RFC 3339 in UTC as Vault prints times; Go's zero time for 'never'."""
    if not t:
        return _ZERO_TIME
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def response_data(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "secret_id_accessor": entry["secret_id_accessor"],
        "secret_id_num_uses": entry["secret_id_num_uses"],
        "secret_id_ttl": entry["secret_id_ttl"],
        "creation_time": timestamp(entry["creation_time"]),
        "expiration_time": timestamp(entry["expiration_time"]),
        "last_updated_time": timestamp(entry["last_updated_time"]),
        "metadata": dict(entry["metadata"]),
        "cidr_list": list(entry["cidr_list"]),
        "token_bound_cidrs": list(entry["token_bound_cidrs"]),
    }


def expired(entry: dict[str, Any], now: float | None = None) -> bool:
    return bool(entry["expiration_time"]) and (now or time.time()) >= entry["expiration_time"]


def parse_metadata(raw: Any) -> dict[str, str]:
    """Vault takes metadata as a JSON object in a string (hvac sends that) or as ``k=v,k2=v2``; we also take the
    object itself."""
    if raw is None or raw == "":
        return {}
    value: Any = raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("{"):
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise InvalidRequest("failed to parse metadata: invalid JSON") from None
        else:
            value = {}
            for pair in text.split(","):
                key, sep, val = pair.partition("=")
                if not sep or not key.strip():
                    raise InvalidRequest(f"failed to parse metadata: invalid key/value pair {pair!r}")
                value[key.strip()] = val.strip()
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidRequest("failed to parse metadata: metadata must be an object of strings")
    return dict(value)


class SecretIDs:
    """The secret IDs of one mount: keys, reads and the atomic writes that keep entry and accessor together."""

    def __init__(self, b: AppRoleBackend) -> None:
        self.b = b
        self.storage = b.ctx.storage

    def key(self, role_name: str, secret_id: str) -> str:
        return self.b.secret_folder(role_name) + self.b.hmac("secret_id", secret_id)

    def accessor_key(self, accessor: str) -> str:
        return f"accessor/{self.b.hmac('accessor', accessor)}"

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.storage.get_json(key)

    async def by_accessor(self, role_name: str, accessor: str) -> tuple[str, dict[str, Any]] | None:
        """(storage key, entry) of the role's secret ID with this accessor; None if it is not this role's."""
        if not accessor or len(accessor) > MAX_HMAC_INPUT:
            return None
        index = await self.storage.get_json(self.accessor_key(accessor))
        if index is None:
            return None
        key = self.b.secret_folder(role_name) + str(index.get("secret_id_hmac", ""))
        entry = await self.get(key)
        if entry is None or not crypto.constant_time_eq(entry["secret_id_accessor"], accessor):
            return None
        return key, entry

    async def remove(self, key: str, entry: dict[str, Any]) -> None:
        await self.storage.transaction({key: None, self.accessor_key(entry["secret_id_accessor"]): None})

    async def issue(self, role_name: str, secret_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        key = self.key(role_name, secret_id)
        async with self.storage.lock(key):
            if await self.get(key) is not None:
                raise InvalidRequest("SecretID is already registered")
            now = time.time()
            accessor = crypto.new_uuid()
            entry.update({
                "secret_id_hmac": key.rsplit("/", 1)[1],
                "secret_id_accessor": accessor,
                "creation_time": now,
                "last_updated_time": now,
                "expiration_time": now + entry["secret_id_ttl"] if entry["secret_id_ttl"] else 0.0,
            })
            await self.storage.transaction({
                key: entry,
                self.accessor_key(accessor): {"secret_id_hmac": entry["secret_id_hmac"],
                                              "role_hmac": self.b.hmac("role", role_name)},
            })
        return entry


def paths(b: AppRoleBackend) -> list[Path]:
    ids = SecretIDs(b)

    async def role_or_fail(fd: FieldData) -> tuple[str, dict[str, Any]]:
        name = canonical(fd.get("role_name") or "")
        role = await b.role(name)
        if role is None:
            raise role_missing(name)
        return name, role

    async def issue(req: Request, fd: FieldData, secret_id: str) -> Response:
        name, role = await role_or_fail(fd)
        if not secret_id:
            raise InvalidRequest("missing secret_id")
        if len(secret_id) > MAX_HMAC_INPUT:
            raise InvalidRequest(f"secret_id is longer than maximum of {MAX_HMAC_INPUT} bytes")
        if not role["bind_secret_id"]:
            raise InvalidRequest("bind_secret_id is not set on the role")
        cidrs = parse_cidr_blocks(fd.get("cidr_list") or [])
        if cidrs is None:
            raise InvalidRequest("failed to validate CIDR blocks")
        if not cidr_subset(cidrs, role["secret_id_bound_cidrs"]):
            raise InvalidRequest("failed to verify subset relationship between CIDR blocks on the role "
                                 f"{role['secret_id_bound_cidrs']} and CIDR blocks on the secret ID {cidrs}")
        token_cidrs = parse_cidr_blocks(fd.get("token_bound_cidrs") or [])
        if token_cidrs is None:
            raise InvalidRequest("failed to validate token CIDR blocks")
        role_token_cidrs = TokenParams.from_dict(role.get("token")).token_bound_cidrs
        if not cidr_subset(token_cidrs, role_token_cidrs):
            raise InvalidRequest("failed to verify subset relationship between the token CIDR blocks on the role "
                                 f"{role_token_cidrs} and the token CIDR blocks on the secret ID {token_cidrs}")
        role_uses, role_ttl = role["secret_id_num_uses"], role["secret_id_ttl"]
        num_uses, given = fd.get_ok("num_uses")
        if not given:
            num_uses = role_uses
        elif num_uses < 0:
            raise InvalidRequest("num_uses cannot be negative")
        elif role_uses > 0 and (num_uses == 0 or num_uses > role_uses):
            raise InvalidRequest("num_uses cannot be higher than the role's secret_id_num_uses")
        ttl, given = fd.get_ok("ttl")
        if not given:
            ttl = role_ttl
        elif role_ttl > 0 and (ttl == 0 or ttl > role_ttl):
            raise InvalidRequest("ttl cannot be longer than the role's secret_id_ttl")
        ttl = min(ttl, SYSTEM_MAX_TTL)
        entry = await ids.issue(name, secret_id, {
            "secret_id_num_uses": num_uses, "secret_id_ttl": ttl, "metadata": parse_metadata(fd.get("metadata")),
            "cidr_list": cidrs, "token_bound_cidrs": token_cidrs,
        })
        return Response(data={
            "secret_id": secret_id, "secret_id_accessor": entry["secret_id_accessor"],
            "secret_id_ttl": entry["secret_id_ttl"], "secret_id_num_uses": entry["secret_id_num_uses"],
        })

    async def generate(req: Request, fd: FieldData) -> Response:
        return await issue(req, fd, crypto.new_uuid())

    async def custom(req: Request, fd: FieldData) -> Response:
        return await issue(req, fd, fd.get("secret_id") or "")

    async def list_accessors(req: Request, fd: FieldData) -> Response:
        name = canonical(fd.get("role_name") or "")
        if await b.role(name) is None:
            raise InvalidRequest(f'role "{name}" does not exist')
        folder = b.secret_folder(name)
        accessors = []
        for child in await b.ctx.storage.list_all(folder):
            entry = await ids.get(folder + child)
            if entry is not None:
                accessors.append(entry["secret_id_accessor"])
        return Response.list_keys(sorted(accessors))

    def secret_of(fd: FieldData) -> str:
        secret_id = fd.get("secret_id") or ""
        if not secret_id:
            raise InvalidRequest("missing secret_id")
        if len(secret_id) > MAX_HMAC_INPUT:
            raise InvalidRequest(f"secret_id is longer than maximum of {MAX_HMAC_INPUT} bytes")
        return secret_id

    async def lookup(req: Request, fd: FieldData) -> Response | None:
        name, _ = await role_or_fail(fd)
        entry = await ids.get(ids.key(name, secret_of(fd)))
        return None if entry is None else Response(data=response_data(entry))

    async def destroy(req: Request, fd: FieldData) -> None:
        name, _ = await role_or_fail(fd)
        key = ids.key(name, secret_of(fd))
        async with b.ctx.storage.lock(key):
            entry = await ids.get(key)
            if entry is not None:
                await ids.remove(key, entry)

    def accessor_of(fd: FieldData) -> str:
        accessor = fd.get("secret_id_accessor") or ""
        if not accessor:
            raise InvalidRequest("missing secret_id_accessor")
        return accessor

    async def accessor_lookup(req: Request, fd: FieldData) -> Response:
        name, _ = await role_or_fail(fd)
        accessor = accessor_of(fd)
        found = await ids.by_accessor(name, accessor)
        if found is None:
            raise LogicalError(f'failed to find accessor entry for secret_id_accessor: "{accessor}"', status=404)
        return Response(data=response_data(found[1]))

    async def accessor_destroy(req: Request, fd: FieldData) -> None:
        name, _ = await role_or_fail(fd)
        accessor = accessor_of(fd)
        found = await ids.by_accessor(name, accessor)
        if found is None:
            raise InvalidRequest(f'failed to find accessor entry for secret_id_accessor: "{accessor}"')
        key = found[0]
        async with b.ctx.storage.lock(key):
            entry = await ids.get(key)
            if entry is None:
                raise NotFound()
            await ids.remove(key, entry)

    return [
        Path(rf"role/{ROLE}/secret-id/?", {Operation.UPDATE: generate, Operation.LIST: list_accessors}, ISSUE_FIELDS,
             summary="Issue a secret ID for the role, or list the accessors of its secret IDs."),
        Path(rf"role/{ROLE}/custom-secret-id", {Operation.UPDATE: custom}, CUSTOM_FIELDS,
             summary="Assign a secret ID of the caller's choice to the role."),
        Path(rf"role/{ROLE}/secret-id/lookup/?", {Operation.UPDATE: lookup}, SECRET_FIELDS,
             summary="Read a secret ID's properties."),
        Path(rf"role/{ROLE}/secret-id/destroy/?", {Operation.UPDATE: destroy, Operation.DELETE: destroy},
             SECRET_FIELDS, summary="Destroy a secret ID."),
        Path(rf"role/{ROLE}/secret-id-accessor/lookup/?", {Operation.UPDATE: accessor_lookup}, ACCESSOR_FIELDS,
             summary="Read a secret ID's properties by its accessor."),
        Path(rf"role/{ROLE}/secret-id-accessor/destroy/?",
             {Operation.UPDATE: accessor_destroy, Operation.DELETE: accessor_destroy}, ACCESSOR_FIELDS,
             summary="Destroy a secret ID by its accessor."),
    ]
