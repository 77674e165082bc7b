"""The ``database`` secrets engine: short-lived database users (Cassandra, PostgreSQL), Vault-compatible.

Paths (one module each, after OpenBao's ``builtin/logical/database``):

- ``config/<name>``         a connection: plugin, connection details, allowed roles (path_config_connection)
- ``rotate-root/<name>``    the engine changes its own database password (path_rotate_root)
- ``reset/<name>``          close and reopen a connection (path_reset)
- ``roles/<name>``          statements and TTLs (path_roles)
- ``creds/<name>``          a new user as a lease (path_creds_create; the lease type lives in secret_creds)
- ``serviceaccounts/*``     where dynamic ``k8s_<base>_<sa>_<namespace>`` roles get their annotations
                            (path_serviceaccounts, serviceaccounts, dynamic_roles)

The engine holds one plugin (one pool of database connections) per configured connection, opened on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from strongroom.core.logical import LogicalError, Request
from strongroom.engines.database import (
    dynamic_roles,
    path_config_connection,
    path_creds_create,
    path_reset,
    path_roles,
    path_rotate_root,
    path_serviceaccounts,
    secret_creds,
)
from strongroom.engines.database.entries import Connection, Role, get_role, put_connection, require_connection
from strongroom.engines.database.plugins import DatabasePlugin, PluginError, new_plugin
from strongroom.engines.database.serviceaccounts import ServiceAccountBackend
from strongroom.framework import BackendContext

log = logging.getLogger(__name__)


class DatabaseBackend(ServiceAccountBackend):
    type = "database"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self._plugins: dict[str, tuple[Connection, DatabasePlugin]] = {}
        self._plugin_locks: dict[str, asyncio.Lock] = {}
        self.paths = [
            *path_config_connection.paths(self),
            *path_rotate_root.paths(self),
            *path_reset.paths(self),
            *path_roles.paths(self),
            *path_creds_create.paths(self),
            *path_serviceaccounts.paths(self),
        ]
        self.secret_types = {secret_creds.SECRET_TYPE: secret_creds.secret_type(self)}

    async def cleanup(self) -> None:
        await super().cleanup()
        for name in list(self._plugins):
            await self.close_plugin(name)

    # --- connections ---------------------------------------------------------------------------------------------

    def lock(self, name: str) -> asyncio.Lock:
        lk = self._plugin_locks.get(name)
        if lk is None:
            lk = self._plugin_locks[name] = asyncio.Lock()
        return lk

    async def plugin(self, name: str) -> tuple[Connection, DatabasePlugin]:
        """The open plugin for connection ``name``, initialising it from storage on first use."""
        cached = self._plugins.get(name)
        if cached is not None:
            return cached
        async with self.lock(name):
            cached = self._plugins.get(name)
            if cached is not None:
                return cached
            conn = await require_connection(self.ctx.storage, name)
            plugin = new_plugin(conn.plugin_name)
            try:
                if conn.pending_password:
                    conn = await self._settle_pending_password(conn, plugin)
                else:
                    await plugin.initialize(conn.connection_details, verify=False)
            except PluginError as exc:
                raise LogicalError(str(exc), status=500) from None
            self._plugins[name] = (conn, plugin)
            return conn, plugin

    async def _settle_pending_password(self, conn: Connection, plugin: DatabasePlugin) -> Connection:
        """A rotate-root was interrupted: keep whichever password the database accepts, forget the other."""
        try:
            await plugin.initialize(conn.connection_details, verify=True)
        except PluginError:
            rotated = {**conn.connection_details, "password": conn.pending_password}
            await plugin.initialize(rotated, verify=True)  # raises when neither works: try again later
            conn.connection_details = rotated
            log.warning("connection %s: completed an interrupted root password rotation", conn.name)
        conn.pending_password = ""
        await put_connection(self.ctx.storage, conn)
        return conn

    def install_plugin(self, conn: Connection, plugin: DatabasePlugin) -> DatabasePlugin | None:
        """Make ``plugin`` the live one for ``conn``; returns the one it replaces (the caller closes it)."""
        old = self._plugins.get(conn.name)
        self._plugins[conn.name] = (conn, plugin)
        return old[1] if old is not None and old[1] is not plugin else None

    async def close_plugin(self, name: str) -> None:
        cached = self._plugins.pop(name, None)
        if cached is not None:
            with contextlib.suppress(Exception):
                await cached[1].close()

    # --- roles ---------------------------------------------------------------------------------------------------

    async def role(self, req: Request, name: str) -> Role | None:
        """The stored role ``name``, else the dynamic role it stands for; None when it is neither."""
        role = await get_role(self.storage(req), name)
        if role is not None or not dynamic_roles.is_dynamic(name):
            return role
        base_name, _, _ = dynamic_roles.parse(name)
        base = await get_role(self.storage(req), base_name)
        return await dynamic_roles.resolve(name, base, self.service_accounts)
