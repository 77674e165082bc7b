"""Cassandra (4.x/5.0) through the Apache cassandra-driver.

The driver is synchronous at heart; statements go through ``execute_async`` and its ``ResponseFuture`` is bridged
onto the asyncio loop, so many credential requests share one session without tying up threads. Connecting (which
blocks) runs in a worker thread. Role names are quoted string literals in the default statements, so the generated
usernames keep their case and the password alphabet never needs escaping.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import ssl
import tempfile
from typing import Any

from strongroom.engines.database.plugins.base import DatabasePlugin, PluginError, render, scrub, split_statements
from strongroom.framework.durations import parse_duration

_CONSISTENCY = ("ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE")
_TLS_VERSIONS = {"tls12": ssl.TLSVersion.TLSv1_2, "tls13": ssl.TLSVersion.TLSv1_3}


class CassandraPlugin(DatabasePlugin):
    plugin_name = "cassandra-database-plugin"
    # Cassandra has no documented role-name limit; Vault caps generated names at 100 characters
    username_limit = 100
    default_creation = [
        "CREATE ROLE '{{username}}' WITH PASSWORD = '{{password}}' AND LOGIN = true AND SUPERUSER = false;"
    ]
    default_revocation = ["DROP ROLE IF EXISTS '{{username}}';"]
    default_rollback = ["DROP ROLE IF EXISTS '{{username}}';"]
    default_renew: list[str] = []  # credentials do not expire inside Cassandra; only revocation removes them
    default_root_rotation = ["ALTER ROLE '{{username}}' WITH PASSWORD = '{{password}}';"]
    public_fields = (
        "hosts", "port", "username", "protocol_version", "connect_timeout", "consistency", "local_datacenter",
        "tls", "insecure_tls", "tls_server_name", "tls_min_version", "skip_verification",
    )  # fmt: skip
    secret_fields = ("password", "pem_bundle", "pem_json")

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._cluster: Any = None
        self._session: Any = None
        self._connect_lock = asyncio.Lock()
        self._stale = False

    # --- configuration -------------------------------------------------------------------------------------------

    async def initialize(self, config: dict[str, Any], verify: bool) -> dict[str, Any]:
        cfg = _normalise(config)
        await self.close()
        self._config = cfg
        if verify:
            session = await self._get_session()
            await self._execute(session, "SELECT release_version FROM system.local")
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
        values = {"username": username, "name": username, "password": password}
        session = await self._get_session()
        try:
            for stmt in split_statements(statements or self.default_creation):
                await self._execute(session, render(stmt, values))
        except Exception as exc:
            rollback = split_statements(rollback_statements or self.default_rollback)
            with contextlib.suppress(Exception):
                for stmt in rollback:
                    await self._execute(session, render(stmt, values))
            raise PluginError(f"creating the Cassandra role failed: {scrub(str(exc), password)}") from None

    async def delete_user(self, statements: list[str], username: str) -> None:
        values = {"username": username, "name": username}
        session = await self._get_session()
        errors: list[str] = []
        # every statement runs even if one fails, so a partial revocation leaves as little behind as possible
        for stmt in split_statements(statements or self.default_revocation):
            try:
                await self._execute(session, render(stmt, values))
            except Exception as exc:
                errors.append(scrub(str(exc)))
        if errors:
            raise PluginError("revoking the Cassandra role failed: " + "; ".join(errors))

    async def renew_user(self, statements: list[str], username: str, expiration: dt.datetime | None) -> None:
        if not statements:
            return
        values = {"username": username, "name": username, "expiration": _expiration(expiration)}
        session = await self._get_session()
        try:
            for stmt in split_statements(statements):
                await self._execute(session, render(stmt, values))
        except Exception as exc:
            raise PluginError(f"renewing the Cassandra role failed: {scrub(str(exc))}") from None

    async def rotate_root(self, statements: list[str], new_password: str) -> dict[str, Any]:
        username = self._config.get("username", "")
        values = {"username": username, "name": username, "password": new_password}
        session = await self._get_session()
        try:
            for stmt in split_statements(statements or self.default_root_rotation):
                await self._execute(session, render(stmt, values))
        except Exception as exc:
            message = scrub(str(exc), new_password, self._config.get("password", ""))
            raise PluginError(f"rotating the root credentials failed: {message}") from None
        # later sessions must log in with the new password; the old session keeps working until closed
        await self.close()
        self._config = {**self._config, "password": new_password}
        return {"password": new_password}

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    # --- driver plumbing -----------------------------------------------------------------------------------------

    async def _get_session(self) -> Any:
        if self._session is not None and not self._stale:
            return self._session
        async with self._connect_lock:
            if self._stale:
                self._stale = False
                await self.close()
            if self._session is None:
                if not self._config:
                    raise PluginError("the connection is not configured")
                self._cluster, self._session = await asyncio.to_thread(_connect, self._config)
        return self._session

    async def _execute(self, session: Any, query: str) -> Any:
        from cassandra.query import SimpleStatement

        consistency = self._config.get("consistency")
        stmt = SimpleStatement(query)
        if consistency:
            from cassandra import ConsistencyLevel

            stmt.consistency_level = ConsistencyLevel.name_to_value[consistency]
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def ok(rows: Any) -> None:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(rows))

        def fail(exc: BaseException) -> None:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_exception(exc))

        from cassandra.cluster import NoHostAvailable
        from cassandra.connection import ConnectionException

        try:
            response = session.execute_async(stmt, timeout=self._config["connect_timeout"])
            response.add_callbacks(ok, fail)
            return await fut
        except (NoHostAvailable, ConnectionException, OSError):
            # the node went away: open a fresh session next time rather than wait out the driver's reconnect backoff
            self._stale = True
            raise


def _expiration(expiration: dt.datetime | None) -> str:
    return "" if expiration is None else expiration.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _normalise(config: dict[str, Any]) -> dict[str, Any]:
    hosts = config.get("hosts")
    if isinstance(hosts, list):
        hosts = ",".join(hosts)
    if not hosts or not isinstance(hosts, str):
        raise PluginError("hosts cannot be empty")
    if not config.get("username"):
        raise PluginError("username cannot be empty")
    if not config.get("password"):
        raise PluginError("password cannot be empty")
    try:
        port = int(config.get("port") or 9042)
        protocol = int(config.get("protocol_version") or 4)
        timeout = parse_duration(config.get("connect_timeout") or "5s") or 5
    except (TypeError, ValueError):
        raise PluginError("port, protocol_version and connect_timeout must be numbers or durations") from None
    if protocol < 4 or protocol > 5:
        # Cassandra 3+ dropped v1/v2, and v3 lacks what the driver needs for 4.x/5.0 auth errors
        raise PluginError("protocol_version must be 4 or 5")
    consistency = str(config.get("consistency") or "").upper()
    if consistency and consistency not in _CONSISTENCY:
        raise PluginError(f"consistency must be one of {', '.join(_CONSISTENCY)}")
    tls_min = str(config.get("tls_min_version") or "tls12")
    if tls_min not in _TLS_VERSIONS:
        raise PluginError("tls_min_version must be tls12 or tls13")
    pem_bundle, pem_json = config.get("pem_bundle") or "", config.get("pem_json") or ""
    if pem_bundle and pem_json:
        raise PluginError("only one of pem_bundle or pem_json can be set")
    tls = _bool(config.get("tls"), False) or bool(pem_bundle or pem_json) or _bool(config.get("insecure_tls"), False)
    return {
        "hosts": ",".join(h.strip() for h in hosts.split(",") if h.strip()),
        "port": port,
        "username": str(config["username"]),
        "password": str(config["password"]),
        "protocol_version": protocol,
        "connect_timeout": timeout,
        "consistency": consistency,
        "local_datacenter": str(config.get("local_datacenter") or ""),
        "tls": tls,
        "insecure_tls": _bool(config.get("insecure_tls"), False),
        "tls_server_name": str(config.get("tls_server_name") or ""),
        "tls_min_version": tls_min,
        "pem_bundle": str(pem_bundle) if pem_bundle else (_pem_from_json(pem_json) if pem_json else ""),
        "skip_verification": _bool(config.get("skip_verification"), False),
    }


def _bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.lower() in ("1", "t", "true", "yes")
    return bool(value)


def _pem_from_json(pem_json: Any) -> str:
    import json

    try:
        doc = json.loads(pem_json) if isinstance(pem_json, str) else pem_json
        parts = [doc.get("certificate", ""), doc.get("private_key", ""), *doc.get("ca_chain", [])]
        if doc.get("issuing_ca"):
            parts.append(doc["issuing_ca"])
    except (ValueError, AttributeError, TypeError):
        raise PluginError("pem_json is not a JSON object of PEM values") from None
    return "\n".join(p for p in parts if p)


def _ssl_context(cfg: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = _TLS_VERSIONS[cfg["tls_min_version"]]
    pem = cfg["pem_bundle"]
    if cfg["insecure_tls"]:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if pem:
        certs = [b for b in _pem_blocks(pem) if "CERTIFICATE" in b.splitlines()[0]]
        if not cfg["insecure_tls"] and certs:
            ctx.load_verify_locations(cadata="\n".join(certs))
        if "PRIVATE KEY" in pem:
            # ssl loads a client key only from a file: a private 0600 file that lives for a moment
            fd, path = tempfile.mkstemp(prefix="strongroom-cql-")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(pem)
                ctx.load_cert_chain(path)
            finally:
                os.unlink(path)
    return ctx


def _pem_blocks(pem: str) -> list[str]:
    blocks, current = [], []
    for line in pem.splitlines():
        if line.startswith("-----BEGIN"):
            current = [line]
        elif line.startswith("-----END"):
            current.append(line)
            blocks.append("\n".join(current))
            current = []
        elif current:
            current.append(line)
    return blocks


def _connect(cfg: dict[str, Any]) -> tuple[Any, Any]:
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, RoundRobinPolicy

    policy = DCAwareRoundRobinPolicy(cfg["local_datacenter"]) if cfg["local_datacenter"] else RoundRobinPolicy()
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=cfg["connect_timeout"])
    kwargs: dict[str, Any] = {}
    if cfg["tls"]:
        kwargs["ssl_context"] = _ssl_context(cfg)
        if cfg["tls_server_name"]:
            kwargs["ssl_options"] = {"server_hostname": cfg["tls_server_name"]}
    cluster = Cluster(
        cfg["hosts"].split(","),
        port=cfg["port"],
        protocol_version=cfg["protocol_version"],
        auth_provider=PlainTextAuthProvider(cfg["username"], cfg["password"]),
        connect_timeout=cfg["connect_timeout"],
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        # the engine issues role statements only: no need to fetch the schema and token ring of a large cluster
        schema_metadata_enabled=False,
        token_metadata_enabled=False,
        **kwargs,
    )
    try:
        session = cluster.connect()
    except Exception as exc:
        cluster.shutdown()
        raise PluginError(f"connecting to Cassandra failed: {scrub(str(exc), cfg['password'])}") from None
    return cluster, session
