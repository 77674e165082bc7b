"""A real PostgreSQL server for the change log tests (``scripts/postgres-node``, as ``tests/storage_pg`` does), unless
CI names one with ``STRONGROOM_TEST_POSTGRES``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _postgres_node(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "postgres-node"), *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/postgres-node {args[0]} failed:\n{result.stderr[-4000:]}", pytrace=False)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("STRONGROOM_TEST_POSTGRES")
    if given:
        yield given
        return
    directory = tmp_path_factory.mktemp("scaleout-postgres")
    dsn = _postgres_node("start", str(directory)).splitlines()[-1]
    try:
        yield dsn
    finally:
        _postgres_node("stop", str(directory))
