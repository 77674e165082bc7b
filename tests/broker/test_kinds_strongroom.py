"""Strongroom-admin and database-superuser kinds.

Strongroom admin runs against a real `strongroom server --dev` (the shared `server` fixture). The database kind runs
against the stand-in in standin.py, because the database engine cannot yet be mounted on the test server.
"""

from __future__ import annotations

import time

import httpx
import pytest

from broker.harness import wait_for

BROKER_POLICY = """
path "auth/token/create/mpa-admin" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "sys/audit-events" { capabilities = ["update"] }
"""
DESTROYER_POLICY = 'path "secret/*" { capabilities = ["read", "update", "delete"] }'


@pytest.fixture
def strongroom_broker(make_broker, server):
    root = server.http()
    assert root.post("/v1/sys/policies/acl/mpa-broker", json={"policy": BROKER_POLICY}).status_code in (200, 204)
    assert root.post("/v1/sys/policies/acl/kv-destroyer", json={"policy": DESTROYER_POLICY}).status_code in (200, 204)
    r = root.post("/v1/auth/token/roles/mpa-admin", json={"allowed_policies": ["kv-destroyer"], "orphan": True})
    assert r.status_code in (200, 204), r.text
    created = root.post("/v1/auth/token/create", json={"policies": ["mpa-broker"], "ttl": "2h"})
    broker_token = created.json()["auth"]["client_token"]
    kind = {"type": "strongroom-admin", "request_groups": ["platform"], "approve_groups": ["platform-leads"],
            "policy": "kv-destroyer", "token_role": "mpa-admin"}
    return make_broker(strongroom=(server.addr, broker_token), **{"strongroom-admin": kind}), server


def _lookup(server, token: str) -> httpx.Response:
    return httpx.get(f"{server.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": token}, timeout=10)


def test_strongroom_admin_token_has_policy_ttl_and_request_meta(strongroom_broker):
    broker, server = strongroom_broker
    req = broker.request("alice", kind="strongroom-admin", duration="10m")
    broker.review("bob", req["id"])
    r = broker.fetch("alice", req["id"])
    assert r.status_code == 200, r.text
    cred = r.json()["credential"]
    info = _lookup(server, cred["token"]).json()["data"]
    assert "kv-destroyer" in info["policies"]
    assert 0 < info["ttl"] <= 600
    assert info["meta"]["mpa_request_id"] == req["id"]
    assert info["meta"]["mpa_approvers"] == "bob@bank.test"
    assert cred["token"] not in broker.audit_path.read_text()  # the secret never reaches the audit record


def test_revoke_ends_the_strongroom_token(strongroom_broker):
    broker, server = strongroom_broker
    req = broker.request("alice", kind="strongroom-admin")
    broker.review("bob", req["id"])
    token = broker.fetch("alice", req["id"]).json()["credential"]["token"]
    assert _lookup(server, token).status_code == 200
    r = broker.as_("bob").post(f"/v1/requests/{req['id']}/revoke", json={"comment": "done with the incident"})
    assert r.status_code == 200, r.text
    assert _lookup(server, token).status_code == 403
    assert broker.as_("bob").post(f"/v1/requests/{req['id']}/revoke").status_code == 409


def test_audit_events_reach_the_strongroom_server(strongroom_broker):
    broker, _ = strongroom_broker
    broker.request("alice", kind="strongroom-admin")
    queue = broker.runtime.forward_queue
    wait_for(lambda: queue.delivered >= 2, message="events forwarded")  # broker-started and created
    assert queue.failed == 0


def test_database_superuser_fetch_and_revoke(make_broker, standin):
    app, addr = standin
    broker = make_broker(strongroom=(addr, app.root_token))
    req = broker.request("alice", kind="db-superuser", duration="5m")
    broker.review("bob", req["id"])
    cred = broker.fetch("alice", req["id"]).json()["credential"]
    assert cred["type"] == "database" and cred["username"] and cred["password"]
    assert cred["lease_id"] in app.leases
    assert cred["expires_at"] <= time.time() + 300 + 2  # bounded by the approved window, not the lease's hour
    assert broker.as_("alice").post(f"/v1/requests/{req['id']}/revoke").status_code == 200
    assert cred["lease_id"] not in app.leases


def test_database_lease_ends_when_window_closes(make_broker, standin):
    app, addr = standin
    broker = make_broker(strongroom=(addr, app.root_token))
    req = broker.request("alice", kind="db-superuser", duration="5m")
    broker.review("bob", req["id"])
    lease = broker.fetch("alice", req["id"]).json()["credential"]["lease_id"]
    broker.clock.advance(301)
    wait_for(lambda: lease not in app.leases, message="lease revoked by the sweeper")


def test_mint_failure_leaves_request_fetchable(make_broker, standin):
    app, addr = standin
    broker = make_broker(strongroom=(addr, app.root_token))
    req = broker.request("alice", kind="db-superuser")
    broker.review("bob", req["id"])
    app.down = True
    assert broker.fetch("alice", req["id"]).status_code == 502
    app.down = False
    assert broker.fetch("alice", req["id"]).status_code == 200
