"""A background queue that delivers items with retries and backoff, so slow or broken receivers never block a caller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from strongroom import backoff

log = logging.getLogger(__name__)


class RetryQueue:
    def __init__(
        self,
        name: str,
        send: Callable[[Any], Awaitable[None]],
        *,
        attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        on_give_up: Callable[[Any, str], None] | None = None,
        maxsize: int = 10_000,
    ) -> None:
        self.name = name
        self._send = send
        self._attempts = attempts
        self._base = base_delay
        self._max = max_delay
        self._on_give_up = on_give_up
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"retry-{self.name}")

    def submit(self, item: Any) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.failed += 1
            if self._on_give_up:
                self._on_give_up(item, "queue full")

    async def _deliver(self, item: Any) -> None:
        problem = ""
        for attempt in range(self._attempts):
            try:
                await self._send(item)
                self.delivered += 1
                return
            except Exception as exc:  # any failure of the receiver is retried; none may escape into the broker
                problem = type(exc).__name__
                log.warning("%s delivery failed (attempt %d): %s", self.name, attempt + 1, problem)
            await asyncio.sleep(backoff.delay(attempt, base=self._base, cap=self._max))
        self.failed += 1
        if self._on_give_up:
            self._on_give_up(item, problem)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._deliver(item)
            finally:
                self._queue.task_done()

    async def drain(self, seconds: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self._queue.join(), seconds)
        except TimeoutError:
            pass

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
