"""Leader election between Strongroom nodes sharing one PostgreSQL database (strongroom.core.ha)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from strongroom.core.ha import PostgresHALock, lock_for_storage
from tests.storage_pg.conftest import admin

pytestmark = pytest.mark.postgres


@dataclass
class Node:
    """One node's lock and what its callbacks were told, in order."""

    lock: PostgresHALock
    events: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> Node:
        async def on_active() -> None:
            self.events.append("active")

        def on_standby() -> None:  # plain functions work as callbacks too
            self.events.append("standby")

        self.task = asyncio.create_task(self.lock.acquire_loop(on_active, on_standby))
        return self

    @property
    def believes_active(self) -> bool:
        """What the core would see: the callbacks' last word and the lock's own fail-closed check agree."""
        told_active = bool(self.events) and self.events[-1] == "active"
        return told_active and self.lock.is_active


@pytest.fixture
async def cluster(pg_dsn: str) -> AsyncIterator[Callable[[str], Node]]:
    key = f"ha-test-{secrets.token_hex(4)}"
    nodes: list[Node] = []

    def make(name: str) -> Node:
        node = Node(PostgresHALock(pg_dsn, lock_key=key, node_id=name, advertise_addr=f"https://{name}:8200"))
        nodes.append(node.start())
        return node

    yield make
    for node in nodes:
        await node.lock.stop()
    await asyncio.gather(*(n.task for n in nodes if n.task is not None))
    for node in nodes:
        assert not node.lock.is_active and not node.believes_active


async def until(predicate: Callable[[], bool], within: float, what: str, *, never_both: tuple[Node, Node]) -> None:
    """Poll until ``predicate`` holds; on every poll, two nodes must never both count themselves active."""
    a, b = never_both
    deadline = time.monotonic() + within
    while not predicate():
        assert not (a.lock.is_active and b.lock.is_active), "two nodes were active at once"
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}; a={a.events} b={b.events}")
        await asyncio.sleep(0.02)


def terminate(dsn: str, pid: int | None) -> None:
    assert pid is not None
    with admin(dsn) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


async def test_exactly_one_node_is_active_and_standbys_know_its_address(cluster) -> None:
    a, b = cluster("node-a"), cluster("node-b")
    pair = (a, b)
    await until(lambda: a.believes_active or b.believes_active, 15, "a leader", never_both=pair)
    leader, standby = (a, b) if a.believes_active else (b, a)
    assert standby.events == [] and not standby.lock.is_active
    await until(
        lambda: standby.lock.leader_address == leader.lock.advertise_addr, 10, "leader address", never_both=pair
    )
    assert leader.lock.leader_address == leader.lock.advertise_addr
    assert standby.lock.leader is not None and standby.lock.leader.node_id == leader.lock.node_id
    # a third node stays standby as well
    c = cluster("node-c")
    await until(lambda: c.lock.leader_address == leader.lock.advertise_addr, 10, "c sees leader", never_both=pair)
    assert c.events == [] and leader.believes_active


async def test_when_the_leaders_connection_is_killed_the_standby_takes_over(cluster, pg_dsn: str) -> None:
    a, b = cluster("node-a"), cluster("node-b")
    pair = (a, b)
    await until(lambda: a.believes_active or b.believes_active, 15, "a leader", never_both=pair)
    old, new = (a, b) if a.believes_active else (b, a)

    terminate(pg_dsn, old.lock.backend_pid)
    await until(lambda: new.believes_active, 15, "the standby to become active", never_both=pair)
    assert old.events == ["active", "standby"] and not old.lock.is_active
    assert new.events == ["active"]
    # the old leader comes back as a standby that points at the new one
    await until(lambda: old.lock.leader_address == new.lock.advertise_addr, 10, "old sees new", never_both=pair)
    assert not old.believes_active


async def test_step_down_hands_leadership_to_the_other_node(cluster) -> None:
    a, b = cluster("node-a"), cluster("node-b")
    pair = (a, b)
    await until(lambda: a.believes_active or b.believes_active, 15, "a leader", never_both=pair)
    old, new = (a, b) if a.believes_active else (b, a)
    await old.lock.step_down(hold_off=30)
    assert not old.lock.is_active  # at once, before the loop has even run
    await until(lambda: new.believes_active, 15, "the other node to take over", never_both=pair)
    assert old.events == ["active", "standby"]


async def test_a_node_that_cannot_reach_the_database_never_becomes_active() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lock = PostgresHALock(f"postgresql://nobody:x@127.0.0.1:{port}/postgres", node_id="lonely", interval=0.2)
    node = Node(lock).start()
    try:
        # several retry rounds, each a refused connection: never active, never told so
        deadline = time.monotonic() + 3 * lock.lease
        while time.monotonic() < deadline:
            assert not lock.is_active and node.events == []
            await asyncio.sleep(0.05)
        assert lock.leader_address == ""
    finally:
        await lock.stop()
        assert node.task is not None
        await node.task
    assert node.events == []


class FreezableProxy:
    """A TCP relay to PostgreSQL that can stop passing bytes while keeping both sockets open: a network partition."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> FreezableProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    if self.frozen.is_set():
                        await asyncio.Event().wait()  # hold the bytes until the proxy closes; sockets stay open
                    dst.write(data)
                    await dst.drain()

        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._pipes):
            task.cancel()
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def test_a_partitioned_leader_steps_down_before_another_node_takes_over(pg_dsn: str) -> None:
    parts = urlsplit(pg_dsn)
    proxy = await FreezableProxy(parts.port or 5432).start()
    via_proxy = pg_dsn.replace(f"@{parts.hostname}:{parts.port}/", f"@127.0.0.1:{proxy.port}/")
    key = f"ha-partition-{secrets.token_hex(4)}"
    a = Node(PostgresHALock(via_proxy, lock_key=key, node_id="node-a", advertise_addr="https://a:8200", interval=0.5))
    a.start()
    b = None
    try:
        await until(lambda: a.believes_active, 15, "node-a to lead", never_both=(a, a))
        b = Node(PostgresHALock(pg_dsn, lock_key=key, node_id="node-b", advertise_addr="https://b:8200", interval=0.5))
        b.start()
        pair = (a, b)
        await until(lambda: b.lock.leader_address == "https://a:8200", 10, "b to see a", never_both=pair)

        proxy.frozen.set()  # node-a's queries now hang; its session lives on in the server, still holding the lock
        frozen_at = time.monotonic()
        await until(lambda: not a.lock.is_active, 2 * a.lock.lease, "a to stop counting itself active", never_both=pair)
        await until(lambda: a.events[-1] == "standby", 5, "a to report standby", never_both=pair)
        stepped_down_after = time.monotonic() - frozen_at
        # the server ends the silent session (idle_session_timeout), which frees the lock for node-b
        await until(lambda: b.believes_active, 30, "b to take over", never_both=pair)
        assert time.monotonic() - frozen_at > stepped_down_after
        assert b.events == ["active"]
    finally:
        await a.lock.stop()
        if b is not None:
            await b.lock.stop()
        await proxy.close()
        for node in (a, b):
            if node is not None and node.task is not None:
                await node.task


@pytest.mark.parametrize(
    ("storage_type", "storage", "expected"),
    [
        ("postgresql", {"connection_url": "postgresql://u@h/db", "ha_enabled": True}, True),
        ("postgresql", {"connection_url": "postgresql://u@h/db", "ha_enabled": "true"}, True),
        ("postgresql", {"connection_url": "postgresql://u@h/db", "ha_enabled": "false"}, False),
        ("postgresql", {"connection_url": "postgresql://u@h/db"}, False),
        ("sqlite", {"path": "/x.db", "ha_enabled": True}, False),
    ],
)
def test_ha_is_on_only_when_postgresql_storage_asks_for_it(storage_type, storage, expected) -> None:
    lock = lock_for_storage(storage_type, {**storage, "table": "shared_kv"}, "n1", "https://n1:8200")
    assert (lock is not None) is expected
    if lock is not None:
        # nodes sharing a table contend for the same lock; a different table is a different cluster
        same = lock_for_storage(storage_type, {**storage, "table": "shared_kv"}, "n2", "https://n2:8200")
        other = lock_for_storage(storage_type, {**storage, "table": "other_kv"}, "n3", "https://n3:8200")
        assert same is not None and other is not None
        assert lock.key_id == same.key_id != other.key_id
        assert lock.advertise_addr == "https://n1:8200"


def lock_holders(dsn: str, key_id: int) -> int:
    with admin(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND classid = ((%(k)s::bigint >> 32) & 4294967295)::oid AND objid = (%(k)s::bigint & 4294967295)::oid",
            {"k": key_id},
        ).fetchone()
    return row[0]


async def test_released_lock_is_free_and_the_same_node_can_contend_again(pg_dsn: str) -> None:
    """What a node sealed and unsealed again does: the core cancels the loop, releases, and later runs it anew."""
    lock = PostgresHALock(pg_dsn, lock_key=f"ha-reuse-{secrets.token_hex(4)}", node_id="n1", interval=0.2)
    events: list[str] = []

    async def on_active() -> None:
        events.append("active")

    async def on_standby() -> None:
        events.append("standby")

    async def until_true(predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 15
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; events={events}"
            await asyncio.sleep(0.02)

    first = asyncio.create_task(lock.run(on_active, on_standby))
    await until_true(lambda: lock.is_active, "active")
    assert lock_holders(pg_dsn, lock.key_id) == 1

    first.cancel()
    await lock.release()
    second = asyncio.create_task(lock.run(on_active, on_standby))  # unsealed again at once
    await until_true(lambda: events == ["active", "standby"], "the first loop to let go")
    assert first.done()
    await until_true(lambda: lock.is_active, "active again")
    assert events == ["active", "standby", "active"]
    assert lock_holders(pg_dsn, lock.key_id) == 1

    await lock.release()
    await second
    assert events == ["active", "standby", "active", "standby"] and not lock.is_active
    assert lock_holders(pg_dsn, lock.key_id) == 0
