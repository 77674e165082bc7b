"""Batch tokens and token lookups over HTTP against a real dev server, as Vault answers them.

A batch token is its own (encrypted) entry: usable and lookup-able, but never stored, renewed, revoked on its own,
or allowed to make children; it dies with its TTL or its parent, and survives seal/unseal and key rotation (Vault's
keyring keeps old terms, so does Strongroom's batch key).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import hvac
import pytest

from tests.conftest import StrongroomServer, wait_for

READER = (
    'path "secret/data/batch/*" { capabilities = ["read"] }\n'
    'path "lt/creds/*" { capabilities = ["read"] }\n'
    'path "auth/token/create" { capabilities = ["update"] }'
)
LEASES_DIR = Path(__file__).resolve().parent.parent / "leases"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    # the test-only lease engine of tests/leases (loaded through its sitecustomize) gives batch tokens real leases
    path = os.pathsep.join(p for p in (str(LEASES_DIR / "site"), str(LEASES_DIR), os.environ.get("PYTHONPATH")) if p)
    s = StrongroomServer(tmp_path_factory.mktemp("batch"), env={"PYTHONPATH": path}).start()
    root = s.client()
    root.sys.enable_secrets_engine("lease-test", path="lt")
    root.sys.create_or_update_policy("batch-reader", READER)
    root.secrets.kv.v2.create_or_update_secret("batch/app", secret={"k": "v"})
    root.sys.enable_auth_method("userpass")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def root(srv: StrongroomServer) -> hvac.Client:
    return srv.client()


def _batch(root: hvac.Client, **kwargs: object) -> dict:
    kwargs.setdefault("policies", ["batch-reader"])
    kwargs.setdefault("ttl", "1h")
    auth = root.auth.token.create(type="batch", **kwargs)["auth"]
    assert auth["client_token"].startswith("hvb.") and auth["token_type"] == "batch"
    return auth


def _errors(resp: httpx.Response) -> list[str]:
    return resp.json().get("errors", [])


def test_batch_token_works_and_looks_itself_up(srv: StrongroomServer, root: hvac.Client) -> None:
    auth = _batch(root, meta={"team": "payments"})
    assert auth["accessor"] == "" and auth["renewable"] is False and 3590 <= auth["lease_duration"] <= 3600
    client = srv.client(auth["client_token"])
    assert client.secrets.kv.v2.read_secret("batch/app", raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}

    me = client.auth.token.lookup_self()["data"]
    assert me["id"] == auth["client_token"] and me["type"] == "batch" and me["accessor"] == ""
    assert me["policies"] == ["batch-reader", "default"] and me["renewable"] is False
    assert me["meta"] == {"team": "payments"} and me["orphan"] is False and 3590 <= me["ttl"] <= 3600
    # anyone allowed to look tokens up sees the same entry
    assert root.auth.token.lookup(auth["client_token"])["data"]["type"] == "batch"

    with srv.http(auth["client_token"]) as h:
        assert h.get("/v1/secret/data/other").status_code == 403
    # the default policy grants cubbyhole, but a token that is never stored cannot own one
    plain = _batch(root, policies=["default"])["client_token"]
    with srv.http(plain) as h:
        cubby = h.post("/v1/cubbyhole/x", json={"a": "b"})
    assert cubby.status_code == 400
    assert _errors(cubby) == ['cubbyhole operations are only supported by "service" type tokens']


def test_batch_token_cannot_renew_revoke_or_make_children(srv: StrongroomServer, root: hvac.Client) -> None:
    token = _batch(root)["client_token"]
    with srv.http(token) as h:
        child = h.post("/v1/auth/token/create", json={"policies": ["default"]})
        assert child.status_code == 400 and _errors(child) == ["batch tokens cannot create more tokens"]
    with srv.http() as h:
        renew = h.post("/v1/auth/token/renew", json={"token": token})
        assert renew.status_code == 400 and _errors(renew) == ["batch tokens cannot be renewed"]
        revoke = h.post("/v1/auth/token/revoke", json={"token": token})
        assert revoke.status_code == 400 and _errors(revoke) == ["batch tokens cannot be revoked"]
    # still alive after all of that
    assert srv.client(token).auth.token.lookup_self()["data"]["type"] == "batch"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"num_uses": 3}, 'batch tokens cannot have "num_uses" set'),
        ({"period": "1h"}, 'batch tokens cannot have "period" set'),
        ({"explicit_max_ttl": "1h"}, 'batch tokens cannot have "explicit_max_ttl" set'),
        ({"policies": ["root"]}, "batch tokens cannot be root tokens"),
        ({"type": "sideways"}, "invalid 'token_type' value"),
    ],
)
def test_batch_token_refusals(srv: StrongroomServer, extra: dict, message: str) -> None:
    with srv.http() as h:
        r = h.post("/v1/auth/token/create", json={"type": "batch", "policies": ["default"], **extra})
    assert r.status_code == 400 and _errors(r) == [message]


def test_batch_token_expires_and_tampering_fails(srv: StrongroomServer, root: hvac.Client) -> None:
    token = _batch(root, ttl="2s")["client_token"]
    raw = bytearray(base64.urlsafe_b64decode(token[4:] + "=" * (-len(token[4:]) % 4)))
    raw[-1] ^= 1
    forged = "hvb." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with srv.http(forged) as h:
        assert h.get("/v1/auth/token/lookup-self").status_code == 403

    def refused() -> bool:
        with srv.http(token) as h:
            return h.get("/v1/auth/token/lookup-self").status_code == 403

    wait_for(refused, timeout=15, message="the batch token to expire")


def test_batch_child_dies_with_its_parent(srv: StrongroomServer, root: hvac.Client) -> None:
    parent = root.auth.token.create(policies=["batch-reader"], ttl="1h")["auth"]["client_token"]
    child = srv.client(parent).auth.token.create(type="batch", policies=["batch-reader"])["auth"]["client_token"]
    assert srv.client(child).auth.token.lookup_self()["data"]["orphan"] is False
    root.auth.token.revoke(parent)
    with srv.http(child) as h:
        assert h.get("/v1/auth/token/lookup-self").status_code == 403


def test_roles_issue_batch_tokens(srv: StrongroomServer, root: hvac.Client) -> None:
    with srv.http() as h:
        assert h.post("/v1/auth/token/roles/fixed-batch", json={"token_type": "batch"}).status_code == 204
        assert h.post("/v1/auth/token/roles/maybe-batch", json={"token_type": "default-batch"}).status_code == 204
        bad = h.post("/v1/auth/token/roles/bad", json={"token_type": "nonsense"})
        assert bad.status_code == 400 and h.get("/v1/auth/token/roles/bad").status_code == 404
        assert h.get("/v1/auth/token/roles/maybe-batch").json()["data"]["token_type"] == "default-batch"

        fixed = h.post("/v1/auth/token/create/fixed-batch", json={"type": "service"}).json()["auth"]
        assert fixed["client_token"].startswith("hvb.")
        default = h.post("/v1/auth/token/create/maybe-batch", json={}).json()["auth"]
        assert default["client_token"].startswith("hvb.")
        chosen = h.post("/v1/auth/token/create/maybe-batch", json={"type": "service"}).json()["auth"]
        assert chosen["client_token"].startswith("hvs.")

    # an auth method's role (token_type in its token_* fields) issues them at login
    root.auth.userpass.create_or_update_user("batcher", password="pw-batch", token_type="batch",
                                             token_policies=["batch-reader"])
    login = httpx.post(f"{srv.addr}/v1/auth/userpass/login/batcher", json={"password": "pw-batch"}, timeout=10)
    assert login.status_code == 200, login.text
    token = login.json()["auth"]["client_token"]
    assert token.startswith("hvb.")
    me = srv.client(token).auth.token.lookup_self()["data"]
    assert me["type"] == "batch" and "batch-reader" in me["policies"] and me["path"] == "auth/userpass/login/batcher"
    with srv.http() as h:
        refused = h.post("/v1/auth/userpass/users/batcher", json={"token_num_uses": 2})
        assert refused.status_code == 400
        assert _errors(refused) == [
            "'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with num uses"
        ]


def test_lookup_by_token_and_by_accessor_as_vault(srv: StrongroomServer, root: hvac.Client) -> None:
    made = root.auth.token.create(policies=["default"], ttl="30m", meta={"who": "svc"})["auth"]
    by_token = root.auth.token.lookup(made["client_token"])["data"]
    by_accessor = root.auth.token.lookup_accessor(made["accessor"])["data"]
    assert by_token["id"] == made["client_token"]
    assert by_accessor["id"] == ""  # the accessor never reveals the token
    assert {k: v for k, v in by_accessor.items() if k not in ("id", "ttl")} == {
        k: v for k, v in by_token.items() if k not in ("id", "ttl")
    }
    assert "role" not in by_token and "period" not in by_token
    with srv.http() as h:
        bad = h.post("/v1/auth/token/lookup", json={"token": "hvs.nosuchtokenatall000000"})
        assert bad.status_code == 403 and _errors(bad) == ["bad token"]
        unknown = h.post("/v1/auth/token/lookup-accessor", json={"accessor": "nosuchaccessor"})
        assert unknown.status_code == 400 and _errors(unknown) == ["invalid accessor"]


def test_batch_token_survives_rotation_and_seal(server: StrongroomServer) -> None:
    root = server.client()
    token = root.auth.token.create(type="batch", policies=["default"], ttl="1h")["auth"]["client_token"]
    short = root.auth.token.create(type="batch", policies=["default"], ttl="3s")["auth"]["client_token"]
    with server.http() as h:
        assert h.post("/v1/sys/rotate", json={}).status_code in (200, 204)
        assert h.post("/v1/sys/seal", json={}).status_code == 204
    with server.http(token) as h:
        assert h.get("/v1/auth/token/lookup-self").status_code == 503
    httpx.put(f"{server.addr}/v1/sys/unseal", json={"key": server.unseal_key}, timeout=10)
    server.wait_unsealed()
    assert server.client(token).auth.token.lookup_self()["data"]["type"] == "batch"

    def short_refused() -> bool:
        with server.http(short) as h:
            return h.get("/v1/auth/token/lookup-self").status_code == 403

    wait_for(short_refused, timeout=15, message="the short batch token to expire")


def test_batch_token_leases_end_with_it_and_belong_to_its_parent(srv: StrongroomServer, root: hvac.Client) -> None:
    parent = root.auth.token.create(policies=["batch-reader"], ttl="1h")["auth"]["client_token"]
    child = srv.client(parent).auth.token.create(type="batch", policies=["batch-reader"], ttl="40s")["auth"]
    with srv.http(child["client_token"]) as h:
        issued = h.get("/v1/lt/creds/app")
    assert issued.status_code == 200, issued.text
    # the engine asks for 60s; a lease may not outlive the batch token that holds it
    assert 0 < issued.json()["lease_duration"] <= 40
    username = issued.json()["data"]["username"]
    with srv.http() as h:
        assert username in h.get("/v1/lt/live").json()["data"]["users"]
        root.auth.token.revoke(parent)  # the parent tracks the batch token's leases

        def revoked() -> bool:
            return username not in (h.get("/v1/lt/live").json()["data"]["users"] or [])

        wait_for(revoked, timeout=15, message="the batch token's lease to be revoked with its parent")
