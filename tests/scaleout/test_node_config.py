"""``workers`` in the configuration and on the command line: bad values and unsupported storage are refused clearly,
before anything starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import STRONGROOM


def _server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STRONGROOM, "server", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("value", ["0", "-1", "257", '"two"', "true"])
def test_a_bad_workers_value_is_refused(tmp_path: Path, value: str) -> None:
    cfg = tmp_path / "server.hcl"
    cfg.write_text(
        f'storage "sqlite" {{ path = "{tmp_path / "s.db"}" }}\n'
        'listener "tcp" { address = "127.0.0.1:8299"\n tls_disable = true }\n'
        f"workers = {value}\n"
    )
    result = _server("--config", str(cfg), "--check")
    assert result.returncode == 1
    assert "workers must be a whole number from 1 to 256" in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_workers_on_the_command_line_are_range_checked(tmp_path: Path) -> None:
    result = _server("--dev", "--dev-storage", str(tmp_path / "s.db"), "--workers", "0")
    assert result.returncode == 2 and "--workers" in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_workers_with_postgresql_storage_are_refused_until_supported(tmp_path: Path) -> None:
    cfg = tmp_path / "server.hcl"
    cfg.write_text(
        'storage "postgresql" { connection_url = "postgresql://nobody@127.0.0.1:1/none" }\n'
        'listener "tcp" { address = "127.0.0.1:8299"\n tls_disable = true }\n'
        "workers = 2\n"
    )
    result = _server("--config", str(cfg))
    assert result.returncode == 1
    assert "workers > 1 needs SQLite storage" in result.stderr
