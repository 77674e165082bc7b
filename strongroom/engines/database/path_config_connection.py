"""``config/<name>``: a database connection. Reading it never returns the password or a client key."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, NotFound, Request, Response
from strongroom.engines.database import password as passwords
from strongroom.engines.database import username as usernames
from strongroom.engines.database.entries import Connection, get_connection, parse_statements, put_connection
from strongroom.engines.database.plugins import PLUGIN_NAMES, PluginError, new_plugin
from strongroom.engines.database.plugins.base import connection_secrets, scrub, scrubbed_error
from strongroom.engines.database.plugins.postgres import redact_url
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import collection_paths

if TYPE_CHECKING:
    from strongroom.engines.database.backend import DatabaseBackend

# connection fields: passed to the plugin, which validates and keeps what it understands
CONNECTION_FIELDS: dict[str, Field] = {
    "hosts": Field(FieldType.STRING, "Cassandra: comma-separated hosts"),
    "port": Field(FieldType.INT, "Cassandra: native protocol port (9042)"),
    "username": Field(FieldType.STRING, "The engine's own database user"),
    "password": Field(FieldType.STRING, "The engine's own database password (never returned)"),
    "protocol_version": Field(FieldType.INT, "Cassandra: native protocol version, 4 (default) or 5"),
    "connect_timeout": Field(FieldType.ANY, "Connect and request timeout (duration, default 5s)"),
    "consistency": Field(FieldType.STRING, "Cassandra: consistency level, e.g. LOCAL_QUORUM"),
    "local_datacenter": Field(FieldType.STRING, "Cassandra: prefer this datacenter"),
    "tls": Field(FieldType.BOOL, "Cassandra: use TLS"),
    "insecure_tls": Field(FieldType.BOOL, "Cassandra: TLS without verifying the server certificate"),
    "tls_server_name": Field(FieldType.STRING, "Cassandra: SNI / expected server name"),
    "tls_min_version": Field(FieldType.STRING, "Cassandra: tls12 (default) or tls13"),
    "pem_bundle": Field(FieldType.STRING, "Cassandra: PEM CA certificate, optionally with client certificate and key"),
    "pem_json": Field(FieldType.ANY, "Cassandra: JSON with certificate, private_key, ca_chain"),
    "skip_verification": Field(FieldType.BOOL, "Cassandra: accepted for compatibility"),
    "connection_url": Field(FieldType.STRING, "PostgreSQL: DSN, may contain {{username}} and {{password}}"),
    "max_open_connections": Field(FieldType.INT, "PostgreSQL: pool size (default 4)"),
}

FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "Name of this connection", required=True, in_path=True),
    "plugin_name": Field(FieldType.STRING, "cassandra-database-plugin or postgresql-database-plugin"),
    "verify_connection": Field(FieldType.BOOL, "Connect before saving (default true)", default=True),
    "allowed_roles": Field(FieldType.COMMA_STRING_LIST, "Role names (globs) that may use this connection", default=[]),
    "root_rotation_statements": Field(FieldType.ANY, "Statements for rotate-root"),
    "password_policy": Field(FieldType.STRING, f"Password policy: {', '.join(sorted(passwords.POLICIES))}"),
    "username_template": Field(FieldType.STRING, "Template for generated usernames"),
    **CONNECTION_FIELDS,
}


def paths(b: DatabaseBackend) -> list[Path]:
    async def exists(req: Request, fd: FieldData) -> bool:
        return await get_connection(b.storage(req), fd.get("name")) is not None

    async def write(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        async with b.lock(name):
            old = await get_connection(b.storage(req), name)
            plugin_name = fd.get("plugin_name") or (old.plugin_name if old else "")
            if not plugin_name:
                raise InvalidRequest("plugin_name is required")
            if plugin_name not in PLUGIN_NAMES:
                raise InvalidRequest(f"unknown plugin_name {plugin_name!r}; known: {', '.join(PLUGIN_NAMES)}")
            details = dict(old.connection_details) if old and old.plugin_name == plugin_name else {}
            details.update({k: fd.get(k) for k in CONNECTION_FIELDS if fd.has(k)})
            conn = Connection(
                name=name,
                plugin_name=plugin_name,
                connection_details=details,
                allowed_roles=_kept(fd, "allowed_roles", old.allowed_roles if old else []),
                verify_connection=fd.get("verify_connection"),
                root_rotation_statements=(
                    parse_statements(fd.get("root_rotation_statements"), "root_rotation_statements")
                    if fd.has("root_rotation_statements")
                    else (old.root_rotation_statements if old else [])
                ),
                password_policy=_kept(fd, "password_policy", old.password_policy if old else ""),
                username_template=_kept(fd, "username_template", old.username_template if old else ""),
            )
            plugin = new_plugin(plugin_name)
            try:
                passwords.policy_length(conn.password_policy)
                usernames.validate(conn.username_template or plugin.default_username_template, plugin.username_limit)
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from None
            try:
                conn.connection_details = await plugin.initialize(details, verify=conn.verify_connection)
            except Exception as exc:  # whatever the driver raised, it reaches the client only scrubbed
                with contextlib.suppress(Exception):
                    await plugin.close()
                safe = scrubbed_error("", exc, details) if not isinstance(exc, PluginError) else exc
                message = scrub(str(safe), *connection_secrets(details))
                raise InvalidRequest(f"error creating database object: {message}") from None
            await put_connection(b.storage(req), conn)
            replaced = b.install_plugin(conn, plugin)
        if replaced is not None:
            await replaced.close()
        return None

    async def read(req: Request, fd: FieldData) -> Response:
        conn = await get_connection(b.storage(req), fd.get("name"))
        if conn is None:
            raise NotFound()
        return Response(data=public_view(conn))

    async def delete(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        async with b.lock(name):
            await b.storage(req).delete(f"config/{name}")
            await b.close_plugin(name)
        return None

    async def list_(req: Request, fd: FieldData) -> Response:
        return Response.list_keys(await b.storage(req).list_all("config/"))

    return collection_paths(
        "config", FIELDS, write=write, read=read, delete=delete, list_=list_, exists=exists,
        summary="Configure a database connection.", list_summary="List the configured database connections.",
    )  # fmt: skip


def _kept(fd: FieldData, name: str, old: Any) -> Any:
    return fd.get(name) if fd.has(name) else old


def public_view(conn: Connection) -> dict[str, Any]:
    plugin = new_plugin(conn.plugin_name)
    details = {k: v for k, v in conn.connection_details.items() if k in plugin.public_fields}
    if "connection_url" in details:
        details["connection_url"] = redact_url(details["connection_url"])
    doc = asdict(conn)
    return {
        "plugin_name": conn.plugin_name,
        "plugin_version": "",
        "connection_details": details,
        "allowed_roles": doc["allowed_roles"],
        "verify_connection": conn.verify_connection,
        "root_credentials_rotate_statements": doc["root_rotation_statements"],
        "password_policy": conn.password_policy,
        "username_template": conn.username_template,
    }
