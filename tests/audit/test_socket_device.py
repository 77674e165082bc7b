"""The socket device against a real local TCP (and Unix) server started by the test."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from strongroom.audit import AuditBroker, AuditFailure
from strongroom.core.logical import InvalidRequest

from .helpers import SECRET, TOKEN, context


class Collector:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while line := await reader.readline():
            self.lines.append(line)

    async def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 5.0
        while len(self.lines) < count:
            assert time.monotonic() < deadline, f"only {len(self.lines)} of {count} lines arrived"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()
        await self.server.wait_closed()
        self.writers.clear()


async def tcp_collector(port: int = 0) -> tuple[Collector, int]:
    c = Collector()
    c.server = await asyncio.start_server(c.handle, "127.0.0.1", port)
    return c, c.server.sockets[0].getsockname()[1]


async def test_entries_arrive_as_json_lines_with_the_chain(broker: AuditBroker) -> None:
    c, port = await tcp_collector()
    try:
        await broker.enable("sock", "socket", "", {"address": f"127.0.0.1:{port}", "socket_type": "tcp"})
        ctx = context()
        await broker.log_request(ctx)
        await broker.log_response(ctx, {"data": {"password": SECRET}}, None)
        await c.wait_for(2)
        first, second = (orjson.loads(line) for line in c.lines)
        assert first["type"] == "request" and second["type"] == "response"
        assert (first["seq"], second["seq"]) == (1, 2)
        blob = b"".join(c.lines)
        assert SECRET.encode() not in blob and TOKEN.encode() not in blob
    finally:
        await c.stop()


async def test_reconnects_once_and_fails_closed_when_the_peer_is_gone(broker: AuditBroker) -> None:
    c, port = await tcp_collector()
    await broker.enable("sock", "socket", "", {"address": f"127.0.0.1:{port}", "write_timeout": "1s"})
    await broker.log_request(context())
    await c.wait_for(1)
    await c.stop()
    # the kernel may accept one write into a dead connection before reporting it; the next must fail
    with pytest.raises(AuditFailure):
        for _ in range(3):
            await broker.log_request(context())
            await asyncio.sleep(0.05)
    # a pipeline that comes back on the same address is picked up again
    c2, _ = await tcp_collector(port)
    try:
        await broker.log_request(context(request_id="after-restart"))
        await c2.wait_for(1)
        assert orjson.loads(c2.lines[-1])["request"]["id"] == "after-restart"
    finally:
        await c2.stop()


async def test_enable_fails_when_nothing_listens(broker: AuditBroker) -> None:
    c, port = await tcp_collector()
    await c.stop()
    with pytest.raises(InvalidRequest, match="could not be enabled"):
        await broker.enable("sock", "socket", "", {"address": f"127.0.0.1:{port}"})
    assert broker.list() == {}


async def test_unix_socket(broker: AuditBroker, tmp_path: Path) -> None:
    c = Collector()
    sock = tmp_path / "audit.sock"
    c.server = await asyncio.start_unix_server(c.handle, str(sock))
    try:
        await broker.enable("usock", "socket", "", {"address": str(sock), "socket_type": "unix"})
        await broker.log_event("mpa-broker", {"action": "approve"})
        await c.wait_for(1)
        assert orjson.loads(c.lines[0])["type"] == "event"
    finally:
        await c.stop()
