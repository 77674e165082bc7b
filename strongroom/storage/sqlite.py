"""Durable SQLite backend.

Writes are group-committed: concurrent writers queue their operations, one thread applies a batch in a single
transaction with ``synchronous=FULL`` and resolves every waiter only after the commit is on disk, so an acknowledged
write survives ``kill -9`` while many writers share one fsync. Reads run on their own connection (WAL readers never
block the writer).
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass, field

from strongroom.storage.base import CheckAndSetError, TxnOp, seek_children

_SCHEMA = "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"


@dataclass
class _Pending:
    ops: list[TxnOp]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None] = field(repr=False)


class SQLiteStorage:
    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, mode=0o700, exist_ok=True)
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute(_SCHEMA)
        self._writer.commit()
        try:
            os.chmod(path, 0o600)
        except OSError:
            pass
        self._reader = self._connect()
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._thread.start()
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    # --- reads ------------------------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        row = self._reader.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    async def list(self, prefix: str, after: str = "", limit: int = 0) -> list[str]:
        async def first_key(lower: str, inclusive: bool, upper: str) -> str | None:
            op = ">=" if inclusive else ">"
            row = self._reader.execute(
                f"SELECT key FROM entries WHERE key {op} ? AND key < ? ORDER BY key LIMIT 1",  # noqa: S608
                (lower, upper),
            ).fetchone()
            return None if row is None else str(row[0])

        return await seek_children(prefix, after, limit, first_key)

    # --- writes -----------------------------------------------------------------------------------------------

    async def put(self, key: str, value: bytes) -> None:
        await self.transaction([TxnOp("put", key, value)])

    async def delete(self, key: str) -> None:
        await self.transaction([TxnOp("delete", key)])

    async def transaction(self, ops: list[TxnOp]) -> None:
        if self._closed:
            raise RuntimeError("storage is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending(ops, loop, fut))
        await fut

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < 256:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._apply_batch(batch)

    def _apply_batch(self, batch: list[_Pending]) -> None:
        results: list[BaseException | None] = []
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in batch:
                conn.execute("SAVEPOINT txn")
                try:
                    self._apply_ops(conn, item.ops)
                    conn.execute("RELEASE txn")
                    results.append(None)
                except CheckAndSetError as exc:
                    conn.execute("ROLLBACK TO txn")
                    conn.execute("RELEASE txn")
                    results.append(exc)
            conn.execute("COMMIT")
        except Exception as exc:  # the whole batch failed to commit: every waiter must hear about it
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            results = [exc] * len(batch)
        for item, result in zip(batch, results, strict=True):
            item.loop.call_soon_threadsafe(_resolve, item.future, result)

    @staticmethod
    def _apply_ops(conn: sqlite3.Connection, ops: list[TxnOp]) -> None:
        for op in ops:
            if op.kind == "check":
                row = conn.execute("SELECT value FROM entries WHERE key = ?", (op.key,)).fetchone()
                current = None if row is None else bytes(row[0])
                if current != op.value:
                    raise CheckAndSetError(op.key)
            elif op.kind == "put":
                assert op.value is not None
                conn.execute(
                    "INSERT INTO entries(key, value) VALUES(?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (op.key, op.value),
                )
            elif op.kind == "delete":
                conn.execute("DELETE FROM entries WHERE key = ?", (op.key,))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._writer.close()
        self._reader.close()


def _resolve(fut: asyncio.Future[None], result: BaseException | None) -> None:
    if fut.done():
        return
    if result is None:
        fut.set_result(None)
    else:
        fut.set_exception(result)
