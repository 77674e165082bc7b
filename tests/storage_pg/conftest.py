"""A real PostgreSQL server for the storage and HA tests, and every storage backend behind one fixture.

The server comes from ``scripts/postgres-node`` (the script CI uses), once per session, unless CI already started one
and says where with ``STRONGROOM_TEST_POSTGRES=<superuser DSN>`` (the same variable as ``tests/database``). The small
start/stop helper is repeated here rather than imported from another folder's conftest.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from strongroom.storage.base import Storage
from strongroom.storage.memory import InMemoryStorage
from strongroom.storage.postgres import PostgresStorage
from strongroom.storage.sqlite import SQLiteStorage

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ("memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


def _postgres_node(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "postgres-node"), *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/postgres-node {args[0]} failed:\n{result.stderr[-4000:]}", pytrace=False)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("STRONGROOM_TEST_POSTGRES")
    if given:
        yield given
        return
    directory = tmp_path_factory.mktemp("storage-postgres")
    dsn = _postgres_node("start", str(directory)).splitlines()[-1]
    try:
        yield dsn
    finally:
        _postgres_node("stop", str(directory))


def ha_config(dsn: str, table: str, log_level: str = "warn") -> str:
    """A server configuration for one of several HA nodes on ``table`` (``{port}`` is filled in by the fixture)."""
    return (
        f'storage "postgresql" {{\n  connection_url = "{dsn}"\n  table          = "{table}"\n'
        '  ha_enabled     = "true"\n}\n'
        'listener "tcp" {\n  address     = "127.0.0.1:{port}"\n  tls_disable = true\n}\n'
        f'api_addr  = "http://127.0.0.1:{{port}}"\nlog_level = "{log_level}"\n'
    )


def health(addr: str) -> int:
    """``sys/health``'s status: 200 active, 429 standby."""
    import httpx

    return httpx.get(f"{addr}/v1/sys/health", timeout=5).status_code


def fresh_table() -> str:
    """Each test gets its own table, so tests never see each other's keys."""
    return f"kv_{secrets.token_hex(6)}"


def admin(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def terminate_sessions_touching(dsn: str, table: str) -> int:
    """End every session the storage opened for ``table`` (what a database restart does to them)."""
    with admin(dsn) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"strongroom storage {table}",),
        ).fetchall()
    return len(rows)


class Opener:
    """Opens a backend; each ``open()`` after the first is a new instance on the same data (a restarted node)."""

    def __init__(self, kind: str, make: Callable[[], Storage]) -> None:
        self.kind = kind
        self._make = make
        self.opened: list[Storage] = []

    def open(self) -> Storage:
        store = self._make()
        self.opened.append(store)
        return store


def _opener(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    if kind == "memory":
        shared = InMemoryStorage()
        return Opener(kind, lambda: shared)
    if kind == "sqlite":
        return Opener(kind, lambda: SQLiteStorage(str(tmp_path / "store.db")))
    dsn = request.getfixturevalue("pg_dsn")
    table = fresh_table()
    return Opener(kind, lambda: PostgresStorage(dsn, table=table))


@pytest.fixture(params=BACKENDS)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    op = _opener(request.param, request, tmp_path)
    yield op
    for store in op.opened:
        await store.close()


@pytest.fixture(params=[b for b in BACKENDS if b != "memory"])
async def durable_opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """The backends that keep data across a restart (the in-memory one, by design, does not)."""
    op = _opener(request.param, request, tmp_path)
    yield op
    for store in op.opened:
        await store.close()


@pytest.fixture
def storage(opener: Opener) -> Storage:
    return opener.open()
