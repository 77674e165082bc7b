"""Servers for the operations tests: dev servers (SQLite), servers from a configuration file, and PostgreSQL through
the storage tests' ``pg_dsn`` (``STRONGROOM_TEST_POSTGRES`` or a node started by ``scripts/postgres-node``)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import StrongroomServer, wait_for
from tests.storage_pg.conftest import opener, pg_dsn  # noqa: F401 - the fixtures, shared with this folder

SQLITE_CONFIG = (
    'storage "sqlite" {{ path = "{path}" }}\n'
    'listener "tcp" {{ address = "127.0.0.1:{{port}}"\n tls_disable = true }}\n'
)
PG_CONFIG = (
    'storage "postgresql" {{ connection_url = "{dsn}"\n table = "{table}" }}\n'
    'listener "tcp" {{ address = "127.0.0.1:{{port}}"\n tls_disable = true }}\n'
)


def config_server(workdir: Path, config_text: str, root_token: str) -> StrongroomServer:
    workdir.mkdir(parents=True, exist_ok=True)
    return StrongroomServer(workdir, config_text=config_text, root_token=root_token).start()


def unseal(srv: StrongroomServer, key: str) -> httpx.Response:
    resp = httpx.put(f"{srv.addr}/v1/sys/unseal", json={"key": key}, timeout=30)
    if resp.status_code == 200:
        srv.wait_unsealed()
    return resp


def wait_sealed(srv: StrongroomServer) -> None:
    wait_for(
        lambda: httpx.get(f"{srv.addr}/v1/sys/seal-status", timeout=2).json()["sealed"] is True,
        timeout=15,
        message="sealed",
    )
