"""identity/mfa/login-enforcement/<name>: which logins must pass login MFA (see :mod:`strongroom.core.mfa`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.core import mfa
from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core
    from strongroom.engines.identity.backend import IdentityBackend

_TARGETS = ("auth_method_accessors", "auth_method_types", "identity_group_ids", "identity_entity_ids")
_FIELDS = {
    "name": Field(FieldType.STRING, "Name for this login enforcement configuration.", in_path=True),
    "mfa_method_ids": Field(
        FieldType.COMMA_STRING_LIST, "Array of Method IDs that determine what methods will be enforced."
    ),
    "auth_method_accessors": Field(FieldType.COMMA_STRING_LIST, "Array of auth mount accessor IDs."),
    "auth_method_types": Field(FieldType.COMMA_STRING_LIST, "Array of auth method types."),
    "identity_group_ids": Field(FieldType.COMMA_STRING_LIST, "Array of identity group IDs."),
    "identity_entity_ids": Field(FieldType.COMMA_STRING_LIST, "Array of identity entity IDs."),
}


def enforcement_json(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rec["id"],
        "name": rec["name"],
        "namespace_id": "root",
        "mfa_method_ids": rec["mfa_method_ids"],
        **{k: rec.get(k, []) for k in _TARGETS},
    }


def paths(b: IdentityBackend) -> list[Path]:
    def core() -> Core:
        return b.ctx.services["core"]

    async def write(req: Request, fd: FieldData) -> None:
        name = fd.get("name")
        store = mfa.store(core())
        rec = await store.enforcement(name) or {"id": crypto.new_uuid(), "name": name}
        method_ids, ok = fd.get_ok("mfa_method_ids")
        if not ok or not method_ids:
            raise InvalidRequest("missing method ids")
        for mid in method_ids:
            if await store.method(mid) is None:
                raise InvalidRequest("one of the provided method ids doesn't exist")
        auth_entries = core().router.entries(True)
        if any(a not in {e.accessor for e in auth_entries} for a in fd.get("auth_method_accessors") or []):
            raise InvalidRequest("one of the auth method accessors provided is invalid")
        if any(t not in {e.type for e in auth_entries} for t in fd.get("auth_method_types") or []):
            raise InvalidRequest("one of the auth method types provided is invalid")
        for gid in fd.get("identity_group_ids") or []:
            if await b.store.group(gid) is None:
                raise InvalidRequest("one of the provided group ids doesn't exist")
        for eid in fd.get("identity_entity_ids") or []:
            if await b.store.entity(eid) is None:
                raise InvalidRequest("one of the provided entity ids doesn't exist")
        for target in _TARGETS:
            if fd.has(target):
                rec[target] = fd.get(target)
        if not any(rec.get(t) for t in _TARGETS):
            raise InvalidRequest(
                "One of auth_method_accessors, auth_method_types, identity_group_ids, identity_entity_ids must be "
                "specified"
            )
        rec["mfa_method_ids"] = method_ids
        await store.put_enforcement(rec)

    async def read(req: Request, fd: FieldData) -> Response:
        rec = await mfa.store(core()).enforcement(fd.get("name"))
        if rec is None:
            raise NotFound()
        return Response(data=enforcement_json(rec))

    async def delete(req: Request, fd: FieldData) -> None:
        await mfa.store(core()).delete_enforcement(fd.get("name"))

    async def list_names(req: Request, fd: FieldData) -> Response:
        store = mfa.store(core())
        keys, info = [], {}
        for name in await store.enforcement_names():
            rec = await store.enforcement(name)
            if rec is not None:
                keys.append(name)
                info[name] = enforcement_json(rec)
        return Response.list_keys(keys, key_info=info)

    return [
        Path("mfa/login-enforcement/?", {Operation.LIST: list_names}, {}, summary="List login enforcements."),
        Path(
            r"mfa/login-enforcement/(?P<name>[^/]+)",
            {Operation.READ: read, Operation.UPDATE: write, Operation.DELETE: delete},
            _FIELDS,
            summary="Manage a login MFA enforcement.",
        ),
    ]
