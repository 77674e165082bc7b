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


def test_mounts_cannot_exempt_values_from_audit_hmac(server, client):
    client.sys.create_or_update_policy("tuner", 'path "sys/mounts/secret/tune" { capabilities = ["update"] }')
    tuner = server.client(_token(client, "tuner"))
    for key in ("audit_non_hmac_request_keys", "audit_non_hmac_response_keys"):
        with pytest.raises(hvac.exceptions.InvalidRequest):
            tuner.write("sys/mounts/secret/tune", **{key: ["data"]})
        with pytest.raises(hvac.exceptions.InvalidRequest):
            client.write("sys/mounts/secret/tune", **{key: ["data"]})


def test_names_are_refused_not_tidied_past_a_deny(server, client):
    client.sys.create_or_update_policy("admin", 'path "secret/*" { capabilities = ["read"] }')
    client.sys.enable_secrets_engine("kv", path="important", options={"version": "2"})
    client.sys.create_or_update_policy("ops", """
path "sys/policies/acl/*" { capabilities = ["create", "update", "delete"] }
path "sys/policies/acl/admin" { capabilities = ["deny"] }
path "sys/mounts/*" { capabilities = ["create", "update", "delete", "read"] }
path "sys/mounts/important" { capabilities = ["deny"] }
""")
    ops = _token(client, "ops")
    with httpx.Client(base_url=server.addr, headers={"X-Vault-Token": ops}) as http:
        assert http.put("/v1/sys/policies/acl/admin%20", json={"policy": 'path "x" {capabilities=["read"]}'}
                        ).status_code in (400, 403)
        assert http.put("/v1/sys/policies/acl/ADMIN", json={"policy": 'path "x" {capabilities=["read"]}'}
                        ).status_code == 403
        assert http.delete("/v1/sys/mounts/important/").status_code == 403
    assert "secret/*" in client.sys.read_acl_policy("admin")["data"]["policy"]
    assert "important/" in client.sys.list_mounted_secrets_engines()["data"]


def test_token_role_max_ttl_caps_renewal(server, client):
    client.write("auth/token/roles/short", allowed_policies=["default"], token_max_ttl="120s")
    tok = client.auth.token.create(role_name="short", policies=["default"])["auth"]["client_token"]
    renewed = server.client(tok).auth.token.renew_self(increment="720h")["auth"]
    assert renewed["lease_duration"] <= 120


def test_body_cannot_choose_the_token_role_and_renew_accessor_mints_nothing(server, client):
    client.auth.token.create_or_update_role("adminrole", allowed_policies=["admin"])
    client.sys.create_or_update_policy("dev", """
path "auth/token/create" { capabilities = ["update"] }
path "auth/token/renew-accessor" { capabilities = ["update"] }
""")
    dev = server.client(_token(client, "dev"))
    with pytest.raises(hvac.exceptions.InvalidRequest):
        dev.write("auth/token/create", role_name="adminrole", policies=["admin"])
    victim = client.auth.token.create(policies=["admin"], ttl="1h")["auth"]
    resp = dev.write("auth/token/renew-accessor", accessor=victim["accessor"])
    assert resp["auth"]["client_token"] == ""


def test_role_without_allow_list_cannot_exceed_the_callers_policies(server, client):
    client.auth.token.create_or_update_role("open", disallowed_policies=["admin"])
    client.sys.create_or_update_policy("maker", 'path "auth/token/create/open" { capabilities = ["update"] }')
    maker = server.client(_token(client, "maker"))
    with pytest.raises(hvac.exceptions.InvalidRequest):
        maker.auth.token.create(role_name="open", policies=["admin2"])


def test_denied_parameter_values_hold_whatever_their_case_or_spacing(server, client):
    client.sys.create_or_update_policy("maker", """
path "auth/token/create" {
  capabilities = ["update"]
  denied_parameters = { "policies" = ["admin2"] }
}
path "*" { capabilities = ["read"] }
""")
    client.sys.create_or_update_policy("admin2", 'path "secret/*" { capabilities = ["read"] }')
    maker = server.client(_token(client, "maker", "admin2"))
    for value in ("admin2", "ADMIN2", " admin2", ["Admin2 "], "default,admin2"):
        with pytest.raises(hvac.exceptions.Forbidden):
            maker.write("auth/token/create", policies=value)
