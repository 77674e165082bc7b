"""Fixtures: one dev server for the module, the cutting audit device (``cut_audit.CutAudit``) per test, and the real
PostgreSQL fixtures of ``tests/database`` reused."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StrongroomServer
from tests.database.conftest import postgres_admin, postgres_node  # noqa: F401 - the real PostgreSQL fixtures, reused
from tests.hardening_commit.cut_audit import CutAudit


@pytest.fixture
def cut_audit(server_module: StrongroomServer, tmp_path: Path) -> Iterator[CutAudit]:
    """The server's only audit device, for one test; disabled again afterwards."""
    cut = CutAudit(tmp_path / "cut")
    name = f"cut-{secrets.token_hex(3)}"
    http = server_module.http()
    resp = http.put(f"/v1/sys/audit/{name}", json={"type": "file", "options": {"file_path": str(cut.path)}})
    assert resp.status_code == 204, resp.text
    try:
        yield cut
    finally:
        cut.close()
        assert http.delete(f"/v1/sys/audit/{name}").status_code == 204


@pytest.fixture(scope="module")
def server_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    srv = StrongroomServer(tmp_path_factory.mktemp("server")).start()
    try:
        yield srv
    finally:
        srv.stop()
