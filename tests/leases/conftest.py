from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from leases.helpers import Clock, FakeBackend
from strongroom import crypto
from strongroom.core.barrier import Barrier, BarrierView
from strongroom.core.expiration import Backoff, ExpirationManager
from strongroom.storage.memory import InMemoryStorage


@pytest.fixture
async def barrier() -> Barrier:
    b = Barrier(InMemoryStorage())
    await b.initialize(crypto.new_key())
    return b


@pytest.fixture
def view(barrier: Barrier) -> BarrierView:
    return barrier.view("sys/expire/")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
async def make_manager(view: BarrierView, backend: FakeBackend) -> AsyncIterator[Callable[..., ExpirationManager]]:
    """Build managers over the shared view; every one is stopped at the end of the test."""
    made: list[ExpirationManager] = []

    def make(now: Callable[[], float] | None = None, **kwargs: object) -> ExpirationManager:
        kwargs.setdefault("backoff", Backoff(base=0.02, cap=0.1, jitter=0.0, max_attempts=3))
        extra = {"now": now} if now is not None else {}
        mgr = ExpirationManager(view, backend.revoke, backend.renew, **extra, **kwargs)  # type: ignore[arg-type]
        made.append(mgr)
        return mgr

    yield make
    for mgr in made:
        await mgr.stop()


@pytest.fixture
async def manager(make_manager: Callable[..., ExpirationManager], clock: Clock) -> ExpirationManager:
    mgr = make_manager(clock)
    await mgr.load()
    return mgr
