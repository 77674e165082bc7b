"""The ``socket`` audit device: newline-delimited JSON over TCP or a Unix socket, for shipping to a log pipeline.

A write waits until the line is handed to the kernel (``drain``) within ``write_timeout``. If the connection is gone,
the device reconnects once and retries; if that fails too, the write fails and the broker fails closed. A peer that
closed its end is noticed before writing (its EOF has arrived); one that vanished silently (host gone, no FIN) may,
as with Vault's socket device, only be noticed on a later write.

Re-sends are idempotent. Once a line is built, its ``seq`` is spent: the line is *owed* until it is delivered, and a
reconnect re-sends owed lines byte for byte (same ``seq``, same ``prev_hash``, same ``mac``), never a different line
under the same ``seq``. A receiver may therefore see a line twice, never two different lines with one ``seq``.

Acknowledged mode (``ack = "true"``). The kernel's socket buffer takes thousands of lines from a receiver that has
stopped reading, so "handed to the kernel" proves little. With ``ack``, the receiver answers on the same connection
with the ``seq`` of each line it has stored, as ASCII digits and a newline (``42\\n``); an answer acknowledges every
line up to that ``seq``. Lines stay owed until acknowledged and are re-sent after a reconnect, so the receiver must
store a line only if its ``seq`` is above the last one it stored (and may simply re-acknowledge it), and must drop a
partial line left at the end of a connection. When ``max_unacked`` lines (default 1024) are owed, a write waits up to
``write_timeout`` for an acknowledgement and otherwise fails: the device fails closed and requests are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from strongroom.audit.device import Device, DeviceConfigError, DeviceWriteError, parse_bool
from strongroom.framework.durations import parse_duration

log = logging.getLogger(__name__)

_DEFAULT_TIMEOUT = 2.0
_DEFAULT_MAX_UNACKED = 1024
_MAX_ACK_LINE = 32


class SocketDevice(Device):
    type = "socket"
    options_allowed = frozenset({"address", "socket_type", "write_timeout", "ack", "max_unacked"})

    def __init__(self, path: str, options: dict[str, str]) -> None:
        super().__init__(path, options)
        self.address = options.get("address", "")
        if not self.address:
            raise DeviceConfigError("address is required")
        self.socket_type = options.get("socket_type", "tcp")
        if self.socket_type not in ("tcp", "unix"):
            raise DeviceConfigError("invalid value for option 'socket_type': must be tcp or unix")
        if self.socket_type == "tcp":
            host, sep, port = self.address.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise DeviceConfigError("invalid value for option 'address': expected host:port")
            self._host, self._port = host.strip("[]"), int(port)
        raw_timeout = options.get("write_timeout", "")
        try:
            self.write_timeout = float(parse_duration(raw_timeout)) if raw_timeout else _DEFAULT_TIMEOUT
        except ValueError:
            raise DeviceConfigError("invalid value for option 'write_timeout': expected a duration") from None
        if self.write_timeout <= 0:
            self.write_timeout = _DEFAULT_TIMEOUT
        self.ack = parse_bool("ack", options.get("ack", "false"))
        raw_max = options.get("max_unacked", "").strip()
        if raw_max and not (raw_max.isdigit() and 1 <= int(raw_max) <= 1_000_000):
            raise DeviceConfigError("invalid value for option 'max_unacked': expected a number from 1 to 1000000")
        self.max_unacked = int(raw_max) if raw_max else _DEFAULT_MAX_UNACKED
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        # (seq, line with newline), oldest first: lines not yet delivered (with ack: not yet acknowledged)
        self._owed: deque[tuple[int, bytes]] = deque()
        self._sent_upto = 0  # highest owed seq written on the current connection
        self._acked = 0
        self._acks = asyncio.Event()
        self._ack_task: asyncio.Task[None] | None = None
        self._resender: asyncio.Task[None] | None = None
        self._last_resend = float("-inf")
        self._closed = False

    @property
    def owed(self) -> int:
        """Lines built but not yet delivered (acknowledged, with ``ack``)."""
        return len(self._owed)

    async def open(self) -> None:
        self.chain.apply_floor()
        self._closed = False
        async with self._lock:
            await self._connect()

    async def close(self) -> None:
        self._closed = True
        async with self._lock:
            if self.ack and self._owed and self._usable():
                # a clean seal gives the receiver a moment to acknowledge what is still in flight
                with contextlib.suppress(DeviceWriteError):
                    await self._wait_for_acks(0)
            await self._disconnect()

    async def _connect(self) -> None:
        try:
            if self.socket_type == "unix":
                coro = asyncio.open_unix_connection(self.address)
            else:
                coro = asyncio.open_connection(self._host, self._port)
            reader, self._writer = await asyncio.wait_for(coro, self.write_timeout)
        except (OSError, TimeoutError) as e:
            self._reader = self._writer = None
            raise DeviceWriteError(
                getattr(e, "errno", None) or 0, f"cannot connect to audit socket {self.address}"
            ) from None
        self._reader = reader
        self._sent_upto = 0  # a new connection has seen nothing: everything owed goes out again
        if self.ack:
            self._ack_task = asyncio.create_task(self._read_acks(reader))

    async def _disconnect(self) -> None:
        task, self._ack_task = self._ack_task, None
        if task is not None:
            task.cancel()
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.5)

    def _usable(self) -> bool:
        # a peer that closed its end (pipeline restarted) has sent EOF: writing would vanish into a dead connection
        return not (self._writer is None or self._writer.is_closing() or self._reader is None or self._reader.at_eof())

    async def _read_acks(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await reader.readline()
            except (OSError, ValueError):
                raw = b""
            if not raw:
                # The receiver went away: what it has not acknowledged goes to its successor now, not at the next
                # write. At most once a second, so a receiver that hangs up on every connection is not hammered.
                now = asyncio.get_running_loop().time()
                if self._owed and not self._closed and now - self._last_resend >= 1.0:
                    self._last_resend = now
                    self._resender = asyncio.create_task(self._resend())
                return
            text = raw.strip()
            if len(text) > _MAX_ACK_LINE or not text.isdigit():
                log.warning("audit socket %s: ignoring an answer that is not a sequence number", self.address)
                continue
            # never past what was written: a confused receiver must not make the device forget owed lines
            seq = min(int(text), self.chain.seq)
            if seq > self._acked:
                self._acked = seq
                while self._owed and self._owed[0][0] <= seq:
                    self._owed.popleft()
                self._acks.set()

    async def _resend(self) -> None:
        async with self._lock:
            if self._owed and not self._closed and not self._usable():
                try:
                    await self._deliver()
                except DeviceWriteError:
                    log.warning("audit socket %s: %d entries owed, receiver unreachable", self.address, len(self._owed))

    async def write(self, entry: dict[str, Any]) -> None:
        async with self._lock:
            if len(self._owed) >= self.max_unacked:
                await self._make_room()
            line = self.chain.line(entry)
            # from here the seq is spent: this exact line is owed until delivered, whatever happens next
            self.chain.advance(line)
            self._owed.append((self.chain.seq, line + b"\n"))
            await self._deliver()

    async def _deliver(self) -> None:
        for attempt in (1, 2):
            try:
                if not self._usable():
                    await self._disconnect()
                    await self._connect()
                assert self._writer is not None
                pending = [line for seq, line in self._owed if seq > self._sent_upto]
                if not pending:
                    return
                last = self._owed[-1][0]
                self._writer.write(b"".join(pending))
                await asyncio.wait_for(self._writer.drain(), self.write_timeout)
                self._sent_upto = last
                if not self.ack:
                    self._owed.clear()  # handed to the kernel is all an unacknowledged device can know
                return
            except (OSError, TimeoutError, DeviceWriteError):
                await self._disconnect()
                if attempt == 2:
                    raise DeviceWriteError(0, f"cannot write to audit socket {self.address}") from None

    async def _make_room(self) -> None:
        if not self.ack:
            # lines owed from failed writes: send them first, or refuse like any failed write
            await self._deliver()
            return
        if not self._usable():
            await self._deliver()  # a new connection re-sends what is owed; its receiver may acknowledge it
        await self._wait_for_acks(self.max_unacked - 1)

    async def _wait_for_acks(self, at_most: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.write_timeout
        while len(self._owed) > at_most:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._ack_task is None or self._ack_task.done():
                raise DeviceWriteError(
                    0, f"audit socket {self.address}: {len(self._owed)} entries are not acknowledged by the receiver"
                )
            self._acks.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acks.wait(), remaining)
