"""The jwt auth method backend (also mounted as type ``oidc``): config, roles and JWT login."""

from __future__ import annotations

import re
from typing import Any

from strongroom.auth.jwt import path_config, path_login, path_role
from strongroom.auth.jwt.keys import KeySource
from strongroom.auth.token_fields import TokenParams
from strongroom.core.logical import InvalidRequest, Request, Response
from strongroom.framework import Backend, BackendContext


class JWTBackend(Backend):
    type = "jwt"
    is_auth = True

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.keys = KeySource()
        self.paths = [*path_login.paths(self), *path_config.paths(self), *path_role.paths(self)]

    async def config(self) -> dict[str, Any] | None:
        return await self.ctx.storage.get_json(path_config.CONFIG_KEY)

    async def role(self, name: str) -> dict[str, Any] | None:
        if not re.fullmatch(path_role.ROLE_NAME, name):
            return None
        return await self.ctx.storage.get_json(f"role/{name}")

    async def cleanup(self) -> None:
        self.keys.clear()

    async def auth_renew(self, req: Request) -> Response | None:
        if req.auth is None:
            return None
        name = str(req.auth.internal_data.get("role", ""))
        role = await self.role(name) if name else None
        if role is None:
            raise InvalidRequest(f"role {name} does not exist during renewal")
        return Response(auth=TokenParams.from_dict(role.get("token")).renew(req.auth))
