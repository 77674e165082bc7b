"""The audit broker over a real barrier: entries, HMAC, key storage, fail-closed."""

from __future__ import annotations

import asyncio
import shutil
import stat
from pathlib import Path

import orjson
import pytest

from strongroom.audit import AuditBroker, AuditFailure
from strongroom.audit.verify import verify_file
from strongroom.core.barrier import Barrier
from strongroom.core.logical import InvalidRequest

from .helpers import ACCESSOR, SECRET, TOKEN, append, context, read_entries

HAVE_DEV_FULL = Path("/dev/full").exists()


async def enable_file(broker: AuditBroker, file: Path, path: str = "file", **options: str) -> None:
    await broker.enable(path, "file", "test device", {"file_path": str(file), **options})


async def test_no_device_means_logging_is_a_no_op(broker: AuditBroker) -> None:
    assert broker.list() == {}
    await broker.log_request(context())
    await broker.log_response(context(), {"data": {"x": "y"}}, None)
    await broker.log_event("mpa-broker", {"action": "approve"})


async def test_request_and_response_entries_are_vault_shaped_and_chained(broker: AuditBroker, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    await enable_file(broker, log)
    ctx = context(response_client_token="hvs.new-login-token-secret", response_accessor="new-accessor-1")
    await broker.log_request(ctx)
    await broker.log_response(
        ctx,
        {
            "request_id": "req-1",
            "lease_id": "",
            "data": {"value": SECRET, "count": 3},
            "warnings": ["careful"],
            "auth": {"client_token": "hvs.new-login-token-secret", "accessor": "new-accessor-1", "policies": ["a"]},
        },
        None,
    )
    req, resp = read_entries(log)
    assert (req["type"], resp["type"]) == ("request", "response")
    assert (req["seq"], resp["seq"]) == (1, 2)
    assert req["prev_hash"] == "0" * 64
    assert req["time"].endswith("Z") and "T" in req["time"]
    r = req["request"]
    assert r["id"] == "req-1" and r["operation"] == "update" and r["path"] == "secret/data/app"
    assert r["mount_point"] == "secret/" and r["mount_type"] == "kv" and r["remote_address"] == "127.0.0.1"
    assert r["namespace"] == {"id": "root"}
    assert r["client_token"] == broker.hash("file", TOKEN)
    assert r["client_token_accessor"] == broker.hash("file", ACCESSOR)
    assert r["data"]["data"]["password"] == broker.hash("file", SECRET)
    assert r["data"]["data"]["nested"][1]["pin"] == broker.hash("file", "4711")
    assert r["data"]["data"]["flag"] is True
    a = req["auth"]
    assert a["display_name"] == "token-alice" and a["entity_id"] == "entity-1"
    assert a["policies"] == ["default", "writer"] and a["token_type"] == "service"
    assert a["client_token"] == broker.hash("file", TOKEN) and a["accessor"] == broker.hash("file", ACCESSOR)
    out = resp["response"]
    assert out["data"]["value"] == broker.hash("file", SECRET)
    assert out["auth"]["client_token"] == broker.hash("file", "hvs.new-login-token-secret")
    assert out["auth"]["accessor"] == broker.hash("file", "new-accessor-1")
    assert out["warnings"] == ["careful"]
    assert resp["error"] == ""
    assert verify_file(str(log)).ok


async def test_no_plaintext_secret_token_or_accessor_in_the_file(broker: AuditBroker, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    await enable_file(broker, log)
    ctx = context()
    await broker.log_request(ctx)
    await broker.log_response(ctx, {"data": {"password": SECRET}, "wrap_info": {"token": TOKEN}}, "boom")
    raw = log.read_bytes()
    for needle in (SECRET, TOKEN, ACCESSOR, "4711"):
        assert needle.encode() not in raw
    assert broker.hash("file", SECRET).encode() in raw


async def test_hmac_accessor_false_keeps_accessor_but_never_the_token(broker: AuditBroker, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    await enable_file(broker, log, hmac_accessor="false")
    await broker.log_request(context())
    (entry,) = read_entries(log)
    assert entry["auth"]["accessor"] == ACCESSOR
    assert entry["request"]["client_token"].startswith("hmac-sha256:")


async def test_list_shape_and_option_validation(broker: AuditBroker, tmp_path: Path) -> None:
    await enable_file(broker, tmp_path / "a.log", path="audit-a/")
    assert broker.list() == {
        "audit-a/": {
            "type": "file",
            "description": "test device",
            "options": {"file_path": str(tmp_path / "a.log")},
            "local": False,
            "path": "audit-a/",
        }
    }
    bad = [
        ("x1", "syslogx", {"file_path": str(tmp_path / "x.log")}, "unknown audit backend"),
        ("x2", "file", {"file_path": str(tmp_path / "x.log"), "log_raw": "true"}, "log_raw"),
        ("x3", "file", {"file_path": str(tmp_path / "x.log"), "mode": "0755"}, "executable"),
        ("x4", "file", {"file_path": str(tmp_path / "x.log"), "mode": "4600"}, "permission bits"),
        ("x5", "file", {"file_path": "relative.log"}, "absolute"),
        ("x6", "file", {}, "file_path is required"),
        ("x7", "file", {"file_path": str(tmp_path / "x.log"), "prefix": "@cee:"}, "prefix"),
        ("x8", "file", {"file_path": str(tmp_path / "x.log"), "bogus": "1"}, "bogus"),
        ("audit-a", "file", {"file_path": str(tmp_path / "y.log")}, "already in use"),
        ("x9", "socket", {"address": "nohostport"}, "address"),
    ]
    for path, kind, options, message in bad:
        with pytest.raises(InvalidRequest) as err:
            await broker.enable(path, kind, "", options)
        assert message in str(err.value), (path, err.value)
    assert list(broker.list()) == ["audit-a/"]
    assert not (tmp_path / "x.log").exists()


async def test_a_file_that_cannot_be_opened_is_refused_and_nothing_is_stored(
    barrier: Barrier, broker: AuditBroker, tmp_path: Path
) -> None:
    (tmp_path / "adir").mkdir()
    for target in (tmp_path / "adir", tmp_path / "missing-dir" / "audit.log"):
        with pytest.raises(InvalidRequest, match="could not be enabled"):
            await enable_file(broker, target)
    assert broker.list() == {}
    again = AuditBroker(barrier.view("sys/audit/"))
    await again.load()
    assert again.list() == {}


async def test_created_file_gets_mode_0600(broker: AuditBroker, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    await enable_file(broker, log)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


async def test_keys_are_per_device_persist_behind_the_barrier_and_the_chain_resumes(
    barrier: Barrier, broker: AuditBroker, tmp_path: Path
) -> None:
    await enable_file(broker, tmp_path / "a.log", path="a")
    await enable_file(broker, tmp_path / "b.log", path="b")
    assert broker.hash("a", "x") != broker.hash("b", "x")
    for _ in range(3):
        await broker.log_request(context())
    before = broker.hash("a", SECRET)
    await broker.stop()
    # the key is stored encrypted: the raw storage never holds it (or anything else) in clear
    stored = await barrier.storage.get("sys/audit/table")
    assert stored is not None and b"file_path" not in stored

    again = AuditBroker(barrier.view("sys/audit/"))
    await again.load()
    try:
        assert again.hash("a", SECRET) == before
        await again.log_request(context())
        assert [e["seq"] for e in read_entries(tmp_path / "a.log")] == [1, 2, 3, 4]
        assert verify_file(str(tmp_path / "a.log")).ok
    finally:
        await again.stop()


async def test_disable_removes_the_device_and_its_key(broker: AuditBroker, tmp_path: Path) -> None:
    await enable_file(broker, tmp_path / "a.log")
    old = broker.hash("file", SECRET)
    assert await broker.disable("file/")
    assert broker.list() == {}
    await broker.log_request(context())  # no device: no-op again
    with pytest.raises(InvalidRequest):
        broker.hash("file", SECRET)
    await enable_file(broker, tmp_path / "b.log")
    assert broker.hash("file", SECRET) != old
    assert not await broker.disable("nothing-here")


@pytest.mark.parametrize("breakage", ["replaced-by-directory", "parent-removed", "disk-full"])
async def test_fail_closed_when_the_only_device_cannot_write(
    broker: AuditBroker, tmp_path: Path, breakage: str
) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    log = folder / "audit.log"
    if breakage == "disk-full":
        assert HAVE_DEV_FULL, "this Linux test needs /dev/full"
        await enable_file(broker, Path("/dev/full"), mode="0")
    else:
        await enable_file(broker, log)
        await broker.log_request(context())
        if breakage == "replaced-by-directory":
            log.unlink()
            log.mkdir()
        else:
            shutil.rmtree(folder)
    with pytest.raises(AuditFailure):
        await broker.log_request(context())
    with pytest.raises(AuditFailure):
        await broker.log_response(context(), {"data": {}}, None)
    with pytest.raises(AuditFailure):
        await broker.log_event("mpa-broker", {"action": "x"})


async def test_one_working_device_is_enough(broker: AuditBroker, tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    await enable_file(broker, tmp_path / "bad" / "audit.log", path="bad")
    await enable_file(broker, tmp_path / "good.log", path="good")
    shutil.rmtree(tmp_path / "bad")
    await broker.log_request(context())
    assert len(read_entries(tmp_path / "good.log")) == 1


async def test_a_device_broken_at_unseal_blocks_until_repaired(
    barrier: Barrier, broker: AuditBroker, tmp_path: Path
) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    await enable_file(broker, folder / "audit.log")
    await broker.stop()
    shutil.rmtree(folder)
    again = AuditBroker(barrier.view("sys/audit/"))
    await again.load()
    try:
        assert "file/" in again.list()
        with pytest.raises(AuditFailure):
            await again.log_request(context())
        folder.mkdir()
        await again.log_request(context())
        assert read_entries(folder / "audit.log")[0]["request"]["id"] == "req-1"
    finally:
        await again.stop()


async def test_rotated_file_is_reopened_and_the_chain_continues(broker: AuditBroker, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    await enable_file(broker, log)
    await broker.log_request(context())
    await broker.log_request(context())
    log.rename(tmp_path / "audit.log.1")
    await broker.log_request(context())
    assert [e["seq"] for e in read_entries(log)] == [3]
    assert verify_file(str(tmp_path / "audit.log.1")).ok
    assert not verify_file(str(log)).ok  # a rotated file does not start the chain…
    assert verify_file(str(log), partial=True).ok  # …but continues it


async def test_concurrent_requests_never_interleave_the_chain(broker: AuditBroker, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    await enable_file(broker, log)

    async def one(i: int) -> None:
        ctx = context(request_id=f"r{i}")
        await broker.log_request(ctx)
        await asyncio.sleep(0)
        await broker.log_response(ctx, {"data": {"i": i}}, None)

    await asyncio.gather(*(one(i) for i in range(200)))
    result = verify_file(str(log))
    assert result.ok and result.entries == 400


async def test_events_are_recorded_in_the_chain(broker: AuditBroker, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    await enable_file(broker, log)
    await broker.log_request(context())
    await broker.log_event("mpa-broker", {"action": "approve", "request": "mpa-1"}, request_id="req-9")
    entry = read_entries(log)[1]
    assert entry["type"] == "event" and entry["source"] == "mpa-broker" and entry["seq"] == 2
    assert entry["event"] == {"action": "approve", "request": "mpa-1"} and entry["request_id"] == "req-9"
    assert verify_file(str(log)).ok


async def test_a_half_written_last_line_is_resumed_after_on_restart(
    barrier: Barrier, broker: AuditBroker, tmp_path: Path
) -> None:
    log = tmp_path / "audit.log"
    await enable_file(broker, log)
    await broker.log_request(context())
    await broker.stop()
    append(log, b'{"time":"2026-01-01T00:00:00Z","type":"requ')  # a crash mid-line
    again = AuditBroker(barrier.view("sys/audit/"))
    await again.load()
    try:
        await again.log_request(context())
    finally:
        await again.stop()
    lines = log.read_bytes().splitlines()
    assert len(lines) == 4 and lines[1] == b'{"time":"2026-01-01T00:00:00Z","type":"requ'
    resumed = orjson.loads(lines[2])
    assert (resumed["type"], resumed["seq"], resumed["torn_seq"]) == ("chain-resumed", 2, 2)
    result = verify_file(str(log))
    assert result.ok and result.entries == 3 and result.findings == ["line 2: truncated at seq 2, resumed"]


async def test_lines_cut_off_the_end_while_down_show_up_as_a_gap(
    barrier: Barrier, broker: AuditBroker, tmp_path: Path
) -> None:
    log = tmp_path / "audit.log"
    await enable_file(broker, log)
    for _ in range(5):
        await broker.log_request(context())
    await broker.stop()  # saves the chain head behind the barrier
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:3]))  # someone trims the last two entries while the server is down
    again = AuditBroker(barrier.view("sys/audit/"))
    await again.load()
    try:
        await again.log_request(context())
    finally:
        await again.stop()
    result = verify_file(str(log))
    assert not result.ok and result.line == 4 and result.seq == 6
    assert "removed" in result.problem and "seq 4..5" in result.problem


async def test_a_file_rotated_while_down_continues_the_chain(
    barrier: Barrier, broker: AuditBroker, tmp_path: Path
) -> None:
    log = tmp_path / "audit.log"
    await enable_file(broker, log)
    for _ in range(3):
        await broker.log_request(context())
    await broker.stop()
    log.rename(tmp_path / "audit.log.1")
    again = AuditBroker(barrier.view("sys/audit/"))
    await again.load()
    try:
        await again.log_request(context())
    finally:
        await again.stop()
    assert [e["seq"] for e in read_entries(log)] == [4]
    assert verify_file(str(log), partial=True).ok
    old = verify_file(str(tmp_path / "audit.log.1"))
    assert old.ok and read_entries(log)[0]["prev_hash"] == old.last_hash


async def test_fsync_modes(broker: AuditBroker, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="fsync"):
        await enable_file(broker, tmp_path / "x.log", path="x", fsync="sometimes")
    await enable_file(broker, tmp_path / "always.log", path="always", fsync="always")
    await enable_file(broker, tmp_path / "never.log", path="never", fsync="never")
    await broker.log_request(context())
    assert len(read_entries(tmp_path / "always.log")) == 1 and len(read_entries(tmp_path / "never.log")) == 1


async def test_two_devices_cannot_share_one_file(broker: AuditBroker, tmp_path: Path) -> None:
    await enable_file(broker, tmp_path / "a.log", path="a")
    with pytest.raises(InvalidRequest, match="already writes to"):
        await enable_file(broker, tmp_path / "sub" / ".." / "a.log", path="b")
