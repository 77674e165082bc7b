"""`strongroom config plan | apply | export` against one real dev server, through the real `strongroom` entry point.

The tests share the server and run in order: each starts from a fresh export, so each sees the whole configuration.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import ROOT_TOKEN, STRONGROOM

DB_PASSWORD = "pg-root-Zq8w1x7"  # the real PostgreSQL superuser's password is in the DSN; this one is the check value
REVIEWER_JWT = "reviewer.jwt.Kf93hsQ2"
USER_PASSWORD = "user-pass-Lm4k2p9"


def cli(server, *args: str, token: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "VAULT_ADDR": server.addr, "VAULT_TOKEN": token or ROOT_TOKEN, **(env or {})}
    full_env.pop("STRONGROOM_ADDR", None)
    full_env.pop("STRONGROOM_TOKEN", None)
    return subprocess.run([STRONGROOM, "config", *args], capture_output=True, text=True, env=full_env, timeout=120)


def ok(r: subprocess.CompletedProcess, code: int = 0) -> str:
    assert r.returncode == code, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def export(server, tmp_path: Path, name: str = "cfg") -> Path:
    d = tmp_path / name
    ok(cli(server, "export", str(d)))
    return d


@pytest.fixture(scope="module")
def configured(server, postgres_dsn):
    """A server holding one of every kind of object, set up by hand over the HTTP API."""
    from urllib.parse import urlsplit

    h = server.http()

    def call(method: str, path: str, body: dict | None = None) -> None:
        r = h.request(method, f"/v1/{path}", json=body)
        assert r.status_code in (200, 204), f"{path}: {r.text}"

    pg = urlsplit(postgres_dsn)
    call("POST", "sys/mounts/database", {"type": "database"})
    call("POST", "database/config/pg", {
        "plugin_name": "postgresql-database-plugin", "allowed_roles": ["app"], "username": pg.username,
        "password": pg.password or "", "verify_connection": True,
        "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@{pg.hostname}:{pg.port}/postgres",
    })
    call("POST", "database/roles/app", {"db_name": "pg", "creation_statements": ['CREATE ROLE "{{name}}" LOGIN'],
                                        "default_ttl": "1h", "max_ttl": "24h"})
    call("POST", "sys/mounts/transit", {"type": "transit"})
    call("POST", "transit/keys/payments", {"type": "aes256-gcm96"})
    call("POST", "sys/mounts/ledger", {"type": "kv", "options": {"version": "2", "write_once": "true"}})
    call("POST", "sys/auth/approle", {"type": "approle"})
    call("POST", "auth/approle/role/batch", {"token_policies": ["app-read"], "token_ttl": "1h"})
    call("POST", "auth/approle/role/old-job", {"token_policies": ["default"]})
    call("POST", "sys/auth/userpass", {"type": "userpass"})
    call("POST", "auth/userpass/users/alice", {"password": USER_PASSWORD, "token_policies": ["default"]})
    call("POST", "auth/kubernetes/config", {"kubernetes_host": "https://k8s.example:443",
                                            "token_reviewer_jwt": REVIEWER_JWT})
    call("POST", "auth/kubernetes/role/ledger", {"bound_service_account_names": ["s-ledger"],
                                                 "bound_service_account_namespaces": ["default"],
                                                 "token_policies": ["app-read"], "token_ttl": "1h"})
    call("PUT", "sys/policies/acl/app-read", {"policy": 'path "secret/data/app/*" {\n  capabilities = ["read"]\n}\n'})
    call("POST", "auth/token/roles/deployer", {"allowed_policies": ["app-read"], "orphan": True})
    call("POST", "identity/group", {"name": "platform", "policies": ["app-read"], "type": "external"})
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    call("POST", "sys/auth/jwt", {"type": "jwt"})
    call("POST", "auth/jwt/config", {"jwt_validation_pubkeys": [pem], "bound_issuer": "https://idp.bank.test"})
    call("POST", "auth/jwt/role/staff", {"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["strongroom"],
                                         "groups_claim": "groups", "token_policies": ["default"]})
    group_id = h.get("/v1/identity/group/name/platform").json()["data"]["id"]
    accessor = h.get("/v1/sys/auth").json()["data"]["jwt/"]["accessor"]
    call("POST", "identity/group-alias", {"name": "okta-platform", "mount_accessor": accessor,
                                          "canonical_id": group_id})
    if "pki/" not in h.get("/v1/sys/mounts").json()["data"]:
        call("POST", "sys/mounts/pki", {"type": "pki"})
    call("POST", "pki/roles/web", {"allowed_domains": ["bank.internal"], "allow_subdomains": True, "max_ttl": "72h"})
    return server


def test_export_writes_files_that_plan_reports_as_no_change(configured, tmp_path):
    d = export(configured, tmp_path)
    names = sorted(p.name for p in d.glob("*.hcl"))
    for expected in ("audit.hcl", "auth.hcl", "database.hcl", "mounts.hcl", "policies.hcl", "transit.hcl"):
        assert expected in names
    assert (d / "policies" / "app-read.hcl").read_text().startswith('path "secret/data/app/*"')
    out = ok(cli(configured, "plan", str(d)))
    assert "No changes" in out
    texts = "".join(p.read_text() for p in d.rglob("*.hcl"))
    for block in ('auth_role "approle" "batch"', 'transit_key "transit" "payments"', 'auth_config "jwt"',
                  'auth_role "jwt" "staff"', 'identity_group_alias "jwt" "okta-platform"', 'pki_role "pki" "web"',
                  'database_role "database" "app"', 'token_role "deployer"', 'identity_group "platform"'):
        assert block in texts
    assert 'group = "platform"' in texts
    assert 'password = env("STRONGROOM_DATABASE_PG_PASSWORD")' in texts
    assert 'token_reviewer_jwt = env("STRONGROOM_KUBERNETES_TOKEN_REVIEWER_JWT")' in texts
    for secret in (DB_PASSWORD, REVIEWER_JWT, USER_PASSWORD):
        assert secret not in texts


def test_policy_edit_is_exactly_one_update_marked_as_widening(configured, tmp_path):
    d = export(configured, tmp_path)
    policy = d / "policies" / "app-read.hcl"
    policy.write_text(policy.read_text().replace('["read"]', '["read", "update"]'))
    out = ok(cli(configured, "plan", str(d)), 2)
    changes = [ln for ln in out.splitlines() if re.match(r"^(\+|~|-|-/\+) ", ln)]
    assert changes == ['~ update policy "app-read"  [!widens access]'], out
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in out
    assert '+  capabilities = ["read", "update"]' in out
    auth = d / "auth.hcl"
    auth.write_text(auth.read_text().replace("token_ttl = 3600", "token_ttl = \"8h\"", 1))
    out = ok(cli(configured, "plan", str(d)), 2)
    assert "[!widens access]" in next(ln for ln in out.splitlines() if ln.startswith('~ update auth_role'))
    assert 'token_ttl: 3600 -> "8h"' in out


def test_removed_role_needs_allow_delete(configured, tmp_path):
    d = export(configured, tmp_path)
    auth = d / "auth.hcl"
    text = auth.read_text()
    start = text.index('auth_role "approle" "old-job"')
    auth.write_text(text[:start] + text[text.index("}\n", start) + 2:])
    out = ok(cli(configured, "plan", str(d)), 2)
    assert '- delete auth_role "approle" "old-job"' in out
    refused = cli(configured, "apply", str(d))
    assert refused.returncode == 1 and "needs --allow-delete" in refused.stderr
    h = configured.http()
    assert h.get("/v1/auth/approle/role/old-job").status_code == 200
    ok(cli(configured, "apply", str(d), "--allow-delete"))
    assert h.get("/v1/auth/approle/role/old-job").status_code == 404
    assert "No changes" in ok(cli(configured, "plan", str(d)))


def test_apply_twice_changes_nothing_the_second_time(configured, tmp_path):
    d = export(configured, tmp_path)
    (d / "payments.hcl").write_text('''
# the payments team's corner (comments are allowed anywhere)
secrets_engine "payments-kv" {  # KV version 2
  type        = "kv-v2"
  description = "payments team"
  max_lease_ttl = "24h"
}
policy "payments" {
  policy = <<EOT
path "payments-kv/data/*" {
  capabilities = ["read"]
}
EOT
}
auth_role "kubernetes" "payments" {
  bound_service_account_names      = ["s-payments"]
  bound_service_account_namespaces = ["prod"]
  token_policies                   = ["payments"]
  token_ttl                        = "30m"
}
transit_key "transit" "payments-cards" {
  type             = "aes256-gcm96"
  deletion_allowed = false
}
identity_group "payments-oncall" {
  type     = "internal"
  policies = ["payments"]
}
token_role "payments-ci" {
  allowed_policies = ["payments"]
}
''')
    first = ok(cli(configured, "apply", str(d)))
    assert "Applied 6 change(s)" in first
    second = ok(cli(configured, "apply", str(d)))
    assert "No changes" in second and "Applied" not in second
    assert "No changes" in ok(cli(configured, "plan", str(d)))
    c = configured.client()
    role = c.read("auth/kubernetes/role/payments")["data"]
    assert role["token_policies"] == ["payments"] and role["token_ttl"] == 1800
    assert c.read("sys/mounts/payments-kv/tune")["data"]["max_lease_ttl"] == 86400
    assert c.read("transit/keys/payments-cards")["data"]["type"] == "aes256-gcm96"


def test_manual_drift_is_reported_and_fixed(configured, tmp_path):
    d = export(configured, tmp_path)
    h = configured.http()
    drift = h.post("/v1/auth/kubernetes/role/ledger", json={"token_ttl": "12h", "token_policies": ["app-read", "root"]})
    assert drift.status_code in (200, 204), drift.text
    out = ok(cli(configured, "plan", str(d)), 2)
    # going back narrows access (shorter TTL, one policy fewer): no risk mark
    assert '~ update auth_role "kubernetes" "ledger"' in out.splitlines()
    assert "token_ttl: 43200 -> 3600" in out
    assert 'token_policies: ["app-read", "root"] -> ["app-read"]' in out
    ok(cli(configured, "apply", str(d)))
    role = h.get("/v1/auth/kubernetes/role/ledger").json()["data"]
    assert role["token_ttl"] == 3600 and role["token_policies"] == ["app-read"]
    assert "No changes" in ok(cli(configured, "plan", str(d)))


def test_secrets_stay_out_of_plan_files_and_audit_and_changes_carry_the_plan_hash(configured, tmp_path, postgres_dsn):
    from urllib.parse import urlsplit

    pg = urlsplit(postgres_dsn)
    d = export(configured, tmp_path)
    (d / "secrets").mkdir()
    (d / "secrets" / "bob.password").write_text(USER_PASSWORD + "\n")
    (d / "more.hcl").write_text(f'''
database_connection "database" "pg2" {{
  plugin_name    = "postgresql-database-plugin"
  connection_url = "postgresql://{{{{username}}}}:{{{{password}}}}@{pg.hostname}:{pg.port}/postgres"
  username       = "{pg.username}"
  password       = env("CAC_DB_ROOT_PASSWORD")
  verify_connection = false
  allowed_roles  = ["*"]
}}
auth_user "userpass" "bob" {{
  password       = file("secrets/bob.password")
  token_policies = ["default"]
}}
''')
    env = {"CAC_DB_ROOT_PASSWORD": DB_PASSWORD}
    plan = cli(configured, "plan", str(d), env=env)
    out = ok(plan, 2)
    assert "password = (sensitive)" in out
    plan_hash = re.search(r"Plan hash: ([0-9a-f]{64})", out).group(1)
    missing = cli(configured, "apply", str(d))  # the env var is not set: nothing may change
    assert missing.returncode == 1 and 'env("CAC_DB_ROOT_PASSWORD") is not set' in missing.stderr
    assert configured.http().get("/v1/auth/userpass/users/bob").status_code == 404
    applied = ok(cli(configured, "apply", str(d), "--plan-hash", plan_hash, env=env))
    assert "Applied 2 change(s)" in applied
    login = configured.http(token="").post("/v1/auth/userpass/login/bob", json={"password": USER_PASSWORD})
    assert login.status_code == 200, login.text
    exported = export(configured, tmp_path, "again")
    everything = plan.stdout + plan.stderr + applied + "".join(p.read_text() for p in exported.rglob("*.hcl"))
    audit = configured.audit_path.read_text()
    for secret in (DB_PASSWORD, USER_PASSWORD, REVIEWER_JWT):
        assert secret not in everything
        assert secret not in audit
    entries = [json.loads(line) for line in audit.splitlines() if line.strip()]
    writes = [e for e in entries if e["type"] == "response" and e["request"]["operation"] in ("create", "update")
              and e["request"]["path"] in ("database/config/pg2", "auth/userpass/users/bob")]
    assert len(writes) == 2
    for e in writes:
        assert e["auth"]["metadata"]["config_plan_hash"] == plan_hash
        assert e["auth"]["display_name"] == "token-config-apply"


def test_a_stale_reviewed_plan_is_refused(configured, tmp_path):
    d = export(configured, tmp_path)
    (d / "extra.hcl").write_text('policy "stale" {\n  policy = "path \\"x/*\\" { capabilities = [\\"read\\"] }"\n}\n')
    r = cli(configured, "apply", str(d), "--plan-hash", "0" * 64)
    assert r.returncode == 1 and "the plan changed since it was reviewed" in r.stderr
    assert configured.http().get("/v1/sys/policies/acl/stale").status_code == 404


def test_require_mpa_refuses_a_plain_token_and_accepts_a_broker_shaped_one(configured, tmp_path):
    d = export(configured, tmp_path)
    (d / "mpa.hcl").write_text('token_role "mpa-change" {\n  allowed_policies = ["default"]\n}\n')
    h = configured.http()
    plain = h.post("/v1/auth/token/create", json={"policies": ["root"], "ttl": "10m"}).json()["auth"]["client_token"]
    for token in (ROOT_TOKEN, plain):
        r = cli(configured, "apply", str(d), "--require-mpa", "strongroom-admin", token=token)
        assert r.returncode == 1 and "was not fetched through the MPA broker" in r.stderr
    assert h.get("/v1/auth/token/roles/mpa-change").status_code == 404
    # the shape strongroom/broker/kinds/strongroom_admin.py mints: orphan, display name mpa-<id>, request metadata
    meta = {"mpa_request_id": "req-42", "mpa_requester": "alice@bank.test", "mpa_approvers": "bob@bank.test",
            "mpa_break_glass": "false"}
    minted = h.post("/v1/auth/token/create-orphan", json={"policies": ["root"], "ttl": "10m", "meta": meta,
                                                          "display_name": "mpa-req-42"}).json()["auth"]["client_token"]
    out = ok(cli(configured, "apply", str(d), "--require-mpa", "strongroom-admin", token=minted))
    assert "Applied 1 change(s)" in out
    entries = [json.loads(line) for line in configured.audit_path.read_text().splitlines() if line.strip()]
    write = [e for e in entries if e["type"] == "response" and e["request"]["path"] == "auth/token/roles/mpa-change"
             and e["request"]["operation"] in ("create", "update")]
    assert write and write[-1]["auth"]["metadata"]["mpa_approvers"] == "bob@bank.test"
    assert write[-1]["auth"]["metadata"]["config_plan_hash"]


def test_audit_device_and_write_once_mount_need_allow_destroy(configured, tmp_path):
    d = export(configured, tmp_path)
    mounts = d / "mounts.hcl"
    text = mounts.read_text()
    start = text.index('secrets_engine "ledger"')
    mounts.write_text(text[:start] + text[text.index("\n}\n", start) + 3:])
    (d / "audit.hcl").unlink()
    out = ok(cli(configured, "plan", str(d)), 2)
    assert '- delete audit "file"  [!destroys data]' in out
    assert '- delete secrets_engine "ledger"  [!destroys data]' in out
    r = cli(configured, "apply", str(d), "--allow-delete")
    assert r.returncode == 1 and "needs --allow-destroy" in r.stderr
    h = configured.http()
    assert "ledger/" in h.get("/v1/sys/mounts").json()["data"]
    assert "file/" in h.get("/v1/sys/audit").json()["data"]


def test_bad_configuration_is_an_error_and_changes_nothing(configured, tmp_path):
    d = export(configured, tmp_path)
    (d / "bad.hcl").write_text('auth_user "userpass" "carol" {\n  password = "in-the-clear"\n}\n')
    r = cli(configured, "plan", str(d))
    assert r.returncode == 1 and 'password is a secret: write password = env("NAME") or file("path")' in r.stderr
    (d / "bad.hcl").write_text('mystery "x" {\n}\n')
    r = cli(configured, "apply", str(d))
    assert r.returncode == 1 and "unknown block 'mystery'" in r.stderr
    assert "in-the-clear" not in r.stdout + r.stderr
    assert configured.http().get("/v1/auth/userpass/users/carol").status_code == 404
    (d / "bad.hcl").write_text('auth_role "nowhere" "r" {\n  token_policies = ["default"]\n}\n')
    r = cli(configured, "plan", str(d))
    assert r.returncode == 1 and 'no auth_method "nowhere" is declared in the files' in r.stderr


@pytest.fixture
def mpa_broker(configured, tmp_path):
    """A real MPA broker (in-process, over HTTP), minting strongroom-admin tokens on the shared server."""
    from strongroom.broker.app import BrokerApp
    from strongroom.broker.config import parse_config
    from strongroom.broker.oidc import generate_signing_key
    from strongroom.broker.runtime import BrokerRuntime
    from strongroom.broker.seed import SeedKeys
    from tests.broker.harness import AsgiThread, Clock, Receiver, TestIdp

    admin = 'path "*" {\n  capabilities = ["create", "read", "update", "delete", "list", "sudo"]\n}\n'
    r = configured.http().put("/v1/sys/policies/acl/config-admin", json={"policy": admin})
    assert r.status_code in (200, 204), r.text
    idp, receiver = TestIdp(), Receiver()
    raw = {
        "broker": {"listen": "127.0.0.1:0", "public_url": "https://mpa.bank.test", "production": False,
                   "storage": f"sqlite:///{tmp_path / 'broker.db'}", "audit_log": str(tmp_path / "broker.jsonl")},
        "idp": {"issuer": idp.issuer, "audience": idp.audience, "jwks_url": idp.jwks_url},
        "seed": {"file": str(tmp_path / "seed.json"), "token_file": str(tmp_path / "seed-token")},
        "notify": {"slack_webhook": f"{receiver.url}/slack", "critical_webhook": f"{receiver.url}/page"},
        "strongroom": {"addr": configured.addr},
        "kinds": {"strongroom-admin": {"type": "strongroom-admin", "request_groups": ["platform"],
                                       "approve_groups": ["platform-leads"], "policy": "config-admin"}},
    }
    runtime = BrokerRuntime(parse_config(raw, tmp_path), SeedKeys(generate_signing_key("RS256"), ROOT_TOKEN),
                            clock=Clock(), measurement="ab" * 48, sweep_interval=0.1, retry_base_delay=0.05)
    thread = AsgiThread(BrokerApp(runtime)).start()

    def as_(sub: str, groups: list[str]) -> tuple[str, dict[str, str]]:
        token = idp.token(sub, groups, email=f"{sub}@bank.test", name=sub)
        return token, {"Authorization": f"Bearer {token}"}

    yield thread.addr, as_
    thread.stop()
    receiver.close()
    idp.close()
    # the policy widens nothing for later tests' exports, but keep the server as the other tests expect it
    configured.http().delete("/v1/sys/policies/acl/config-admin")


def test_require_mpa_applies_with_a_token_fetched_through_the_broker(configured, mpa_broker, tmp_path):
    import httpx

    addr, as_ = mpa_broker
    alice_idp, alice = as_("alice", ["platform"])
    _, bob = as_("bob", ["platform-leads"])
    req = httpx.post(f"{addr}/v1/requests", headers=alice, timeout=30,
                     json={"kind": "strongroom-admin", "reason": "Apply the reviewed config change CHG-1234"})
    assert req.status_code == 201, req.text
    rid = req.json()["request"]["id"]
    review = httpx.post(f"{addr}/v1/requests/{rid}/review", headers=bob, timeout=30,
                        json={"decision": "approve", "comment": "reviewed the plan"})
    assert review.status_code == 200, review.text
    fetched = httpx.post(f"{addr}/v1/requests/{rid}/fetch", headers=alice, timeout=30)
    assert fetched.status_code == 200, fetched.text
    token = fetched.json()["credential"]["token"]

    d = export(configured, tmp_path)
    (d / "mpa.hcl").write_text('token_role "broker-approved" {\n  allowed_policies = ["default"]\n}\n')
    broker_env = {"STRONGROOM_MPA_ADDR": addr, "STRONGROOM_IDP_TOKEN": alice_idp}
    wrong = cli(configured, "apply", str(d), "--require-mpa", "k8s-admin", token=token, env=broker_env)
    assert wrong.returncode == 1 and "does not confirm request" in wrong.stderr
    out = ok(cli(configured, "apply", str(d), "--require-mpa", "strongroom-admin", token=token, env=broker_env))
    assert "Applied 1 change(s)" in out
    assert configured.http().get("/v1/auth/token/roles/broker-approved").status_code == 200
    entries = [json.loads(line) for line in configured.audit_path.read_text().splitlines() if line.strip()]
    write = [e for e in entries if e["type"] == "response" and e["request"]["operation"] in ("create", "update")
             and e["request"]["path"] == "auth/token/roles/broker-approved"]
    assert write and write[-1]["auth"]["metadata"]["mpa_request_id"] == rid
    assert write[-1]["auth"]["metadata"]["mpa_approvers"] == "bob@bank.test"
    assert token not in configured.audit_path.read_text()


def test_resend_secrets_rolls_a_password_the_server_never_returns(configured, tmp_path):
    d = export(configured, tmp_path)
    (d / "secrets").mkdir()
    secret = d / "secrets" / "dana.password"
    secret.write_text("first-Password-1\n")
    (d / "dana.hcl").write_text('auth_user "userpass" "dana" {\n  password = file("secrets/dana.password")\n'
                                '  token_policies = ["default"]\n}\n')
    ok(cli(configured, "apply", str(d)))
    secret.write_text("second-Password-2\n")
    assert "No changes" in ok(cli(configured, "plan", str(d)))  # a secret is never read back, so never compared
    out = ok(cli(configured, "apply", str(d), "--resend-secrets", "auth_user/userpass/d*"))
    assert '~ update auth_user "userpass" "dana"' in out and "password = (sensitive)" in out
    assert "second-Password-2" not in out and "Applied 1 change(s)" in out
    anon = configured.http(token="")
    assert anon.post("/v1/auth/userpass/login/dana", json={"password": "first-Password-1"}).status_code == 400
    assert anon.post("/v1/auth/userpass/login/dana", json={"password": "second-Password-2"}).status_code == 200
