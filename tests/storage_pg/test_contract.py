"""The Storage contract, one definition run against every backend: in-memory, SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from strongroom.storage.base import CheckAndSetError, Storage, TxnOp
from tests.storage_pg.conftest import Opener

TREE = {
    "app/a": b"1",
    "app/b/c": b"2",
    "app/b/d/e": b"3",
    "app/b/f": b"4",
    "app/c": b"5",
    "app/d/x": b"6",
    "apps/z": b"7",
    "other": b"8",
}


async def fill(storage: Storage, items: dict[str, bytes]) -> None:
    for key, value in items.items():
        await storage.put(key, value)


async def list_paged(storage: Storage, prefix: str, page: int) -> list[str]:
    out: list[str] = []
    after = ""
    while True:
        batch = await storage.list(prefix, after=after, limit=page)
        out += batch
        if len(batch) < page:
            return out
        after = batch[-1]


async def test_get_put_overwrite_delete(storage: Storage) -> None:
    assert await storage.get("k/missing") is None
    await storage.put("k/one", b"first")
    assert await storage.get("k/one") == b"first"
    await storage.put("k/one", b"second")
    assert await storage.get("k/one") == b"second"
    await storage.delete("k/one")
    assert await storage.get("k/one") is None
    await storage.delete("k/one")  # deleting what is not there is not an error
    assert await storage.list("k/") == []


async def test_values_are_opaque_bytes(storage: Storage) -> None:
    every_byte = bytes(range(256)) * 4
    await storage.put("bin/all", every_byte)
    await storage.put("bin/empty", b"")
    assert await storage.get("bin/all") == every_byte
    assert await storage.get("bin/empty") == b""


async def test_list_returns_immediate_children_with_folders_once(storage: Storage) -> None:
    await fill(storage, TREE)
    assert await storage.list("app/") == ["a", "b/", "c", "d/"]
    assert await storage.list("app/b/") == ["c", "d/", "f"]
    assert await storage.list("app/b/d/") == ["e"]
    assert await storage.list("") == ["app/", "apps/", "other"]
    assert await storage.list("nothing/here/") == []


async def test_list_order_is_python_string_order(storage: Storage) -> None:
    # upper before lower case, punctuation by code point, non-ASCII after ASCII: what sorted() does, not a locale
    names = ["b", "B", "a-b", "a0", "a_", "~tilde", "é", "z", "Z9", "\u00fcber", "\u4e2d", "\U0001f511key", "a.b"]
    await fill(storage, {f"ord/{n}": b"v" for n in names})
    await storage.put("ord/a/inner", b"v")
    listed = await storage.list("ord/")
    assert listed == sorted([*names, "a/"])
    assert await list_paged(storage, "ord/", page=3) == listed


async def test_pagination_with_after_and_limit(storage: Storage) -> None:
    await fill(storage, TREE)
    full = await storage.list("app/")
    for page in (1, 2, 3, 10):
        assert await list_paged(storage, "app/", page) == full
    assert await storage.list("app/", limit=2) == ["a", "b/"]
    assert await storage.list("app/", after="a") == ["b/", "c", "d/"]
    # after a folder: its subtree is skipped, not listed again
    assert await storage.list("app/", after="b/") == ["c", "d/"]
    assert await storage.list("app/", after="b/", limit=1) == ["c"]
    # after a name that does not exist: everything greater
    assert await storage.list("app/", after="bb") == ["c", "d/"]
    assert await storage.list("app/", after="d/") == []


async def test_listing_a_large_folder_pages_through_every_entry(storage: Storage) -> None:
    keys = {f"big/{i:05d}": b"x" for i in range(600)}
    keys.update({f"big/{i:05d}/sub/{j}": b"y" for i in range(0, 600, 50) for j in range(3)})
    await fill(storage, keys)
    expected = sorted({k[len("big/") :].split("/")[0] + ("/" if k.count("/") > 1 else "") for k in keys})
    assert await list_paged(storage, "big/", page=100) == expected
    assert len(expected) == 612


async def test_transaction_applies_all_when_checks_hold(storage: Storage) -> None:
    await fill(storage, {"t/a": b"1", "t/gone": b"x"})
    await storage.transaction(
        [
            TxnOp("check", "t/a", b"1"),
            TxnOp("check", "t/new", None),
            TxnOp("put", "t/a", b"2"),
            TxnOp("put", "t/new", b"n"),
            TxnOp("delete", "t/gone"),
        ]
    )
    assert await storage.get("t/a") == b"2"
    assert await storage.get("t/new") == b"n"
    assert await storage.get("t/gone") is None


@pytest.mark.parametrize(
    "failing_check",
    [
        TxnOp("check", "t/a", b"stale"),  # wrong value
        TxnOp("check", "t/a", None),  # expected absent, exists
        TxnOp("check", "t/missing", b"1"),  # expected a value, absent
    ],
    ids=["wrong-value", "exists", "absent"],
)
async def test_transaction_with_a_failed_check_applies_nothing(storage: Storage, failing_check: TxnOp) -> None:
    await fill(storage, {"t/a": b"1", "t/b": b"keep"})
    ops = [
        TxnOp("put", "t/a", b"changed"),
        TxnOp("put", "t/created", b"c"),
        TxnOp("delete", "t/b"),
        failing_check,
        TxnOp("put", "t/after", b"late"),
    ]
    with pytest.raises(CheckAndSetError):
        await storage.transaction(ops)
    assert await storage.get("t/a") == b"1"
    assert await storage.get("t/b") == b"keep"
    assert await storage.get("t/created") is None
    assert await storage.get("t/after") is None
    assert await storage.list("t/") == ["a", "b"]


async def test_concurrent_check_and_set_loses_no_update(storage: Storage) -> None:
    await storage.put("ctr/n", b"0")

    async def increment() -> int:
        conflicts = 0
        while True:
            current = await storage.get("ctr/n")
            assert current is not None
            try:
                await storage.transaction(
                    [TxnOp("check", "ctr/n", current), TxnOp("put", "ctr/n", str(int(current) + 1).encode())]
                )
                return conflicts
            except CheckAndSetError:
                conflicts += 1

    await asyncio.gather(*(increment() for _ in range(40)))
    assert await storage.get("ctr/n") == b"40"


async def test_concurrent_create_if_absent_has_exactly_one_winner(storage: Storage) -> None:
    async def create(i: int) -> bool:
        try:
            await storage.transaction([TxnOp("check", "once/k", None), TxnOp("put", "once/k", f"w{i}".encode())])
            return True
        except CheckAndSetError:
            return False

    results = await asyncio.gather(*(create(i) for i in range(30)))
    assert results.count(True) == 1
    assert await storage.get("once/k") == f"w{results.index(True)}".encode()


async def test_concurrent_writers_to_different_keys_all_land(storage: Storage) -> None:
    await asyncio.gather(*(storage.put(f"many/{i:03d}", str(i).encode()) for i in range(200)))
    assert await storage.list("many/") == [f"{i:03d}" for i in range(200)]
    assert await storage.get("many/137") == b"137"


async def test_acknowledged_writes_survive_reopening(durable_opener: Opener) -> None:
    opener = durable_opener
    first = opener.open()
    await fill(first, TREE)
    await first.transaction([TxnOp("check", "app/a", b"1"), TxnOp("put", "app/a", b"1b")])
    await first.close()
    second = opener.open()
    assert await second.get("app/a") == b"1b"
    assert await second.list("app/b/") == ["c", "d/", "f"]
