"""The one backoff formula every retry loop uses (broker delivery, client library, lease revocation, SA watch)."""

from __future__ import annotations

from strongroom import backoff
from strongroom.broker.retry import RetryQueue
from strongroom.core.expiration import Backoff
from strongroom.secretstore.database import backoff_delay
from strongroom.secretstore.engine import backoff as read_backoff


def test_delays_grow_to_the_cap_within_their_jitter_and_never_overflow():
    for attempt in range(0, 12):
        step = min(30.0, 0.5 * 2**attempt)
        for _ in range(50):
            assert step * 0.5 <= backoff.delay(attempt, base=0.5, cap=30.0) <= step
            assert 0.0 <= backoff.delay(attempt, base=0.5, cap=30.0, jitter=backoff.FULL_JITTER) <= step
    assert backoff.delay(10**6, base=1.0, cap=60.0) <= 60.0  # a long outage does not overflow a float
    assert backoff.delay(-3, base=2.0, cap=60.0, jitter=(1.0, 1.0)) == 2.0


def test_callers_keep_their_schedules():
    assert Backoff(base=1.0, cap=300.0, jitter=0.0).delay(1) == 1.0  # revocation: attempts count from 1
    assert Backoff(base=1.0, cap=300.0, jitter=0.0).delay(4) == 8.0
    assert Backoff(base=1.0, cap=300.0, jitter=0.0).delay(40) == 300.0
    assert all(5.0 <= backoff_delay(1, 10.0, 300.0) <= 10.0 for _ in range(50))  # renewal: from 1 as well
    assert all(10.0 <= backoff_delay(2, 10.0, 300.0) <= 20.0 for _ in range(50))
    assert all(0.0 <= read_backoff(3, 0.2, 5.0) <= 1.6 for _ in range(50))


async def test_the_broker_queue_gives_up_after_its_attempts():
    failures: list[str] = []

    async def broken(item: object) -> None:
        raise ConnectionError("receiver down")

    queue = RetryQueue("t", broken, attempts=3, base_delay=0.001, max_delay=0.002,
                       on_give_up=lambda item, why: failures.append(why))
    await queue._deliver("event")
    assert failures == ["ConnectionError"] and queue.failed == 1 and queue.delivered == 0
