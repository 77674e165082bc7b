"""Policies and the ACL through the real API: default deny, create vs update, sudo, capabilities."""

from __future__ import annotations

import httpx
import hvac
import pytest


def _token(client, *policies):
    return client.auth.token.create(policies=list(policies))["auth"]["client_token"]


def test_token_with_no_matching_policy_gets_403(server, client):
    client.secrets.kv.v2.create_or_update_secret("team/x", secret={"v": "1"})
    tok = _token(client, "default")
    with pytest.raises(hvac.exceptions.Forbidden):
        server.client(tok).secrets.kv.v2.read_secret_version("team/x")
    with pytest.raises(hvac.exceptions.Forbidden):
        server.client(tok).sys.list_mounted_secrets_engines()


def test_create_only_policy_writes_new_secret_but_refuses_overwrite(server, client):
    client.sys.create_or_update_policy("create-only", 'path "secret/data/*" { capabilities = ["create"] }')
    writer = server.client(_token(client, "create-only"))
    writer.secrets.kv.v2.create_or_update_secret("fresh/key", secret={"v": "first"})
    with pytest.raises(hvac.exceptions.Forbidden):
        writer.secrets.kv.v2.create_or_update_secret("fresh/key", secret={"v": "second"})
    assert client.secrets.kv.v2.read_secret_version("fresh/key")["data"]["data"] == {"v": "first"}


def test_policy_crud_hcl_and_json(client):
    hcl = 'path "secret/data/app/*" {\n  capabilities = ["read", "list"]\n}\n'
    client.sys.create_or_update_policy("app-read", hcl)
    assert client.sys.read_policy("app-read")["data"]["rules"] == hcl
    assert "app-read" in client.sys.list_policies()["data"]["policies"]
    client.sys.create_or_update_policy("json-pol", {"path": {"secret/data/j": {"capabilities": ["read"]}}})
    assert "secret/data/j" in client.sys.read_acl_policy("json-pol")["data"]["policy"]
    client.sys.delete_policy("app-read")
    assert "app-read" not in client.sys.list_acl_policies()["data"]["keys"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.create_or_update_policy("broken", 'path "x" { capabilities = ["fly"] }')
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.delete_policy("root")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.delete_policy("default")


def test_deny_wins_and_capabilities_self(server, client):
    client.sys.create_or_update_policy(
        "mixed",
        """
path "secret/data/shared/*" { capabilities = ["read", "create", "update"] }
path "secret/data/shared/locked" { capabilities = ["deny"] }
""",
    )
    tok = _token(client, "mixed")
    c = server.client(tok)
    caps = client.sys.get_capabilities(paths=["secret/data/shared/a", "secret/data/shared/locked"], token=tok)
    assert sorted(caps["secret/data/shared/a"]) == ["create", "read", "update"]
    assert caps["secret/data/shared/locked"] == ["deny"]
    resp = httpx.post(
        f"{server.addr}/v1/sys/capabilities-self",
        headers={"X-Vault-Token": tok},
        json={"paths": ["secret/data/shared/a"]},
    ).json()
    assert sorted(resp["capabilities"]) == ["create", "read", "update"]
    root_caps = httpx.post(
        f"{server.addr}/v1/sys/capabilities-self",
        headers={"X-Vault-Token": server.root_token},
        json={"path": "anything"},
    ).json()
    assert root_caps["capabilities"] == ["root"]
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v2.create_or_update_secret("shared/locked", secret={"v": "x"})


def test_sudo_protected_paths(server, client):
    client.sys.create_or_update_policy("mounter", 'path "sys/auth/*" { capabilities = ["create", "update"] }')
    tok = _token(client, "mounter")
    with pytest.raises(hvac.exceptions.Forbidden):
        server.client(tok).sys.enable_auth_method("jwt", path="nope")
    client.sys.create_or_update_policy("mounter", 'path "sys/auth/*" { capabilities = ["create", "update", "sudo"] }')
    server.client(tok).sys.enable_auth_method("jwt", path="staff")
    assert "staff/" in client.sys.list_auth_methods()["data"]


def test_policy_parameter_constraints(server, client):
    client.sys.create_or_update_policy(
        "params",
        """
path "cubbyhole/*" {
  capabilities = ["create", "update"]
  allowed_parameters = { "colour" = ["red", "blue"] }
}
""",
    )
    c = server.client(_token(client, "params"))
    c.write("cubbyhole/a", colour="red")
    with pytest.raises(hvac.exceptions.Forbidden):
        c.write("cubbyhole/a", colour="green")
    with pytest.raises(hvac.exceptions.Forbidden):
        c.write("cubbyhole/a", colour="red", extra="x")
