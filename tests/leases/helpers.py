"""Shared pieces for the expiration-manager unit tests: a fake clock, a fake backend, polling with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from strongroom.core.expiration import LeaseEntry
from strongroom.core.logical import LogicalError, Response


class Clock:
    """An injectable wall clock that only moves when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeBackend:
    """Stands in for the core's routing to a backend's SecretType callbacks."""

    revoked: list[str] = field(default_factory=list)
    attempts: list[tuple[str, float]] = field(default_factory=list)
    renewals: list[tuple[str, int]] = field(default_factory=list)
    fail_revokes: int = 0  # fail this many revocations, then succeed (-1: fail forever)
    renew_response: Response | None = None
    refuse_renew: str = ""

    async def revoke(self, lease: LeaseEntry) -> None:
        self.attempts.append((lease.lease_id, time.monotonic()))
        if self.fail_revokes != 0:
            if self.fail_revokes > 0:
                self.fail_revokes -= 1
            raise LogicalError("connection refused by database")
        self.revoked.append(lease.lease_id)

    async def renew(self, lease: LeaseEntry, increment: int) -> Response | None:
        self.renewals.append((lease.lease_id, increment))
        if self.refuse_renew:
            raise LogicalError(self.refuse_renew, status=400)
        return self.renew_response


async def until(check: Callable[[], bool | Awaitable[bool]], within: float = 5.0, what: str = "condition") -> None:
    """Poll ``check`` until it holds, failing after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def settle(rounds: int = 50) -> None:
    """Let every ready task run (the scheduler and its jobs) without waiting on the clock."""
    for _ in range(rounds):
        await asyncio.sleep(0)
