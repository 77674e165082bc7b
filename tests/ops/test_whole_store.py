"""The storage backends' whole-store operations behind snapshots and migration: scan, export, replace_all."""

from __future__ import annotations

import asyncio

from strongroom.storage.base import TxnOp
from tests.storage_pg.conftest import Opener


async def test_scan_pages_through_every_entry_in_key_order(opener: Opener) -> None:
    store = opener.open()
    keys = sorted({f"k/{i % 7}/{i:04d}" for i in range(300)} | {"a", "z/last", "k/é"})
    await store.transaction([TxnOp("put", k, k.encode()) for k in keys])
    seen: list[str] = []
    lower, first = "", True
    while rows := await store.scan(lower, 37, include_lower=first):  # type: ignore[attr-defined]
        seen += [k for k, _ in rows]
        assert all(v == k.encode() for k, v in rows)
        lower, first = rows[-1][0], False
    assert seen == keys
    assert [k for k, _ in await store.scan("k/3", 2)] == [k for k in keys if k >= "k/3"][:2]  # type: ignore[attr-defined]


async def test_export_is_one_consistent_view_while_writers_go_on(opener: Opener) -> None:
    store = opener.open()
    pairs = 200
    await store.transaction([TxnOp("put", f"pair/{i:03d}/{side}", b"0") for i in range(pairs) for side in "ab"])
    stop, enough = asyncio.Event(), asyncio.Event()
    rounds = 0

    async def writer() -> None:
        nonlocal rounds
        while not stop.is_set():
            rounds += 1
            value = str(rounds).encode()
            i = rounds % pairs
            # both halves of a pair always change together
            await store.transaction([TxnOp("put", f"pair/{i:03d}/a", value), TxnOp("put", f"pair/{i:03d}/b", value)])
            if rounds >= 20:
                enough.set()
            await asyncio.sleep(0)  # the in-memory store never yields by itself

    task = asyncio.create_task(writer())
    try:
        await asyncio.wait_for(enough.wait(), 60)
        exported: list[tuple[str, bytes]] = []
        await store.export(exported.extend, page=64)  # type: ignore[attr-defined]
    finally:
        stop.set()
        await task
    assert [k for k, _ in exported] == sorted(k for k, _ in exported)
    values = dict(exported)
    assert len(values) == 2 * pairs
    for i in range(pairs):
        assert values[f"pair/{i:03d}/a"] == values[f"pair/{i:03d}/b"], i


async def test_replace_all_swaps_the_whole_store(opener: Opener) -> None:
    store = opener.open()
    await store.transaction([TxnOp("put", f"old/{i}", b"old") for i in range(50)])
    await store.replace_all([(f"new/{i:02d}", bytes([i])) for i in range(30)])  # type: ignore[attr-defined]
    assert await store.get("old/1") is None
    assert await store.list("") == ["new/"]
    assert len(await store.list("new/")) == 30 and await store.get("new/07") == b"\x07"
    await store.put("after", b"x")  # the store keeps working afterwards
    assert await store.get("after") == b"x"
    await store.replace_all([])  # type: ignore[attr-defined]
    assert await store.list("") == []
