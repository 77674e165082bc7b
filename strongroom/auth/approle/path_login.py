"""auth/<mount>/login: exchange a role ID (and, when the role binds one, a secret ID) for a token.

Guarantee: a secret ID limited to N uses yields at most N tokens, however many logins race. The use is counted under
the secret ID's lock on the active node (the only writer of this storage); the decrement — or, for the last use, the
removal of the secret ID with its accessor — joins the login's request transaction, and the lock is held until that
transaction commits (:mod:`strongroom.core.request_txn`), so the next login of the same secret ID reads the committed
count. An expired secret ID is refused and removed. Every refusal that concerns the credentials themselves says only
"invalid role or secret ID", so a caller cannot tell a wrong role ID from a wrong, used-up or expired secret ID.
Source-address checks run before a use is counted, so a caller outside the bound CIDRs cannot burn a secret ID's uses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.auth.approle.common import MAX_HMAC_INPUT
from strongroom.auth.approle.path_secret_id import SecretIDs, expired
from strongroom.auth.token_fields import TokenParams, remote_addr_allowed
from strongroom.core.logical import (
    Auth,
    EntityAlias,
    InvalidRequest,
    Operation,
    PermissionDenied,
    Request,
    Response,
)
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.auth.approle.backend import AppRoleBackend

FIELDS = {
    "role_id": Field(FieldType.STRING, "The role ID of the role to log in as."),
    "secret_id": Field(FieldType.STRING, "A secret ID of the role (required when the role binds secret IDs)."),
}
INVALID = "invalid role or secret ID"


def paths(b: AppRoleBackend) -> list[Path]:
    ids = SecretIDs(b)
    storage = b.ctx.storage

    async def resolve_role(role_id: str) -> dict[str, Any]:
        if len(role_id) > MAX_HMAC_INPUT:
            raise InvalidRequest(INVALID)
        index = await storage.get_json(f"role_id/{b.hmac('role_id', role_id)}")
        role = await b.role(str(index.get("name", ""))) if index else None
        if role is None or not crypto.constant_time_eq(role["role_id"], role_id):
            raise InvalidRequest(INVALID)
        return role

    async def consume(req: Request, role: dict[str, Any], secret_id: str) -> dict[str, Any]:
        """Validate the secret ID and count one use of it; returns its entry as it was before this use."""
        if len(secret_id) > MAX_HMAC_INPUT:
            raise InvalidRequest(INVALID)
        key = ids.key(role["name"], secret_id)
        async with storage.lock(key):
            # from storage, checked again at commit: a use is decided exactly across a node's workers
            entry = await storage.get_guarded_json(key)
            if entry is None or not crypto.constant_time_eq(entry["secret_id_hmac"], key.rsplit("/", 1)[1]):
                raise InvalidRequest(INVALID)
            if await storage.get(ids.accessor_key(entry["secret_id_accessor"])) is None:
                await storage.transaction({key: None})  # an orphan without its accessor is revoked, as in Vault
                raise InvalidRequest(INVALID)
            if expired(entry):
                await ids.remove(key, entry)
                raise InvalidRequest(INVALID)
            if entry["cidr_list"] and not remote_addr_allowed(req.remote_addr, entry["cidr_list"]):
                raise InvalidRequest(f'source address "{req.remote_addr}" unauthorized through CIDR restrictions '
                                     "on the secret ID")
            token_cidrs = entry["token_bound_cidrs"] or TokenParams.from_dict(role.get("token")).token_bound_cidrs
            if not remote_addr_allowed(req.remote_addr, token_cidrs):
                raise PermissionDenied()  # the token could not be used from here either
            uses = entry["secret_id_num_uses"]
            if uses == 1:
                await ids.remove(key, entry)
            elif uses > 1:
                await storage.transaction({key: {**entry, "secret_id_num_uses": uses - 1,
                                                 "last_updated_time": time.time()}})
        return entry

    async def login(req: Request, fd: FieldData) -> Response:
        role_id = (fd.get("role_id") or "").strip()
        if not role_id:
            raise InvalidRequest("missing role_id")
        role = await resolve_role(role_id)
        if role["secret_id_bound_cidrs"] and not remote_addr_allowed(req.remote_addr, role["secret_id_bound_cidrs"]):
            raise InvalidRequest(f'source address "{req.remote_addr}" unauthorized by CIDR restrictions on the role')
        params = TokenParams.from_dict(role.get("token"))
        metadata: dict[str, str] = {}
        token_cidrs = list(params.token_bound_cidrs)
        if role["bind_secret_id"]:
            secret_id = (fd.get("secret_id") or "").strip()
            if not secret_id:
                raise InvalidRequest("missing secret_id")
            entry = await consume(req, role, secret_id)
            metadata = dict(entry["metadata"])
            token_cidrs = list(entry["token_bound_cidrs"]) or token_cidrs
        elif not remote_addr_allowed(req.remote_addr, token_cidrs):
            raise PermissionDenied()
        metadata["role_name"] = role["name"]
        auth = Auth(
            metadata=metadata,
            internal_data={"role_name": role["name"]},
            alias=EntityAlias(name=role["role_id"], metadata=dict(metadata)),
        )
        params.populate(auth)
        auth.bound_cidrs = token_cidrs
        return Response(auth=auth)

    return [Path(r"login", {Operation.UPDATE: login}, FIELDS, unauthenticated=True,
                 summary="Issue a token for a role ID and secret ID.")]
