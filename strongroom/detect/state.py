"""Detect's durable state: source positions, rule state and the alert outbox, in SQLite or PostgreSQL.

``state`` in the configuration is a SQLite file, or a ``postgresql://`` DSN (tables ``detect_*``) for ``detect``
processes on several machines. One database may be shared by several processes (SQLite in WAL mode): the outbox's
primary key (alert key, channel) is what makes two consumers of one Kafka group alert once between them, and a
delivery is claimed before it is sent so two senders never post the same row.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (source TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rulestate (instance TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  key TEXT NOT NULL, channel TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL, created REAL NOT NULL,
  payload BLOB NOT NULL, sent REAL, attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL DEFAULT 0,
  claimed_until REAL NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (key, channel)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sent, next_try);
"""


class State:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def position(self, source: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM positions WHERE source = ?", (source,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def rule_state(self, instance: str) -> dict[str, Any]:
        row = self.db.execute("SELECT value FROM rulestate WHERE instance = ?", (instance,)).fetchone()
        return orjson.loads(row[0]) if row else {}

    def checkpoint(self, instance: str, rules: dict[str, Any], positions: dict[str, dict[str, Any]]) -> None:
        """Rule state and source positions, together: a restart resumes both from the same point of the stream."""
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO rulestate VALUES (?, ?)", (instance, orjson.dumps(rules)))
            self.db.executemany(
                "INSERT OR REPLACE INTO positions VALUES (?, ?)",
                [(name, orjson.dumps(pos)) for name, pos in positions.items()],
            )

    def enqueue(self, key: str, channels: list[str], rule: str, severity: str, payload: dict[str, Any]) -> bool:
        """Queue an alert once per channel; False if this key was queued before (by this or another process)."""
        now = time.time()
        added = 0
        with self._tx():
            for channel in channels:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO outbox (key, channel, rule, severity, created, payload) "
                    "VALUES (?,?,?,?,?,?)",
                    (key, channel, rule, severity, now, orjson.dumps(payload)),
                )
                added += cur.rowcount
        return added > 0

    def claim(self, owner_lease: float, limit: int = 20) -> list[tuple[str, str, dict[str, Any], int]]:
        """Rows due for delivery, claimed for ``owner_lease`` seconds so no other sender posts them meanwhile."""
        now = time.time()
        with self._tx():
            rows = self.db.execute(
                "SELECT key, channel, payload, attempts FROM outbox WHERE sent IS NULL AND next_try <= ? "
                "AND claimed_until <= ? ORDER BY created LIMIT ?",
                (now, now, limit),
            ).fetchall()
            for key, channel, _, _ in rows:
                self.db.execute("UPDATE outbox SET claimed_until = ? WHERE key = ? AND channel = ?",
                                (now + owner_lease, key, channel))
        return [(k, c, orjson.loads(p), a) for k, c, p, a in rows]

    def delivered(self, key: str, channel: str) -> None:
        self.db.execute("UPDATE outbox SET sent = ?, claimed_until = 0 WHERE key = ? AND channel = ?",
                        (time.time(), key, channel))

    def failed(self, key: str, channel: str, retry_in: float, error: str) -> None:
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_try = ?, claimed_until = 0, last_error = ? "
            "WHERE key = ? AND channel = ?",
            (time.time() + retry_in, error[:500], key, channel),
        )

    def pending(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbox WHERE sent IS NULL").fetchone()[0])

    def _tx(self) -> _Tx:
        return _Tx(self.db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS detect_positions (source TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS detect_rulestate (instance TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS detect_outbox (
  key TEXT NOT NULL, channel TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL,
  created DOUBLE PRECISION NOT NULL, payload BYTEA NOT NULL, sent DOUBLE PRECISION,
  attempts INTEGER NOT NULL DEFAULT 0, next_try DOUBLE PRECISION NOT NULL DEFAULT 0,
  claimed_until DOUBLE PRECISION NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (key, channel)
);
CREATE INDEX IF NOT EXISTS detect_outbox_due ON detect_outbox (sent, next_try);
"""


class PgState:
    """The same state in PostgreSQL; claims use ``FOR UPDATE SKIP LOCKED`` so senders on many hosts never collide."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.db = psycopg.connect(dsn, autocommit=True)
        with self.db.transaction():
            # one schema creation at a time: two processes starting together would race on CREATE TABLE
            self.db.execute("SELECT pg_advisory_xact_lock(7366470116)")
            for statement in filter(str.strip, _PG_SCHEMA.split(";")):
                self.db.execute(statement)

    def close(self) -> None:
        self.db.close()

    def position(self, source: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM detect_positions WHERE source = %s", (source,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def rule_state(self, instance: str) -> dict[str, Any]:
        row = self.db.execute("SELECT value FROM detect_rulestate WHERE instance = %s", (instance,)).fetchone()
        return orjson.loads(row[0]) if row else {}

    def checkpoint(self, instance: str, rules: dict[str, Any], positions: dict[str, dict[str, Any]]) -> None:
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO detect_rulestate VALUES (%s, %s) ON CONFLICT (instance) DO UPDATE SET value = "
                "EXCLUDED.value", (instance, orjson.dumps(rules)))
            with self.db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO detect_positions VALUES (%s, %s) ON CONFLICT (source) DO UPDATE SET value = "
                    "EXCLUDED.value", [(name, orjson.dumps(pos)) for name, pos in positions.items()])

    def enqueue(self, key: str, channels: list[str], rule: str, severity: str, payload: dict[str, Any]) -> bool:
        now = time.time()
        added = 0
        with self.db.transaction():
            for channel in channels:
                cur = self.db.execute(
                    "INSERT INTO detect_outbox (key, channel, rule, severity, created, payload) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (key, channel, rule, severity, now, orjson.dumps(payload)),
                )
                added += cur.rowcount
        return added > 0

    def claim(self, owner_lease: float, limit: int = 20) -> list[tuple[str, str, dict[str, Any], int]]:
        now = time.time()
        rows = self.db.execute(
            "WITH due AS (SELECT key, channel FROM detect_outbox WHERE sent IS NULL AND next_try <= %s "
            "AND claimed_until <= %s ORDER BY created LIMIT %s FOR UPDATE SKIP LOCKED) "
            "UPDATE detect_outbox o SET claimed_until = %s FROM due WHERE o.key = due.key AND o.channel = due.channel "
            "RETURNING o.key, o.channel, o.payload, o.attempts",
            (now, now, limit, now + owner_lease),
        ).fetchall()
        return [(k, c, orjson.loads(p), a) for k, c, p, a in rows]

    def delivered(self, key: str, channel: str) -> None:
        self.db.execute("UPDATE detect_outbox SET sent = %s, claimed_until = 0 WHERE key = %s AND channel = %s",
                        (time.time(), key, channel))

    def failed(self, key: str, channel: str, retry_in: float, error: str) -> None:
        self.db.execute(
            "UPDATE detect_outbox SET attempts = attempts + 1, next_try = %s, claimed_until = 0, last_error = %s "
            "WHERE key = %s AND channel = %s",
            (time.time() + retry_in, error[:500], key, channel),
        )

    def pending(self) -> int:
        row = self.db.execute("SELECT count(*) FROM detect_outbox WHERE sent IS NULL").fetchone()
        return int(row[0]) if row else 0


def open_state(target: str) -> State | PgState:
    if target.startswith(("postgresql://", "postgres://")):
        return PgState(target)
    return State(target)
