"""The hash chain check: an edited, removed, swapped or inserted line is reported at the first place it happened."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from strongroom.audit import AuditBroker
from strongroom.audit.verify import verify_file
from strongroom.cli.audit import audit_group

from .helpers import append, context

N = 8


@pytest.fixture
async def log(broker: AuditBroker, tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    await broker.enable("file", "file", "", {"file_path": str(path)})
    for i in range(N // 2):
        ctx = context(request_id=f"req-{i}")
        await broker.log_request(ctx)
        await broker.log_response(ctx, {"data": {"n": i}}, None)
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def run_cli(path: Path, *args: str):
    return CliRunner().invoke(audit_group, ["verify", str(path), *args])


async def test_an_intact_chain_passes(log: Path) -> None:
    result = verify_file(str(log))
    assert result.ok and result.entries == N and (result.first_seq, result.last_seq) == (1, N)
    out = run_cli(log)
    assert out.exit_code == 0
    assert f"{N} entries" in out.output and "chain intact" in out.output


async def test_an_edited_line_is_reported(log: Path) -> None:
    lines = lines_of(log)
    lines[2] = lines[2].replace(b'"operation":"update"', b'"operation":"read"')
    write_lines(log, lines)
    result = verify_file(str(log))
    assert not result.ok and result.line == 3 and result.seq == 3
    assert "edited" in result.problem
    out = run_cli(log)
    assert out.exit_code == 1
    assert "line 3" in out.output and "seq 3" in out.output and "edited" in out.output


async def test_an_edited_seq_is_reported(log: Path) -> None:
    lines = lines_of(log)
    doc = orjson.loads(lines[4])
    doc["seq"] = 42
    lines[4] = orjson.dumps(doc)
    write_lines(log, lines)
    result = verify_file(str(log))
    assert not result.ok and result.line == 5


async def test_a_removed_line_is_reported(log: Path) -> None:
    lines = lines_of(log)
    del lines[3]
    write_lines(log, lines)
    result = verify_file(str(log))
    assert not result.ok and result.line == 4 and result.seq == 5
    assert "removed" in result.problem and "seq 4" in result.problem
    out = run_cli(log)
    assert out.exit_code == 1 and "line 4" in out.output and "removed" in out.output


async def test_swapped_lines_are_reported(log: Path) -> None:
    lines = lines_of(log)
    lines[4], lines[5] = lines[5], lines[4]
    write_lines(log, lines)
    result = verify_file(str(log))
    assert not result.ok and result.line == 5 and result.seq == 6
    assert "reordered" in result.problem


async def test_a_forged_inserted_line_is_reported(log: Path) -> None:
    lines = lines_of(log)
    # the forger even gets the seq and prev_hash right for its own line
    prev = lines[2]
    forged = orjson.loads(lines[3])
    forged["request"]["path"] = "secret/data/innocent"
    forged["prev_hash"] = hashlib.sha256(prev).hexdigest()
    lines.insert(3, orjson.dumps(forged))
    write_lines(log, lines)
    result = verify_file(str(log))
    assert not result.ok and result.line == 4
    assert "inserted" in result.problem


async def test_a_copied_old_line_inserted_is_reported(log: Path) -> None:
    lines = lines_of(log)
    lines.insert(6, lines[1])
    write_lines(log, lines)
    result = verify_file(str(log))
    assert not result.ok and result.line == 7


async def test_removed_first_lines_are_reported_unless_partial(log: Path) -> None:
    lines = lines_of(log)
    write_lines(log, lines[2:])
    result = verify_file(str(log))
    assert not result.ok and result.line == 1 and "removed" in result.problem
    assert verify_file(str(log), partial=True).ok
    assert run_cli(log, "--partial").exit_code == 0


async def test_cut_off_end_is_caught_with_the_device_head(broker: AuditBroker, log: Path) -> None:
    head = broker.head("file")
    assert head["seq"] == N
    assert verify_file(str(log), head_seq=head["seq"], head_hash=head["hash"]).ok
    lines = lines_of(log)
    write_lines(log, lines[:-2])
    assert verify_file(str(log)).ok  # the chain alone cannot see this…
    result = verify_file(str(log), head_seq=head["seq"], head_hash=head["hash"])
    assert not result.ok and "removed from the end" in result.problem  # …the head can
    out = run_cli(log, "--head-seq", str(head["seq"]), "--head-hash", head["hash"])
    assert out.exit_code == 1


async def test_garbage_and_truncated_lines(log: Path) -> None:
    lines = lines_of(log)
    write_lines(log, [*lines[:2], b"not json at all", *lines[2:]])
    result = verify_file(str(log))
    assert not result.ok and result.line == 3
    write_lines(log, lines)
    append(log, lines[0][:20])
    result = verify_file(str(log))
    assert not result.ok and result.line == N + 1 and "truncated" in result.problem


async def test_json_output(log: Path) -> None:
    out = run_cli(log, "--json")
    assert out.exit_code == 0
    assert orjson.loads(out.output)["entries"] == N


async def test_a_rewritten_chain_is_caught_with_the_device_head(broker: AuditBroker, log: Path) -> None:
    """SHA-256 needs no key: a forger can recompute every later prev_hash. The server's head still knows."""
    head = broker.head("file")
    lines = lines_of(log)
    doc = orjson.loads(lines[2])
    doc["request"]["path"] = "secret/data/innocent"
    lines[2] = orjson.dumps(doc)
    for i in range(3, len(lines)):
        later = orjson.loads(lines[i])
        later["prev_hash"] = hashlib.sha256(lines[i - 1]).hexdigest()
        lines[i] = orjson.dumps(later)
    write_lines(log, lines)
    assert verify_file(str(log)).ok
    result = verify_file(str(log), head_seq=head["seq"], head_hash=head["hash"])
    assert not result.ok and result.line == N and "does not match" in result.problem


def test_console_script(tmp_path: Path) -> None:
    good = tmp_path / "empty.log"
    good.write_bytes(b"")
    ok = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "audit", "verify", str(good)], capture_output=True, text=True
    )
    assert ok.returncode == 0 and "0 entries, chain intact" in ok.stdout
    bad = tmp_path / "bad.log"
    bad.write_bytes(b'{"seq": 2, "prev_hash": "' + b"0" * 64 + b'"}\n')
    broken = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "audit", "verify", str(bad)], capture_output=True, text=True
    )
    assert broken.returncode == 1 and "line 1" in broken.stderr and "seq 2" in broken.stderr


async def test_only_the_server_can_vouch_for_the_last_line(broker: AuditBroker, log: Path) -> None:
    result = verify_file(str(log))
    assert result.last_mac.startswith("hmac-sha256:")
    assert broker.check_line("file", result.last_unsigned_sha256, result.last_mac)
    # sys/audit-hash is an HMAC oracle for whoever may call it; it must not produce chain MACs
    assert broker.hash("file", result.last_unsigned_sha256) != result.last_mac

    lines = lines_of(log)
    doc = orjson.loads(lines[1])
    doc["response"]["data"] = {"n": "hmac-sha256:" + "0" * 64}
    lines[1] = orjson.dumps(doc)
    for i in range(2, len(lines)):
        later = orjson.loads(lines[i])
        later["prev_hash"] = hashlib.sha256(lines[i - 1]).hexdigest()
        lines[i] = orjson.dumps(later)
    write_lines(log, lines)
    forged = verify_file(str(log))
    assert forged.ok  # the keyless chain was recomputed…
    # …but the last line no longer reads as the server signed it
    assert not broker.check_line("file", forged.last_unsigned_sha256, forged.last_mac)
