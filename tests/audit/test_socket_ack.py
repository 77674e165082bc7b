"""The socket device's acknowledged mode against real loopback receivers that speak its line protocol: the receiver
answers each stored line with its ``seq``; too many unacknowledged lines fail closed; a reconnect re-sends exactly the
unacknowledged lines, byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
import time
from typing import Any

import orjson
import pytest

from strongroom.audit import AuditBroker, AuditFailure
from strongroom.audit.socket import SocketDevice
from strongroom.audit.verify import verify_stream
from tests.conftest import StrongroomServer, wait_for

from .helpers import context


class Store:
    """What a log pipeline keeps. ``dedup``: store a line only if its seq is above the last stored (the protocol's
    rule); without it every line received is appended (a naive pipeline)."""

    def __init__(self, dedup: bool = True) -> None:
        self.dedup = dedup
        self.lines: list[bytes] = []
        self.last = 0
        self.lock = threading.Lock()

    def add(self, raw: bytes) -> int:
        seq = orjson.loads(raw)["seq"]
        with self.lock:
            if not self.dedup or seq > self.last:
                self.lines.append(raw)
            self.last = max(self.last, seq)
        return seq

    def seqs(self) -> list[int]:
        return [orjson.loads(line)["seq"] for line in self.lines]

    def verify(self) -> Any:
        return verify_stream(io.BytesIO(b"".join(self.lines)))


class Receiver:
    """A real TCP listener on loopback. ``reading`` unset: it accepts connections but never reads or answers.
    ``ack_upto``: it stores lines above that seq but never acknowledges them (a crash between store and answer)."""

    def __init__(self, store: Store, port: int = 0, *, reading: bool = True, ack_upto: int | None = None) -> None:
        self.store = store
        self.ack_upto = ack_upto
        self.received: list[bytes] = []
        self.reading = threading.Event()
        if reading:
            self.reading.set()
        self.stopped = False
        self.conns: list[socket.socket] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        self.reading.wait()
        with contextlib.suppress(OSError), conn.makefile("rb") as lines:
            for raw in lines:
                if self.stopped or not raw.endswith(b"\n"):
                    return  # a partial line at the end of a connection is dropped
                self.received.append(raw)
                seq = self.store.add(raw)
                if self.ack_upto is None or seq <= self.ack_upto:
                    conn.sendall(f"{seq}\n".encode())

    def stop(self) -> None:
        self.stopped = True
        self.acceptor.join()  # the port is free once the listener is closed, not while accept() still holds it
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.reading.set()


async def until(predicate: Any, message: str) -> None:
    deadline = time.monotonic() + 5.0
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        await asyncio.sleep(0.01)


def entry(n: int) -> dict[str, Any]:
    return {"time": "2026-11-29T00:00:00Z", "type": "event", "source": "test", "event": {"n": n}}


async def test_an_acknowledging_receiver_takes_far_more_than_the_bound(broker: AuditBroker) -> None:
    store = Store()
    rx = Receiver(store)
    try:
        opts = {"address": f"127.0.0.1:{rx.port}", "ack": "true", "max_unacked": "5", "write_timeout": "2s"}
        await broker.enable("sock", "socket", "", opts)
        for i in range(60):
            ctx = context(request_id=f"r{i}")
            await broker.log_request(ctx)
            await broker.log_response(ctx, {"data": {"i": i}}, None)
        await until(lambda: len(store.lines) == 120, "every line at the receiver")
        assert store.seqs() == list(range(1, 121))
        result = store.verify()
        assert result.ok and result.entries == 120 and not result.findings
    finally:
        rx.stop()


async def test_a_receiver_that_never_reads_makes_the_device_fail_closed_at_the_bound(broker: AuditBroker) -> None:
    store = Store()
    rx = Receiver(store, reading=False)
    try:
        opts = {"address": f"127.0.0.1:{rx.port}", "ack": "true", "max_unacked": "10", "write_timeout": "300ms"}
        await broker.enable("sock", "socket", "", opts)
        recorded = 0
        with pytest.raises(AuditFailure):
            for i in range(50):
                await broker.log_request(context(request_id=f"r{i}"))
                recorded += 1
        assert recorded == 10  # the kernel would have taken thousands; the device stops at its bound
        with pytest.raises(AuditFailure):
            await broker.log_request(context(request_id="still-refused"))

        rx.reading.set()  # the pipeline catches up and acknowledges: requests are recorded again
        await broker.log_request(context(request_id="after"))
        await until(lambda: len(store.lines) == 11, "the receiver to catch up")
        assert store.seqs() == list(range(1, 12))  # a refused entry spent no seq
        assert orjson.loads(store.lines[-1])["request"]["id"] == "after"
        assert store.verify().ok
    finally:
        rx.stop()


async def test_a_reconnect_resends_only_unacknowledged_lines_byte_for_byte() -> None:
    store = Store()
    first = Receiver(store, ack_upto=3)  # stores five lines, acknowledges three, then goes away
    device = SocketDevice("sock/", {"address": f"127.0.0.1:{first.port}", "ack": "true", "write_timeout": "1s"})
    await device.open()
    try:
        for n in range(1, 6):
            await device.write(entry(n))
        await until(lambda: device.owed == 2, "acknowledgements up to seq 3")
        first.stop()
        second = Receiver(store, first.port)
        try:
            await device.write(entry(6))
            await until(lambda: len(second.received) == 3 and device.owed == 0, "the re-send and its acknowledgement")
            assert [orjson.loads(raw)["seq"] for raw in second.received] == [4, 5, 6]
            assert second.received[:2] == first.received[3:5]  # the same lines, not new ones under old seqs
            assert store.seqs() == [1, 2, 3, 4, 5, 6]
            result = store.verify()
            assert result.ok and result.entries == 6 and not result.findings
        finally:
            second.stop()
    finally:
        await device.close()


async def test_a_naive_receiver_gets_an_exact_duplicate_and_verify_says_so() -> None:
    store = Store(dedup=False)
    first = Receiver(store, ack_upto=4)
    device = SocketDevice("sock/", {"address": f"127.0.0.1:{first.port}", "ack": "true", "write_timeout": "1s"})
    await device.open()
    try:
        for n in range(1, 6):
            await device.write(entry(n))
        await until(lambda: device.owed == 1, "acknowledgements up to seq 4")
        first.stop()
        second = Receiver(store, first.port)
        try:
            await device.write(entry(6))
            await until(lambda: device.owed == 0, "the re-send and its acknowledgement")
        finally:
            second.stop()
    finally:
        await device.close()
    assert store.seqs() == [1, 2, 3, 4, 5, 5, 6]
    result = store.verify()
    assert result.ok and result.entries == 6 and result.findings == ["line 6: duplicate of seq 5 ignored"]


def test_requests_are_refused_while_the_receiver_does_not_acknowledge(server: StrongroomServer) -> None:
    store = Store()
    rx = Receiver(store, reading=False)
    try:
        client = server.client()
        options = {"address": f"127.0.0.1:{rx.port}", "ack": "true", "max_unacked": "6", "write_timeout": "500ms"}
        client.sys.enable_audit_device("socket", options=options, path="pipe")
        statuses = []
        with server.http() as http:
            for i in range(8):
                answer = http.post(f"/v1/secret/data/stalled/{i}", json={"data": {"v": str(i)}})
                statuses.append(answer.status_code)
                if answer.status_code >= 500:
                    assert answer.json()["errors"]
                    break
        assert statuses[-1] >= 500 and len(statuses) <= 4, statuses
        refused = len(statuses) - 1

        rx.reading.set()
        wait_for(lambda: server.http().get("/v1/sys/seal-status").status_code == 200, message="server up")
        with server.http() as http:
            # the refused write changed nothing; once acknowledged again, requests go through
            wait_for(lambda: http.get(f"/v1/secret/data/stalled/{refused}").status_code == 404, message="recovery")
            assert http.post("/v1/secret/data/stalled/after", json={"data": {"v": "x"}}).status_code == 200
        wait_for(lambda: any(b"stalled/after" in line for line in store.lines), message="the entries to arrive")
        assert store.verify().ok
    finally:
        rx.stop()


def test_bad_ack_options_are_refused(server: StrongroomServer) -> None:
    with server.http() as http:
        for options in ({"ack": "maybe"}, {"max_unacked": "0"}, {"max_unacked": "lots"}):
            body = {"type": "socket", "options": {"address": "127.0.0.1:9", **options}}
            answer = http.put("/v1/sys/audit/bad", json=body)
            assert answer.status_code == 400 and answer.json()["errors"], answer.text
        assert "bad/" not in http.get("/v1/sys/audit").json()["data"]
