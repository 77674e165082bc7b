"""Storage and barrier: durable, encrypted at rest, path-bound."""

from __future__ import annotations

import sqlite3

import hvac
import pytest

from strongroom import crypto
from strongroom.core.barrier import Barrier, BarrierError
from strongroom.storage.memory import InMemoryStorage
from strongroom.storage.sqlite import SQLiteStorage


def test_secret_bytes_never_appear_in_the_sqlite_file(server):
    client = server.client()
    marker = "PLAINTEXT-MARKER-" + crypto.random_hex(8)
    client.secrets.kv.v2.create_or_update_secret("scan/me", secret={"password": marker})
    token = client.auth.token.create(policies=["default"])["auth"]["client_token"]
    server.stop()  # make sure everything is on disk, WAL included
    blobs = b""
    for suffix in ("", "-wal", "-shm"):
        try:
            with open(server.storage_path + suffix, "rb") as fh:
                blobs += fh.read()
        except FileNotFoundError:
            pass
    assert len(blobs) > 0
    assert marker.encode() not in blobs
    assert token.encode() not in blobs
    assert token[4:].encode() not in blobs
    assert server.root_token.encode() not in blobs


def test_data_survives_restart_and_kill_9(server):
    client = server.client()
    client.secrets.kv.v2.create_or_update_secret("durable/a", secret={"n": "1"})
    server.restart()
    assert server.client().secrets.kv.v2.read_secret_version("durable/a")["data"]["data"] == {"n": "1"}
    server.client().secrets.kv.v2.create_or_update_secret("durable/b", secret={"n": "2"})
    server.restart(kill=True)  # SIGKILL: only what was acknowledged, and all of it
    assert server.client().secrets.kv.v2.read_secret_version("durable/b")["data"]["data"] == {"n": "2"}


def test_every_row_is_ciphertext_bound_to_its_path(server):
    client = server.client()
    client.secrets.kv.v2.create_or_update_secret("swap/one", secret={"v": "one"})
    client.secrets.kv.v2.create_or_update_secret("swap/two", secret={"v": "two"})
    server.stop()
    conn = sqlite3.connect(server.storage_path)
    rows = conn.execute("SELECT key, value FROM entries").fetchall()
    plain = [k for k, v in rows if not (v[:1] == b"\x01" or k in ("core/seal-config", "core/root-key", "core/keyring"))]
    assert plain == []
    # swap the ciphertexts of two KV versions: each must now fail to authenticate rather than show the other's data
    versions = sorted((k, v) for k, v in rows if "/versions/" in k or "/data/" in k or "version" in k)
    assert len(versions) >= 2
    (k1, v1), (k2, v2) = versions[0], versions[1]
    conn.execute("UPDATE entries SET value=? WHERE key=?", (v2, k1))
    conn.execute("UPDATE entries SET value=? WHERE key=?", (v1, k2))
    conn.commit()
    conn.close()
    server.start()
    client = server.client()
    with pytest.raises(hvac.exceptions.VaultError):
        for path in ("swap/one", "swap/two"):
            client.secrets.kv.v2.read_secret_version(path)


async def test_barrier_refuses_a_ciphertext_moved_to_another_path():
    storage = InMemoryStorage()
    barrier = Barrier(storage)
    await barrier.initialize(crypto.new_key())
    await barrier.put("a/x", b"secret-x")
    blob = await storage.get("a/x")
    assert blob is not None and b"secret-x" not in blob
    await storage.put("a/y", blob)
    barrier._cache.clear()
    with pytest.raises(BarrierError):
        await barrier.get("a/y")
    assert await barrier.get("a/x") == b"secret-x"


async def test_barrier_keyring_needs_the_root_key():
    storage = InMemoryStorage()
    root = crypto.new_key()
    barrier = Barrier(storage)
    await barrier.initialize(root)
    await barrier.put("k", b"v")
    barrier.seal()
    with pytest.raises(BarrierError):
        await Barrier(storage).unseal(crypto.new_key())
    fresh = Barrier(storage)
    await fresh.unseal(root)
    assert await fresh.get("k") == b"v"


async def test_sqlite_lists_children_page_by_page(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "s.db"))
    try:
        for i in range(30):
            await storage.put(f"p/key-{i:02d}", b"x")
        for i in range(5):
            await storage.put(f"p/folder-{i}/deep/er", b"x")
        first = await storage.list("p/", limit=10)
        assert first[:5] == [f"folder-{i}/" for i in range(5)]
        rest = await storage.list("p/", after=first[-1])
        assert len(first) + len(rest) == 35
        assert await storage.list("p/folder-1/") == ["deep/"]
    finally:
        await storage.close()


async def test_sqlite_transaction_check_and_set_applies_nothing_on_mismatch(tmp_path):
    from strongroom.storage.base import CheckAndSetError, TxnOp

    storage = SQLiteStorage(str(tmp_path / "s.db"))
    try:
        await storage.put("a", b"1")
        with pytest.raises(CheckAndSetError):
            await storage.transaction([TxnOp("check", "a", b"2"), TxnOp("put", "b", b"new")])
        assert await storage.get("b") is None
        await storage.transaction([TxnOp("check", "a", b"1"), TxnOp("put", "b", b"new")])
        assert await storage.get("b") == b"new"
    finally:
        await storage.close()


def test_shamir_split_combine_any_threshold_subset():
    secret = crypto.new_key()
    shares = crypto.shamir_split(secret, 5, 3)
    import itertools

    for combo in itertools.combinations(shares, 3):
        assert crypto.shamir_combine(list(combo)) == secret
    assert crypto.shamir_combine(shares[:2]) != secret
