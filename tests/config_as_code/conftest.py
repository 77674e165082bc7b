"""A module-scoped dev server with an audit file, and a real PostgreSQL server for database connections.

PostgreSQL is the one CI starts (``STRONGROOM_TEST_POSTGRES=<superuser DSN>``) or one started here by
``scripts/postgres-node`` — the same pattern as ``tests/database/conftest.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StrongroomServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("STRONGROOM_TEST_POSTGRES")
    if given:
        yield given
        return
    directory = tmp_path_factory.mktemp("cac-postgres")
    script = str(REPO / "scripts" / "postgres-node")

    def call(*args: str) -> str:
        result = subprocess.run([script, *args], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"})
        if result.returncode != 0:
            pytest.fail(f"scripts/postgres-node {' '.join(args)} failed:\n{result.stderr[-4000:]}", pytrace=False)
        return result.stdout.strip()

    dsn = call("start", str(directory)).splitlines()[-1]
    try:
        yield dsn
    finally:
        call("stop", str(directory))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    srv = StrongroomServer(tmp_path_factory.mktemp("cac-server")).start()
    audit = srv.workdir / "audit.log"
    r = srv.http().put("/v1/sys/audit/file", json={"type": "file", "options": {"file_path": str(audit)}})
    assert r.status_code in (200, 204), r.text
    srv.audit_path = audit  # type: ignore[attr-defined]
    yield srv
    srv.stop()
