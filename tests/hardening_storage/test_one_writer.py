"""One storage, one server, one port: a second server on the same SQLite file, the same PostgreSQL table (without
``ha_enabled``) or the same port refuses to start with a one-line error, and the first keeps serving everything."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import hvac
import psycopg
import pytest

from strongroom.core.ha import lock_id
from tests.conftest import STRONGROOM, StrongroomServer, free_port, wait_for
from tests.storage_pg.conftest import fresh_table

SQLITE_CONFIG = """
storage "sqlite" { path = "{storage}" }
listener "tcp" {
  address     = "127.0.0.1:{port}"
  tls_disable = true
}
log_level = "warn"
"""

PG_CONFIG = """
storage "postgresql" {
  connection_url = "%(dsn)s"
  table          = "%(table)s"
}
listener "tcp" {
  address     = "127.0.0.1:{port}"
  tls_disable = true
}
api_addr  = "http://127.0.0.1:{port}"
log_level = "warn"
"""


def start_refused(argv: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "started" not in result.stdout
    assert "Traceback" not in result.stderr
    return result


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def init_unseal(srv: StrongroomServer) -> str:
    client = hvac.Client(url=srv.addr)
    init = client.sys.initialize(secret_shares=1, secret_threshold=1)
    client.sys.submit_unseal_key(init["keys"][0])
    srv.wait_unsealed()
    client.token = init["root_token"]
    client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    return init["root_token"]


def test_a_second_server_with_the_same_sqlite_config_exits_and_nothing_written_is_lost(server_factory) -> None:
    """The issue's reproduction: same config file twice, then many acknowledged writes to one key."""
    first = server_factory(config_text=SQLITE_CONFIG)
    root = init_unseal(first)
    config = str(first.workdir / "server.hcl")

    second = subprocess.Popen(
        [STRONGROOM, "server", "--config", config], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    writes = 300
    client = hvac.Client(url=first.addr, token=root)
    client.secrets.kv.v2.configure(max_versions=writes + 1)  # keep every version
    client.secrets.kv.v2.create_or_update_secret("shared/counter", secret={"value": "seed"})

    def write(i: int) -> int:
        with httpx.Client(base_url=first.addr, headers={"X-Vault-Token": root}, timeout=30) as http:
            answer = http.post("/v1/secret/data/shared/counter", json={"data": {"value": f"v{i}"}})
            assert answer.status_code == 200, answer.text
            return answer.json()["data"]["version"]

    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(write, range(writes)))
    out, err = second.communicate(timeout=90)
    assert second.returncode != 0 and "started" not in out
    assert "in use by another Strongroom process" in err and first.storage_path in err

    # every acknowledged write is a version of its own, and each one still reads back
    assert sorted(versions) == list(range(2, writes + 2))
    assert client.secrets.kv.v2.read_secret_metadata("shared/counter")["data"]["current_version"] == writes + 1
    seen = {
        client.secrets.kv.v2.read_secret_version("shared/counter", version=v)["data"]["data"]["value"]
        for v in range(2, writes + 2)
    }
    assert seen == {f"v{i}" for i in range(writes)}


def test_same_sqlite_storage_on_another_port_or_in_dev_mode_is_refused(server_factory, tmp_path: Path) -> None:
    first = server_factory(config_text=SQLITE_CONFIG)
    root = init_unseal(first)
    other = tmp_path / "other-port.hcl"
    other.write_text(SQLITE_CONFIG.replace("{port}", str(free_port())).replace("{storage}", first.storage_path))
    refused = start_refused([STRONGROOM, "server", "--config", str(other)])
    assert error_line(refused) == (
        f"Error: storage {first.storage_path} is in use by another Strongroom process (pid {first.proc.pid}): "
        "one storage, one server"
    )
    dev = start_refused(
        [STRONGROOM, "server", "--dev", "--dev-listen-address", f"127.0.0.1:{free_port()}",
         "--dev-storage", first.storage_path]  # fmt: skip
    )
    assert "in use by another Strongroom process" in error_line(dev)

    client = hvac.Client(url=first.addr, token=root)
    client.secrets.kv.v2.create_or_update_secret("still/serving", secret={"ok": "yes"})
    assert client.secrets.kv.v2.read_secret_version("still/serving")["data"]["data"] == {"ok": "yes"}

    # the claim dies with its process: after a crash, the same storage starts again
    first.stop(kill=True)
    first.start()
    assert hvac.Client(url=first.addr).sys.is_sealed() is True


def test_a_second_server_on_the_same_port_fails_with_address_in_use(server, tmp_path: Path) -> None:
    refused = start_refused(
        [STRONGROOM, "server", "--dev", "--dev-listen-address", f"127.0.0.1:{server.port}",
         "--dev-storage", str(tmp_path / "elsewhere.db")]  # fmt: skip
    )
    assert error_line(refused) == f"Error: cannot listen on 127.0.0.1:{server.port}: Address already in use"
    # every connection still reaches the one server (its own root token works on each)
    for _ in range(20):
        with server.http() as http:
            assert http.get("/v1/auth/token/lookup-self").status_code == 200


@pytest.mark.postgres
def test_two_postgresql_nodes_without_ha_the_second_refuses_to_start(server_factory, pg_dsn: str) -> None:
    table = fresh_table()
    config = PG_CONFIG % {"dsn": pg_dsn, "table": table}
    first = server_factory(config_text=config)
    root = init_unseal(first)

    second_config = first.workdir / "second.hcl"
    second_config.write_text(config.replace("{port}", str(free_port())))
    refused = start_refused([STRONGROOM, "server", "--config", str(second_config)])
    line = error_line(refused)
    assert f"PostgreSQL storage table {table} is in use by another Strongroom node" in line
    assert first.addr in line and "without ha_enabled" in line

    client = hvac.Client(url=first.addr, token=root)
    client.secrets.kv.v2.create_or_update_secret("pg/one", secret={"v": "1"})
    assert client.secrets.kv.v2.read_secret_version("pg/one")["data"]["data"] == {"v": "1"}
    assert httpx.get(f"{first.addr}/v1/sys/leader", timeout=5).json()["ha_enabled"] is False

    # a claim that lapses (the database ended its session) stops the node serving until it holds the claim again
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND classid = ((%(k)s::bigint >> 32) & 4294967295)::oid AND objid = (%(k)s::bigint & 4294967295)::oid",
            {"k": lock_id(table)},
        ).fetchall()
    assert len(ended) == 1
    health = lambda: httpx.get(f"{first.addr}/v1/sys/health", timeout=5).status_code  # noqa: E731
    wait_for(lambda: health() == 429, timeout=10, message="the node to stop serving without its claim")
    wait_for(lambda: health() == 200, timeout=20, message="the node to serve again once it holds the claim")
    assert client.secrets.kv.v2.read_secret_version("pg/one")["data"]["data"] == {"v": "1"}

    # the claim ends with the process: another node may take the table then
    first.stop()
    third = server_factory(config_text=config)
    assert hvac.Client(url=third.addr).sys.is_sealed() is True
