"""Break-glass: issued without approval only to the break-glass group, loud, shortest, open until acknowledged."""

from __future__ import annotations

import jwt

from broker.harness import wait_for


def test_break_glass_issues_pages_and_stays_open(broker, receiver):
    r = broker.as_("dave").post("/v1/break-glass", json={"kind": "k8s-admin",
                                                          "reason": "API server down, INC-9001, restoring etcd"})
    assert r.status_code == 201, r.text
    out = r.json()
    rid = out["request"]["id"]
    claims = jwt.decode(out["credential"]["id_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 300  # the shortest duration, not the kind's 15 minutes
    assert claims["mpa_break_glass"] is True
    pages = wait_for(lambda: receiver.bodies("/page"), message="critical page")
    assert pages[0]["severity"] == "critical"
    events = [e for e in broker.audit_lines() if e.get("correlation_id") == rid]
    assert events and all(e["severity"] == "critical" for e in events)
    shown = broker.as_("bob").get(f"/v1/requests/{rid}").json()["request"]
    assert shown["needs_acknowledgement"] is True
    listed = broker.as_("bob").get("/v1/requests", params={"reviewable": "1"}).json()["requests"]
    assert rid in [x["id"] for x in listed]
    # the user cannot acknowledge their own use
    assert broker.review("dave", rid, comment="all fine").status_code == 403
    assert broker.review("bob", rid, comment="Checked the etcd restore in the incident doc").status_code == 200
    shown = broker.as_("bob").get(f"/v1/requests/{rid}").json()["request"]
    assert shown["needs_acknowledgement"] is False and shown["acknowledged_by"]["email"] == "bob@bank.test"
    assert any(e["type"] == "mpa.acknowledged" and e["severity"] == "critical" for e in broker.audit_lines())


def test_break_glass_refused_outside_group(broker):
    r = broker.as_("alice").post("/v1/break-glass", json={"kind": "k8s-admin", "reason": "Restoring etcd INC-9001"})
    assert r.status_code == 403


def test_break_glass_needs_real_reason(broker):
    assert broker.as_("dave").post("/v1/break-glass", json={"kind": "k8s-admin", "reason": "n/a"}).status_code == 400


def test_broker_deploy_cannot_break_glass(broker):
    r = broker.as_("dave").post("/v1/break-glass", json={"kind": "broker-deploy", "reason": "Restoring etcd INC-9001"})
    assert r.status_code == 403


def test_unacknowledged_break_glass_pages_again(broker, receiver):
    r = broker.as_("dave").post("/v1/break-glass", json={"kind": "k8s-admin",
                                                          "reason": "API server down, INC-9002, restoring etcd"})
    rid = r.json()["request"]["id"]
    wait_for(lambda: len(receiver.bodies("/page")) >= 2, message="first pages")  # break-glass + fetched
    broker.clock.advance(16 * 60)
    wait_for(lambda: any("NOT acknowledged" in p["text"] for p in receiver.bodies("/page")), message="reminder page")
    reminders = [e for e in broker.audit_lines() if e["type"] == "mpa.break-glass-unacknowledged"]
    assert reminders and reminders[0]["correlation_id"] == rid and reminders[0]["severity"] == "critical"
    broker.review("bob", rid, comment="Reviewed the incident timeline, fine")
    count = len(broker.audit_lines())
    marker = broker.request("alice")["id"]
    broker.clock.advance(61 * 60)
    # reminders are swept before pending requests, so once the marker has expired a full pass has happened
    wait_for(lambda: any(e["type"] == "mpa.expired" and e["correlation_id"] == marker for e in broker.audit_lines()),
             message="sweeper pass")
    assert not [e for e in broker.audit_lines()[count:] if e["type"] == "mpa.break-glass-unacknowledged"]
