"""AppRole over HTTP with hvac and httpx against one real dev server: roles, secret IDs, login, limits and tidy."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import hvac
import pytest

from tests.conftest import StrongroomServer, wait_for


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    s = StrongroomServer(tmp_path_factory.mktemp("approle")).start()
    s.client().sys.enable_auth_method("approle")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def root(srv: StrongroomServer) -> hvac.Client:
    return srv.client()


def _login(srv: StrongroomServer, role_id: str, secret_id: str | None) -> httpx.Response:
    body = {"role_id": role_id, **({"secret_id": secret_id} if secret_id is not None else {})}
    return httpx.post(f"{srv.addr}/v1/auth/approle/login", json=body, timeout=30)


def _errors(resp: httpx.Response) -> list[str]:
    return resp.json().get("errors", [])


def test_role_crud_and_defaults(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.approle.create_or_update_approle("Web", token_policies=["Reader", "writer"], token_ttl="10m",
                                               token_max_ttl="1h", secret_id_ttl="2h", secret_id_num_uses=3)
    role = root.auth.approle.read_role("web")["data"]
    assert role["bind_secret_id"] is True  # the default
    assert role["token_policies"] == ["reader", "writer"] and role["policies"] == ["reader", "writer"]
    assert role["token_ttl"] == 600 and role["token_max_ttl"] == 3600
    assert role["secret_id_ttl"] == 7200 and role["secret_id_num_uses"] == 3
    assert role["local_secret_ids"] is False and role["secret_id_bound_cidrs"] == []
    assert "web" in root.auth.approle.list_roles()["data"]["keys"]  # names are lower-cased

    # an update keeps what it does not mention
    root.auth.approle.create_or_update_approle("web", token_ttl="5m")
    role = root.auth.approle.read_role("web")["data"]
    assert role["token_ttl"] == 300 and role["secret_id_num_uses"] == 3

    role_id = root.auth.approle.read_role_id("web")["data"]["role_id"]
    root.auth.approle.update_role_id("web", "my-custom-role-id")
    assert root.auth.approle.read_role_id("web")["data"]["role_id"] == "my-custom-role-id"
    root.auth.approle.update_role_id("web", role_id)
    old_secret = root.auth.approle.generate_secret_id("web")["data"]["secret_id"]
    assert _login(srv, "my-custom-role-id", old_secret).status_code == 400  # the old role ID is gone
    assert _login(srv, role_id, old_secret).status_code == 200

    root.auth.approle.delete_role("web")
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.auth.approle.read_role("web")
    # deleting a role takes its secret IDs with it: a new role of the same name and role ID does not revive them
    with srv.http() as http:
        assert http.post("/v1/auth/approle/role/web", json={"role_id": role_id}).status_code == 204
        assert http.request("LIST", "/v1/auth/approle/role/web/secret-id").status_code == 404
    r = _login(srv, role_id, old_secret)
    assert r.status_code == 400 and _errors(r) == ["invalid role or secret ID"]


def test_role_bad_input_changes_nothing(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.approle.create_or_update_approle("strict", token_policies=["a"])
    with srv.http() as http:
        r = http.post("/v1/auth/approle/role/strict", json={"bind_secret_id": False})
        assert r.status_code == 400 and _errors(r) == ["at least one constraint should be enabled on the role"]
        r = http.post("/v1/auth/approle/role/strict", json={"secret_id_num_uses": -1})
        assert r.status_code == 400 and _errors(r) == ["secret_id_num_uses cannot be negative"]
        r = http.post("/v1/auth/approle/role/strict", json={"secret_id_bound_cidrs": ["not-a-cidr"]})
        assert r.status_code == 400 and _errors(r) == ["invalid CIDR blocks"]
        r = http.post("/v1/auth/approle/role/strict", json={"local_secret_ids": True})
        assert r.status_code == 400 and "only be modified during role creation" in _errors(r)[0]
        r = http.post("/v1/auth/approle/role/strict", json={"token_ttl": "soon"})
        assert r.status_code == 400
        other = root.auth.approle.read_role_id("strict")["data"]["role_id"]
        root.auth.approle.create_or_update_approle("other")
        r = http.post("/v1/auth/approle/role/other/role-id", json={"role_id": other})
        assert r.status_code == 400 and _errors(r) == ["role_id already in use"]
        r = http.post("/v1/auth/approle/role/ghost/secret-id", json={})
        assert r.status_code == 404 and _errors(r) == ['role "ghost" does not exist']
    role = root.auth.approle.read_role("strict")["data"]
    assert role["bind_secret_id"] is True and role["secret_id_num_uses"] == 0 and role["token_ttl"] == 0
    assert role["secret_id_bound_cidrs"] == [] and role["token_policies"] == ["a"]


def test_per_field_endpoints(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.approle.create_or_update_approle("fields")
    with srv.http() as http:
        base = "/v1/auth/approle/role/fields"
        assert http.post(f"{base}/policies", json={"token_policies": "p1,P2"}).status_code == 204
        assert http.get(f"{base}/policies").json()["data"]["token_policies"] == ["p1", "p2"]
        assert http.post(f"{base}/secret-id-num-uses", json={"secret_id_num_uses": 7}).status_code == 204
        assert http.get(f"{base}/secret-id-num-uses").json()["data"] == {"secret_id_num_uses": 7}
        assert http.post(f"{base}/secret-id-ttl", json={"secret_id_ttl": "1h"}).status_code == 204
        assert http.get(f"{base}/secret-id-ttl").json()["data"] == {"secret_id_ttl": 3600}
        assert http.post(f"{base}/token-ttl", json={"token_ttl": 60}).status_code == 204
        assert http.post(f"{base}/token-max-ttl", json={"token_max_ttl": "2m"}).status_code == 204
        assert http.get(f"{base}/token-max-ttl").json()["data"] == {"token_max_ttl": 120}
        r = http.post(f"{base}/token-max-ttl", json={"token_max_ttl": 30})  # below token_ttl
        assert r.status_code == 400
        assert http.post(f"{base}/bound-cidr-list", json={"bound_cidr_list": "10.0.0.0/8"}).status_code == 204
        r = http.get(f"{base}/bound-cidr-list")
        assert r.json()["data"] == {"bound_cidr_list": ["10.0.0.0/8"]} and r.json()["warnings"]
        assert http.delete(f"{base}/bound-cidr-list").status_code == 204
        r = http.post(f"{base}/bind-secret-id", json={"bind_secret_id": False})
        assert r.status_code == 400 and _errors(r) == ["at least one constraint should be enabled on the role"]
        assert http.get(f"{base}/bind-secret-id").json()["data"] == {"bind_secret_id": True}
        r = http.post(f"{base}/secret-id-num-uses", json={})
        assert r.status_code == 400 and _errors(r) == ["missing secret_id_num_uses"]
        assert http.delete(f"{base}/secret-id-num-uses").status_code == 204
    role = root.auth.approle.read_role("fields")["data"]
    assert role["secret_id_num_uses"] == 0 and role["secret_id_ttl"] == 3600
    assert role["token_ttl"] == 60 and role["token_max_ttl"] == 120 and role["secret_id_bound_cidrs"] == []


def test_login_secret_id_lifecycle_and_identity(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.approle.create_or_update_approle("svc", token_policies=["svc-read"], token_ttl="20m")
    role_id = root.auth.approle.read_role_id("svc")["data"]["role_id"]
    issued = root.auth.approle.generate_secret_id("svc", metadata={"team": "payments"})["data"]
    secret_id, accessor = issued["secret_id"], issued["secret_id_accessor"]
    assert issued["secret_id_num_uses"] == 0 and issued["secret_id_ttl"] == 0

    app = srv.client(token="")
    auth = app.auth.approle.login(role_id, secret_id)["auth"]
    assert auth["policies"] == ["default", "svc-read"] and auth["lease_duration"] == 1200
    assert auth["metadata"] == {"role_name": "svc", "team": "payments"}
    assert auth["entity_id"]
    assert app.lookup_token()["data"]["display_name"] == "approle"
    entity = root.read(f"identity/entity/id/{auth['entity_id']}")["data"]
    alias = entity["aliases"][0]
    assert alias["name"] == role_id and alias["mount_type"] == "approle"

    # the accessor is listed; the secret ID itself can be looked up but is never echoed back
    assert accessor in root.auth.approle.list_secret_id_accessors("svc")["data"]["keys"]
    looked = root.auth.approle.read_secret_id("svc", secret_id)["data"]
    assert looked["secret_id_accessor"] == accessor and looked["metadata"] == {"team": "payments"}
    assert looked["expiration_time"] == "0001-01-01T00:00:00Z" and secret_id not in str(looked)
    by_accessor = root.auth.approle.read_secret_id_accessor("svc", accessor)["data"]
    assert by_accessor["creation_time"] == looked["creation_time"]

    # wrong secret ID, wrong role ID, missing secret ID: one message, nothing issued
    for rid, sid in ((role_id, "wrong"), ("no-such-role-id", secret_id)):
        r = _login(srv, rid, sid)
        assert r.status_code == 400 and _errors(r) == ["invalid role or secret ID"]
    r = _login(srv, role_id, None)
    assert r.status_code == 400 and _errors(r) == ["missing secret_id"]

    root.auth.approle.destroy_secret_id_accessor("svc", accessor)
    r = _login(srv, role_id, secret_id)
    assert r.status_code == 400 and _errors(r) == ["invalid role or secret ID"]
    with srv.http() as http:
        r = http.post("/v1/auth/approle/role/svc/secret-id-accessor/lookup", json={"secret_id_accessor": accessor})
        assert r.status_code == 404

    custom = root.auth.approle.create_custom_secret_id("svc", "my-own-secret-id-123")["data"]
    assert custom["secret_id"] == "my-own-secret-id-123"
    with srv.http() as http:
        r = http.post("/v1/auth/approle/role/svc/custom-secret-id", json={"secret_id": "my-own-secret-id-123"})
        assert r.status_code == 400 and _errors(r) == ["SecretID is already registered"]
    assert _login(srv, role_id, "my-own-secret-id-123").status_code == 200
    root.auth.approle.destroy_secret_id("svc", "my-own-secret-id-123")
    assert _login(srv, role_id, "my-own-secret-id-123").status_code == 400


def test_exhausted_secret_id_fails_closed(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.approle.create_or_update_approle("twice", secret_id_num_uses=2)
    role_id = root.auth.approle.read_role_id("twice")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("twice")["data"]["secret_id"]
    assert root.auth.approle.read_secret_id("twice", secret_id)["data"]["secret_id_num_uses"] == 2
    assert _login(srv, role_id, secret_id).status_code == 200
    assert root.auth.approle.read_secret_id("twice", secret_id)["data"]["secret_id_num_uses"] == 1
    assert _login(srv, role_id, secret_id).status_code == 200
    r = _login(srv, role_id, secret_id)
    assert r.status_code == 400 and _errors(r) == ["invalid role or secret ID"] and r.json().get("auth") is None
    with srv.http() as http:  # the used-up secret ID and its accessor are gone
        assert http.request("LIST", "/v1/auth/approle/role/twice/secret-id").status_code == 404
    with srv.http() as http:  # asking for more uses than the role allows is refused
        r = http.post("/v1/auth/approle/role/twice/secret-id", json={"num_uses": 5})
        assert r.status_code == 400 and "num_uses cannot be higher" in _errors(r)[0]


def test_concurrent_logins_with_one_use_secret_id_give_one_token(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.approle.create_or_update_approle("once", secret_id_num_uses=1, token_policies=["once"])
    role_id = root.auth.approle.read_role_id("once")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("once")["data"]["secret_id"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: _login(srv, role_id, secret_id), range(20)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [400] * 19, statuses
    token = next(r for r in results if r.status_code == 200).json()["auth"]["client_token"]
    assert srv.client(token=token).lookup_token()["data"]["policies"] == ["default", "once"]


def test_expired_secret_id_fails_closed_and_tidy_removes_it(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.approle.create_or_update_approle("brief")
    role_id = root.auth.approle.read_role_id("brief")["data"]["role_id"]
    keep = root.auth.approle.generate_secret_id("brief")["data"]
    with srv.http() as http:
        # issued first, never used: left for tidy
        stale = http.post("/v1/auth/approle/role/brief/secret-id", json={"ttl": 1}).json()["data"]
        short = http.post("/v1/auth/approle/role/brief/secret-id", json={"ttl": "1s"}).json()["data"]
    assert short["secret_id_ttl"] == 1
    looked = root.auth.approle.read_secret_id("brief", short["secret_id"])["data"]
    created = datetime.fromisoformat(looked["creation_time"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(looked["expiration_time"].replace("Z", "+00:00"))
    assert (expires - created).total_seconds() == pytest.approx(1, abs=0.01)
    # unlimited uses until its lifetime ends; from then on it is refused with the same message as a wrong one
    r = wait_for(lambda: (resp := _login(srv, role_id, short["secret_id"])).status_code == 400 and resp,
                 timeout=15, interval=0.2, message="the secret ID to expire")
    assert _errors(r) == ["invalid role or secret ID"]
    with srv.http() as http:
        listed = http.request("LIST", "/v1/auth/approle/role/brief/secret-id").json()["data"]["keys"]
        assert stale["secret_id_accessor"] in listed
        r = http.post("/v1/auth/approle/tidy/secret-id")
        assert r.status_code == 202 and r.json()["warnings"]
        keys = http.request("LIST", "/v1/auth/approle/role/brief/secret-id").json()["data"]["keys"]
    assert keys == [keep["secret_id_accessor"]]
    assert _login(srv, role_id, stale["secret_id"]).status_code == 400
    assert _login(srv, role_id, keep["secret_id"]).status_code == 200


def test_cidr_binding(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.approle.create_or_update_approle("fenced", secret_id_bound_cidrs=["10.0.0.0/8"])
    role_id = root.auth.approle.read_role_id("fenced")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("fenced")["data"]["secret_id"]
    r = _login(srv, role_id, secret_id)
    assert r.status_code == 400 and "unauthorized by CIDR restrictions on the role" in _errors(r)[0]
    with srv.http() as http:  # a secret ID cannot widen the role's blocks
        r = http.post("/v1/auth/approle/role/fenced/secret-id", json={"cidr_list": "192.168.0.0/16"})
        assert r.status_code == 400 and "subset" in _errors(r)[0]
    root.auth.approle.create_or_update_approle("fenced", secret_id_bound_cidrs=["127.0.0.0/8"])
    assert _login(srv, role_id, secret_id).status_code == 200

    # a secret ID bound to other addresses is refused without using up its single use
    root.auth.approle.create_or_update_approle("local", secret_id_num_uses=1)
    role_id = root.auth.approle.read_role_id("local")["data"]["role_id"]
    far = root.auth.approle.generate_secret_id("local", cidr_list=["10.1.0.0/16"])["data"]["secret_id"]
    r = _login(srv, role_id, far)
    assert r.status_code == 400 and "CIDR restrictions on the secret ID" in _errors(r)[0]
    assert root.auth.approle.read_secret_id("local", far)["data"]["secret_id_num_uses"] == 1

    # tokens are bound to the role's token_bound_cidrs: usable from here only when here is inside them
    near = root.auth.approle.generate_secret_id("local", token_bound_cidrs=[])["data"]["secret_id"]
    root.auth.approle.create_or_update_approle("local", token_bound_cidrs=["127.0.0.1/32"])
    token = _login(srv, role_id, near).json()["auth"]["client_token"]
    assert srv.client(token=token).lookup_token()["data"]["bound_cidrs"] == ["127.0.0.1/32"]


def test_renewal_rechecks_the_role(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.approle.create_or_update_approle("renew", token_ttl="5m", token_max_ttl="1h")
    role_id = root.auth.approle.read_role_id("renew")["data"]["role_id"]
    token = _login(srv, role_id, root.auth.approle.generate_secret_id("renew")["data"]["secret_id"]).json()[
        "auth"]["client_token"]
    app = srv.client(token=token)
    assert app.auth.token.renew_self()["auth"]["lease_duration"] == 300
    root.auth.approle.create_or_update_approle("renew", token_ttl="10m")
    assert app.auth.token.renew_self()["auth"]["lease_duration"] == 600  # the role's current TTL
    root.auth.approle.delete_role("renew")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="does not exist during renewal"):
        app.auth.token.renew_self()


def test_role_without_bound_secret_id(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.approle.create_or_update_approle("open", bind_secret_id=False, secret_id_bound_cidrs=["127.0.0.1/32"])
    role_id = root.auth.approle.read_role_id("open")["data"]["role_id"]
    r = _login(srv, role_id, None)
    assert r.status_code == 200 and r.json()["auth"]["metadata"] == {"role_name": "open"}
    with srv.http() as http:
        r = http.post("/v1/auth/approle/role/open/secret-id", json={})
        assert r.status_code == 400 and _errors(r) == ["bind_secret_id is not set on the role"]


def test_audit_never_holds_a_secret_id_in_clear(srv: StrongroomServer, root: hvac.Client,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    audit_file = tmp_path_factory.mktemp("audit") / "audit.log"
    root.sys.enable_audit_device("file", options={"file_path": str(audit_file)}, path="approle-audit")
    try:
        root.auth.approle.create_or_update_approle("audited")
        role_id = root.auth.approle.read_role_id("audited")["data"]["role_id"]
        secret_id = root.auth.approle.generate_secret_id("audited")["data"]["secret_id"]
        assert _login(srv, role_id, secret_id).status_code == 200
        hashed = root.sys.calculate_hash("approle-audit", secret_id)["data"]["hash"]
    finally:
        root.sys.disable_audit_device("approle-audit")
    text = audit_file.read_text()
    assert secret_id not in text
    assert text.count(hashed) >= 2  # issued (response) and presented (login request), both only as HMACs
