"""Tokens through auth/token with hvac: creation, lookup, renewal, revocation, roles, hashing."""

from __future__ import annotations

import httpx
import hvac
import pytest

from tests.conftest import wait_for


def test_create_lookup_and_shape(client):
    created = client.auth.token.create(
        policies=["default"], ttl="1h", meta={"team": "payments"}, display_name="ci-bot", num_uses=0
    )
    auth = created["auth"]
    assert auth["client_token"].startswith("hvs.") and len(auth["client_token"]) == 28
    assert auth["policies"] == ["default"] and auth["renewable"] is True
    assert 3590 <= auth["lease_duration"] <= 3600
    assert auth["orphan"] is False and auth["token_type"] == "service"
    info = client.auth.token.lookup(auth["client_token"])["data"]
    assert info["display_name"] == "token-ci-bot"
    assert info["meta"] == {"team": "payments"}
    assert info["accessor"] == auth["accessor"]
    by_accessor = client.auth.token.lookup_accessor(auth["accessor"])["data"]
    assert by_accessor["id"] == "" and by_accessor["policies"] == ["default"]
    self_info = hvac.Client(url=client.url, token=auth["client_token"]).auth.token.lookup_self()["data"]
    assert self_info["id"] == auth["client_token"]


CREATOR = 'path "auth/token/create" { capabilities = ["update"] }'


def test_child_token_dies_with_its_parent_but_orphan_survives(server, client):
    client.sys.create_or_update_policy("creator", CREATOR)
    parent = client.auth.token.create(policies=["creator"])["auth"]["client_token"]
    pclient = server.client(parent)
    child = pclient.auth.token.create(policies=["creator"])["auth"]["client_token"]
    grandchild = server.client(child).auth.token.create(policies=["default"])["auth"]["client_token"]
    orphan = client.auth.token.create_orphan(policies=["default"])["auth"]["client_token"]
    client.auth.token.revoke(parent)
    for tok in (parent, child, grandchild):
        with pytest.raises(hvac.exceptions.Forbidden):
            server.client(tok).auth.token.lookup_self()
    assert server.client(orphan).auth.token.lookup_self()["data"]["orphan"] is True


def test_revoke_orphan_keeps_children(server, client):
    client.sys.create_or_update_policy("creator", CREATOR)
    parent = client.auth.token.create(policies=["creator"])["auth"]["client_token"]
    child = server.client(parent).auth.token.create(policies=["default"])["auth"]["client_token"]
    client.auth.token.revoke_and_orphan_children(parent)
    assert server.client(child).auth.token.lookup_self()["data"]["policies"] == ["default"]


def test_non_root_cannot_escalate_policies(server, client):
    client.sys.create_or_update_policy("small", 'path "auth/token/create" { capabilities = ["update"] }')
    small = client.auth.token.create(policies=["small"])["auth"]["client_token"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        server.client(small).auth.token.create(policies=["root"])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        server.client(small).auth.token.create(policies=["admin"])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        server.client(small).auth.token.create(policies=["small"], no_parent=True)


def test_renew_and_max_ttl(server, client):
    tok = client.auth.token.create(policies=["default"], ttl="60s", explicit_max_ttl="90s")["auth"]["client_token"]
    renewed = server.client(tok).auth.token.renew_self(increment="3600s")["auth"]
    assert renewed["lease_duration"] <= 90
    not_renewable = client.auth.token.create(policies=["default"], ttl="60s", renewable=False)["auth"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        server.client(not_renewable["client_token"]).auth.token.renew_self()


def test_expired_token_is_refused(server, client):
    tok = client.auth.token.create(policies=["default"], ttl="1s")["auth"]["client_token"]

    def refused() -> bool:
        return httpx.get(f"{server.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": tok}).status_code == 403

    wait_for(refused, timeout=10, message="token expiry")


def test_num_uses_limits_the_token(server, client):
    tok = client.auth.token.create(policies=["default"], num_uses=2)["auth"]["client_token"]
    c = server.client(tok)
    c.auth.token.lookup_self()
    c.auth.token.lookup_self()
    with pytest.raises(hvac.exceptions.Forbidden):
        c.auth.token.lookup_self()


def test_accessors_list_needs_sudo_and_revoke_accessor(server, client):
    tok = client.auth.token.create(policies=["default"])["auth"]
    keys = client.auth.token.list_accessors()["data"]["keys"]
    assert tok["accessor"] in keys
    with pytest.raises(hvac.exceptions.Forbidden):
        server.client(tok["client_token"]).auth.token.list_accessors()
    client.auth.token.revoke_accessor(tok["accessor"])
    with pytest.raises(hvac.exceptions.Forbidden):
        server.client(tok["client_token"]).auth.token.lookup_self()


def test_token_roles(server, client):
    client.auth.token.create_or_update_role("ci", allowed_policies=["default", "ci"], orphan=True, token_period="1h")
    assert client.auth.token.read_role("ci")["data"]["orphan"] is True
    assert "ci" in client.auth.token.list_roles()["data"]["keys"]
    auth = client.auth.token.create(role_name="ci", policies=["ci"])["auth"]
    assert auth["orphan"] is True and "ci" in auth["policies"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.auth.token.create(role_name="ci", policies=["admin"])
    client.auth.token.delete_role("ci")
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.auth.token.read_role("ci")


def test_bearer_header_and_bad_tokens(server):
    ok = httpx.get(f"{server.addr}/v1/auth/token/lookup-self", headers={"Authorization": f"Bearer {server.root_token}"})
    assert ok.status_code == 200
    for bad in ("hvs.nottherealtokenxxxxxxxxxx", "", "x" * 5000):
        resp = httpx.get(f"{server.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": bad})
        assert resp.status_code in (400, 403) and resp.json()["errors"]


def test_cubbyhole_is_private_per_token(server, client):
    a = client.auth.token.create(policies=["default"])["auth"]["client_token"]
    b = client.auth.token.create(policies=["default"])["auth"]["client_token"]
    server.client(a).write("cubbyhole/note", value="only-a")
    assert server.client(a).read("cubbyhole/note")["data"] == {"value": "only-a"}
    assert server.client(b).read("cubbyhole/note") is None
