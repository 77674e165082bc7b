"""High availability: leader election among Strongroom nodes that share one PostgreSQL database.

The leader is whichever node holds a session-level advisory lock (``pg_try_advisory_lock``) on a connection of its
own; PostgreSQL releases the lock the moment that session ends, whatever the reason. A small table records the
leader's advertised address so standbys can answer ``sys/leader`` and point clients at it.

Fail closed. A node is active only while it can *confirm* the lock: it asks the database at least every ``interval``
seconds, and :attr:`PostgresHALock.is_active` turns false by itself once ``lease`` seconds pass after the last
confirming query was sent, even if the event loop is stalled and no callback could run. A node that takes the lock
waits ``lease`` seconds before it becomes active, so a previous leader that lost the lock (connection killed,
network cut) has stopped counting itself active before the new one starts. If the network is cut, the old session
would otherwise live on in the server until TCP gives up; ``idle_session_timeout`` and keepalives on the lock session
end it within seconds, so a standby can take over.

How the core uses it (one lock per node, created when ``storage "postgresql" { ha_enabled = true }``)::

    lock = lock_for_storage(cfg.storage_type, cfg.storage, node_id, advertise_addr=cfg.api_addr)  # None: no HA
    task = asyncio.create_task(lock.acquire_loop(on_active, on_standby))
    core.active   -> its own flag AND lock.is_active   # the pipeline refuses requests unless both hold
    sys/leader    -> lock.leader_address               # "" while unknown
    sys/step-down -> await lock.step_down()
    shutdown      -> await lock.stop(); await task

``on_active`` must reload everything the node may have cached while it was a standby or during an earlier term (the
keyring, the barrier's cache, mount table, stores), because another node wrote in between; ``on_standby`` must refuse
requests first and then stop background work (lease expiry, rotation), keeping only the keyring so that taking the lock
again needs no unseal keys. A standby never runs a store's ``load()`` or any background job.

Without ``ha_enabled`` a node still takes the same lock, as a claim on its storage (:class:`PostgresStorageClaim`,
from :func:`claim_for_storage`): at start, before it can be unsealed, and it refuses to start if another node (HA or
not) holds it, instead of becoming a standby. It keeps the claim for its whole life, sealed or not, and is checked
like the HA lock: a node whose claim lapses (the database restarted) stops serving until it holds the claim again,
and then reloads everything, as a new leader does::

    claim = claim_for_storage(cfg.storage_type, cfg.storage, node_id, advertise_addr)  # None: SQLite, or HA
    await claim.take()                                 # ConfigError: in use by another node
    task = asyncio.create_task(claim.watch(on_held, on_lost))
    core.serving  -> ... and claim.is_held
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

log = logging.getLogger("strongroom.ha")

Callback = Callable[[], Awaitable[None] | None]
_T = TypeVar("_T")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    node_id: str
    address: str


class LockLost(Exception):
    """The database no longer confirms that this node holds the leader lock."""


class _SteppingDown(LockLost):
    """This node gives the lock up on request (``sys/step-down``)."""


def lock_id(lock_key: str | int) -> int:
    """The signed 64-bit advisory lock id for a lock key (the storage table's name is a good key)."""
    if isinstance(lock_key, int):
        if not -(2**63) <= lock_key < 2**63:
            raise ValueError("an integer lock key must fit in a signed 64-bit integer")
        return lock_key
    digest = hashlib.blake2b(lock_key.encode(), digest_size=8, person=b"strongroom-ha").digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_for_storage(
    storage_type: str, storage: dict[str, Any], node_id: str, advertise_addr: str
) -> PostgresHALock | None:
    """The HA lock a server configured with ``storage "postgresql" { ha_enabled = true }`` contends for, else None.

    The lock key is the storage table, so every node sharing one table elects one leader among themselves."""
    if storage_type != "postgresql":
        return None
    enabled = storage.get("ha_enabled", False)
    if isinstance(enabled, str):
        enabled = enabled.strip().lower() in ("true", "1")
    if enabled is not True:
        return None
    return PostgresHALock(
        storage["connection_url"],
        lock_key=storage.get("table", "strongroom_kv"),
        node_id=node_id,
        advertise_addr=advertise_addr,
    )


def claim_for_storage(
    storage_type: str, storage: dict[str, Any], node_id: str, advertise_addr: str
) -> PostgresStorageClaim | None:
    """The claim a PostgreSQL node without ``ha_enabled`` must hold to use its table; None otherwise (SQLite claims
    its file itself, an HA node elects with :func:`lock_for_storage`)."""
    if storage_type != "postgresql" or lock_for_storage(storage_type, storage, node_id, advertise_addr) is not None:
        return None
    return PostgresStorageClaim(
        storage["connection_url"],
        lock_key=storage.get("table", "strongroom_kv"),
        node_id=node_id,
        advertise_addr=advertise_addr,
    )


class PostgresHALock:
    _connects_to = "PostgreSQL for HA"

    def __init__(
        self,
        connection_url: str,
        lock_key: str | int = "strongroom_kv",
        node_id: str = "",
        advertise_addr: str = "",
        *,
        table: str = "strongroom_ha_leader",
        interval: float = 1.0,
        lease: float | None = None,
    ) -> None:
        if not _TABLE_NAME.fullmatch(table):
            raise ValueError(f"invalid PostgreSQL table name {table!r}")
        if not 0 < interval <= 1.0:
            raise ValueError("interval must be at most one second")
        self.node_id = node_id
        self.advertise_addr = advertise_addr
        self.interval = interval
        # longer than a check interval plus the check's own timeout, so a healthy leader is always confirmed
        self.lease = lease if lease is not None else 2.5 * interval
        if self.lease <= 2 * interval:
            raise ValueError("lease must be longer than two check intervals")
        self._url = connection_url
        self._key = lock_id(lock_key)
        self._table_name = str(lock_key)
        ident = sql.Identifier(table)
        self._sql_create = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (lock_key BIGINT PRIMARY KEY, node_id TEXT NOT NULL, "
            "address TEXT NOT NULL, pid INTEGER NOT NULL, since TIMESTAMPTZ NOT NULL DEFAULT now())"
        ).format(ident)
        self._sql_announce = sql.SQL(
            "INSERT INTO {} (lock_key, node_id, address, pid, since) VALUES (%s, %s, %s, pg_backend_pid(), now()) "
            "ON CONFLICT (lock_key) DO UPDATE SET node_id = EXCLUDED.node_id, address = EXCLUDED.address, "
            "pid = EXCLUDED.pid, since = EXCLUDED.since"
        ).format(ident)
        # a recorded leader counts only while its session still holds the lock: a crashed leader's row is stale
        self._sql_leader = sql.SQL(
            "SELECT l.node_id, l.address FROM {} l WHERE l.lock_key = %(key)s AND EXISTS ("
            "SELECT 1 FROM pg_locks p WHERE p.pid = l.pid AND {})"
        ).format(ident, _HOLDS)
        self._conn: psycopg.AsyncConnection | None = None
        self._held_since = 0.0  # monotonic time the lock was taken; 0 while not held
        self._active = False
        self._confirmed_at = 0.0  # monotonic time the last confirming query was *sent*
        self._leader: LeaderInfo | None = None
        self._hold_off_until = 0.0
        self._generation = 0
        self._running = asyncio.Lock()
        self._release = False
        self._wake = asyncio.Event()
        self._abandoned: set[asyncio.Future[Any]] = set()
        self._last_warning = ""

    # --- what the core reads --------------------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        """True only while this node holds the lock and confirmed it within the lease."""
        return self._active and time.monotonic() - self._confirmed_at < self.lease

    @property
    def leader(self) -> LeaderInfo | None:
        if self.is_active:
            return LeaderInfo(self.node_id, self.advertise_addr)
        return self._leader

    @property
    def leader_address(self) -> str:
        info = self.leader
        return info.address if info else ""

    @property
    def key_id(self) -> int:
        """The advisory lock id; nodes with the same id elect one leader among themselves."""
        return self._key

    @property
    def backend_pid(self) -> int | None:
        """The lock session's server process id (operators and tests use it with ``pg_terminate_backend``)."""
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    # --- control ----------------------------------------------------------------------------------------------

    async def step_down(self, hold_off: float = 10.0) -> None:
        """Give up leadership now and do not try again for ``hold_off`` seconds, so that another node takes over."""
        self._hold_off_until = time.monotonic() + hold_off
        self._release = True
        self._active = False
        self._wake.set()

    async def stop(self) -> None:
        """End :meth:`acquire_loop` (a running one and any waiting to start), releasing the lock; the loop reports
        standby on its way out. A later :meth:`acquire_loop` contends again (a node sealed and unsealed)."""
        self._generation += 1
        self._active = False
        self._wake.set()

    async def release(self) -> None:
        """The name :class:`~strongroom.core.core.Core` uses when sealing: give the lock up, stop contending."""
        await self.stop()

    async def run(self, on_active: Callback, on_standby: Callback) -> None:
        """The name :class:`~strongroom.core.core.Core` uses for :meth:`acquire_loop`."""
        await self.acquire_loop(on_active, on_standby)

    async def acquire_loop(self, on_active: Callback, on_standby: Callback) -> None:
        """Contend for the lock until :meth:`stop`; ``on_active`` when this node becomes the leader, ``on_standby``
        when it stops being one (lock lost, connection dropped, step-down, stop). Never returns with the node active.

        One loop runs at a time: a new one (after a seal and unseal) waits until the previous one has let go."""
        generation = self._generation
        async with self._running:
            if generation != self._generation:
                return  # stopped before it could start
            self._release = False
            was_active = False
            try:
                while generation == self._generation:
                    started = time.monotonic()
                    try:
                        if self._release:
                            self._release = False
                            raise _SteppingDown()
                        await self._tick()
                        self._last_warning = ""
                        if self._held_since and not was_active and time.monotonic() - self._held_since >= self.lease:
                            await self._confirm()
                            self._active = was_active = True
                            log.info("this node (%s) is now the active node", self.node_id)
                            await _call(on_active)
                            await self._confirm()
                    except (psycopg.Error, OSError, TimeoutError, LockLost) as exc:
                        if not isinstance(exc, _SteppingDown):
                            self._warn(exc)
                        was_active = await self._lose(was_active, on_standby)
                    except Exception:
                        log.exception("HA lock: becoming active failed; releasing the lock")
                        was_active = await self._lose(was_active, on_standby)
                    await self._sleep(self.interval - (time.monotonic() - started))
            finally:
                await self._lose(was_active, on_standby)

    # --- internals ----------------------------------------------------------------------------------------------

    async def _tick(self) -> None:
        conn = await self._connection()
        if self._held_since:
            await self._confirm()
            return
        if time.monotonic() < self._hold_off_until:
            await self._refresh_leader(conn)
            return
        sent = time.monotonic()
        cur = await self._query(conn, "SELECT pg_try_advisory_lock(%s)", (self._key,))
        row = await cur.fetchone()
        if row is not None and row[0]:
            # waiting counts from after the answer, the lease from before the question: both err on the safe side
            self._held_since, self._confirmed_at = time.monotonic(), sent
            await self._query(conn, self._sql_announce, (self._key, self.node_id, self.advertise_addr))
            log.info("HA lock taken; becoming active in %.1fs", self.lease)
        else:
            await self._refresh_leader(conn)

    async def _confirm(self) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            raise LockLost("the lock connection is closed")
        sent = time.monotonic()
        cur = await self._query(conn, _SQL_CONFIRM, {"key": self._key})
        row = await cur.fetchone()
        if row is None or row[0] != 1:
            raise LockLost("the database says this node does not hold the lock")
        self._confirmed_at = sent

    async def _refresh_leader(self, conn: psycopg.AsyncConnection) -> None:
        cur = await self._query(conn, self._sql_leader, {"key": self._key})
        row = await cur.fetchone()
        self._leader = None if row is None else LeaderInfo(row[0], row[1])

    async def _query(
        self, conn: psycopg.AsyncConnection, query: sql.Composable | str, params: tuple | dict
    ) -> psycopg.AsyncCursor:
        # a query that hangs (network cut) must not keep a node active: it counts as losing the lock
        return await self._bounded(conn.execute(query, params), self.interval)  # type: ignore[arg-type]

    async def _bounded(self, aw: Awaitable[_T], seconds: float) -> _T:
        # Not asyncio.wait_for: that waits for the cancelled query to wind down, and psycopg's cancellation of a
        # query on a dead network can itself take half a minute. Losing the lock must be noticed on time.
        task = asyncio.ensure_future(aw)
        try:
            done, _ = await asyncio.wait({task}, timeout=seconds)
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            raise TimeoutError(f"the database did not answer within {seconds:g}s")
        return task.result()

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(_reap)
        task.add_done_callback(self._abandoned.discard)

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        self._conn = await self._bounded(self._open(), _CONNECT_TIMEOUT + 1)
        return self._conn

    async def _open(self) -> psycopg.AsyncConnection:
        params = conninfo_to_dict(self._url)
        extra: dict[str, Any] = {}
        for name, value in (("connect_timeout", _CONNECT_TIMEOUT), ("keepalives", 1), ("keepalives_idle", 5),
                            ("keepalives_interval", 2), ("keepalives_count", 3),
                            ("application_name", f"strongroom ha {self.node_id}"[:63])):  # fmt: skip
            if name not in params:
                extra[name] = value
        try:
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, **extra)
        except psycopg.OperationalError as exc:
            raise ConnectionError(f"cannot connect to {self._connects_to}: {_describe(exc)}") from None
        try:
            # the server ends this session (and so frees the lock) soon after the node stops talking to it
            idle_ms = int(max(5.0, 5 * self.interval) * 1000)
            await conn.execute(f"SET idle_session_timeout = {idle_ms}")
            await conn.execute("SET tcp_user_timeout = 10000")
            await conn.execute("SET tcp_keepalives_idle = 5")
            await conn.execute("SET tcp_keepalives_interval = 2")
            await conn.execute("SET tcp_keepalives_count = 3")
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s::int4, 0)", (_SCHEMA_LOCK,))
                await conn.execute(self._sql_create)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _lose(self, was_active: bool, on_standby: Callback) -> bool:
        self._active = False
        self._held_since = 0.0
        conn, self._conn = self._conn, None
        if conn is not None:
            # closing the session is what frees the lock for another node
            try:
                await self._bounded(conn.close(), self.interval)
            except Exception as exc:  # a dead connection may not close cleanly; it is gone either way
                log.debug("HA lock: closing the lock connection: %s", _describe(exc))
        if was_active:
            log.warning("this node (%s) is no longer the active node", self.node_id)
            try:
                await _call(on_standby)
            except Exception:
                log.exception("HA lock: on_standby failed")
        return False

    def _warn(self, exc: BaseException) -> None:
        # a database that stays down would otherwise log the same line every second
        text = _describe(exc)
        if text != self._last_warning:
            log.warning("HA lock: %s", text)
        self._last_warning = text

    async def _sleep(self, seconds: float) -> None:
        # ticks keep a fixed cadence, so the lock is checked every ``interval`` however long a check took
        if seconds > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=seconds)
            except TimeoutError:
                pass
        self._wake.clear()


class PostgresStorageClaim(PostgresHALock):
    """The HA lock taken once at start by a node without HA: it must get it at once, or the node does not start."""

    _connects_to = "PostgreSQL storage"

    async def take(self) -> None:
        """Take the lock now or raise :class:`ConfigError` naming who holds it; return once it may be used.

        Like a new leader, wait out the lease after taking it, so a node that held it until just now (its session
        killed) has stopped counting itself active."""
        from strongroom.config import ConfigError

        try:
            conn = await self._connection()
            sent = time.monotonic()
            cur = await self._query(conn, "SELECT pg_try_advisory_lock(%s)", (self._key,))
            row = await cur.fetchone()
            if row is None or not row[0]:
                await self._refresh_leader(conn)
                holder = f" ({self._leader.node_id} at {self._leader.address})" if self._leader else ""
                await self._lose(False, _nothing)
                raise ConfigError(
                    f"PostgreSQL storage table {self._table_name} is in use by another Strongroom node{holder}: "
                    "without ha_enabled only one node may use it"
                )
            self._held_since, self._confirmed_at = time.monotonic(), sent
            await self._query(conn, self._sql_announce, (self._key, self.node_id, self.advertise_addr))
            await asyncio.sleep(self.lease)
            await self._confirm()
        except ConnectionError as exc:
            raise ConfigError(str(exc)) from None
        except (psycopg.Error, OSError, TimeoutError, LockLost) as exc:
            await self._lose(False, _nothing)
            raise ConfigError(f"cannot claim the PostgreSQL storage: {_describe(exc)}") from None
        self._active = True

    @property
    def is_held(self) -> bool:
        return self.is_active

    async def watch(self, on_held: Callback, on_lost: Callback) -> None:
        """Keep confirming the claim until :meth:`stop`; ``on_lost`` when it lapses, ``on_held`` when it is held
        again (and once at the start, when the node holds it already)."""
        await self.acquire_loop(on_held, on_lost)


# the lock session holds our key: 64-bit advisory keys appear in pg_locks split into classid/objid, objsubid = 1
_HOLDS = sql.SQL(
    "p.locktype = 'advisory' AND p.granted AND p.objsubid = 1 "
    "AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND p.classid = ((%(key)s::bigint >> 32) & 4294967295)::oid "
    "AND p.objid = (%(key)s::bigint & 4294967295)::oid"
)
_SQL_CONFIRM = sql.SQL("SELECT count(*) FROM pg_locks p WHERE p.pid = pg_backend_pid() AND {}").format(_HOLDS)
_CONNECT_TIMEOUT = 5
_SCHEMA_LOCK = int.from_bytes(hashlib.blake2b(b"ha-schema", digest_size=4).digest(), "big", signed=True)


def _reap(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not warn about an abandoned query's error


def _nothing() -> None:
    return None


async def _call(callback: Callback) -> None:
    result = callback()
    if inspect.isawaitable(result):
        await result


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
