"""``strongroom operator migrate``: SQLite to PostgreSQL with Vault's configuration format, refusing a running server
and a non-empty destination, resuming an interrupted run, and a server on the destination reading everything."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from strongroom.ops import migrate as mig
from tests.conftest import STRONGROOM, StrongroomServer
from tests.ops.conftest import PG_CONFIG, config_server, unseal, wait_sealed
from tests.storage_pg.conftest import fresh_table

pytestmark = pytest.mark.postgres

PATHS = 1250
VERSIONS = 4  # 5,000 KV versions in all


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    """A dev server holding PATHS secrets of VERSIONS versions each; still running when the module starts."""
    srv = StrongroomServer(tmp_path_factory.mktemp("migrate-source")).start()

    async def seed() -> None:
        paths = iter(range(PATHS))
        async with httpx.AsyncClient(base_url=srv.addr, headers={"X-Vault-Token": srv.root_token}, timeout=30) as http:

            async def worker() -> None:
                for i in paths:  # one shared iterator: each path is written by one worker, its versions in order
                    for v in range(1, VERSIONS + 1):
                        resp = await http.post(f"/v1/secret/data/m/p{i:05d}", json={"data": {"data": f"p{i}-v{v}"}})
                        assert resp.status_code == 200, resp.text

            await asyncio.gather(*(worker() for _ in range(16)))

    asyncio.run(seed())
    yield srv
    srv.stop()


def write_config(tmp_path: Path, source_db: str, dsn: str, table: str) -> Path:
    cfg = tmp_path / "migrate.hcl"
    cfg.write_text(
        f'storage_source "sqlite" {{\n  path = "{source_db}"\n}}\n'
        f'storage_destination "postgresql" {{\n  connection_url = "{dsn}"\n  table = "{table}"\n}}\n'
        'cluster_addr = "https://127.0.0.1:8201"\n'
    )
    return cfg


def run_migrate(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STRONGROOM, "operator", "migrate", "--config", str(cfg), *args], capture_output=True, text=True, timeout=600
    )


async def test_migrate_sqlite_to_postgresql_resumes_and_verifies(
    populated: StrongroomServer, pg_dsn: str, tmp_path: Path
) -> None:
    table = fresh_table()
    cfg = write_config(tmp_path, populated.storage_path, pg_dsn, table)

    # a server still running on the source: refused, nothing copied
    running = run_migrate(cfg)
    assert running.returncode == 2 and "in use by another Strongroom process" in running.stderr
    populated.stop()

    # an interruption after two pages (a crash, a lost connection) leaves a partial copy ...
    class Interrupted(Exception):
        pass

    last: list[str] = []

    def crash(copied: int, key: str) -> None:
        last.append(key)
        if copied >= 2 * mig.PAGE:
            raise Interrupted

    with pytest.raises(Interrupted):
        await mig.migrate(mig.parse_config(cfg.read_text()), progress=crash)

    # ... which a plain second run refuses to write over
    again = run_migrate(cfg)
    assert again.returncode == 2 and "already holds data" in again.stderr

    resumed = run_migrate(cfg, "--start", last[-1])
    assert resumed.returncode == 0, resumed.stderr
    assert "Success! All of the keys have been migrated" in resumed.stdout

    # a server on the destination opens with the source's keys and reads every version
    srv = config_server(tmp_path / "pg-server", PG_CONFIG.format(dsn=pg_dsn, table=table), populated.root_token)
    try:
        assert unseal(srv, populated.unseal_key).json()["sealed"] is False
        client = srv.client()
        keys = client.secrets.kv.v2.list_secrets("m")["data"]["keys"]
        assert len(keys) == PATHS
        for i in range(0, PATHS, 25):
            for v in range(1, VERSIONS + 1):
                got = client.secrets.kv.v2.read_secret_version(
                    f"m/p{i:05d}", version=v, raise_on_deleted_version=True
                )
                assert got["data"]["data"] == {"data": f"p{i}-v{v}"}
        # snapshot and restore on PostgreSQL storage: the REPEATABLE READ export and the one-transaction replacement
        client.secrets.kv.v2.create_or_update_secret("pg/before", secret={"data": "kept"})
        snap = client.sys.take_raft_snapshot().content
        client.secrets.kv.v2.create_or_update_secret("pg/after", secret={"data": "rolled back"})
        assert client.sys.restore_raft_snapshot(snap).status_code == 204
        wait_sealed(srv)
        assert unseal(srv, populated.unseal_key).json()["sealed"] is False
        assert client.secrets.kv.v2.read_secret_version("pg/before", raise_on_deleted_version=True)["data"]["data"] == {
            "data": "kept"
        }
        assert client.secrets.kv.v2.list_secrets("pg")["data"]["keys"] == ["before"]
        assert len(client.secrets.kv.v2.list_secrets("m")["data"]["keys"]) == PATHS
        # while it runs, the destination cannot be migrated into (or out of) either
        busy = run_migrate(cfg, "--reset")
        assert busy.returncode == 2 and "in use" in busy.stderr
    finally:
        srv.stop()

    # told to, a run empties the destination and copies everything again
    reset = run_migrate(cfg, "--reset")
    assert reset.returncode == 0, reset.stderr
    with sqlite3.connect(populated.storage_path) as conn:
        entries = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    assert entries > PATHS * VERSIONS
    assert f"{entries} copied, {entries} entries verified" in reset.stdout


def test_bad_migration_configurations_are_refused(tmp_path: Path) -> None:
    cases = {
        'storage_source "sqlite" { path = "/x.db" }\n': "storage_destination",
        'storage_source "consul" { path = "/x" }\nstorage_destination "sqlite" { path = "/y.db" }\n': "consul",
        'storage_source "sqlite" { path = "/x.db" }\nstorage_destination "sqlite" { path = "/x.db" }\n': "same",
        'storage_source "sqlite" { nope = 1 }\nstorage_destination "sqlite" { path = "/y.db" }\n': "nope",
        'storage "sqlite" { path = "/x.db" }\n': "unknown stanza",
    }
    for text, word in cases.items():
        cfg = tmp_path / "bad.hcl"
        cfg.write_text(text)
        result = run_migrate(cfg)
        assert result.returncode == 2, text
        assert word in result.stderr, (text, result.stderr)
