"""A whole Strongroom server on PostgreSQL storage, started from a configuration file and driven with hvac."""

from __future__ import annotations

import socket
import subprocess

import hvac
import pytest

from tests.conftest import STRONGROOM, free_port
from tests.storage_pg.conftest import admin, fresh_table

pytestmark = pytest.mark.postgres

CONFIG = """
storage "postgresql" {
  connection_url = "%(dsn)s"
  table          = "%(table)s"
}
listener "tcp" {
  address     = "127.0.0.1:{port}"
  tls_disable = true
}
log_level = "warn"
"""


def unseal(client: hvac.Client, keys: list[str]) -> None:
    for key in keys:
        client.sys.submit_unseal_key(key)
    assert client.sys.is_sealed() is False


def test_server_keeps_secrets_in_postgresql_across_a_restart(server_factory, pg_dsn: str) -> None:
    table = fresh_table()
    srv = server_factory(config_text=CONFIG % {"dsn": pg_dsn, "table": table})
    client = hvac.Client(url=srv.addr)
    assert client.sys.is_initialized() is False
    assert client.sys.read_seal_status()["storage_type"] == "postgresql"

    init = client.sys.initialize(secret_shares=3, secret_threshold=2)
    keys, root = init["keys"], init["root_token"]
    unseal(client, keys[:2])
    client.token = root
    client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    client.secrets.kv.v2.create_or_update_secret("payments/db", secret={"password": "pg-stored-s3cret"})
    assert client.secrets.kv.v2.read_secret_version("payments/db")["data"]["data"] == {"password": "pg-stored-s3cret"}

    # what is in the table is barrier ciphertext: the secret's value never appears in the clear
    with admin(pg_dsn) as conn:
        rows = conn.execute(f"SELECT key, value FROM {table}").fetchall()
    assert len(rows) > 5
    assert not any(b"pg-stored-s3cret" in bytes(value) for _, value in rows)

    srv.restart()
    client = hvac.Client(url=srv.addr)
    assert client.sys.is_initialized() is True
    assert client.sys.is_sealed() is True
    unseal(client, [keys[2], keys[0]])
    client.token = root
    assert client.secrets.kv.v2.read_secret_version("payments/db")["data"]["data"] == {"password": "pg-stored-s3cret"}
    assert "payments/" in client.secrets.kv.v2.list_secrets("")["data"]["keys"]


@pytest.mark.parametrize(
    ("url", "table", "message"),
    [
        (
            "postgresql://strongroom:hunter2-pw@127.0.0.1:{closed}/postgres",
            "kv",
            "cannot connect to PostgreSQL storage",
        ),
        ("{dsn}", "kv; DROP TABLE x", "invalid PostgreSQL table name"),
    ],
    ids=["unreachable", "bad-table"],
)
def test_server_refuses_to_start_with_a_clear_error(tmp_path, pg_dsn: str, url: str, table: str, message: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cfg = tmp_path / "server.hcl"
    cfg.write_text(
        CONFIG.replace("{port}", str(free_port())) % {"dsn": url.format(closed=closed, dsn=pg_dsn), "table": table}
    )
    result = subprocess.run([STRONGROOM, "server", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
