"""The one backoff formula: exponential growth to a cap, spread by a random factor so a fleet does not retry in step.

Every retry loop in Strongroom (the broker's delivery queue, the client library's reads and lease renewals, the lease
manager's revocations, the ServiceAccount watch, the database plugins' transaction retries) asks this module for its
next delay instead of writing its own formula. Jitter is not secret; ``random`` is enough.
"""

from __future__ import annotations

import random
from collections.abc import Callable

# An exponent beyond this already exceeds any cap; clamping keeps 2**n from overflowing a float.
_MAX_EXPONENT = 60

# Common spreads, as (low, high) factors of the capped step.
FULL_JITTER = (0.0, 1.0)  # AWS's "full jitter": best at spreading many clients after an outage
HALF_JITTER = (0.5, 1.0)  # at least half the step: a receiver that is down gets real rest


def delay(
    attempt: int,
    *,
    base: float,
    cap: float | None = None,
    jitter: tuple[float, float] = HALF_JITTER,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 = the first retry): ``min(cap, base·2^attempt)`` × a
    uniform factor from ``jitter``. Never negative."""
    step = base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT)
    if cap is not None:
        step = min(cap, step)
    low, high = jitter
    return max(0.0, step * (uniform(low, high) if low != high else low))
