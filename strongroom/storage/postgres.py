"""PostgreSQL backend: storage shared by several Strongroom nodes (one active, the others standby; see ``core/ha.py``).

One table ``(key TEXT PRIMARY KEY COLLATE "C", value BYTEA)``. ``COLLATE "C"`` makes the index order the byte order of
UTF-8, which is Python's string order, so listing seeks child to child exactly as the SQLite backend does.

Concurrency: a small pool of connections; PostgreSQL itself groups concurrent commits into shared WAL flushes, so there
is no group-commit queue here. Every write transaction first takes transaction-scoped advisory locks on the keys it
touches (sorted, so writers never deadlock). That is what makes a ``check`` that a key is *absent* hold until commit:
``SELECT ... FOR UPDATE`` can only lock rows that exist.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from strongroom.config import ConfigError
from strongroom.storage.base import CheckAndSetError, TxnOp, seek_children

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")
_T = TypeVar("_T")


def _lock_id(namespace: bytes, key: str) -> int:
    """A signed 32-bit lock id; a collision only makes two writers wait for each other, never breaks correctness."""
    digest = hashlib.blake2b(key.encode(), digest_size=4, person=namespace[:16]).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresStorage:
    def __init__(self, connection_url: str, table: str = "strongroom_kv", *, pool_size: int = 8) -> None:
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise ConfigError(f"invalid PostgreSQL table name {table!r}: letters, digits, _ (optionally schema.table)")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._url = connection_url
        self._table = table
        ident = sql.Identifier(*table.split("."))
        self._lock_ns = _lock_id(b"strongroom-ns", table)
        self._person = table.encode()[:16]
        self._sql_create = sql.SQL(
            'CREATE TABLE IF NOT EXISTS {} (key TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL)'
        ).format(ident)
        self._sql_get = sql.SQL("SELECT value FROM {} WHERE key = %s").format(ident)
        self._sql_get_locked = sql.SQL("SELECT value FROM {} WHERE key = %s FOR UPDATE").format(ident)
        self._sql_seek = {
            True: sql.SQL("SELECT key FROM {} WHERE key >= %s AND key < %s ORDER BY key LIMIT 1").format(ident),
            False: sql.SQL("SELECT key FROM {} WHERE key > %s AND key < %s ORDER BY key LIMIT 1").format(ident),
        }
        self._sql_put = sql.SQL(
            "INSERT INTO {} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ).format(ident)
        self._sql_delete = sql.SQL("DELETE FROM {} WHERE key = %s").format(ident)
        self._sql_scan = {
            True: sql.SQL("SELECT key, value FROM {} WHERE key >= %s ORDER BY key LIMIT %s").format(ident),
            False: sql.SQL("SELECT key, value FROM {} WHERE key > %s ORDER BY key LIMIT %s").format(ident),
        }
        self._sql_all = sql.SQL("SELECT key, value FROM {} ORDER BY key").format(ident)
        self._sql_replace = (
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(ident),
            sql.SQL("DELETE FROM {}").format(ident),
            sql.SQL("COPY {} (key, value) FROM STDIN").format(ident),
        )
        self._idle: builtins.list[psycopg.AsyncConnection] = []
        self._slots = asyncio.Semaphore(pool_size)
        self._pool_size = pool_size
        self._schema_lock = asyncio.Lock()
        self._schema_ready = False
        self._closed = False

    # --- connections ------------------------------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection:
        given = conninfo_to_dict(self._url)
        defaults = {"connect_timeout": 10, "application_name": f"strongroom storage {self._table}"[:63]}
        extra: dict[str, Any] = {k: v for k, v in defaults.items() if k not in given}
        try:
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, **extra)
        except psycopg.OperationalError as exc:
            # libpq's message names host, port and user, never the password
            raise ConnectionError(f"cannot connect to PostgreSQL storage: {_first_line(exc)}") from None
        try:
            # an acknowledged write must survive a database crash, whatever the server's default says
            cur = await conn.execute("SHOW synchronous_commit")
            row = await cur.fetchone()
            if row is not None and row[0] == "off":
                await conn.execute("SET synchronous_commit TO on")
            # the advisory key locks make READ COMMITTED exact; a server default of SERIALIZABLE would only add retries
            await conn.set_isolation_level(psycopg.IsolationLevel.READ_COMMITTED)
            await self._ensure_schema(conn)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _ensure_schema(self, conn: psycopg.AsyncConnection) -> None:
        if self._schema_ready:
            return
        async with self._schema_lock:
            if self._schema_ready:
                return
            cur = await conn.execute("SHOW server_encoding")
            row = await cur.fetchone()
            if row is None or row[0] != "UTF8":
                # "C" order equals Python's string order only for UTF-8 bytes
                raise ConfigError(f"the PostgreSQL database must use UTF8 encoding, not {row[0] if row else '?'}")
            async with conn.transaction():
                # several nodes starting at once must not race on CREATE TABLE
                await conn.execute("SELECT pg_advisory_xact_lock(%s::int4, 0)", (self._lock_ns,))
                await conn.execute(self._sql_create)
            cur = await conn.execute(
                "SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
                "WHERE a.attrelid = to_regclass(%s) AND a.attname = 'key'",
                (sql.Identifier(*self._table.split(".")).as_string(conn),),
            )
            row = await cur.fetchone()
            if row is None or row[0] != "C":
                raise ConfigError(
                    f'table {self._table} exists but its key column is not COLLATE "C"; listing order would be wrong'
                )
            self._schema_ready = True

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection]:
        if self._closed:
            raise RuntimeError("storage is closed")
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            finally:
                reusable = (
                    not self._closed and not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
                )
                if reusable:
                    self._idle.append(conn)
                else:
                    await conn.close()

    async def _read(self, fn: Callable[[psycopg.AsyncConnection], Awaitable[_T]]) -> _T:
        # a pooled connection may have died since its last use (database restart); a read is safe to repeat once
        try:
            async with self._conn() as conn:
                return await fn(conn)
        except psycopg.OperationalError:
            await self._discard_idle()
            async with self._conn() as conn:
                return await fn(conn)

    async def _discard_idle(self) -> None:
        # what killed one pooled connection (a restart, a failover) has most likely killed the others
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    # --- reads ------------------------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        async def run(conn: psycopg.AsyncConnection) -> bytes | None:
            cur = await conn.execute(self._sql_get, (key,))
            row = await cur.fetchone()
            return None if row is None else bytes(row[0])

        return await self._read(run)

    async def list(self, prefix: str, after: str = "", limit: int = 0) -> builtins.list[str]:
        async def run(conn: psycopg.AsyncConnection) -> builtins.list[str]:
            async def first_key(lower: str, inclusive: bool, upper: str) -> str | None:
                cur = await conn.execute(self._sql_seek[inclusive], (lower, upper))
                row = await cur.fetchone()
                return None if row is None else str(row[0])

            return await seek_children(prefix, after, limit, first_key)

        return await self._read(run)

    # --- writes -----------------------------------------------------------------------------------------------

    async def put(self, key: str, value: bytes) -> None:
        await self.transaction([TxnOp("put", key, value)])

    async def delete(self, key: str) -> None:
        await self.transaction([TxnOp("delete", key)])

    async def transaction(self, ops: builtins.list[TxnOp]) -> None:
        if not ops:
            return
        lock_ids = sorted({_lock_id(self._person, op.key) for op in ops})
        committing = [False]
        try:
            await self._transaction_once(ops, lock_ids, committing)
        except psycopg.OperationalError:
            # Until COMMIT is sent the server rolls back whatever a dead connection began, so repeating is safe (this
            # is how a pooled connection that died with a database restart is replaced). A failure during COMMIT is
            # ambiguous and is reported, never repeated.
            if committing[0]:
                raise
            await self._discard_idle()
            await self._transaction_once(ops, lock_ids, committing)

    async def _transaction_once(
        self, ops: builtins.list[TxnOp], lock_ids: builtins.list[int], committing: builtins.list[bool]
    ) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s::int4, k) FROM unnest(%s::int4[]) AS k", (self._lock_ns, lock_ids)
            )
            for op in ops:
                if op.kind == "check":
                    cur = await conn.execute(self._sql_get_locked, (op.key,))
                    row = await cur.fetchone()
                    current = None if row is None else bytes(row[0])
                    if current != op.value:
                        raise CheckAndSetError(op.key)  # leaving the block rolls everything back
                elif op.kind == "put":
                    if op.value is None:
                        raise ValueError("put needs a value")
                    await conn.execute(self._sql_put, (op.key, op.value))
                elif op.kind == "delete":
                    await conn.execute(self._sql_delete, (op.key,))
                else:
                    raise ValueError(f"unknown transaction operation {op.kind!r}")
            committing[0] = True
        # leaving conn.transaction() committed; reaching here means the commit was acknowledged

    # --- the whole store: snapshots, restore, migration (see strongroom/ops/) ----------------------------------

    async def scan(
        self, lower: str = "", limit: int = 1000, *, include_lower: bool = True
    ) -> builtins.list[tuple[str, bytes]]:
        """Up to ``limit`` entries from ``lower`` on (inclusive or not), in key order."""

        async def run(conn: psycopg.AsyncConnection) -> builtins.list[tuple[str, bytes]]:
            cur = await conn.execute(self._sql_scan[include_lower], (lower, limit))
            return [(str(k), bytes(v)) for k, v in await cur.fetchall()]

        return await self._read(run)

    async def export(self, sink: Callable[[builtins.list[tuple[str, bytes]]], None], page: int = 5000) -> None:
        """Every entry in key order from one REPEATABLE READ snapshot: writers go on, this read sees none of them."""
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            async with conn.cursor(name="strongroom_export") as cur:
                await cur.execute(self._sql_all)
                while rows := await cur.fetchmany(page):
                    sink([(str(k), bytes(v)) for k, v in rows])

    async def replace_all(self, entries: Iterable[tuple[str, bytes]]) -> None:
        """Replace the whole table in one transaction, after every write of this process already waiting for a
        connection (taking every slot of the pool waits for them, first come first served) or running on another
        node's session (the table lock waits for those)."""
        lock, delete, copy_in = self._sql_replace
        held = 0
        try:
            for _ in range(self._pool_size - 1):  # the last slot is the one the connection below takes
                await self._slots.acquire()
                held += 1
            async with self._conn() as conn, conn.transaction():
                await conn.execute(lock)
                await conn.execute(delete)
                async with conn.cursor().copy(copy_in) as copy:
                    copy.set_types(["text", "bytea"])
                    for key, value in entries:
                        await copy.write_row((key, value))
        finally:
            for _ in range(held):
                self._slots.release()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._discard_idle()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
