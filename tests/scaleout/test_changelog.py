"""The storage change log: what one process writes, another learns key by key, and every cache follows it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from strongroom import crypto
from strongroom.core.barrier import Barrier
from strongroom.storage.base import CheckAndSetError, TxnOp
from strongroom.storage.postgres import PostgresStorage
from strongroom.storage.sqlite import SQLiteStorage

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(params=BACKENDS)
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    """Two processes' views of one storage: ``a`` writes, ``b`` reads the log (a worker of the same node, or a
    second node on PostgreSQL)."""
    if request.param == "sqlite":
        path = str(tmp_path / "s.db")
        a: Any = SQLiteStorage(path)
        b: Any = SQLiteStorage(path, claim=False)
    else:
        dsn = request.getfixturevalue("pg_dsn")
        table = f"kv_{secrets.token_hex(6)}"
        a, b = PostgresStorage(dsn, table), PostgresStorage(dsn, table)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _until_changed(storage: Any) -> None:
    """PostgreSQL's NOTIFY arrives asynchronously: poll the cheap check with a deadline."""
    deadline = asyncio.get_running_loop().time() + 10
    while not await storage.changed():
        assert asyncio.get_running_loop().time() < deadline, "no change notification arrived"
        await asyncio.sleep(0.01)


async def test_every_write_is_logged_in_commit_order(pair: tuple[Any, Any]) -> None:
    a, b = pair
    await a.put("warmup", b"x")
    start = await b.change_head()
    await b.changed()
    await a.put("k1", b"1")
    await a.transaction([TxnOp("put", "k2", b"2"), TxnOp("delete", "k1")])
    await a.delete("k3")
    await _until_changed(b)
    position, keys = await b.changes_since(start)
    assert keys == ["k1", "k2", "k1", "k3"]
    assert position > start
    # nothing new: an empty answer, and the cheap check says so once the notification is consumed
    assert await b.changes_since(position) == (position, [])


async def test_failed_check_and_set_logs_nothing(pair: tuple[Any, Any]) -> None:
    a, b = pair
    await a.put("k", b"1")
    start = await b.change_head()
    with pytest.raises(CheckAndSetError):
        await a.transaction([TxnOp("check", "k", b"other"), TxnOp("put", "k", b"2"), TxnOp("put", "j", b"3")])
    await a.put("after", b"x")
    await _until_changed(b)
    assert (await b.changes_since(start))[1] == ["after"]


async def test_unchanged_storage_costs_only_the_cheap_check(pair: tuple[Any, Any]) -> None:
    a, b = pair
    await a.put("k", b"1")
    await _until_changed(b)
    for _ in range(500):  # drain: the first checks report what happened before
        if not await b.changed():
            break
        await asyncio.sleep(0.01)
    assert await b.changed() is False
    await a.put("k", b"2")
    await _until_changed(b)


async def test_restore_tells_readers_to_drop_everything(pair: tuple[Any, Any]) -> None:
    a, b = pair
    await a.put("k", b"1")
    start = await b.change_head()
    await a.replace_all([("x", b"1"), ("y", b"2")])
    await _until_changed(b)
    position, keys = await b.changes_since(start)
    assert keys is None
    assert position > start


async def test_log_is_trimmed_once_every_reader_passed_and_a_reader_left_behind_drops_all(
    pair: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    for mod in ("strongroom.storage.sqlite", "strongroom.storage.postgres"):
        monkeypatch.setattr(f"{mod}._REPORT_EVERY", 0.0)
    await a.put("k0", b"0")
    head = await a.change_head()
    # both readers have read up to head and report it
    assert (await a.changes_since(0))[0] >= head
    assert (await b.changes_since(0))[0] >= head
    await b.report_position()
    await a.report_position()
    await a.put("k1", b"1")  # the writer trims up to the slowest reader's position in this transaction
    lagging = 0  # a reader that never read or reported: the entries it missed are gone
    position, keys = await b.changes_since(lagging)
    assert keys is None and position >= head
    # a reader that kept up still gets exactly the new key
    assert (await a.changes_since(head))[1] == ["k1"]


async def test_barrier_caches_follow_another_process_writes(pair: tuple[Any, Any]) -> None:
    a, b = pair
    root = crypto.new_key()
    writer, reader = Barrier(a), Barrier(b)
    await writer.initialize(root)
    await reader.unseal(root)
    await writer.put("sys/policy/p", b"v1")
    await reader.sync()
    assert await reader.get("sys/policy/p") == b"v1"  # now cached in the reader
    seen: list[str | None] = []
    reader.subscribe("sys/policy/", seen.append)
    await writer.put("sys/policy/p", b"v2")
    await writer.delete("sys/other")
    await _until_log_applied(reader, seen)
    assert await reader.get("sys/policy/p") == b"v2"
    assert seen == ["sys/policy/p"]
    # a keyring rotated by the writer: the reader learns the new term from the log and reads the new ciphertext
    await writer.rotate()
    await writer.put("sys/policy/p", b"v3")
    deadline = asyncio.get_running_loop().time() + 10
    while await reader.get("sys/policy/p") != b"v3":
        assert asyncio.get_running_loop().time() < deadline
        await reader.sync()
        await asyncio.sleep(0.01)


async def _until_log_applied(barrier: Barrier, seen: list[str | None]) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not seen:
        assert asyncio.get_running_loop().time() < deadline, "the change never reached the subscriber"
        await barrier.sync()
        await asyncio.sleep(0.01)
