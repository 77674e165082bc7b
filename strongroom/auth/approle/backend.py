"""The approle auth method backend: roles, secret IDs, login and tidy (see the path modules).

Storage layout (all behind the barrier, in the mount's own view):

    salt                                   the mount's HMAC key (32 random bytes)
    role/<name>                            the role (name lower-cased), including its role ID
    role_id/<HMAC(role ID)>                which role a role ID names
    secret_id/<HMAC(role)>/<HMAC(secret)>  a secret ID's properties; the secret itself is never stored
    accessor/<HMAC(accessor)>              which secret ID an accessor names

Secret IDs exist only as keyed HMACs, so neither the storage nor a backup can hand one back.
"""

from __future__ import annotations

from typing import Any

from strongroom import crypto
from strongroom.auth.approle import path_login, path_role, path_secret_id, path_tidy
from strongroom.auth.approle.common import MAX_HMAC_INPUT, SALT_KEY, canonical
from strongroom.auth.token_fields import TokenParams
from strongroom.core.logical import InvalidRequest, Request, Response
from strongroom.framework import Backend, BackendContext


class AppRoleBackend(Backend):
    type = "approle"
    is_auth = True

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self._hmac: crypto.HmacKey | None = None
        self.paths = [
            *path_login.paths(self),
            *path_role.paths(self),
            *path_secret_id.paths(self),
            *path_tidy.paths(self),
        ]

    async def initialize(self) -> None:
        salt = await self.ctx.storage.get(SALT_KEY)
        if salt is None:
            salt = crypto.new_key()
            await self.ctx.storage.put(SALT_KEY, salt)
        self._hmac = crypto.HmacKey(salt)

    async def cleanup(self) -> None:
        self._hmac = None

    def hmac(self, kind: str, value: str) -> str:
        """A keyed HMAC of ``value``; ``kind`` separates the domains so a role ID never collides with a secret ID."""
        if self._hmac is None:
            raise RuntimeError("approle backend used before initialize")
        return self._hmac.hexdigest(kind.encode() + b"\x00" + value.encode())

    async def role(self, name: str) -> dict[str, Any] | None:
        if not name or len(name) > MAX_HMAC_INPUT:
            return None
        return await self.ctx.storage.get_json(f"role/{canonical(name)}")

    def secret_folder(self, role_name: str) -> str:
        return f"secret_id/{self.hmac('role', canonical(role_name))}/"

    async def auth_renew(self, req: Request) -> Response | None:
        """Vault re-reads the role on every renewal: a deleted role ends its tokens' renewals."""
        if req.auth is None:
            return None
        name = str(req.auth.internal_data.get("role_name", ""))
        role = await self.role(name) if name else None
        if role is None:
            raise InvalidRequest(f'role "{name}" does not exist during renewal')
        return Response(auth=TokenParams.from_dict(role.get("token")).renew(req.auth))
