"""Durable storage of requests behind a small interface: insert, get, list, and compare-and-save.

Every change is an optimistic compare-and-save on the request's version, so two reviewers approving at once, or two
fetches racing, can never both win: exactly one write succeeds and the other caller re-reads and re-decides.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import orjson

from strongroom.broker.models import MpaRequest

_T = TypeVar("_T")


class RequestStore(Protocol):
    def insert(self, req: MpaRequest) -> None: ...
    def get(self, request_id: str) -> MpaRequest | None: ...
    def list(self, states: tuple[str, ...] | None = None, limit: int = 500) -> list[MpaRequest]: ...
    def compare_and_save(self, req: MpaRequest) -> bool: ...
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS mpa_requests (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    version INTEGER NOT NULL,
    doc BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS mpa_requests_state ON mpa_requests (state, created_at);
"""


def _encode(req: MpaRequest) -> bytes:
    d = req.to_dict()
    d["credential_ref"] = req.credential_ref
    return orjson.dumps(d)


def _decode(doc: bytes, version: int) -> MpaRequest:
    req = MpaRequest.from_dict(orjson.loads(doc))
    req.version = version
    return req


class _SqlStore:
    """The statements both databases run, written once with ``?`` placeholders; each store says its own."""

    _placeholder = "?"
    _db: Any
    _lock: threading.Lock

    def _execute(self, sql: str, args: Sequence[Any], result: Callable[[Any], _T]) -> _T:
        # the result is taken under the lock too: one connection serves every thread
        with self._lock:
            return result(self._db.execute(sql.replace("?", self._placeholder), args))

    def _states_clause(self, states: tuple[str, ...]) -> tuple[str, list[Any]]:
        return f" WHERE state IN ({','.join('?' * len(states))})", list(states)

    def insert(self, req: MpaRequest) -> None:
        req.version = 1
        self._execute(
            "INSERT INTO mpa_requests (id, state, created_at, version, doc) VALUES (?, ?, ?, ?, ?)",
            (req.id, req.state, req.created_at, req.version, _encode(req)),
            _ignore,
        )

    def get(self, request_id: str) -> MpaRequest | None:
        row = self._execute("SELECT doc, version FROM mpa_requests WHERE id = ?", (request_id,), _fetchone)
        return _decode(bytes(row[0]), row[1]) if row else None

    def list(self, states: tuple[str, ...] | None = None, limit: int = 500) -> list[MpaRequest]:
        sql, args = "SELECT doc, version FROM mpa_requests", list[Any]()
        if states:
            clause, args = self._states_clause(states)
            sql += clause
        sql += " ORDER BY created_at DESC LIMIT ?"
        args.append(limit)
        rows = self._execute(sql, args, _fetchall)
        return [_decode(bytes(doc), version) for doc, version in rows]

    def compare_and_save(self, req: MpaRequest) -> bool:
        rowcount = self._execute(
            "UPDATE mpa_requests SET state = ?, version = ?, doc = ? WHERE id = ? AND version = ?",
            (req.state, req.version + 1, _encode(req), req.id, req.version),
            _rowcount,
        )
        if rowcount == 1:
            req.version += 1
            return True
        return False

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _ignore(cur: Any) -> None:
    return None


def _fetchone(cur: Any) -> Any:
    return cur.fetchone()


def _fetchall(cur: Any) -> list[Any]:
    return list(cur.fetchall())


def _rowcount(cur: Any) -> int:
    return int(cur.rowcount)


class SqliteStore(_SqlStore):
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()


class PostgresStore(_SqlStore):
    """The same table on PostgreSQL (psycopg 3), for brokers that keep state off the host."""

    _placeholder = "%s"

    def __init__(self, dsn: str) -> None:
        import psycopg

        self._db = psycopg.connect(dsn, autocommit=True)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute(_SCHEMA.replace("REAL", "DOUBLE PRECISION").replace("BLOB", "BYTEA"))

    def _states_clause(self, states: tuple[str, ...]) -> tuple[str, list[Any]]:
        return " WHERE state = ANY(?)", [list(states)]


def open_store(url: str) -> RequestStore:
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    raise ValueError("broker.storage must be sqlite:///PATH or postgresql://…")
