"""A crash mid-write leaves a torn last audit line: the restarted server records a ``chain-resumed`` entry naming the
torn seq, and ``strongroom audit verify`` reports "truncated at seq N, resumed" and checks everything after it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import orjson

from tests.conftest import StrongroomServer


def verify_cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "audit", "verify", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_torn_last_line_after_kill_9_is_resumed_after_and_verify_checks_the_rest(
    server: StrongroomServer, tmp_path: Path
) -> None:
    client = server.client()
    log = tmp_path / "audit.log"
    client.sys.enable_audit_device("file", options={"file_path": str(log)}, path="file-audit")
    for i in range(3):
        client.secrets.kv.v2.create_or_update_secret(path=f"torn/{i}", secret={"v": str(i)})
    server.stop(kill=True)

    # the crash cut the last entry in half: what remains of it has no newline and is not JSON
    lines = log.read_bytes().splitlines(keepends=True)
    torn_seq = orjson.loads(lines[-1])["seq"]
    torn = lines[-1][: len(lines[-1]) // 2]
    log.write_bytes(b"".join(lines[:-1]) + torn)
    broken = verify_cli(log)
    assert broken.returncode == 1 and f"line {len(lines)}: incomplete (truncated)" in broken.stderr

    server.start()
    client = server.client()
    client.secrets.kv.v2.create_or_update_secret(path="torn/after", secret={"v": "after"})

    after = log.read_bytes().splitlines()
    assert after[len(lines) - 1] == torn  # the torn bytes stay, on a line of their own
    resumed = orjson.loads(after[len(lines)])
    assert resumed["type"] == "chain-resumed"
    assert resumed["seq"] == resumed["torn_seq"] == torn_seq
    assert resumed["torn_sha256"] == hashlib.sha256(torn).hexdigest()
    assert resumed["prev_hash"] == hashlib.sha256(after[len(lines) - 2]).hexdigest()  # the last good line

    online = ("--device", "file-audit", "--addr", server.addr, "--token", server.root_token)
    result = verify_cli(log, *online)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"line {len(lines)}: truncated at seq {torn_seq}, resumed" in result.stdout
    assert "authenticated by the server" in result.stdout
    report = orjson.loads(verify_cli(log, "--json").stdout)
    assert report["ok"] is True and report["last_seq"] > torn_seq
    assert report["findings"] == [f"line {len(lines)}: truncated at seq {torn_seq}, resumed"]

    # everything after the resumed entry is still checked: an edit there is caught
    edited = log.read_bytes().splitlines()
    doc = orjson.loads(edited[-2])
    doc["request"]["path"] = "secret/data/innocent"
    edited[-2] = orjson.dumps(doc)
    log.write_bytes(b"".join(line + b"\n" for line in edited))
    tampered = verify_cli(log)
    assert tampered.returncode == 1 and "edited" in tampered.stderr


def test_a_torn_line_without_its_resume_entry_or_with_other_bytes_still_fails(tmp_path: Path) -> None:
    """The resume entry vouches for exactly the torn bytes it names: swapping them, or faking a tear, is caught."""
    from strongroom.audit.device import Chain, resumed_entry

    chain = Chain()
    good = [chain.line({"type": "request", "n": 1})]
    chain.advance(good[0])
    torn = b'{"type":"request","n":2,"se'
    resume = chain.line(resumed_entry(2, torn, "2026-01-01T00:00:00Z"))
    chain.advance(resume)
    later = chain.line({"type": "request", "n": 3})
    log = tmp_path / "audit.log"

    log.write_bytes(b"\n".join([*good, torn, resume, later]) + b"\n")
    ok = verify_cli(log)
    assert ok.returncode == 0 and "line 2: truncated at seq 2, resumed" in ok.stdout

    log.write_bytes(b"\n".join([*good, b'{"type":"request","n":"forged"', resume, later]) + b"\n")
    swapped = verify_cli(log)
    assert swapped.returncode == 1 and "line 2" in swapped.stderr
