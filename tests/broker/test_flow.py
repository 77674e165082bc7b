"""The request → review → fetch flow and its rules, driven over HTTP."""

from __future__ import annotations

import time

import jwt
import pytest

from broker.harness import wait_for


def test_happy_path_request_approve_fetch_once(broker):
    req = broker.request("alice", duration="10m")
    assert req["state"] == "pending" and req["duration"] == 600
    assert broker.fetch("alice", req["id"]).status_code == 409  # not approved yet
    r = broker.review("bob", req["id"])
    assert r.status_code == 200 and r.json()["request"]["state"] == "approved"
    first = broker.fetch("alice", req["id"])
    assert first.status_code == 200, first.text
    assert first.json()["credential"]["type"] == "kubernetes-oidc"
    second = broker.fetch("alice", req["id"])
    assert second.status_code == 410
    assert "only once" in second.json()["errors"][0]


def test_self_approval_refused(broker):
    req = broker.request("alice")
    # alice is not in platform-leads, but even a second account with the same IdP subject that is cannot approve
    for who in ("alice", "alice2", "alice-mail", "alice-hr"):
        r = broker.review(who, req["id"])
        assert r.status_code == 403, (who, r.text)
    assert broker.as_("bob").get(f"/v1/requests/{req['id']}").json()["request"]["state"] == "pending"
    # each attempt is an audit event, so detection can page on it (strongroom/detect/default_rules.yaml)
    attempts = [e for e in broker.audit_lines()
                if e.get("correlation_id") == req["id"] and e["type"] == "mpa.self-approval-refused"]
    assert len(attempts) == 4


def test_reviewer_must_be_in_approve_group(broker):
    req = broker.request("alice")
    r = broker.review("dave", req["id"])
    assert r.status_code == 403 and "may approve" in r.json()["errors"][0]


def test_requester_must_be_in_request_group(broker):
    r = broker.as_("erin").post("/v1/requests", json={"kind": "k8s-admin", "reason": "Rotate the etcd key INC-1"})
    assert r.status_code == 403


def test_approval_count_enforced(broker):
    req = broker.request("alice", kind="k8s-two")
    assert broker.review("bob", req["id"]).json()["request"]["state"] == "pending"
    assert broker.fetch("alice", req["id"]).status_code == 409
    again = broker.review("bob", req["id"])  # the same reviewer twice counts once
    assert again.status_code == 409
    assert broker.review("carol", req["id"]).json()["request"]["state"] == "approved"
    assert broker.fetch("alice", req["id"]).status_code == 200


def test_deny_is_final(broker):
    req = broker.request("alice", kind="k8s-two")
    assert broker.review("bob", req["id"], "deny", "").status_code == 400  # a denial needs a reason
    assert broker.review("bob", req["id"], "deny", "Use the runbook automation instead").status_code == 200
    assert broker.review("carol", req["id"]).status_code == 409
    r = broker.fetch("alice", req["id"])
    assert r.status_code == 410 and "denied" in r.json()["errors"][0]


def test_only_requester_fetches(broker):
    req = broker.request("alice")
    broker.review("bob", req["id"])
    assert broker.fetch("bob", req["id"]).status_code == 403
    # a second account sharing alice's mailbox but with another subject is not alice for fetching either
    assert broker.fetch("alice-mail", req["id"]).status_code == 403
    assert broker.fetch("alice", req["id"]).status_code == 200


def test_cancelled_request_cannot_be_fetched_or_approved(broker):
    req = broker.request("alice")
    assert broker.as_("bob").post(f"/v1/requests/{req['id']}/cancel").status_code == 403
    assert broker.as_("alice").post(f"/v1/requests/{req['id']}/cancel").status_code == 200
    assert broker.review("bob", req["id"]).status_code == 409
    assert broker.fetch("alice", req["id"]).status_code == 410


def test_pending_request_expires(broker):
    req = broker.request("alice")
    broker.clock.advance(3601)  # the default request TTL is one hour
    r = broker.review("bob", req["id"])
    assert r.status_code == 409 and "expired" in r.json()["errors"][0]
    assert broker.fetch("alice", req["id"]).status_code == 410
    assert any(e["type"] == "mpa.expired" and e["correlation_id"] == req["id"] for e in broker.audit_lines())


def test_sweeper_expires_without_anyone_looking(broker):
    req = broker.request("alice")
    broker.clock.advance(3601)
    wait_for(lambda: any(e["type"] == "mpa.expired" and e["correlation_id"] == req["id"]
                         for e in broker.audit_lines()), message="sweeper expiry")


def test_access_clock_starts_at_approval(broker):
    req = broker.request("alice", duration="10m")
    broker.clock.advance(50 * 60)  # approval arrives 50 minutes after the request, within its 1h TTL
    approved = broker.review("bob", req["id"]).json()["request"]
    assert approved["access_expires_at"] - approved["approved_at"] == 600
    broker.clock.advance(9 * 60)  # 59 minutes after the request, 9 after approval: still inside the window
    cred = broker.fetch("alice", req["id"]).json()["credential"]
    lifetime = cred["expires_at"] - (time.time() + broker.clock.offset)
    assert 0 < lifetime <= 61  # only what is left of the approved window


def test_approved_window_passes_before_fetch(broker):
    req = broker.request("alice", duration="5m")
    broker.review("bob", req["id"])
    broker.clock.advance(301)
    r = broker.fetch("alice", req["id"])
    assert r.status_code == 410 and "expired" in r.json()["errors"][0]


@pytest.mark.parametrize("reason", ["", "   ", "test", "n/a", "asdf", "...", "TODO", "fix", "aaaaaaaaaaaa", "Test test",
                                    "short one"])
def test_placeholder_reasons_refused(broker, reason):
    r = broker.as_("alice").post("/v1/requests", json={"kind": "k8s-admin", "reason": reason})
    assert r.status_code == 400, reason
    assert r.json()["errors"]


def test_missing_reason_refused(broker):
    r = broker.as_("alice").post("/v1/requests", json={"kind": "k8s-admin"})
    assert r.status_code == 400 and "reason" in r.json()["errors"][0]


def test_duration_above_maximum_refused(broker):
    r = broker.as_("alice").post("/v1/requests", json={"kind": "k8s-admin", "reason": "Rotate the etcd key INC-1",
                                                       "duration": "16m"})
    assert r.status_code == 400 and "maximum" in r.json()["errors"][0]


def test_unauthenticated_and_forged_tokens_refused(broker, idp):
    import httpx
    from cryptography.hazmat.primitives.asymmetric import rsa

    assert httpx.get(f"{broker.addr}/v1/requests").status_code == 401
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = idp.token("u-bob", ["platform-leads"], key=other)
    r = httpx.get(f"{broker.addr}/v1/requests", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    wrong_aud = idp.token("u-bob", ["platform-leads"], audience="someone-else")
    assert httpx.get(f"{broker.addr}/v1/requests",
                     headers={"Authorization": f"Bearer {wrong_aud}"}).status_code == 401
    expired = idp.token("u-bob", ["platform-leads"], ttl=-120)
    assert httpx.get(f"{broker.addr}/v1/requests",
                     headers={"Authorization": f"Bearer {expired}"}).status_code == 401


def test_bad_input_is_4xx_json(broker):
    c = broker.as_("alice")
    r = c.post("/v1/requests", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["errors"]
    assert c.post("/v1/requests", json=[1, 2]).status_code == 400
    assert c.post("/v1/requests", json={"kind": "nope", "reason": "Rotate the etcd key INC-1"}).status_code == 400
    assert c.get("/v1/requests/does-not-exist").status_code == 404
    assert c.get("/v1/nowhere").status_code == 404
    assert c.delete("/v1/requests").status_code == 405
    assert c.post("/v1/requests", content=b"x" * 70_000).status_code == 413


def test_review_listing_shows_only_what_caller_may_review(broker):
    mine = broker.request("alice")
    listed = broker.as_("bob").get("/v1/requests", params={"reviewable": "1"}).json()["requests"]
    assert [r["id"] for r in listed] == [mine["id"]]
    assert broker.as_("alice").get("/v1/requests", params={"reviewable": "1"}).json()["requests"] == []
    broker.review("bob", mine["id"])
    assert broker.as_("bob").get("/v1/requests", params={"reviewable": "1"}).json()["requests"] == []


def test_request_history_survives_restart(make_broker):
    b = make_broker()
    req = b.request("alice")
    b.review("bob", req["id"])
    b.stop()
    again = make_broker()
    shown = again.as_("alice").get(f"/v1/requests/{req['id']}").json()["request"]
    assert shown["state"] == "approved" and shown["approvers"] == ["bob@bank.test"]
    assert again.fetch("alice", req["id"]).status_code == 200


def test_racing_fetches_issue_one_credential(broker):
    from concurrent.futures import ThreadPoolExecutor

    req = broker.request("alice")
    broker.review("bob", req["id"])
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: broker.fetch("alice", req["id"]).status_code, range(8)))
    assert codes.count(200) == 1 and codes.count(410) == 7


def test_token_in_credential_is_bound_to_request(broker):
    req = broker.request("alice")
    broker.review("bob", req["id"])
    token = broker.fetch("alice", req["id"]).json()["credential"]["id_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["mpa_request_id"] == req["id"]


def test_kinds_lists_what_caller_may_do(broker):
    kinds = {k["name"]: k for k in broker.as_("dave").get("/v1/kinds").json()["kinds"]}
    assert kinds["k8s-admin"]["may_request"] and not kinds["k8s-admin"]["may_approve"]
    assert kinds["k8s-admin"]["may_break_glass"] and not kinds["broker-deploy"]["may_break_glass"]
    assert kinds["k8s-admin"]["max_duration"] == 900 and kinds["k8s-admin"]["request_ttl"] == 3600


def test_fetch_refused_when_audit_cannot_be_written(broker):
    req = broker.request("alice")
    broker.review("bob", req["id"])
    broker.audit_path.chmod(0o400)
    broker.audit_path.rename(broker.audit_path.with_suffix(".moved"))
    broker.audit_path.mkdir()  # appending to a directory fails like a full or read-only disk
    r = broker.fetch("alice", req["id"])
    assert r.status_code == 503 and "audit" in r.json()["errors"][0]
    assert "id_token" not in r.text
