"""Slack notifications: escaped user text, blocks with a fallback, and an outage that blocks nothing."""

from __future__ import annotations

from broker.harness import wait_for
from strongroom.broker.notify import escape, slack_payload


def test_escape():
    assert escape("<!channel> & <https://evil|click>") == "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"


def test_request_posts_escaped_blocks(broker, receiver):
    hostile = "<!channel> urgent: see <https://evil.example|the runbook> & approve"
    req = broker.request("alice", reason=hostile)
    posts = wait_for(lambda: receiver.bodies("/slack"), message="slack post")
    body = posts[0]
    assert body["text"] and body["blocks"]
    everything = str(body)
    assert "<!channel>" not in everything and "<https://evil" not in everything
    assert "&lt;!channel&gt;" in everything
    assert req["id"] in body["text"]
    assert body["blocks"][0]["type"] == "header" and len(body["blocks"][0]["text"]["text"]) <= 150


def test_review_and_fetch_are_posted(broker, receiver):
    req = broker.request("alice")
    broker.review("bob", req["id"], comment="<@U123> ok")
    broker.fetch("alice", req["id"])
    wait_for(lambda: len(receiver.bodies("/slack")) >= 4, message="four posts")
    texts = [b["text"] for b in receiver.bodies("/slack")]
    assert any("approved" in t for t in texts) and any("fetched" in t for t in texts)
    assert all("<@U123>" not in str(b) for b in receiver.bodies("/slack"))


def test_outage_does_not_block_and_is_retried(broker, receiver):
    receiver.status = 503
    req = broker.request("alice")  # answers at once although Slack is failing
    assert broker.review("bob", req["id"]).status_code == 200
    assert broker.fetch("alice", req["id"]).status_code == 200
    types = [e["type"] for e in broker.audit_lines()]
    assert {"mpa.created", "mpa.approved", "mpa.fetched"} <= set(types)  # the audit record is complete
    wait_for(lambda: receiver.attempts >= 4, message="retries during the outage")
    receiver.status = 200
    wait_for(lambda: len(receiver.bodies("/slack")) >= 4, message="delivery after the outage")


def test_payload_limits():
    event = {"name": "created", "actor": {"email": "a@b"},
             "request": {"id": "mpa-x", "kind": "k", "reason": "x" * 5000, "requester": "a@b", "duration": 900}}
    body = slack_payload(event)
    assert all(len(b["text"]["text"]) <= 3000 for b in body["blocks"] if b["type"] == "section")
    assert len(body["blocks"]) <= 50


def test_notification_given_up_is_recorded(broker, receiver):
    receiver.status = 500
    broker.request("alice")
    wait_for(lambda: any(e["type"] == "mpa.delivery-failed" for e in broker.audit_lines()), timeout=30,
             message="give-up recorded")
    failed = next(e for e in broker.audit_lines() if e["type"] == "mpa.delivery-failed")
    assert failed["details"]["channel"] == "slack"
