"""``creds/<name>``: a new database user for the caller, returned as a lease.

The role may be stored or dynamic (``k8s_<base>_<sa>_<namespace>``); either way the connection's ``allowed_roles``
globs are matched against the name that was asked for. The lease keeps what revocation needs (connection, username,
revocation statements) so the user can be dropped even after the role or the annotation is gone. The password is
returned once and stored nowhere.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import time
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, LogicalError, Operation, Request, Response, Secret
from strongroom.engines.database import password as passwords
from strongroom.engines.database import username as usernames
from strongroom.engines.database.entries import DEFAULT_TTL
from strongroom.engines.database.plugins import PluginError
from strongroom.engines.database.secret_creds import SECRET_TYPE
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.database.backend import DatabaseBackend


def role_allowed(allowed: list[str], name: str) -> bool:
    return any(pattern == "*" or fnmatch.fnmatchcase(name, pattern) for pattern in allowed)


def paths(b: DatabaseBackend) -> list[Path]:
    async def creds(req: Request, fd: FieldData) -> Response:
        name = fd.get("name")
        role = await b.role(req, name)
        if role is None:
            raise InvalidRequest(f"unknown role: {name}")
        conn, plugin = await b.plugin(role.db_name)
        if not role_allowed(conn.allowed_roles, name):
            raise InvalidRequest(f"{name!r} is not an allowed role for connection {role.db_name!r}")
        ttl = role.default_ttl or DEFAULT_TTL
        if role.max_ttl:
            ttl = min(ttl, role.max_ttl)
        template = conn.username_template or plugin.default_username_template
        try:
            username = usernames.generate(template, req.caller.display_name or "token", name, plugin.username_limit)
            password = passwords.generate(conn.password_policy)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        expiration = dt.datetime.fromtimestamp(time.time() + ttl, dt.UTC)
        try:
            await plugin.new_user(role.creation_statements, username, password, expiration, role.rollback_statements)
        except PluginError as exc:
            raise LogicalError(str(exc), status=500) from None
        internal = {
            "username": username,
            "role": name,
            "db_name": role.db_name,
            "revocation_statements": role.revocation_statements,
            "renew_statements": role.renew_statements,
        }
        if role.dynamic_from:
            internal["dynamic_from"] = role.dynamic_from
        return Response(
            data={"username": username, "password": password},
            secret=Secret(
                lease_type=SECRET_TYPE, ttl=ttl, max_ttl=role.max_ttl, renewable=True, internal_data=internal
            ),
        )

    return [
        Path(
            pattern=rf"creds/{generic_name('name')}",
            fields={"name": Field(FieldType.STRING, "Name of the role", required=True, in_path=True)},
            operations={Operation.READ: creds},
            summary="Request database credentials for a role.",
        )
    ]
