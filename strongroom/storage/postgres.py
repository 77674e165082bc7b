"""PostgreSQL backend: storage shared by several Strongroom nodes (one active, the others standby; see ``core/ha.py``).

One table ``(key TEXT PRIMARY KEY COLLATE "C", value BYTEA)``. ``COLLATE "C"`` makes the index order the byte order of
UTF-8, which is Python's string order, so listing seeks child to child exactly as the SQLite backend does.

Concurrency: a small pool of connections; PostgreSQL itself groups concurrent commits into shared WAL flushes, so there
is no group-commit queue here. Every write transaction first takes transaction-scoped advisory locks on the keys it
touches (sorted, so writers never deadlock). That is what makes a ``check`` that a key is *absent* hold until commit:
``SELECT ... FOR UPDATE`` can only lock rows that exist.

Change log: every write also appends ``(seq, key)`` to ``<table>_changes`` in the same transaction and sends a
``NOTIFY`` (delivered at commit) on a channel named after the table. Sequence numbers are handed out under one more
transaction-scoped advisory lock taken just before the insert, so they become visible in commit order and a reader
that has read up to ``seq`` never later finds a smaller one. A dedicated ``LISTEN`` connection makes the "anything
changed?" check before each request free; without it (lost connection) every check reads the log.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import os
import re
import secrets
import time
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
ALL_KEYS = ""  # the change log key meaning "everything may have changed" (a restore)
_LOG_LOCK = 0x7FFFFFFF  # second half of the advisory lock that orders change log sequence numbers
_PAGE = 5000
_READER_LEASE = 60.0
_REPORT_EVERY = 2.0


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
        changes = table + "_changes"
        readers = table + "_readers"
        if len(changes.split(".")[-1]) > 63 or len(readers.split(".")[-1]) > 63:
            raise ConfigError(f"invalid PostgreSQL table name {table!r}: too long for its change log table")
        self._log_ident = sql.Identifier(*changes.split("."))
        self._readers_ident = sql.Identifier(*readers.split("."))
        self._channel = "strongroom_" + hashlib.blake2b(table.encode(), digest_size=8).hexdigest()
        self._sql_create_log = (
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (seq BIGINT PRIMARY KEY, key TEXT NOT NULL)").format(
                self._log_ident
            ),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (reader TEXT PRIMARY KEY, seq BIGINT NOT NULL, seen DOUBLE PRECISION)"
            ).format(self._readers_ident),
        )
        self._sql_log = sql.SQL(
            "INSERT INTO {} (seq, key) SELECT b.base + k.n, k.key FROM "
            "(SELECT GREATEST(COALESCE(MAX(seq), 0), COALESCE((SELECT seq FROM {} WHERE reader = '~trimmed'), 0)) "
            "AS base FROM {}) b, unnest(%s::text[]) WITH ORDINALITY AS k(key, n)"
        ).format(self._log_ident, self._readers_ident, self._log_ident)
        self._sql_changes = sql.SQL("SELECT seq, key FROM {} WHERE seq > %s ORDER BY seq LIMIT %s").format(
            self._log_ident
        )
        self._sql_trimmed = sql.SQL("SELECT seq FROM {} WHERE reader = '~trimmed'").format(self._readers_ident)
        self._sql_head = sql.SQL("SELECT COALESCE(MAX(seq), 0) FROM {}").format(self._log_ident)
        self._sql_report = sql.SQL(
            "INSERT INTO {} (reader, seq, seen) VALUES (%s, %s, extract(epoch from now())) "
            "ON CONFLICT (reader) DO UPDATE SET seq = EXCLUDED.seq, seen = EXCLUDED.seen"
        ).format(self._readers_ident)
        self._sql_trim = (
            sql.SQL("DELETE FROM {} WHERE reader <> '~trimmed' AND seen < extract(epoch from now()) - %s").format(
                self._readers_ident
            ),
            sql.SQL("SELECT MIN(seq) FROM {} WHERE reader <> '~trimmed'").format(self._readers_ident),
            sql.SQL("DELETE FROM {} WHERE seq <= %s").format(self._log_ident),
        )
        self._reader_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._read_seq = 0
        self._reported = (-1, 0.0)
        self._listen_task: asyncio.Task[None] | None = None
        self._listening = False
        self._notified = True
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
                for stmt in self._sql_create_log:
                    await conn.execute(stmt)
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
            changed = [op.key for op in ops if op.kind != "check"]
            if changed:
                await self._append_log(conn, changed)
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
                await self._append_log(conn, [ALL_KEYS])
        finally:
            for _ in range(held):
                self._slots.release()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(BaseException):
                await self._listen_task
        await self._discard_idle()

    # --- the change log ---------------------------------------------------------------------------------------

    async def _append_log(self, conn: psycopg.AsyncConnection, keys: builtins.list[str]) -> None:
        # the log lock orders sequence numbers by commit: held from here to this transaction's commit
        await conn.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)", (self._lock_ns, _LOG_LOCK))
        await conn.execute(self._sql_log, (keys,))
        await conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
        await self._report_position(conn)

    async def _report_position(self, conn: psycopg.AsyncConnection) -> None:
        now = time.monotonic()
        seq = self._read_seq
        last_seq, last_time = self._reported
        if seq == last_seq or now - last_time < _REPORT_EVERY:
            return
        self._reported = (seq, now)
        await conn.execute(self._sql_report, (self._reader_id, seq))
        expire, floor_q, trim = self._sql_trim
        await conn.execute(expire, (_READER_LEASE,))
        row = await (await conn.execute(floor_q)).fetchone()
        floor = int(row[0]) if row and row[0] is not None else 0
        row = await (await conn.execute(self._sql_trimmed)).fetchone()
        if floor > (int(row[0]) if row else 0):
            await conn.execute(trim, (floor,))
            await conn.execute(self._sql_report, ("~trimmed", floor))

    async def changed(self) -> bool:
        """Whether a ``NOTIFY`` arrived since the last call (always ``True`` while no ``LISTEN`` connection is up)."""
        if self._listen_task is None or self._listen_task.done():
            self._listening = False
            self._listen_task = asyncio.create_task(self._listen())
        if not self._listening:
            return True
        was, self._notified = self._notified, False
        return was

    async def _listen(self) -> None:
        try:
            conn = await self._connect()
        except Exception:  # noqa: BLE001 - polling the log stands in until the next attempt
            await asyncio.sleep(1)
            return
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._notified = True  # anything before LISTEN took effect is unknown: read the log once
            self._listening = True
            async for _ in conn.notifies():
                self._notified = True
        except psycopg.Error:
            pass
        finally:
            self._listening = False
            self._notified = True
            await conn.close()

    async def change_head(self) -> int:
        async def run(conn: psycopg.AsyncConnection) -> int:
            row = await (await conn.execute(self._sql_head)).fetchone()
            trimmed = await (await conn.execute(self._sql_trimmed)).fetchone()
            return max(int(row[0]) if row else 0, int(trimmed[0]) if trimmed else 0)

        return await self._read(run)

    async def changes_since(self, seq: int) -> tuple[int, builtins.list[str] | None]:
        """See :meth:`strongroom.storage.sqlite.SQLiteStorage.changes_since`."""

        async def run(conn: psycopg.AsyncConnection) -> tuple[int, builtins.list[str], int]:
            keys: builtins.list[str] = []
            position = seq
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                while True:
                    rows = await (await conn.execute(self._sql_changes, (position, _PAGE))).fetchall()
                    for row_seq, key in rows:
                        keys.append(str(key))
                        position = int(row_seq)
                    if len(rows) < _PAGE:
                        break
                row = await (await conn.execute(self._sql_trimmed)).fetchone()
            return position, keys, int(row[0]) if row else 0

        position, keys, trimmed = await self._read(run)
        self._read_seq = max(position, trimmed)
        if seq < trimmed or ALL_KEYS in keys:
            return self._read_seq, None
        return position, keys

    async def report_position(self) -> None:
        async def run(conn: psycopg.AsyncConnection) -> None:
            async with conn.transaction():
                await self._report_position(conn)

        await self._read(run)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
