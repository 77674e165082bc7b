"""Where audit lines come from: a file followed across rotation, a socket device's receiver, a Kafka consumer group.

Every source hands complete lines to ``process(chain_name, raw, chain)`` and reports its position for checkpoints;
``committed()`` is called once a checkpoint holding that position is durable (the socket source acknowledges then,
the Kafka source commits its offsets then), so nothing is acknowledged that a crash could lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from strongroom.detect.chain import ChainCheck

log = logging.getLogger(__name__)

Process = Callable[[str, bytes, ChainCheck], None]
_CHUNK = 1 << 20
_POLL = 0.05


class Source:
    name = ""

    async def run(self, process: Process) -> None:
        raise NotImplementedError

    def positions(self) -> dict[str, dict[str, Any]]:
        return {}

    def committed(self) -> None:
        return None

    def backlog(self) -> int:
        return 0

    async def close(self) -> None:
        return None


def _chain(saved: dict[str, Any] | None, redelivered: bool = False, **keys: str) -> ChainCheck:
    saved = saved or {}
    return ChainCheck(int(saved.get("seq", 0)), str(saved.get("hash", "")), redelivered=redelivered, **keys)


class FileSource(Source):
    """Follows ``path`` like ``tail -F``: a rotated file is read to its end, then the new one from its start."""

    def __init__(self, name: str, path: str, saved: dict[str, Any] | None, on_break: Callable[[str, str], None],
                 start_at_end: bool = False):
        self.name, self.path = name, path
        self.chain = _chain(saved)
        self.ino: int = int((saved or {}).get("ino", 0))
        self.offset: int = int((saved or {}).get("offset", 0))
        if saved is None and start_at_end:
            # a first start on a long history: only what is written from now on (the chain anchors on it)
            with contextlib.suppress(OSError):
                st = os.stat(path)
                self.ino, self.offset = st.st_ino, st.st_size
        self._size = 0
        self._on_break = on_break

    def positions(self) -> dict[str, dict[str, Any]]:
        return {self.name: {"ino": self.ino, "offset": self.offset, "seq": self.chain.seq, "hash": self.chain.hash}}

    def backlog(self) -> int:
        return max(0, self._size - self.offset)

    async def run(self, process: Process) -> None:
        while True:
            try:
                f = open(self.path, "rb")  # noqa: SIM115, ASYNC230 - held across awaits; a local file
            except FileNotFoundError:
                await asyncio.sleep(_POLL * 4)
                continue
            with f:
                st = os.fstat(f.fileno())
                if st.st_ino != self.ino:
                    if self.ino:
                        log.info("audit file %s was rotated; reading the new file from its start", self.path)
                    self.ino, self.offset = st.st_ino, 0
                await self._follow(f, process)

    async def _follow(self, f: Any, process: Process) -> None:
        f.seek(self.offset)
        rest = b""
        while True:
            data = f.read(_CHUNK)
            if data:
                buf = rest + data
                end = buf.rfind(b"\n")
                if end < 0:
                    rest = buf
                    continue
                for raw in buf[:end].split(b"\n"):
                    self.offset += len(raw) + 1
                    if raw:
                        process(self.name, raw, self.chain)
                rest = buf[end + 1 :]
                self._size = os.fstat(f.fileno()).st_size
                await asyncio.sleep(0)
                continue
            size = os.fstat(f.fileno()).st_size
            self._size = size
            if size < self.offset + len(rest):
                self._on_break(self.name, f"the audit file shrank from {self.offset} to {size} bytes while being read: "
                               "lines were removed")
                self.offset, rest = 0, b""
                self.chain.seq, self.chain.hash = 0, ""
                f.seek(0)
                continue
            try:
                st = os.stat(self.path)
                rotated = st.st_ino != self.ino
            except FileNotFoundError:
                rotated = False  # removed, not yet replaced: keep reading the old file
            if rotated:
                # the device no longer writes here: anything left is complete (it writes whole lines)
                data = f.read()
                if not data:
                    return
                f.seek(self.offset + len(rest))
                continue
            await asyncio.sleep(_POLL)


class SocketSource(Source):
    """The receiving end of a ``socket`` audit device (``ack = "true"`` recommended): one line per entry.

    Acknowledges (``<seq>\\n``) only what a durable checkpoint holds. A re-sent line at or below the last stored
    seq is dropped, as the device's protocol asks of a receiver; a partial line left when a connection ends is
    dropped too (the device re-sends it whole).
    """

    def __init__(self, name: str, address: str, socket_type: str, saved: dict[str, Any] | None) -> None:
        self.name, self.address, self.socket_type = name, address, socket_type
        self.chain = _chain(saved, redelivered=True)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None
        self._acked = self.chain.seq
        self._checkpointed = self.chain.seq
        self._process: Process | None = None
        self.bound = ""

    def positions(self) -> dict[str, dict[str, Any]]:
        self._checkpointed = self.chain.seq
        return {self.name: {"seq": self.chain.seq, "hash": self.chain.hash}}

    def committed(self) -> None:
        seq = self._checkpointed
        if seq <= 0:
            return
        self._acked = seq
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.write(f"{seq}\n".encode())

    async def run(self, process: Process) -> None:
        self._process = process
        if self.socket_type == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)
            self._server = await asyncio.start_unix_server(self._serve, self.address, limit=1 << 24)
            self.bound = self.address
        else:
            host, _, port = self.address.rpartition(":")
            self._server = await asyncio.start_server(self._serve, host.strip("[]"), int(port), limit=1 << 24)
            sock = self._server.sockets[0].getsockname()
            self.bound = f"{sock[0]}:{sock[1]}"
        log.info("socket source %s listening on %s", self.name, self.bound)
        async with self._server:
            await self._server.serve_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        assert self._process is not None
        try:
            if self._acked:
                writer.write(f"{self._acked}\n".encode())  # a reconnecting device learns at once what is stored
            while True:
                raw = await reader.readline()
                if not raw.endswith(b"\n"):
                    return  # EOF, possibly after a partial line: the device re-sends it whole
                raw = raw.rstrip(b"\r\n")
                if raw:
                    self._process(self.name, raw, self.chain)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


class KafkaSource(Source):
    """A member of a Kafka consumer group; each partition's chain (``pseq``/``pprev``) is checked separately.

    Offsets are committed to Kafka only after the checkpoint that includes them, so a consumer that dies (or loses a
    partition in a rebalance) hands its successor the entries after the last durable checkpoint; the successor
    re-derives the same alert keys, which the shared outbox refuses a second time.
    """

    def __init__(self, name: str, spec: dict[str, Any], load_position: Callable[[str], dict[str, Any] | None]):
        from confluent_kafka import Consumer

        self.name = name
        self.topic = str(spec["topic"])
        conf: dict[str, Any] = {
            "bootstrap.servers": str(spec["brokers"]),
            "group.id": str(spec.get("group", "strongroom-detect")),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(spec.get("session_timeout_ms", 10000)),
            "heartbeat.interval.ms": 1000,
            **kafka_security(spec),
        }
        self._consumer = Consumer(conf)
        self._load = load_position
        self.chains: dict[int, ChainCheck] = {}
        self.offsets: dict[int, int] = {}
        self._to_commit: dict[int, int] = {}
        self._lag = 0

    def _assign(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            saved = self._load(f"{self.name}:{tp.partition}")
            # what the group re-delivers (offsets are committed after the checkpoint) is known by its offset, not
            # its pseq: a chain that restarts at pseq 1 must still be reported
            self.chains[tp.partition] = _chain(saved, seq_key="pseq", prev_key="pprev")
            self.offsets[tp.partition] = int((saved or {}).get("offset", -1))
        log.info("kafka source %s assigned partitions %s", self.name, sorted(tp.partition for tp in partitions))

    def _revoke(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self.chains.pop(tp.partition, None)
            self.offsets.pop(tp.partition, None)

    def positions(self) -> dict[str, dict[str, Any]]:
        from confluent_kafka import KafkaException, TopicPartition

        self._to_commit = dict(self.offsets)
        lag = 0
        for p in list(self.chains):
            with contextlib.suppress(KafkaException, TypeError):
                # cached: the high watermark librdkafka saw on its last fetch, no broker round trip
                _low, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), cached=True)
                lag += max(0, high - (self.offsets.get(p, -1) + 1))
        self._lag = lag
        return {f"{self.name}:{p}": {"seq": c.seq, "hash": c.hash, "offset": self.offsets.get(p, -1)}
                for p, c in list(self.chains.items())}

    def committed(self) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [
            TopicPartition(self.topic, p, o + 1) for p, o in self._to_commit.items() if p in self.chains and o >= 0
        ]
        if offsets:
            with contextlib.suppress(KafkaException):
                self._consumer.commit(offsets=offsets, asynchronous=True)

    def backlog(self) -> int:
        return self._lag

    async def run(self, process: Process) -> None:
        self._consumer.subscribe([self.topic], on_assign=self._assign, on_revoke=self._revoke)
        while True:
            messages = await asyncio.to_thread(self._consumer.consume, 2000, 0.2)
            for m in messages:
                if m.error() is not None:
                    log.warning("kafka source %s: %s", self.name, m.error())
                    continue
                p, offset = m.partition(), m.offset()
                if p is None or offset is None:
                    continue
                chain = self.chains.get(p)
                if chain is None:
                    continue  # revoked meanwhile
                if offset <= self.offsets.get(p, -1):
                    continue  # re-delivered after a rebalance: already in the checkpoint
                value = m.value()
                if value:
                    process(f"{self.name}:{p}", value, chain)
                self.offsets[p] = offset

    async def close(self) -> None:
        await asyncio.to_thread(self._consumer.close)


def kafka_security(spec: dict[str, Any]) -> dict[str, Any]:
    """librdkafka TLS/SASL settings from the option names the ``kafka`` audit device uses too."""
    out: dict[str, Any] = {}
    names = {
        "security_protocol": "security.protocol",
        "tls_ca_file": "ssl.ca.location",
        "tls_cert_file": "ssl.certificate.location",
        "tls_key_file": "ssl.key.location",
        "sasl_mechanism": "sasl.mechanism",
        "sasl_username": "sasl.username",
        "sasl_password": "sasl.password",
    }
    for ours, theirs in names.items():
        if spec.get(ours):
            out[theirs] = str(spec[ours])
    return out
