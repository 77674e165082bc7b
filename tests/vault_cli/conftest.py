"""One dev server per test module (these tests share it; each uses its own mounts and keys)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StrongroomServer

LEASES_DIR = Path(__file__).resolve().parent.parent / "leases"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    # the test-only lease engine of tests/leases (loaded through its sitecustomize) gives remount tests real leases
    path = os.pathsep.join(p for p in (str(LEASES_DIR / "site"), str(LEASES_DIR), os.environ.get("PYTHONPATH")) if p)
    server = StrongroomServer(tmp_path_factory.mktemp("vault-cli"), env={"PYTHONPATH": path}).start()
    yield server
    server.stop()
