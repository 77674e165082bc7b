"""Loaded by test server processes only (PYTHONPATH): registers the test-only ``lease-test`` engine and, when asked,
shortens the revocation retry timings so an HTTP test can watch a lease become irrevocable."""

import os

from strongroom.core import expiration, mounts

mounts.ENGINE_TYPES.setdefault("lease-test", "lease_engine:LeaseTestBackend")
if os.environ.get("STRONGROOM_TEST_FAST_RETRIES"):
    expiration.DEFAULT_BACKOFF = expiration.Backoff(base=0.05, cap=0.2, jitter=0.0, max_attempts=3)
