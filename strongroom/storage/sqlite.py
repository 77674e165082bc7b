"""Durable SQLite backend.

Writes are group-committed: concurrent writers queue their operations, one thread applies a batch in a single
transaction with ``synchronous=FULL`` and resolves every waiter only after the commit is on disk, so an acknowledged
write survives ``kill -9`` while many writers share one fsync. Reads run on their own connection (WAL readers never
block the writer).

One storage, one writer: the constructor takes an exclusive ``flock`` on ``<db>.lock`` beside the database and keeps
it until :meth:`SQLiteStorage.close` (the kernel drops it when the process dies, even by ``kill -9``). A second server,
dev server or tool opening the same file fails at once with :class:`~strongroom.config.ConfigError`, before it can
read or write anything.

Change log: every write appends ``(seq, key)`` to ``changelog`` in the same transaction, so processes sharing the
file (a node's workers) learn exactly which keys changed (:meth:`SQLiteStorage.changes_since`), checked cheaply before
each request with ``PRAGMA data_version``. Each process records how far it has read (``changelog_readers``); entries
every live reader has passed are trimmed, and a reader that finds the log trimmed past its position drops everything.
"""

from __future__ import annotations

import asyncio
import builtins  # the class's own ``list`` method shadows the builtin in its annotations
import contextlib
import fcntl
import os
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from strongroom.config import ConfigError
from strongroom.storage.base import CheckAndSetError, TxnOp, seek_children

_SCHEMA = "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
_CHANGELOG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS changelog (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL)",
    # one row per reading process, plus ``~trimmed``: the highest sequence trimmed so far
    "CREATE TABLE IF NOT EXISTS changelog_readers (reader TEXT PRIMARY KEY, seq INTEGER NOT NULL, seen REAL NOT NULL)",
)
# the key a change log entry carries when everything may have changed (a restore)
ALL_KEYS = ""
_TRIMMED = "~trimmed"
# a reader that has not reported its position for this long no longer holds entries back (it will drop everything)
_READER_LEASE = 60.0
# how often a reader reports its position (and the log is trimmed) at most
_REPORT_EVERY = 2.0
_PAGE = 5000


@dataclass
class _Pending:
    ops: list[TxnOp]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None] = field(repr=False)
    # instead of ``ops``: run on the writer connection inside the batch (a restore replacing everything)
    run: Callable[[sqlite3.Connection], None] | None = None


class SQLiteStorage:
    def __init__(self, path: str, *, claim: bool = True) -> None:
        """``claim=False``: a worker of a node whose supervisor holds the claim (and keeps it while any worker runs)."""
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, mode=0o700, exist_ok=True)
        self._claim_fd = _claim(path) if claim else -1
        try:
            self._open_connections()
        except BaseException:
            if self._claim_fd >= 0:
                os.close(self._claim_fd)
            raise
        self._reader_id = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._data_version = -1
        self._read_seq = 0  # how far this process has read the change log
        self._reported: tuple[int, float] = (-1, 0.0)
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._thread.start()
        self._closed = False

    def _open_connections(self) -> None:
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute(_SCHEMA)
        for stmt in _CHANGELOG_SCHEMA:
            self._writer.execute(stmt)
        self._writer.commit()
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass
        self._reader = self._connect()

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

    async def transaction(self, ops: builtins.list[TxnOp]) -> None:
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

    def _apply_batch(self, batch: builtins.list[_Pending]) -> None:
        results: list[BaseException | None] = []
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in batch:
                conn.execute("SAVEPOINT txn")
                try:
                    if item.run is not None:
                        item.run(conn)
                    else:
                        self._apply_ops(conn, item.ops)
                    conn.execute("RELEASE txn")
                    results.append(None)
                except CheckAndSetError as exc:
                    conn.execute("ROLLBACK TO txn")
                    conn.execute("RELEASE txn")
                    results.append(exc)
            self._report_position(conn)
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
    def _apply_ops(conn: sqlite3.Connection, ops: builtins.list[TxnOp]) -> None:
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
                conn.execute("INSERT INTO changelog(key) VALUES(?)", (op.key,))
            elif op.kind == "delete":
                conn.execute("DELETE FROM entries WHERE key = ?", (op.key,))
                conn.execute("INSERT INTO changelog(key) VALUES(?)", (op.key,))

    # --- the whole store: snapshots, restore, migration (see strongroom/ops/) ----------------------------------

    async def scan(
        self, lower: str = "", limit: int = 1000, *, include_lower: bool = True
    ) -> builtins.list[tuple[str, bytes]]:
        """Up to ``limit`` entries from ``lower`` on (inclusive or not), in key order."""
        op = ">=" if include_lower else ">"
        rows = self._reader.execute(
            f"SELECT key, value FROM entries WHERE key {op} ? ORDER BY key LIMIT ?", (lower, limit)  # noqa: S608
        ).fetchall()
        return [(str(k), bytes(v)) for k, v in rows]

    async def export(self, sink: Callable[[builtins.list[tuple[str, bytes]]], None], page: int = 5000) -> None:
        """Every entry in key order, from one consistent version, without pausing writers: SQLite's online backup
        API copies the database into a private temporary file (one step, a WAL read transaction), read from there."""
        await asyncio.to_thread(self._export, sink, page)

    def _export(self, sink: Callable[[builtins.list[tuple[str, bytes]]], None], page: int) -> None:
        folder = tempfile.mkdtemp(prefix="strongroom-export-")  # 0700; holds barrier ciphertext only
        try:
            src = sqlite3.connect(self.path)
            dst = sqlite3.connect(os.path.join(folder, "copy.db"))
            try:
                src.backup(dst)
                cur = dst.execute("SELECT key, value FROM entries ORDER BY key")
                while rows := cur.fetchmany(page):
                    sink([(str(k), bytes(v)) for k, v in rows])
            finally:
                dst.close()
                src.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def replace_all(self, entries: Iterable[tuple[str, bytes]]) -> None:
        """Replace the whole store atomically: one transaction of the writer, after every write queued before it."""
        if self._closed:
            raise RuntimeError("storage is closed")
        rows = builtins.list(entries)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM entries")
            conn.executemany("INSERT INTO entries(key, value) VALUES(?, ?)", rows)
            conn.execute("INSERT INTO changelog(key) VALUES(?)", (ALL_KEYS,))

        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending([], loop, fut, run=run))
        await fut

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._writer.close()
        self._reader.close()
        if self._claim_fd >= 0:
            os.close(self._claim_fd)  # releases the claim: another process may open the database now

    # --- the change log ---------------------------------------------------------------------------------------

    async def changed(self) -> bool:
        """Whether anyone (another process, or this one's writer) committed since the last call: one pragma."""
        version = self._reader.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return False
        self._data_version = version
        return True

    async def change_head(self) -> int:
        row = self._reader.execute("SELECT MAX(seq) FROM changelog").fetchone()
        head = int(row[0] or 0)
        trimmed = self._trimmed_through(self._reader)
        return max(head, trimmed)

    async def changes_since(self, seq: int) -> tuple[int, builtins.list[str] | None]:
        """The keys changed after ``seq`` and the new position; ``None`` for the keys when entries this reader had
        not read were trimmed (or a restore replaced everything): every cache must be dropped."""
        conn = self._reader
        keys: builtins.list[str] = []
        position = seq
        conn.execute("BEGIN")  # one snapshot: the trim horizon and the entries agree
        try:
            while True:
                rows = conn.execute(
                    "SELECT seq, key FROM changelog WHERE seq > ? ORDER BY seq LIMIT ?", (position, _PAGE)
                ).fetchall()
                for row_seq, key in rows:
                    keys.append(str(key))
                    position = int(row_seq)
                if len(rows) < _PAGE:
                    break
            trimmed = self._trimmed_through(conn)
        finally:
            conn.execute("COMMIT")
        self._read_seq = max(position, trimmed)
        if seq < trimmed or ALL_KEYS in keys:
            return self._read_seq, None
        return position, keys

    @staticmethod
    def _trimmed_through(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM changelog_readers WHERE reader = ?", (_TRIMMED,)).fetchone()
        return 0 if row is None else int(row[0])

    def _report_position(self, conn: sqlite3.Connection) -> None:
        """In the writer's transaction: record how far this process has read, and trim what every live reader has
        read (at most every ``_REPORT_EVERY`` seconds)."""
        now = time.time()
        seq = self._read_seq
        last_seq, last_time = self._reported
        if seq == last_seq or now - last_time < _REPORT_EVERY:
            return
        self._reported = (seq, now)
        conn.execute(
            "INSERT INTO changelog_readers(reader, seq, seen) VALUES(?, ?, ?) "
            "ON CONFLICT(reader) DO UPDATE SET seq = excluded.seq, seen = excluded.seen",
            (self._reader_id, seq, now),
        )
        conn.execute("DELETE FROM changelog_readers WHERE reader != ? AND seen < ?", (_TRIMMED, now - _READER_LEASE))
        row = conn.execute("SELECT MIN(seq) FROM changelog_readers WHERE reader != ?", (_TRIMMED,)).fetchone()
        floor = int(row[0] or 0)
        if floor > self._trimmed_through(conn):
            conn.execute("DELETE FROM changelog WHERE seq <= ?", (floor,))
            conn.execute(
                "INSERT INTO changelog_readers(reader, seq, seen) VALUES(?, ?, ?) "
                "ON CONFLICT(reader) DO UPDATE SET seq = excluded.seq, seen = excluded.seen",
                (_TRIMMED, floor, now),
            )

    async def report_position(self) -> None:
        """Report this reader's position even if it writes nothing (a read-only worker must not hold the log)."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending([], loop, fut, run=lambda conn: None))
        await fut


def _claim(path: str) -> int:
    """Lock ``<path>.lock`` exclusively for as long as the returned descriptor stays open; refuse if someone holds it.

    A lock file of its own, not the database: SQLite's POSIX locks on the database are per process and come and go
    with every transaction, while a ``flock`` belongs to this open file and lasts until it is closed.
    """
    lock_path = os.path.realpath(path) + ".lock"  # one lock per database file, however the path is spelt
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            pid = int(os.pread(fd, 32, 0).decode().strip() or "0")
            holder = f" (pid {pid})" if pid > 0 else ""
        os.close(fd)
        raise ConfigError(
            f"storage {path} is in use by another Strongroom process{holder}: one storage, one server"
        ) from None
    except OSError:
        os.close(fd)
        raise
    # who holds it, for the message a second process prints; the lock itself is what counts
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _resolve(fut: asyncio.Future[None], result: BaseException | None) -> None:
    if fut.done():
        return
    if result is None:
        fut.set_result(None)
    else:
        fut.set_exception(result)
