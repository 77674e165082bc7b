"""Module-scoped dev servers for the pki tests, and helpers to run Debian's ``openssl`` on certificates."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StrongroomServer


@pytest.fixture(scope="module")
def pki_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    srv = StrongroomServer(tmp_path_factory.mktemp("pki-server")).start()
    yield srv
    srv.stop()


def openssl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the openssl CLI; a missing binary is a failure, not a skip."""
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def write(path: Path, text: str) -> str:
    path.write_text(text if text.endswith("\n") else text + "\n")
    return str(path)
