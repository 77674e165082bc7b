"""The ``socket`` audit device: newline-delimited JSON over TCP or a Unix socket, for shipping to a log pipeline.

A write waits until the line is handed to the kernel (``drain``) within ``write_timeout``. If the connection is gone,
the device reconnects once and retries; if that fails too, the write fails and the broker fails closed. A peer that
closed its end is noticed before writing (its EOF has arrived); one that vanished silently (host gone, no FIN) may,
as with Vault's socket device, only be noticed on a later write.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from strongroom.audit.device import Device, DeviceConfigError, DeviceWriteError
from strongroom.framework.durations import parse_duration

_DEFAULT_TIMEOUT = 2.0


class SocketDevice(Device):
    type = "socket"
    options_allowed = frozenset({"address", "socket_type", "write_timeout"})

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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self.chain.apply_floor()
        async with self._lock:
            await self._connect()

    async def close(self) -> None:
        async with self._lock:
            await self._disconnect()

    async def _connect(self) -> None:
        try:
            if self.socket_type == "unix":
                coro = asyncio.open_unix_connection(self.address)
            else:
                coro = asyncio.open_connection(self._host, self._port)
            self._reader, self._writer = await asyncio.wait_for(coro, self.write_timeout)
        except (OSError, TimeoutError) as e:
            self._reader = self._writer = None
            raise DeviceWriteError(
                getattr(e, "errno", None) or 0, f"cannot connect to audit socket {self.address}"
            ) from None

    async def _disconnect(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.5)

    def _usable(self) -> bool:
        # a peer that closed its end (pipeline restarted) has sent EOF: writing would vanish into a dead connection
        return not (self._writer is None or self._writer.is_closing() or self._reader is None or self._reader.at_eof())

    async def write(self, entry: dict[str, Any]) -> None:
        async with self._lock:
            line = self.chain.line(entry)
            data = line + b"\n"
            for attempt in (1, 2):
                try:
                    if not self._usable():
                        await self._disconnect()
                        await self._connect()
                    assert self._writer is not None
                    self._writer.write(data)
                    await asyncio.wait_for(self._writer.drain(), self.write_timeout)
                    break
                except (OSError, TimeoutError, DeviceWriteError):
                    await self._disconnect()
                    if attempt == 2:
                        raise DeviceWriteError(0, f"cannot write to audit socket {self.address}") from None
            self.chain.advance(line)
