"""Snapshots of a running server and restoring them: over hvac (Vault's raft snapshot calls), httpx and the CLI."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from tests.conftest import STRONGROOM, StrongroomServer, wait_for
from tests.ops.conftest import unseal, wait_sealed


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    srv = StrongroomServer(tmp_path_factory.mktemp("snap-source")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    srv = StrongroomServer(tmp_path_factory.mktemp("snap-target"), root_token="target-root").start()
    yield srv
    srv.stop()


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def kv_read(client: hvac.Client, path: str) -> dict:
    return client.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)["data"]["data"]


def test_snapshot_is_a_vault_shaped_archive_of_ciphertext(source: StrongroomServer) -> None:
    client = source.client()
    client.secrets.kv.v2.create_or_update_secret("shape/canary", secret={"data": "plaintext-canary-7f3a"})
    resp = client.sys.take_raft_snapshot()
    assert resp.status_code == 200
    files = members(resp.content)
    # Vault's client accepts a snapshot only if SHA256SUMS.sealed is its last, non-empty member
    assert list(files) == ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"]
    assert files["SHA256SUMS.sealed"]
    meta = json.loads(files["meta.json"])
    assert meta["format"] == "strongroom-snapshot" and meta["version"] == 1
    assert meta["storage_format_version"] == 1
    assert meta["keyring_term"] >= 1 and meta["cluster_id"] and meta["seal_fingerprint"]
    assert meta["entries"] > 5
    import hashlib

    assert meta["state_sha256"] == hashlib.sha256(files["state.bin"]).hexdigest()
    assert b"plaintext-canary-7f3a" not in files["state.bin"]
    assert b"plaintext-canary-7f3a" not in gzip.decompress(resp.content)
    # the other spelling answers the same way
    other = source.http().get("/v1/sys/storage/snapshot")
    assert other.status_code == 200 and other.headers["content-type"] == "application/gzip"


def test_snapshot_and_restore_need_sudo(source: StrongroomServer) -> None:
    client = source.client()
    client.sys.create_or_update_policy(
        "snap-no-sudo", 'path "sys/storage/*" { capabilities = ["create", "read", "update"] }'
    )
    token = client.auth.token.create(policies=["snap-no-sudo"])["auth"]["client_token"]
    with source.http(token) as http:
        assert http.get("/v1/sys/storage/raft/snapshot").status_code == 403
        assert http.post("/v1/sys/storage/raft/snapshot", content=b"x").status_code == 403
    assert source.client().sys.read_health_status(method="GET")["sealed"] is False


def test_snapshot_under_write_load_restores_every_acknowledged_write(
    source: StrongroomServer, target: StrongroomServer
) -> None:
    acked: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        client = source.client()
        i = 0
        try:
            while not stop.is_set():
                path, value = f"load/w{n}/k{i:05d}", f"value-{n}-{i}"
                client.secrets.kv.v2.create_or_update_secret(path, secret={"data": value})
                with lock:
                    acked[path] = value
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 150, timeout=60, message="writes under way")
        with lock:
            before = dict(acked)
        snap = source.client().sys.take_raft_snapshot().content
        wait_for(lambda: len(acked) >= len(before) + 30, timeout=60, message="writes after the snapshot")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors

    # the target was initialised with other keys: refused unless forced, and nothing changes
    target.client().secrets.kv.v2.create_or_update_secret("mine", secret={"data": "target-own"})
    refused = target.http().post("/v1/sys/storage/raft/snapshot", content=snap)
    assert refused.status_code == 400
    assert "different set of unseal keys" in refused.json()["errors"][0]
    assert kv_read(target.client(), "mine") == {"data": "target-own"}

    forced = target.client().sys.force_restore_raft_snapshot(snap)
    assert forced.status_code == 204
    wait_sealed(target)
    assert unseal(target, target.unseal_key).status_code == 400  # the target's own key opens nothing now
    assert unseal(target, source.unseal_key).json()["sealed"] is False
    restored = target.client(source.root_token)
    for path, value in before.items():
        assert kv_read(restored, path) == {"data": value}
    # consistent: whatever else it holds is a write that really happened, whole
    for n in range(3):
        keys = restored.secrets.kv.v2.list_secrets(f"load/w{n}")["data"]["keys"]
        for key in keys:
            assert kv_read(restored, f"load/w{n}/{key}") == {"data": acked[f"load/w{n}/{key}"]}
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv_read(restored, "mine")


@pytest.fixture
def audited(server_factory, tmp_path: Path) -> StrongroomServer:  # noqa: ANN001
    srv = server_factory()
    srv.client().sys.enable_audit_device("file", options={"file_path": str(tmp_path / "audit.log")})
    srv.audit_log = tmp_path / "audit.log"  # type: ignore[attr-defined]
    return srv


def test_restore_with_same_keys_rolls_back_reseals_and_is_audited(audited: StrongroomServer, tmp_path: Path) -> None:
    client = audited.client()
    client.secrets.kv.v2.create_or_update_secret("roll/x", secret={"data": "1"})
    short = client.auth.token.create(policies=["default"], ttl="2s", explicit_max_ttl="2s")["auth"]["client_token"]
    snap_file = tmp_path / "backup.snap"
    saved = subprocess.run(
        [STRONGROOM, "operator", "snapshot", "save", str(snap_file), "--addr", audited.addr, "--token",
         audited.root_token], capture_output=True, text=True, timeout=120,
    )
    assert saved.returncode == 0, saved.stderr
    assert snap_file.stat().st_mode & 0o777 == 0o600
    client.secrets.kv.v2.create_or_update_secret("roll/x", secret={"data": "2"})
    client.secrets.kv.v2.create_or_update_secret("roll/y", secret={"data": "later"})
    # the short token's lease runs out on the live server before the restore
    wait_for(lambda: audited.http(short).get("/v1/auth/token/lookup-self").status_code == 403, timeout=30,
             message="the short token to expire")

    restored = subprocess.run(
        [STRONGROOM, "operator", "snapshot", "restore", str(snap_file), "--addr", audited.addr, "--token",
         audited.root_token], capture_output=True, text=True, timeout=120,
    )
    assert restored.returncode == 0, restored.stderr
    assert "unseal it with the snapshot's keys" in restored.stdout
    wait_sealed(audited)
    assert "snapshot-restore" in audited.audit_log.read_text()  # type: ignore[attr-defined]
    assert unseal(audited, audited.unseal_key).json()["sealed"] is False
    assert kv_read(client, "roll/x") == {"data": "1"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv_read(client, "roll/y")
    # the token was alive in the snapshot; its lease expired meanwhile, so the unseal revoked it
    wait_for(lambda: audited.http(short).get("/v1/auth/token/lookup-self").status_code == 403, timeout=30,
             message="the expired token to be revoked")


def test_bad_snapshots_are_refused_and_change_nothing(source: StrongroomServer) -> None:
    client = source.client()
    client.secrets.kv.v2.create_or_update_secret("bad/keep", secret={"data": "kept"})
    good = client.sys.take_raft_snapshot().content
    files = members(good)
    state = bytearray(files["state.bin"])
    state[len(state) // 2] ^= 0xFF
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in {**files, "state.bin": bytes(state)}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cases = {
        "tampered": (out.getvalue(), "checksum of state.bin does not match"),
        "garbage": (b"not a snapshot at all", "not a snapshot archive"),
        "truncated": (good[: len(good) // 2], ""),
        "empty": (b"", "no snapshot"),
    }
    with source.http() as http:
        for name, (body, message) in cases.items():
            for path in ("sys/storage/snapshot", "sys/storage/raft/snapshot-force"):
                resp = http.post(f"/v1/{path}", content=body)
                assert resp.status_code == 400, (name, path, resp.text)
                assert message in resp.json()["errors"][0], (name, resp.text)
    assert client.sys.read_health_status(method="GET")["sealed"] is False
    assert kv_read(client, "bad/keep") == {"data": "kept"}
