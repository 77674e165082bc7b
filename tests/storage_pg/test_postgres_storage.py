"""What only the PostgreSQL backend has to get right: its schema, shared use by several nodes, lost connections."""

from __future__ import annotations

import asyncio
import secrets
import socket
from urllib.parse import urlsplit

import pytest

from strongroom.config import ConfigError
from strongroom.storage.base import CheckAndSetError, TxnOp
from strongroom.storage.postgres import PostgresStorage
from tests.storage_pg.conftest import admin, fresh_table, terminate_sessions_touching

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("name", ["kv; DROP TABLE x", 'kv"', "1kv", "a.b.c", "", "kv-1", "k" * 64])
def test_table_names_that_are_not_plain_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid PostgreSQL table name"):
        PostgresStorage("postgresql://unused@127.0.0.1:1/x", table=name)


async def test_creates_its_table_with_byte_ordered_keys(pg_dsn: str) -> None:
    table = fresh_table()
    store = PostgresStorage(pg_dsn, table=table)
    try:
        await store.put("a", b"1")
    finally:
        await store.close()
    with admin(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, c.collname "
            "FROM pg_attribute a LEFT JOIN pg_collation c ON c.oid = a.attcollation "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 ORDER BY a.attnum",
            (table,),
        ).fetchall()
        assert rows == [("key", "text", True, "C"), ("value", "bytea", True, None)]
        # the seek used by list() is answered from the primary key's index, not by reading the table
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                f"EXPLAIN SELECT key FROM {table} WHERE key > 'a/' AND key < 'a/\U0010ffff' ORDER BY key LIMIT 1"
            ).fetchall()
        )
        assert f"{table}_pkey" in plan and "Sort" not in plan


async def test_refuses_an_existing_table_whose_keys_sort_by_locale(pg_dsn: str) -> None:
    table = fresh_table()
    with admin(pg_dsn) as conn:
        conn.execute(f"CREATE TABLE {table} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)")
    store = PostgresStorage(pg_dsn, table=table)
    try:
        with pytest.raises(ConfigError, match='COLLATE "C"'):
            await store.get("a")
    finally:
        await store.close()


async def test_refuses_a_database_that_is_not_utf8(pg_dsn: str) -> None:
    name = f"latin1_{secrets.token_hex(4)}"
    with admin(pg_dsn) as conn:
        conn.execute(f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    parts = urlsplit(pg_dsn)
    store = PostgresStorage(parts._replace(path=f"/{name}").geturl())
    try:
        with pytest.raises(ConfigError, match="UTF8"):
            await store.put("a", b"1")
    finally:
        await store.close()
        with admin(pg_dsn) as conn:
            conn.execute(f"DROP DATABASE {name}")


async def test_an_unreachable_database_is_a_clear_error_without_the_password(pg_dsn: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    store = PostgresStorage(f"postgresql://strongroom:hunter2-secret@127.0.0.1:{closed_port}/postgres")
    with pytest.raises(ConnectionError) as err:
        await store.get("a")
    assert "cannot connect to PostgreSQL storage" in str(err.value)
    assert "hunter2" not in str(err.value)
    parts = urlsplit(pg_dsn)
    wrong_password = PostgresStorage(f"postgresql://strongroom:hunter2-secret@{parts.hostname}:{parts.port}/postgres")
    with pytest.raises(ConnectionError) as err:
        await wrong_password.put("a", b"1")
    assert "hunter2" not in str(err.value)


async def test_two_nodes_share_one_table_and_check_and_set_holds_between_them(pg_dsn: str) -> None:
    table = fresh_table()
    node_a, node_b = PostgresStorage(pg_dsn, table=table), PostgresStorage(pg_dsn, table=table)
    try:
        await node_a.put("shared/x", b"from-a")
        assert await node_b.get("shared/x") == b"from-a"
        assert await node_b.list("shared/") == ["x"]

        async def claim(store: PostgresStorage, i: int) -> bool:
            try:
                await store.transaction([TxnOp("check", "shared/lock", None), TxnOp("put", "shared/lock", b"%d" % i)])
                return True
            except CheckAndSetError:
                return False

        results = await asyncio.gather(*(claim(node_a if i % 2 else node_b, i) for i in range(20)))
        assert results.count(True) == 1
    finally:
        await node_a.close()
        await node_b.close()


async def test_keeps_working_after_the_database_ends_its_connections(pg_dsn: str) -> None:
    table = fresh_table()
    store = PostgresStorage(pg_dsn, table=table, pool_size=3)
    try:
        await asyncio.gather(*(store.put(f"r/{i}", b"%d" % i) for i in range(10)))
        assert terminate_sessions_touching(pg_dsn, table) >= 1
        # every pooled connection is now dead; reads and writes transparently use new ones
        assert await store.get("r/3") == b"3"
        assert terminate_sessions_touching(pg_dsn, table) >= 1
        await store.put("r/new", b"n")
        await store.transaction([TxnOp("check", "r/new", b"n"), TxnOp("delete", "r/new")])
        assert await store.list("r/") == [str(i) for i in range(10)]
    finally:
        await store.close()


async def test_closed_storage_refuses_work(pg_dsn: str) -> None:
    store = PostgresStorage(pg_dsn, table=fresh_table())
    await store.put("a", b"1")
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.get("a")
