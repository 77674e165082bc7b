"""Upgrade safety: every kept fixture store opens; a store from before versions were recorded is brought forward; a
store of a newer format is refused with a clear message and left as it was."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import tarfile
from pathlib import Path

import pytest

from strongroom.core.core import Core
from strongroom.core.seal import decode_key
from strongroom.ops import storage_format
from strongroom.storage.memory import InMemoryStorage
from strongroom.storage.sqlite import SQLiteStorage
from tests.conftest import StrongroomServer
from tests.ops.conftest import SQLITE_CONFIG, config_server, unseal

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STORES = sorted(FIXTURES.glob("store-v*.db"))


def fixture_copy(db: Path, tmp_path: Path) -> tuple[Path, dict]:
    meta = json.loads(db.with_suffix(".json").read_text())
    target = tmp_path / "store.db"
    shutil.copyfile(db, target)
    return target, meta


def start(tmp_path: Path, db: Path, token: str) -> StrongroomServer:
    return config_server(tmp_path / "srv", SQLITE_CONFIG.format(path=db), token)


def stored_version(srv: StrongroomServer) -> int:
    """The version the running server's store records, as its snapshot header reports it."""
    snap = srv.client().sys.take_raft_snapshot().content
    with tarfile.open(fileobj=io.BytesIO(snap), mode="r:gz") as tar:
        return json.loads(tar.extractfile("meta.json").read())["storage_format_version"]  # type: ignore[union-attr]


async def write_version(db: Path, unseal_key: str, version: int) -> None:
    """Record ``version`` in the store at ``db`` (behind the barrier, as a binary of that version would)."""
    storage = SQLiteStorage(str(db))
    core = Core(storage)
    try:
        await core.submit_unseal_key(decode_key(unseal_key))
        await storage_format.record(core.barrier, version)
        await core.seal()
    finally:
        await storage.close()


def test_a_fixture_exists_for_the_current_version() -> None:
    assert FIXTURES / f"store-v{storage_format.CURRENT}.db" in STORES


@pytest.mark.parametrize("db", STORES, ids=lambda p: p.stem)
def test_every_kept_fixture_opens_and_reads(db: Path, tmp_path: Path) -> None:
    copy, meta = fixture_copy(db, tmp_path)
    srv = start(tmp_path, copy, meta["root_token"])
    try:
        assert unseal(srv, meta["unseal_key"]).json()["sealed"] is False
        client = srv.client()
        for path, data in meta["secrets"].items():
            assert client.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)["data"]["data"] == data
        for path, versions in meta["versions"].items():
            for version, data in versions.items():
                got = client.secrets.kv.v2.read_secret_version(
                    path, version=int(version), raise_on_deleted_version=True
                )
                assert got["data"]["data"] == data
        assert set(meta["policies"]) <= set(client.sys.list_acl_policies()["data"]["keys"])
        client.secrets.kv.v2.create_or_update_secret("after/upgrade", secret={"data": "new"})
        assert stored_version(srv) == storage_format.CURRENT
    finally:
        srv.stop()


def test_a_store_without_a_version_record_is_brought_forward(tmp_path: Path) -> None:
    copy, meta = fixture_copy(FIXTURES / "store-v1.db", tmp_path)
    with sqlite3.connect(copy) as conn:  # as every store written before the version was recorded
        conn.execute("DELETE FROM entries WHERE key = ?", (storage_format.FORMAT_PATH,))
    srv = start(tmp_path, copy, meta["root_token"])
    try:
        assert unseal(srv, meta["unseal_key"]).json()["sealed"] is False
        secret = srv.client().secrets.kv.v2.read_secret_version("k8s/default/s-emoji/db-password/2026-11-26",
                                                                raise_on_deleted_version=True)
        assert secret["data"]["data"] == {"data": "hunter2"}
        assert stored_version(srv) == 1
    finally:
        srv.stop()


async def test_an_older_binary_refuses_a_newer_store_and_changes_nothing(tmp_path: Path) -> None:
    copy, meta = fixture_copy(FIXTURES / "store-v1.db", tmp_path)
    await write_version(copy, meta["unseal_key"], storage_format.CURRENT + 1)
    with sqlite3.connect(copy) as conn:
        before = conn.execute("SELECT key, value FROM entries ORDER BY key").fetchall()
    srv = start(tmp_path, copy, meta["root_token"])
    try:
        resp = unseal(srv, meta["unseal_key"])
        assert resp.status_code >= 400
        message = resp.json()["errors"][0]
        assert f"storage format version {storage_format.CURRENT + 1}" in message
        assert "newer Strongroom" in message and "upgrade the binary" in message
        assert srv.http().get("/v1/sys/seal-status").json()["sealed"] is True
    finally:
        srv.stop()
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT key, value FROM entries ORDER BY key").fetchall() == before


async def test_upgrade_steps_run_in_order_once_each_and_are_idempotent() -> None:
    core = Core(InMemoryStorage(), storage_type="memory")
    init = await core.initialize(1, 1)
    await core.submit_unseal_key(decode_key(init["keys_base64"][0]))
    assert await storage_format.read(core.barrier) == storage_format.CURRENT
    calls: list[int] = []

    async def step(n: int) -> None:
        calls.append(n)

    steps = {0: lambda c: step(0), 1: lambda c: step(1)}
    await storage_format.record(core.barrier, 0)
    assert await storage_format.upgrade(core, steps, target=2) == 0
    assert calls == [0, 1] and await storage_format.read(core.barrier) == 2
    assert await storage_format.upgrade(core, steps, target=2) == 2
    assert calls == [0, 1]  # nothing left to do
    with pytest.raises(storage_format.NewerFormat, match="upgrade the binary"):
        await storage_format.upgrade(core)  # this binary's own target is below what the store now says

    # the real 0 -> 1 step on a store without a record, run twice (a crash between a step and its record): harmless
    await core.barrier.delete(storage_format.FORMAT_PATH, direct=True)
    assert await storage_format.read(core.barrier) == 0
    await storage_format.STEPS[0](core)
    assert await storage_format.upgrade(core) == 0
    assert await storage_format.read(core.barrier) == 1
    await core.seal()
    with pytest.raises(Exception, match="sealed"):
        await storage_format.STEPS[0](core)  # it needs the keyring: never runs on a sealed store
