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
import ipaddress
import os
import re
import ssl
import tempfile
from typing import Any

from strongroom.engines.database.plugins.base import (
    DatabasePlugin,
    PluginError,
    render,
    scrubbed_error,
    split_statements,
)
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
            raise self.error("creating the Cassandra role failed: ", exc, password) from None

    async def delete_user(self, statements: list[str], username: str) -> None:
        values = {"username": username, "name": username}
        session = await self._get_session()
        errors: list[str] = []
        # every statement runs even if one fails, so a partial revocation leaves as little behind as possible
        for stmt in split_statements(statements or self.default_revocation):
            try:
                await self._execute(session, render(stmt, values))
            except Exception as exc:
                errors.append(str(self.error("", exc)))
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
            raise self.error("renewing the Cassandra role failed: ", exc) from None

    async def rotate_root(self, statements: list[str], new_password: str) -> dict[str, Any]:
        username = self._config.get("username", "")
        values = {"username": username, "name": username, "password": new_password}
        session = await self._get_session()
        try:
            for stmt in split_statements(statements or self.default_root_rotation):
                await self._execute(session, render(stmt, values))
        except Exception as exc:
            raise self.error("rotating the root credentials failed: ", exc, new_password) from None
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

        def settle(rows: Any = None, exc: BaseException | None = None) -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(rows)

        def ok(rows: Any) -> None:
            loop.call_soon_threadsafe(settle, rows)

        def fail(exc: BaseException) -> None:
            loop.call_soon_threadsafe(settle, None, exc)

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
    if not 1 <= port <= 65535:
        raise PluginError("port must be between 1 and 65535")
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
        "hosts": ",".join(_host(h, i) for i, h in enumerate((h.strip() for h in hosts.split(",") if h.strip()), 1)),
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


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})")


def _host(entry: str, number: int) -> str:
    """One ``hosts`` entry: a name or address with an optional ``:port`` (``[v6]:port`` for IPv6), as gocql takes
    them for Vault. Anything else is refused here, before the driver tries to resolve it. The entry is not quoted
    back: a mistyped one may hold a credential (``user:pass@host``)."""
    bad = PluginError(f"hosts entry {number} is not a host name or address with an optional :port")
    if entry.startswith("["):
        host, sep, rest = entry[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")) or not _is_ipv6(host):
            raise bad
        has_port, port = bool(rest), rest[1:]
    elif entry.count(":") > 1:
        if not _is_ipv6(entry):
            raise bad
        return entry
    else:
        host, has_colon, port = entry.partition(":")
        has_port = bool(has_colon)
        if not _HOST_NAME.fullmatch(host):
            raise bad
    if not has_port:
        return host
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise PluginError(f"hosts entry {number} has an invalid port: it must be between 1 and 65535")
    return f"[{host}]:{int(port)}" if entry.startswith("[") else f"{host}:{int(port)}"


def _is_ipv6(address: str) -> bool:
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


def contact_points(hosts: str) -> list[str | tuple[str, int]]:
    """The driver's contact points for a normalised ``hosts`` value: an entry with its own port becomes a tuple."""
    points: list[str | tuple[str, int]] = []
    for entry in hosts.split(","):
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            points.append((host, int(rest[1:])) if rest else host)
        elif entry.count(":") == 1:
            host, port = entry.split(":")
            points.append((host, int(port)))
        else:
            points.append(entry)
    return points


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
    try:
        cluster = Cluster(
            contact_points(cfg["hosts"]),
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
    except Exception as exc:  # e.g. no host name resolves: the driver refuses before connecting
        raise scrubbed_error("connecting to Cassandra failed: ", exc, cfg) from None
    try:
        session = cluster.connect()
    except Exception as exc:
        cluster.shutdown()
        raise scrubbed_error("connecting to Cassandra failed: ", exc, cfg) from None
    return cluster, session
