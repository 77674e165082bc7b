"""The ``creds`` lease: renew extends the user's life (PostgreSQL ``VALID UNTIL``), revoke drops the user.

Revocation raises when the database refuses or cannot be reached, so the expiration manager retries it with backoff
until it succeeds; the default statements are idempotent (``DROP ROLE IF EXISTS``), so a retry after a partial
success does not fail. Revocation uses the stored role's current revocation statements when that role still exists
(so fixing a role fixes its stuck leases), otherwise those recorded in the lease.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, LogicalError, Request, Response, Secret
from strongroom.engines.database.entries import DEFAULT_TTL, get_role
from strongroom.engines.database.plugins import PluginError
from strongroom.framework import SecretType

if TYPE_CHECKING:
    from strongroom.engines.database.backend import DatabaseBackend

SECRET_TYPE = "creds"  # noqa: S105 - the lease type name, not a secret


def secret_type(b: DatabaseBackend) -> SecretType:
    async def revoke(req: Request) -> Response | None:
        assert req.secret is not None
        data = req.secret.internal_data
        username, db_name = data.get("username"), data.get("db_name")
        if not username or not db_name:
            raise InvalidRequest("lease has no username or database name")
        statements = list(data.get("revocation_statements") or [])
        stored = await get_role(b.storage(req), data.get("role", ""))
        if stored is not None and stored.db_name == db_name:
            statements = stored.revocation_statements
        _, plugin = await b.plugin(db_name)
        try:
            await plugin.delete_user(statements, username)
        except PluginError as exc:
            raise LogicalError(str(exc), status=500) from None
        return None

    async def renew(req: Request) -> Response | None:
        assert req.secret is not None
        data = req.secret.internal_data
        name = data.get("role", "")
        # re-resolved like Vault: a role (or ServiceAccount annotation) that is gone cannot be renewed
        role = await b.role(req, name)
        if role is None:
            raise InvalidRequest(f"could not find role with name: {name}")
        increment = int(req.data.get("increment") or 0)
        ttl = increment or role.default_ttl or DEFAULT_TTL
        _, plugin = await b.plugin(data.get("db_name") or role.db_name)
        expiration = dt.datetime.fromtimestamp(time.time() + ttl, dt.UTC)
        try:
            await plugin.renew_user(role.renew_statements, data["username"], expiration)
        except PluginError as exc:
            raise LogicalError(str(exc), status=500) from None
        return Response(
            secret=Secret(
                lease_type=SECRET_TYPE, ttl=role.default_ttl or DEFAULT_TTL, max_ttl=role.max_ttl, renewable=True
            )
        )

    return SecretType(name=SECRET_TYPE, revoke=revoke, renew=renew)
