"""Every state change is a hash-chained audit event that `strongroom audit verify` accepts, and tampering shows."""

from __future__ import annotations

from click.testing import CliRunner

from broker.harness import wait_for
from strongroom.audit.verify import verify_file
from strongroom.broker.audit_log import HashChainLog, verify_lines


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
    log = HashChainLog(tmp_path / "a.jsonl")
    log.append({"type": "one"})
    again = HashChainLog(tmp_path / "a.jsonl")
    assert again.append({"type": "two"})["seq"] == 2
    assert verify_file(str(tmp_path / "a.jsonl")).ok


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
