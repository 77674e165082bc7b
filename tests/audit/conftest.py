from __future__ import annotations

import pytest

from strongroom import crypto
from strongroom.audit import AuditBroker
from strongroom.core.barrier import Barrier
from strongroom.storage.memory import InMemoryStorage


@pytest.fixture
async def barrier() -> Barrier:
    b = Barrier(InMemoryStorage())
    await b.initialize(crypto.new_key())
    return b


@pytest.fixture
async def broker(barrier: Barrier):
    b = AuditBroker(barrier.view("sys/audit/"))
    await b.load()
    yield b
    await b.stop()
