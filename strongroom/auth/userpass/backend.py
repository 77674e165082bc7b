"""The userpass auth method backend: users (``user/<lower-cased name>``: an argon2id hash and token settings) and
login. The password itself is never stored, logged or returned; the audit trail sees only its HMAC."""

from __future__ import annotations

from typing import Any

from strongroom.auth.token_fields import TokenParams
from strongroom.auth.userpass import passwords, path_login, path_users
from strongroom.auth.userpass.path_users import MAX_USERNAME
from strongroom.core.logical import InvalidRequest, Request, Response
from strongroom.framework import Backend, BackendContext


class UserpassBackend(Backend):
    type = "userpass"
    is_auth = True

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.paths = [*path_login.paths(self), *path_users.paths(self)]

    async def initialize(self) -> None:
        await passwords.warm_up()

    async def user(self, username: str) -> dict[str, Any] | None:
        if not username or len(username) > MAX_USERNAME:
            return None
        return await self.ctx.storage.get_json(f"user/{username.lower()}")

    async def auth_renew(self, req: Request) -> Response | None:
        """As Vault: a deleted user's tokens stop renewing, and so do tokens whose user's policies changed since."""
        if req.auth is None:
            return None
        username = str(req.auth.metadata.get("username", ""))
        user = await self.user(username)
        if user is None:
            raise InvalidRequest(f'user "{username}" no longer exists, not renewing')
        params = TokenParams.from_dict(user.get("token"))
        if set(params.token_policies) - {"default"} != set(req.auth.policies) - {"default"}:
            raise InvalidRequest("policies have changed, not renewing")
        return Response(auth=params.renew(req.auth))
