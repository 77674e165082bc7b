"""Every state change is a hash-chained audit event that `strongroom audit verify` accepts, and tampering shows."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from broker.harness import wait_for
from strongroom.audit.verify import verify_file
from strongroom.broker.audit_log import AuditWriteError, HashChainLog, verify_lines

KEY = bytes(range(32))


def _lifecycle(broker):
    a = broker.request("alice")
    broker.review("bob", a["id"])
    broker.fetch("alice", a["id"])
    broker.as_("alice").post(f"/v1/requests/{a['id']}/revoke")
    b = broker.request("alice", kind="k8s-two")
    broker.review("bob", b["id"])
    broker.review("carol", b["id"], "deny", "Not during the change freeze")
    c = broker.request("alice")
    broker.as_("alice").post(f"/v1/requests/{c['id']}/cancel")
    return a, b, c


def test_every_state_change_is_an_event_with_correlation_id(broker):
    a, b, c = _lifecycle(broker)
    events = broker.audit_lines()
    by_req = {}
    for e in events:
        if e.get("correlation_id"):
            by_req.setdefault(e["correlation_id"], []).append(e["type"])
    assert by_req[a["id"]] == ["mpa.created", "mpa.reviewed", "mpa.approved", "mpa.fetched", "mpa.revoked"]
    assert by_req[b["id"]] == ["mpa.created", "mpa.reviewed", "mpa.reviewed", "mpa.denied"]
    assert by_req[c["id"]] == ["mpa.created", "mpa.cancelled"]
    fetched = next(e for e in events if e["type"] == "mpa.fetched")
    assert fetched["actor"]["email"] == "alice@bank.test"
    assert "id_token" not in str(fetched)  # no credential in the audit record


def test_chain_verifies_with_strongroom_audit_verify_and_detects_tampering(broker):
    _lifecycle(broker)
    path = broker.audit_path
    result = verify_file(str(path))
    assert result.ok, result.problem
    assert result.entries == len(broker.audit_lines())
    assert verify_lines(path.read_bytes().splitlines())[0]
    runner = CliRunner()
    from strongroom.cli.main import cli

    assert runner.invoke(cli, ["audit", "verify", str(path)]).exit_code == 0
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"alice@bank.test", b"mallory@bank.test")
    path.write_bytes(b"".join(lines))
    tampered = verify_file(str(path))
    assert not tampered.ok and tampered.line in (4, 5)
    assert not verify_lines(path.read_bytes().splitlines())[0]
    assert runner.invoke(cli, ["audit", "verify", str(path)]).exit_code != 0


def test_chain_continues_across_restarts(tmp_path):
    log = HashChainLog(tmp_path / "a.jsonl", KEY)
    log.append({"type": "one"})
    again = HashChainLog(tmp_path / "a.jsonl", KEY)
    assert again.append({"type": "two"})["seq"] == 2
    assert verify_file(str(tmp_path / "a.jsonl")).ok
    assert verify_lines((tmp_path / "a.jsonl").read_bytes().splitlines(), KEY) == (True, 2, "")


def _rechain_last(path, old: bytes, new: bytes) -> None:
    """Edit the newest line the way an attacker who knows the format would: the hash chain stays intact."""
    lines = path.read_bytes().splitlines(keepends=True)
    assert old in lines[-1]
    lines[-1] = lines[-1].replace(old, new)
    path.write_bytes(b"".join(lines))


def test_every_line_carries_a_mac_and_editing_the_newest_line_is_detected(tmp_path):
    path = tmp_path / "a.jsonl"
    log = HashChainLog(path, KEY)
    for who in ("alice", "bob", "carol"):
        log.append({"type": "mpa.reviewed", "actor": {"email": f"{who}@bank.test"}})
    assert all(b',"mac":"hmac-sha256:' in line for line in path.read_bytes().splitlines())
    assert verify_lines(path.read_bytes().splitlines(), KEY)[0]
    _rechain_last(path, b"carol@bank.test", b"mallory@bank.test")
    # The keyless chain check (and the server's file checker) cannot see it: nothing after the last line hashes it.
    assert verify_lines(path.read_bytes().splitlines())[0]
    ok, line, problem = verify_lines(path.read_bytes().splitlines(), KEY)
    assert (ok, line) == (False, 3) and "mac does not match" in problem
    assert not verify_lines(path.read_bytes().splitlines(), b"\x01" * 32)[0]  # another broker's key proves nothing


def test_the_broker_never_extends_a_log_whose_end_it_did_not_write(tmp_path):
    path = tmp_path / "a.jsonl"
    HashChainLog(path, KEY).append({"type": "mpa.created", "reason": "INC-1"})
    _rechain_last(path, b"INC-1", b"INC-2")
    with pytest.raises(AuditWriteError, match="not written by this broker"):
        HashChainLog(path, KEY)
    with pytest.raises(AuditWriteError, match="not written by this broker"):
        HashChainLog(path).set_key(KEY)  # the same check when the key arrives with the seed
    assert path.read_bytes().count(b"\n") == 1  # nothing was appended to the forged log


def test_a_line_without_mac_is_refused_unless_written_while_the_seed_was_sealed(tmp_path):
    path = tmp_path / "a.jsonl"
    sealed = HashChainLog(path)
    with pytest.raises(AuditWriteError):
        sealed.append({"type": "mpa.created"})
    sealed.append({"type": "mpa.seed-release-refused"})
    sealed.set_key(KEY)
    sealed.append({"type": "mpa.seed-released"})
    assert verify_lines(path.read_bytes().splitlines(), KEY) == (True, 2, "")
    # Dropping the MAC of a normal line (and re-chaining) is no way around it.
    lines = path.read_bytes().splitlines()
    bare = lines[1][: lines[1].index(b',"mac":')] + b"}"
    assert verify_lines([lines[0], bare], KEY)[:2] == (False, 2)


def test_events_are_forwarded_to_strongroom(make_broker, standin):
    app, addr = standin
    broker = make_broker(strongroom=(addr, app.root_token))
    req = broker.request("alice")
    wait_for(lambda: any(e.get("correlation_id") == req["id"] for e in app.audit_events), message="forwarded")
    forwarded = next(e for e in app.audit_events if e.get("correlation_id") == req["id"])
    assert forwarded["type"] == "mpa.created" and forwarded["source"] == "mpa-broker"


def test_strongroom_outage_does_not_lose_local_record(make_broker, standin):
    app, addr = standin
    app.down = True
    broker = make_broker(strongroom=(addr, app.root_token))
    req = broker.request("alice")
    assert any(e["correlation_id"] == req["id"] for e in broker.audit_lines() if e.get("correlation_id"))
    app.down = False
    wait_for(lambda: any(e.get("correlation_id") == req["id"] for e in app.audit_events), message="late forward")


def _audit_verify(broker, path) -> tuple[int, str]:
    from strongroom.cli.main import cli

    token = broker.token("bob")
    result = CliRunner().invoke(cli, ["mpa", "--broker", broker.addr, "--token", token, "audit-verify", str(path)])
    return result.exit_code, result.output


def test_mpa_audit_verify_has_the_broker_authenticate_the_head(broker, tmp_path):
    _lifecycle(broker)
    code, out = _audit_verify(broker, broker.audit_path)
    assert code == 0, out
    assert "authenticated by the broker" in out
    copy = tmp_path / "copy.jsonl"
    last = broker.audit_path.read_bytes().splitlines(keepends=True)[-1]
    assert b"cancelled" in last

    # The newest line edited and its MAC left in place: the broker does not vouch for it.
    copy.write_bytes(broker.audit_path.read_bytes())
    _rechain_last(copy, b"mpa.cancelled", b"mpa.approved")
    code, out = _audit_verify(broker, copy)
    assert code == 1 and "line 12 is not the line the broker wrote there" in out

    # A forged line appended after the head, chained and with a MAC-shaped field: only the broker's key makes MACs.
    import hashlib

    import orjson

    lines = broker.audit_path.read_bytes().splitlines()
    forged = orjson.dumps({"seq": len(lines) + 1, "prev_hash": hashlib.sha256(lines[-1]).hexdigest(),
                           "type": "mpa.approved", "mac": "hmac-sha256:" + "0" * 64})
    copy.write_bytes(b"\n".join([*lines, forged]) + b"\n")
    code, out = _audit_verify(broker, copy)
    assert code == 1 and "did not write this line" in out

    # The newest line cut off: the chain is intact, but the broker's head says there was one more line.
    copy.write_bytes(b"".join(broker.audit_path.read_bytes().splitlines(keepends=True)[:-1]))
    code, out = _audit_verify(broker, copy)
    assert code == 1 and "cut off" in out

    r = broker.as_("bob").post("/v1/audit/head", json={"line_sha256": "ab", "mac": 3})
    assert r.status_code == 400 and r.json()["errors"]
    assert httpx.get(f"{broker.addr}/v1/audit/head").status_code == 401  # only staff may ask
