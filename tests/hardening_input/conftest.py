"""One dev server for the input-hardening tests, with a file audit device, shared by a module's tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StrongroomServer


class Audited:
    def __init__(self, server: StrongroomServer, audit_log: Path) -> None:
        self.server = server
        self.audit_log = audit_log

    def audit_text(self) -> str:
        return self.audit_log.read_text(errors="replace") if self.audit_log.exists() else ""

    def audit_entries(self) -> list[dict]:
        return [json.loads(line) for line in self.audit_text().splitlines() if line.strip()]

    def server_log(self) -> str:
        return self.server.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    workdir = tmp_path_factory.mktemp("hardening")
    server = StrongroomServer(workdir).start()
    audit_log = workdir / "audit.log"
    try:
        with server.http() as http:
            r = http.post("/v1/sys/audit/file", json={"type": "file", "options": {"file_path": str(audit_log)}})
            assert r.status_code == 204, r.text
        yield Audited(server, audit_log)
    finally:
        server.stop()
