"""PostgreSQL through psycopg 3 (async), with a small pool of connections.

All creation statements run in one transaction, so a failed creation leaves nothing behind. Revocation first checks
whether the role still exists, so re-running it after a partial failure (or after the role was dropped by hand)
succeeds instead of making the lease irrevocable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from strongroom import backoff
from strongroom.engines.database.plugins.base import (
    DatabasePlugin,
    PluginError,
    expiration_text,
    render,
    split_statements,
)
from strongroom.framework.durations import parse_duration

# The default revocation when a role names none: hand the role's objects to us, drop its grants, drop the role.
# Built in code rather than as statements because REASSIGN OWNED fails for a role that no longer exists.
_DEFAULT_REVOKE = (
    'REASSIGN OWNED BY "{{name}}" TO CURRENT_USER',
    'DROP OWNED BY "{{name}}"',
    'DROP ROLE IF EXISTS "{{name}}"',
)
_ATTEMPTS = 5
_TEMPLATE = re.compile(r"\{\{(username|password)\}\}")


class PostgresPlugin(DatabasePlugin):
    plugin_name = "postgresql-database-plugin"
    username_limit = 63  # NAMEDATALEN - 1
    # Vault's PostgreSQL default keeps 8 characters of each name so the random part survives the 63-character limit
    default_username_template = "v_{{display_name:8}}_{{role_name:8}}_{{random:20}}_{{unix_time}}"
    default_creation = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]
    default_revocation: list[str] = []  # see _DEFAULT_REVOKE
    default_rollback: list[str] = []  # the creation transaction rolls back by itself
    default_renew = ["ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';"]
    default_root_rotation = ["ALTER ROLE \"{{username}}\" WITH PASSWORD '{{password}}';"]
    public_fields = ("connection_url", "username", "max_open_connections", "connect_timeout")
    secret_fields = ("password",)

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(4)

    async def initialize(self, config: dict[str, Any], verify: bool) -> dict[str, Any]:
        url = str(config.get("connection_url") or "")
        if not url:
            raise PluginError("connection_url cannot be empty")
        try:
            max_open = int(config.get("max_open_connections") or 4)
            # seconds or a duration ("5s"), as the Cassandra plugin takes it
            timeout = parse_duration(config.get("connect_timeout") or 5)
        except (TypeError, ValueError):
            raise PluginError("max_open_connections must be an integer and connect_timeout a duration") from None
        if _TEMPLATE.search(url) and not config.get("username"):
            raise PluginError("username is required when connection_url is templated")
        cfg: dict[str, Any] = {
            "connection_url": url,
            "username": str(config.get("username") or ""),
            "password": str(config.get("password") or ""),
            "max_open_connections": max(1, max_open),
            "connect_timeout": max(1, timeout),
        }
        await self.close()
        self._config = cfg
        self._slots = asyncio.Semaphore(cfg["max_open_connections"])
        if verify:
            async with self._connection() as conn:
                await conn.execute("SELECT 1")
        return cfg

    # --- users ---------------------------------------------------------------------------------------------------

    async def new_user(
        self,
        statements: list[str],
        username: str,
        password: str,
        expiration: dt.datetime | None,
        rollback_statements: list[str] | None = None,
    ) -> None:
        values = {
            "name": username,
            "username": username,
            "password": password,
            "expiration": expiration_text(expiration),
        }
        try:
            await self._transaction(
                split_statements(statements or self.default_creation, keep_dollar_quoted=True), values
            )
        except PluginError:
            raise
        except Exception as exc:
            raise self.error("creating the PostgreSQL role failed: ", exc, password) from None

    async def delete_user(self, statements: list[str], username: str) -> None:
        values = {"name": username, "username": username}
        try:
            async with self._connection() as conn:
                if not statements:
                    cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,))
                    if await cur.fetchone() is None:
                        return
            await self._transaction(
                split_statements(statements, keep_dollar_quoted=True) if statements else list(_DEFAULT_REVOKE), values
            )
        except PluginError:
            raise
        except Exception as exc:
            raise self.error("revoking the PostgreSQL role failed: ", exc) from None

    async def renew_user(self, statements: list[str], username: str, expiration: dt.datetime | None) -> None:
        values = {"name": username, "username": username, "expiration": expiration_text(expiration)}
        try:
            await self._transaction(split_statements(statements or self.default_renew, keep_dollar_quoted=True), values)
        except PluginError:
            raise
        except Exception as exc:
            raise self.error("renewing the PostgreSQL role failed: ", exc) from None

    async def rotate_root(self, statements: list[str], new_password: str) -> dict[str, Any]:
        username = self._config.get("username")
        if not username:
            raise PluginError("rotating the root credentials needs the username field in the connection config")
        values = {"name": username, "username": username, "password": new_password}
        try:
            async with self._connection() as conn, conn.transaction():
                for stmt in split_statements(statements or self.default_root_rotation, keep_dollar_quoted=True):
                    await conn.execute(render(stmt, values).encode())
        except PluginError:
            raise
        except Exception as exc:
            raise self.error("rotating the root credentials failed: ", exc, new_password) from None
        await self.close()
        self._config = {**self._config, "password": new_password}
        return {"password": new_password}

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    async def _transaction(self, statements: list[str], values: dict[str, str]) -> None:
        """Run ``statements`` in one transaction, again if PostgreSQL reports a conflict with a concurrent one.

        Concurrent GRANTs on one object (many pods of a fleet, one schema) fail with "tuple concurrently updated";
        the failed transaction left nothing behind, so running it again is safe.
        """
        for attempt in range(_ATTEMPTS):
            try:
                async with self._connection() as conn, conn.transaction():
                    for stmt in statements:
                        await conn.execute(render(stmt, values).encode())
                return
            except Exception as exc:
                if attempt + 1 >= _ATTEMPTS or not _retryable(exc):
                    raise
                await asyncio.sleep(backoff.delay(attempt, base=0.01, jitter=(1.0, 2.0)))

    # --- pool ----------------------------------------------------------------------------------------------------

    def _connection(self) -> _Lease:
        if not self._config:
            raise PluginError("the connection is not configured")
        return _Lease(self)

    async def _open(self) -> Any:
        import psycopg

        cfg = self._config
        is_url = cfg["connection_url"].startswith(("postgres://", "postgresql://"))

        def fill(m: re.Match[str]) -> str:
            value = cfg["username"] if m.group(1) == "username" else cfg["password"]
            # a URL needs percent-encoding; a key=value DSN needs a quoted, backslash-escaped value
            return quote(value, safe="") if is_url else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

        url = _TEMPLATE.sub(fill, cfg["connection_url"])
        extra: dict[str, Any] = {}
        if not _TEMPLATE.search(cfg["connection_url"]):
            # username/password given beside an untemplated URL override what the URL says
            if cfg["username"]:
                extra["user"] = cfg["username"]
            if cfg["password"]:
                extra["password"] = cfg["password"]
        try:
            return await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=cfg["connect_timeout"], **extra
            )
        except Exception as exc:
            raise self.error("connecting to PostgreSQL failed: ", exc) from None


class _Lease:
    """One pooled connection for the length of an ``async with``; a broken connection is discarded, not reused."""

    def __init__(self, plugin: PostgresPlugin) -> None:
        self._plugin = plugin
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        await self._plugin._slots.acquire()
        try:
            while self._plugin._idle:
                conn = self._plugin._idle.pop()
                if not conn.closed:
                    self._conn = conn
                    return conn
            self._conn = await self._plugin._open()
            return self._conn
        except BaseException:
            self._plugin._slots.release()
            raise

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            conn = self._conn
            if conn is not None and not conn.closed and not conn.broken:
                self._plugin._idle.append(conn)
            elif conn is not None:
                await conn.close()
        finally:
            self._plugin._slots.release()


def _retryable(exc: Exception) -> bool:
    # serialization failure, deadlock, and the catalog's "tuple concurrently updated" (SQLSTATE XX000)
    return getattr(exc, "sqlstate", None) in ("40001", "40P01") or "concurrently updated" in str(exc)


def redact_url(url: str) -> str:
    """A connection URL fit for a read response: a literal password in it becomes ``*****``."""
    parts = urlsplit(url)
    if parts.password and not _TEMPLATE.fullmatch(parts.password):
        netloc = parts.netloc.replace(":" + parts.password + "@", ":*****@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return url
