"""The audit trail over the real HTTP API, driven with hvac against a real server process."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import hvac
import hvac.exceptions
import orjson
import pytest

SECRET = "correct-horse-battery-staple-7f3a"
SECOND = "the-second-version-must-never-land"


def wait_unsealed(client: hvac.Client) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if not client.sys.read_seal_status()["sealed"]:
                return
        except Exception:  # noqa: BLE001 - the server may still be coming up
            pass
        time.sleep(0.05)
    raise TimeoutError("server did not unseal after restart")


def entries(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def verify_cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "audit", "verify", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def enable(client: hvac.Client, file: Path, path: str = "file-audit", **options: str) -> None:
    client.sys.enable_audit_device("file", options={"file_path": str(file), **options}, path=path)


def test_kv_write_and_read_are_audited_without_plaintext(server, tmp_path: Path) -> None:
    client = server.client()
    log = tmp_path / "audit.log"
    enable(client, log)
    listed = client.sys.list_enabled_audit_devices()
    devices = listed.get("data", listed)
    assert devices["file-audit/"]["type"] == "file"
    assert devices["file-audit/"]["options"]["file_path"] == str(log)

    client.secrets.kv.v2.create_or_update_secret(path="app/db", secret={"password": SECRET}, mount_point="secret")
    read = client.secrets.kv.v2.read_secret_version(path="app/db", mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"]["password"] == SECRET

    found = entries(log)
    writes = [e for e in found if e.get("request", {}).get("path") == "secret/data/app/db"]
    kinds = [(e["type"], e["request"]["operation"]) for e in writes]
    assert ("request", "create") in kinds or ("request", "update") in kinds
    assert ("response", "read") in kinds
    for e in writes:
        assert e["auth"]["display_name"] == "root"
        assert e["auth"]["policies"] == ["root"]
        assert e["request"]["remote_address"] == "127.0.0.1"
        assert e["request"]["mount_type"] == "kv"
        assert e["request"]["client_token"].startswith("hmac-sha256:")
        assert e["request"]["id"]

    minted = client.auth.token.create(policies=["default"])["auth"]
    raw = log.read_bytes()
    assert SECRET.encode() not in raw
    assert server.root_token.encode() not in raw
    assert minted["client_token"].encode() not in raw and minted["accessor"].encode() not in raw

    hashed = client.sys.calculate_hash(path="file-audit", input_to_hash=SECRET)
    digest = hashed.get("data", hashed)["hash"]
    assert digest.startswith("hmac-sha256:") and digest.encode() in raw
    write_req = next(e for e in writes if e["type"] == "request" and e["request"]["operation"] in ("create", "update"))
    assert write_req["request"]["data"]["data"]["password"] == digest
    read_resp = next(e for e in writes if e["type"] == "response" and e["request"]["operation"] == "read")
    assert read_resp["response"]["data"]["data"]["password"] == digest
    token_hash = client.sys.calculate_hash(path="file-audit", input_to_hash=server.root_token)
    assert write_req["request"]["client_token"] == token_hash.get("data", token_hash)["hash"]

    result = verify_cli(log)
    assert result.returncode == 0, result.stderr
    assert "chain intact" in result.stdout


def test_fail_closed_when_the_audit_file_cannot_be_written(server, tmp_path: Path) -> None:
    client = server.client()
    folder = tmp_path / "logs"
    folder.mkdir()
    enable(client, folder / "audit.log")
    client.secrets.kv.v2.create_or_update_secret(path="app/key", secret={"value": SECRET}, mount_point="secret")

    shutil.rmtree(folder)
    with server.http() as http:
        resp = http.post("/v1/secret/data/app/key", json={"data": {"value": SECOND}})
    assert resp.status_code >= 500
    assert resp.json()["errors"]
    with pytest.raises(hvac.exceptions.VaultError):
        client.secrets.kv.v2.create_or_update_secret(path="app/key", secret={"value": SECOND}, mount_point="secret")
    with pytest.raises(hvac.exceptions.VaultError):
        client.secrets.kv.v2.create_or_update_secret(path="app/new", secret={"value": SECOND}, mount_point="secret")

    # the audit destination comes back: the refused writes changed nothing
    folder.mkdir()
    read = client.secrets.kv.v2.read_secret_version(path="app/key", mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"value": SECRET}
    assert read["data"]["metadata"]["version"] == 1
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version(path="app/new", mount_point="secret", raise_on_deleted_version=True)
    assert SECOND.encode() not in (folder / "audit.log").read_bytes()


def test_fail_closed_when_the_audit_file_is_replaced_by_a_directory(server, tmp_path: Path) -> None:
    client = server.client()
    log = tmp_path / "audit.log"
    enable(client, log)
    client.secrets.kv.v2.create_or_update_secret(path="app/x", secret={"value": SECRET}, mount_point="secret")
    log.unlink()
    log.mkdir()
    with pytest.raises(hvac.exceptions.VaultError):
        client.secrets.kv.v2.create_or_update_secret(path="app/x", secret={"value": SECOND}, mount_point="secret")
    log.rmdir()
    read = client.secrets.kv.v2.read_secret_version(path="app/x", mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"value": SECRET}


def test_bad_devices_are_refused_with_400_and_nothing_is_enabled(server, tmp_path: Path) -> None:
    client = server.client()
    with pytest.raises(hvac.exceptions.InvalidRequest, match="unknown audit backend"):
        client.sys.enable_audit_device("carrier-pigeon", path="bird")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="log_raw"):
        client.sys.enable_audit_device("file", options={"file_path": str(tmp_path / "a.log"), "log_raw": True})
    with pytest.raises(hvac.exceptions.InvalidRequest, match="executable"):
        client.sys.enable_audit_device("file", options={"file_path": str(tmp_path / "a.log"), "mode": "0777"})
    (tmp_path / "adir").mkdir()
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.enable_audit_device("file", options={"file_path": str(tmp_path / "adir")})
    listed = client.sys.list_enabled_audit_devices()
    assert listed.get("data", listed) == {}
    assert not (tmp_path / "a.log").exists()


def test_audit_admin_needs_sudo(server, tmp_path: Path) -> None:
    client = server.client()
    client.sys.create_or_update_policy(
        "audit-no-sudo", 'path "sys/audit*" { capabilities = ["create", "read", "update", "delete", "list"] }'
    )
    token = client.auth.token.create(policies=["audit-no-sudo"])["auth"]["client_token"]
    weak = server.client(token)
    with pytest.raises(hvac.exceptions.Forbidden):
        weak.sys.enable_audit_device("file", options={"file_path": str(tmp_path / "a.log")})
    with pytest.raises(hvac.exceptions.Forbidden):
        weak.sys.list_enabled_audit_devices()
    assert not (tmp_path / "a.log").exists()


def test_disable_and_events_and_restart(server, tmp_path: Path) -> None:
    client = server.client()
    log = tmp_path / "audit.log"
    enable(client, log)
    with server.http() as http:
        ok = http.post("/v1/sys/audit-events", json={"source": "mpa-broker", "events": [{"action": "approve"}]})
        assert ok.status_code in (200, 204)
        bad = http.post("/v1/sys/audit-events", json={"source": "mpa-broker", "events": "not-a-list"})
        assert bad.status_code == 400 and bad.json()["errors"]
    submitted = [e["event"] for e in entries(log) if e["type"] == "event" and e["event"].get("action") == "approve"]
    # the submitter is recorded from the token, whatever the event says about itself
    assert submitted == [{"action": "approve", "submitted_by": {"display_name": "root", "entity_id": ""}}]
    before = client.sys.calculate_hash(path="file-audit", input_to_hash=SECRET)

    server.restart()
    client = server.client()
    wait_unsealed(client)
    after = client.sys.calculate_hash(path="file-audit", input_to_hash=SECRET)
    assert after.get("data", after)["hash"] == before.get("data", before)["hash"]
    client.secrets.kv.v2.create_or_update_secret(path="after/restart", secret={"v": SECRET}, mount_point="secret")
    result = verify_cli(log)
    assert result.returncode == 0, result.stdout + result.stderr

    client.sys.disable_audit_device("file-audit")
    listed = client.sys.list_enabled_audit_devices()
    assert listed.get("data", listed) == {}
    size = log.stat().st_size
    client.secrets.kv.v2.create_or_update_secret(path="after/disable", secret={"v": SECRET}, mount_point="secret")
    assert log.stat().st_size == size


def test_verify_cli_reports_tampering(server, tmp_path: Path) -> None:
    client = server.client()
    log = tmp_path / "audit.log"
    enable(client, log)
    for i in range(3):
        client.secrets.kv.v2.create_or_update_secret(path=f"t/{i}", secret={"v": str(i)}, mount_point="secret")
    online = ("--device", "file-audit", "--addr", server.addr, "--token", server.root_token)
    intact = verify_cli(log, *online)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "authenticated by the server" in intact.stdout

    # a forger who rewrites a line and recomputes every later hash fools an offline check, not the server:
    # its next line (and its head) still chain to what it really wrote
    lines = log.read_bytes().splitlines()
    doc = orjson.loads(lines[2])
    doc["request"]["path"] = "secret/data/innocent"
    lines[2] = orjson.dumps(doc)
    for i in range(3, len(lines)):
        later = orjson.loads(lines[i])
        later["prev_hash"] = hashlib.sha256(lines[i - 1]).hexdigest()
        lines[i] = orjson.dumps(later)
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    assert verify_cli(log).returncode == 0
    rewritten = verify_cli(log, *online)
    assert rewritten.returncode == 1 and "does not match" in rewritten.stderr

    lines = log.read_bytes().splitlines()
    del lines[2]
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    result = verify_cli(log)
    assert result.returncode == 1
    assert "line 3" in result.stderr and "seq 4" in result.stderr and "removed" in result.stderr


class _LineCollector:
    """A log pipeline stand-in: a real TCP listener on loopback that keeps every line it receives."""

    def __init__(self, port: int = 0) -> None:
        collector = self
        self.lines: list[bytes] = []
        self.connections: list[socket.socket] = []

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                collector.connections.append(self.connection)
                for line in self.rfile:
                    collector.lines.append(line)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for conn in self.connections:  # the pipeline goes away: established connections close too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def test_fail_closed_when_the_audit_socket_is_gone(server) -> None:
    client = server.client()
    pipe = _LineCollector()
    client.sys.enable_audit_device("socket", options={"address": f"127.0.0.1:{pipe.port}"}, path="pipe")
    client.secrets.kv.v2.create_or_update_secret(path="sock/a", secret={"v": SECRET}, mount_point="secret")
    deadline = time.monotonic() + 10
    while not any(b"sock/a" in line for line in pipe.lines):
        assert time.monotonic() < deadline, "the pipeline never received the entries"
        time.sleep(0.02)
    assert SECRET.encode() not in b"".join(pipe.lines)

    pipe.stop()
    with server.http() as http:
        resp = http.post("/v1/secret/data/sock/b", json={"data": {"v": SECOND}})
    assert resp.status_code >= 500 and resp.json()["errors"]

    again = _LineCollector(pipe.port)
    try:
        with pytest.raises(hvac.exceptions.InvalidPath):
            client.secrets.kv.v2.read_secret_version(path="sock/b", mount_point="secret", raise_on_deleted_version=True)
    finally:
        again.stop()


def test_key_ceremonies_are_in_the_audit_trail(server, tmp_path):  # noqa: ANN001
    import base64 as _b64
    import json as _json

    client = server.client()
    log = tmp_path / "ceremony.log"
    client.sys.enable_audit_device("file", path="ceremony", options={"file_path": str(log)})
    otp = "A" * 28
    nonce = client.sys.start_root_token_generation(otp=otp)["nonce"]
    done = client.sys.generate_root(key=server.unseal_key, nonce=nonce)
    assert done["complete"] is True
    client.sys.seal()
    client.sys.submit_unseal_key(server.unseal_key)
    events = [_json.loads(line) for line in log.read_text().splitlines()]
    kinds = [e["event"]["type"] for e in events if e.get("type") == "event" and e.get("source") == "core"]
    assert kinds == ["generate-root", "unseal"]
    raw = _b64.b64decode(done["encoded_token"] + "=" * (-len(done["encoded_token"]) % 4))
    new_root = bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True)).decode()
    assert new_root not in log.read_text()
