"""The request transaction below the pipeline: writes held in the request's write set, read back by the request itself,
invisible to everyone else until one storage commit, gone without a trace when discarded; locks held until then."""

from __future__ import annotations

import asyncio

import pytest

from strongroom import crypto
from strongroom.core import request_txn
from strongroom.core.barrier import Barrier
from strongroom.storage.base import TxnOp
from strongroom.storage.memory import InMemoryStorage


class CountingStorage(InMemoryStorage):
    """In-memory storage that counts the transactions it is asked to apply."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions: list[list[TxnOp]] = []

    async def transaction(self, ops: list[TxnOp]) -> None:
        self.transactions.append(ops)
        await super().transaction(ops)


@pytest.fixture
async def barrier() -> Barrier:
    b = Barrier(CountingStorage())
    await b.initialize(crypto.new_key())
    view = b.view("m/")
    for key in ("a", "b", "dir/x", "dir/y", "gone/only", "z"):
        await view.put(key, key.encode())
    return b


async def _in_request(barrier: Barrier, body, commit: bool = True):  # noqa: ANN001, ANN202
    txn, scope = request_txn.begin()
    try:
        result = await body()
    finally:
        request_txn.end(scope)
    if commit:
        await barrier.transaction(txn.close_for_commit(), direct=True)
        await txn.finish_commit()
    else:
        txn.discard()
    return result


async def test_the_request_reads_its_own_writes_and_listings(barrier: Barrier) -> None:
    view = barrier.view("m/")

    async def body() -> tuple[list[str], list[str], bytes | None, bytes | None, list[str]]:
        await view.put("c", b"new")
        await view.delete("b")
        await view.delete("gone/only")
        await view.transaction({"dir/x": None, "fresh/k": b"1"})
        everything = await view.list()
        page = await view.list(after="a", limit=2)
        return everything, page, await view.get("c"), await view.get("b"), await view.list("dir/")

    everything, page, c, b, in_dir = await _in_request(barrier, body, commit=False)
    # "gone/" lost its only key, "dir/" keeps "y", "fresh/" and "c" exist only in the write set
    assert everything == ["a", "c", "dir/", "fresh/", "z"]
    assert page == ["c", "dir/"]
    assert (c, b, in_dir) == (b"new", None, ["y"])
    # discarded: storage (and the barrier's cache) never saw any of it
    assert await view.list() == ["a", "b", "dir/", "gone/", "z"]
    assert await view.get("c") is None and await view.get("b") == b"b"


async def test_commit_is_one_storage_transaction_and_others_see_nothing_before(barrier: Barrier) -> None:
    storage = barrier.storage
    assert isinstance(storage, CountingStorage)
    view = barrier.view("m/")
    seen_outside: list[bytes | None] = []
    before = len(storage.transactions)

    async def body() -> None:
        await view.put("a", b"changed")
        await view.put("n1", b"1")
        await view.delete("z")
        # another request (its own task, no transaction) reads the committed state only
        seen_outside.append(await asyncio.create_task(view.get("a")))

    await _in_request(barrier, body)
    assert seen_outside == [b"a"]
    assert len(storage.transactions) == before + 1
    assert {op.key for op in storage.transactions[-1]} == {"m/a", "m/n1", "m/z"}
    assert await view.get("a") == b"changed" and await view.get("z") is None


async def test_after_commit_hooks_run_only_on_commit(barrier: Barrier) -> None:
    applied: list[str] = []

    async def body() -> None:
        request_txn.after_commit(lambda: applied.append("x"))

    await _in_request(barrier, body, commit=False)
    assert applied == []
    await _in_request(barrier, body)
    assert applied == ["x"]
    request_txn.after_commit(lambda: applied.append("outside"))  # no request: applied at once
    assert applied == ["x", "outside"]


async def test_a_lock_taken_in_a_request_is_held_until_its_commit(barrier: Barrier) -> None:
    view = barrier.view("m/")
    order: list[str] = []
    first_done_with_block = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async def body() -> None:
            async with view.lock("k"):
                async with view.lock("k"):  # re-entrant for the request that holds it
                    await view.put("k", b"1")
            first_done_with_block.set()
            await release_first.wait()
            order.append("first commits")

        await _in_request(barrier, body)

    async def second() -> None:
        await first_done_with_block.wait()

        async def body() -> None:
            async with view.lock("k"):
                order.append(f"second sees {await view.get('k')!r}")
                await view.put("k", b"2")

        await _in_request(barrier, body)

    one = asyncio.create_task(first())
    two = asyncio.create_task(second())
    await first_done_with_block.wait()
    for _ in range(20):
        await asyncio.sleep(0)  # let the second request run as far as it can: it must wait for the lock
    assert order == []
    release_first.set()
    await asyncio.gather(one, two)
    assert order == ["first commits", "second sees b'1'"]
    assert await view.get("k") == b"2"


async def test_a_task_spawned_by_a_request_writes_outside_its_transaction(barrier: Barrier) -> None:
    view = barrier.view("m/")

    async def body() -> None:
        await asyncio.create_task(view.put("background", b"kept"))
        await view.put("request", b"dropped")

    await _in_request(barrier, body, commit=False)
    assert await view.get("background") == b"kept"
    assert await view.get("request") is None


async def test_direct_views_bypass_the_request(barrier: Barrier) -> None:
    audit = barrier.view("sys/audit/", direct=True)

    async def body() -> None:
        await audit.put("table", b"{}")

    await _in_request(barrier, body, commit=False)
    assert await audit.get("table") == b"{}"
