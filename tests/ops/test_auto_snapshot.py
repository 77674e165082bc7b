"""Scheduled snapshots: configuration over Vault's snapshot-auto API, files in a local directory, status, metrics."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StrongroomServer, wait_for


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    server = StrongroomServer(tmp_path_factory.mktemp("auto-snap")).start()
    yield server
    server.stop()


def snaps(directory: Path, prefix: str) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith(prefix + "-") and p.name.endswith(".snap"))


def test_scheduled_snapshots_are_written_rotated_and_reported(srv: StrongroomServer, tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    with srv.http() as http:
        resp = http.post(
            "/v1/sys/storage/raft/snapshot-auto/config/hourly",
            json={"interval": "1s", "retain": 2, "path_prefix": str(directory), "file_prefix": "sr",
                  "storage_type": "local"},
        )
        assert resp.status_code == 204, resp.text
        cfg = http.get("/v1/sys/storage/snapshot-auto/config/hourly").json()["data"]
        assert cfg == {"interval": 1, "retain": 2, "path_prefix": str(directory), "file_prefix": "sr",
                       "storage_type": "local", "local_max_space": 0}
        assert http.request("LIST", "/v1/sys/storage/snapshot-auto/config").json()["data"]["keys"] == ["hourly"]

        def taken() -> dict:
            st = http.get("/v1/sys/storage/raft/snapshot-auto/status/hourly").json()["data"]
            return st if st["last_snapshot_url"] and st["consecutive_errors"] == 0 else {}

        status = wait_for(taken, timeout=30, message="a scheduled snapshot")
        assert status["last_snapshot_error"] == "" and status["next_snapshot_start"]
        first = Path(status["last_snapshot_url"])
        assert first.parent == directory and first.stat().st_mode & 0o777 == 0o600
        with tarfile.open(fileobj=io.BytesIO(first.read_bytes()), mode="r:gz") as tar:
            meta = json.loads(tar.extractfile("meta.json").read())  # type: ignore[union-attr]
        assert meta["format"] == "strongroom-snapshot"

        # more snapshots come, only the newest two are kept
        wait_for(lambda: not first.exists() and len(snaps(directory, "sr")) == 2, timeout=30,
                 message="rotation down to retain=2")
        metrics = http.get("/v1/sys/metrics", params={"format": "prometheus"}).text
        line = next(ln for ln in metrics.splitlines() if ln.startswith("vault_autosnapshots_last_success_time{"))
        assert 'snapshot_config_name="hourly"' in line and float(line.split()[-1]) > 1.7e9

        assert http.delete("/v1/sys/storage/snapshot-auto/config/hourly").status_code == 204
        assert http.get("/v1/sys/storage/snapshot-auto/config/hourly").status_code == 404
        assert http.get("/v1/sys/storage/snapshot-auto/status/hourly").status_code == 404


def test_local_max_space_is_enforced(srv: StrongroomServer, tmp_path: Path) -> None:
    with srv.http() as http:
        resp = http.post(
            "/v1/sys/storage/snapshot-auto/config/tiny",
            json={"interval": 1, "path_prefix": str(tmp_path), "storage_type": "local", "local_max_space": 100},
        )
        assert resp.status_code == 204, resp.text

        def failed() -> dict:
            st = http.get("/v1/sys/storage/snapshot-auto/status/tiny").json()["data"]
            return st if st["consecutive_errors"] >= 1 else {}

        st = wait_for(failed, timeout=30, message="a refused snapshot")
        assert "local_max_space" in st["last_snapshot_error"]
        assert snaps(tmp_path, "vault-snapshot") == []
        http.delete("/v1/sys/storage/snapshot-auto/config/tiny")


def test_bad_configurations_are_refused(srv: StrongroomServer, tmp_path: Path) -> None:
    good = {"interval": "1h", "path_prefix": str(tmp_path), "storage_type": "local"}
    bad = [
        ({**good, "storage_type": "aws-s3"}, "storage_type"),
        ({k: v for k, v in good.items() if k != "storage_type"}, "storage_type"),
        ({**good, "path_prefix": "relative/dir"}, "path_prefix"),
        ({k: v for k, v in good.items() if k != "interval"}, "interval"),
        ({**good, "interval": "soon"}, "interval"),
        ({**good, "retain": 0}, "retain"),
        ({**good, "file_prefix": "../escape"}, "file_prefix"),
    ]
    with srv.http() as http:
        for body, word in bad:
            resp = http.post("/v1/sys/storage/snapshot-auto/config/broken", json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert word in resp.json()["errors"][0], (body, resp.text)
        assert http.get("/v1/sys/storage/snapshot-auto/config/broken").status_code == 404
        token = srv.client().auth.token.create(policies=["default"])["auth"]["client_token"]
        denied = srv.http(token).post("/v1/sys/storage/snapshot-auto/config/x", json=good)
        assert denied.status_code == 403
    assert not os.listdir(tmp_path)
