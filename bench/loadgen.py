"""A small asyncio HTTP/1.1 keep-alive load generator.

General-purpose clients (aiohttp, httpx) spend more CPU per request than the server under test does, so on a 2-core
machine they, not the server, would set the ceiling. This client keeps one connection per worker, writes a
pre-encoded request and reads exactly one response (status line, ``content-length``), nothing more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

RequestFactory = Callable[[], tuple[str, str, bytes | None]]  # method, path, JSON body


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    elapsed: float = 0.0


class _Conn:
    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    async def request(self, method: str, path: str, body: bytes | None) -> int:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        payload = body or b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.extra}"
            f"Content-Length: {len(payload)}\r\n"
            + ("Content-Type: application/json\r\n" if body is not None else "")
            + "\r\n"
        )
        self.writer.write(head.encode() + payload)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:].strip())
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def drive(addr: str, headers: dict[str, str], make_request: RequestFactory, concurrency: int,
                duration: float) -> Stats:
    """Run ``concurrency`` workers, each on its own keep-alive connection, for ``duration`` seconds."""
    url = urlsplit(addr)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    stats = Stats()
    latencies = stats.latencies
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        conn = _Conn(host, port, headers)
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                method, path, body = make_request()
                try:
                    status = await conn.request(method, path, body)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    conn.close()
                    status = 599
                latencies.append(time.perf_counter() - t0)
                if status < 400:
                    stats.ok += 1
                else:
                    stats.failed += 1
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    stats.elapsed = time.perf_counter() - start
    return stats
