"""Strongroom-admin and database-superuser kinds.

Both run against a real `strongroom server --dev` (the shared `server` fixture); the database kind also against a real
PostgreSQL server. A few database-kind cases that need the server to misbehave (an outage, a lease outliving the
approved window) use the stand-in in standin.py, which follows the same wire format.
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


@pytest.mark.postgres
def test_database_superuser_against_real_server_and_postgres(make_broker, server, postgres_dsn):
    """The database kind end to end: Strongroom's database engine on a real PostgreSQL, revoked by `mpa revoke`."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    root = server.http()
    assert root.post("/v1/sys/mounts/database", json={"type": "database"}).status_code in (200, 204)
    r = root.post("/v1/database/config/pg", json={"plugin_name": "postgresql-database-plugin",
                                                  "connection_url": postgres_dsn, "allowed_roles": "superuser"})
    assert r.status_code in (200, 204), r.text
    r = root.post("/v1/database/roles/superuser", json={
        "db_name": "pg", "default_ttl": "1h",
        "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN SUPERUSER PASSWORD '{{password}}' "
                                "VALID UNTIL '{{expiration}}';"],
    })
    assert r.status_code in (200, 204), r.text
    policy = "\n".join([
        'path "database/creds/superuser" { capabilities = ["read"] }',
        'path "sys/leases/revoke" { capabilities = ["update"] }',
        'path "sys/audit-events" { capabilities = ["update"] }',
    ])
    assert root.post("/v1/sys/policies/acl/mpa-broker-db", json={"policy": policy}).status_code in (200, 204)
    token = root.post("/v1/auth/token/create", json={"policies": ["mpa-broker-db"]}).json()["auth"]["client_token"]
    broker = make_broker(strongroom=(server.addr, token))
    req = broker.request("alice", kind="db-superuser", duration="10m")
    broker.review("bob", req["id"])
    r = broker.fetch("alice", req["id"])
    assert r.status_code == 200, r.text
    cred = r.json()["credential"]
    user_dsn = make_conninfo(postgres_dsn, user=cred["username"], password=cred["password"])
    with psycopg.connect(user_dsn) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is True
    assert cred["password"] not in broker.audit_path.read_text()
    assert broker.as_("alice").post(f"/v1/requests/{req['id']}/revoke").status_code == 200
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(user_dsn, connect_timeout=5).close()
    # A second credential is never revoked by hand: the broker ends its lease when the approved window closes.
    req = broker.request("alice", kind="db-superuser", duration="5m")
    broker.review("bob", req["id"])
    cred = broker.fetch("alice", req["id"]).json()["credential"]
    user_dsn = make_conninfo(postgres_dsn, user=cred["username"], password=cred["password"])
    psycopg.connect(user_dsn, connect_timeout=5).close()
    broker.clock.advance(301)

    def login_refused() -> bool:
        try:
            psycopg.connect(user_dsn, connect_timeout=5).close()
        except psycopg.OperationalError:
            return True
        return False

    wait_for(login_refused, timeout=30, message="lease revoked at the end of the window")
