"""auth/<mount>/login/<username>: exchange a username and password for a token.

Every refusal of the credentials is the same 400 "invalid username or password", and an unknown user costs one argon2id
verification just like a wrong password (see :mod:`strongroom.auth.userpass.passwords`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.auth.token_fields import TokenParams, remote_addr_allowed
from strongroom.auth.userpass import passwords
from strongroom.auth.userpass.path_users import PASSWORD_FIELD, USER, USERNAME_FIELD
from strongroom.core.logical import (
    Auth,
    EntityAlias,
    InvalidRequest,
    Operation,
    PermissionDenied,
    Request,
    Response,
)
from strongroom.framework import FieldData, Path

if TYPE_CHECKING:
    from strongroom.auth.userpass.backend import UserpassBackend

INVALID = "invalid username or password"


def paths(b: UserpassBackend) -> list[Path]:
    async def login(req: Request, fd: FieldData) -> Response:
        username = (fd.get("username") or "").lower()
        password = fd.get("password") or ""
        if not password:
            raise InvalidRequest("missing password")
        user = await b.user(username)
        stored = (user.get("password_hash") or None) if user is not None else None
        # an unknown user is verified against the dummy hash: the same work, the same answer
        if not await passwords.verify_password(stored, password) or user is None:
            raise InvalidRequest(INVALID)
        params = TokenParams.from_dict(user.get("token"))
        if not remote_addr_allowed(req.remote_addr, params.token_bound_cidrs):
            raise PermissionDenied()
        auth = Auth(
            metadata={"username": username},
            display_name=username,
            alias=EntityAlias(name=username),
        )
        params.populate(auth)
        return Response(auth=auth)

    return [Path(rf"login/{USER}", {Operation.UPDATE: login}, {"username": USERNAME_FIELD, "password": PASSWORD_FIELD},
                 unauthenticated=True, summary="Log in with a username and password.")]
