"""Login MFA through hvac against a real server: a userpass login that a login-enforcement matches gets no token
until ``sys/mfa/validate`` accepts a TOTP code; the code cannot be replayed; wrong codes lock the entity out."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import hvac
import pytest

from tests.conftest import StrongroomServer
from tests.mfa.totp_codes import code_from_url

PASSWORD = "correct horse battery staple 42"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    s = StrongroomServer(tmp_path_factory.mktemp("mfa")).start()
    root = s.client()
    root.sys.enable_auth_method("userpass")
    root.sys.enable_auth_method("userpass", path="plain")
    root.sys.create_or_update_policy("reader", 'path "secret/data/mfa/*" { capabilities = ["read"] }')
    yield s
    s.stop()


@pytest.fixture(scope="module")
def root(srv: StrongroomServer) -> hvac.Client:
    return srv.client()


def _accessor(root: hvac.Client, path: str) -> str:
    return root.sys.list_auth_methods()["data"][f"{path}/"]["accessor"]


def _user_entity(srv: StrongroomServer, root: hvac.Client, mount: str, user: str) -> str:
    """Create the user and log in once without MFA rules in its way, so its entity exists; return the entity id."""
    root.write_data(f"auth/{mount}/users/{user}", data={"password": PASSWORD, "policies": "reader"})
    resp = httpx.post(f"{srv.addr}/v1/auth/{mount}/login/{user}", json={"password": PASSWORD}, timeout=30).json()
    return resp["auth"]["entity_id"]


def _method(root: hvac.Client, **cfg: object) -> str:
    return root.write_data("identity/mfa/method/totp", data={"issuer": "Strongroom", **cfg})["data"]["method_id"]


def test_totp_method_crud_and_bad_input(root: hvac.Client, srv: StrongroomServer) -> None:
    method_id = _method(root, method_name="crud", period=30, digits=8, algorithm="sha256", max_validation_attempts=3)
    read = root.read(f"identity/mfa/method/totp/{method_id}")["data"]
    assert read["id"] == method_id and read["type"] == "totp" and read["name"] == "crud"
    assert (read["issuer"], read["digits"], read["algorithm"], read["period"]) == ("Strongroom", 8, "SHA256", 30)
    assert (read["key_size"], read["qr_size"], read["skew"], read["max_validation_attempts"]) == (20, 200, 1, 3)
    root.write_data(f"identity/mfa/method/totp/{method_id}", data={"issuer": "Bank"})
    assert root.read(f"identity/mfa/method/totp/{method_id}")["data"]["issuer"] == "Bank"
    assert method_id in root.list("identity/mfa/method/totp")["data"]["keys"]

    http = srv.http()
    for bad, message in (
        ({"issuer": "x", "digits": 7}, "6 or 8"),
        ({"issuer": "x", "algorithm": "MD5"}, "algorithm"),
        ({"issuer": "x", "skew": 3}, "skew"),
        ({}, "issuer"),
    ):
        before = root.list("identity/mfa/method/totp")["data"]["keys"]
        resp = http.post("/v1/identity/mfa/method/totp", json=bad)
        assert resp.status_code == 400, resp.text
        assert message in " ".join(resp.json()["errors"])
        assert root.list("identity/mfa/method/totp")["data"]["keys"] == before

    other = _method(root, method_name="other")
    clash = http.post(f"/v1/identity/mfa/method/totp/{other}", json={"method_name": "crud"})
    assert clash.status_code == 400 and "already exists" in clash.json()["errors"][0]
    root.delete(f"identity/mfa/method/totp/{other}")
    assert http.get(f"/v1/identity/mfa/method/totp/{other}").status_code == 404


def test_login_enforcement_validation(root: hvac.Client, srv: StrongroomServer) -> None:
    method_id = _method(root, method_name="enf-check")
    http = srv.http()
    for body, message in (
        ({"auth_method_types": ["userpass"]}, "missing method ids"),
        ({"mfa_method_ids": [method_id]}, "One of auth_method_accessors"),
        ({"mfa_method_ids": ["00000000-0000-4000-8000-000000000000"], "auth_method_types": ["userpass"]}, "exist"),
        ({"mfa_method_ids": [method_id], "auth_method_accessors": ["auth_nope_123"]}, "accessors provided is invalid"),
        ({"mfa_method_ids": [method_id], "auth_method_types": ["ldap"]}, "types provided is invalid"),
    ):
        resp = http.post("/v1/identity/mfa/login-enforcement/bad", json=body)
        assert resp.status_code == 400 and message in " ".join(resp.json()["errors"]), resp.text
    assert http.get("/v1/identity/mfa/login-enforcement/bad").status_code == 404


def test_login_requires_totp_and_code_is_single_use(root: hvac.Client, srv: StrongroomServer) -> None:
    entity_id = _user_entity(srv, root, "userpass", "alice")
    method_id = _method(root, method_name="alice-totp")
    enrolled = root.write_data(
        "identity/mfa/method/totp/admin-generate", data={"method_id": method_id, "entity_id": entity_id}
    )["data"]
    assert enrolled["url"].startswith("otpauth://totp/Strongroom:")
    assert base64.b64decode(enrolled["barcode"]).startswith(b"\x89PNG\r\n\x1a\n")
    again = root.write_data(
        "identity/mfa/method/totp/admin-generate", data={"method_id": method_id, "entity_id": entity_id}
    )
    assert again["data"] is None and "already has a secret" in again["warnings"][0]  # the key is never shown twice
    accessor = _accessor(root, "userpass")
    root.write_data(
        "identity/mfa/login-enforcement/staff",
        data={"mfa_method_ids": [method_id], "auth_method_accessors": [accessor]},
    )
    enforcement = root.read("identity/mfa/login-enforcement/staff")["data"]
    assert enforcement["mfa_method_ids"] == [method_id] and enforcement["auth_method_accessors"] == [accessor]

    app = srv.client(token="")
    pending = app.auth.userpass.login("alice", PASSWORD)
    auth = pending["auth"]
    assert auth["client_token"] == "" and auth["policies"] is None and pending["warnings"]
    requirement = auth["mfa_requirement"]
    assert requirement["mfa_constraints"] == {
        "staff": {"any": [{"type": "totp", "id": method_id, "uses_passcode": True, "name": "alice-totp"}]}
    }
    request_id = requirement["mfa_request_id"]

    wrong_id = httpx.post(
        f"{srv.addr}/v1/sys/mfa/validate",
        json={"mfa_request_id": "0" * 36, "mfa_payload": {method_id: [code_from_url(enrolled["url"])]}},
        timeout=30,
    )
    assert wrong_id.status_code == 400 and wrong_id.json()["errors"] == ["invalid request ID"]

    code = code_from_url(enrolled["url"])
    token_resp = app.write_data(
        "sys/mfa/validate", data={"mfa_request_id": request_id, "mfa_payload": {method_id: [code]}}
    )
    token = token_resp["auth"]["client_token"]
    assert token and token_resp["auth"]["entity_id"] == entity_id and "reader" in token_resp["auth"]["policies"]
    assert srv.client(token=token).auth.token.lookup_self()["data"]["path"] == "auth/userpass/login/alice"

    # the request id is spent, and the same code on a fresh login is refused
    spent = httpx.post(
        f"{srv.addr}/v1/sys/mfa/validate",
        json={"mfa_request_id": request_id, "mfa_payload": {method_id: [code]}},
        timeout=30,
    )
    assert spent.status_code == 400
    second = app.auth.userpass.login("alice", PASSWORD)["auth"]["mfa_requirement"]["mfa_request_id"]
    replay = httpx.post(
        f"{srv.addr}/v1/sys/mfa/validate",
        json={"mfa_request_id": second, "mfa_payload": {method_id: [code]}},
        timeout=30,
    )
    assert replay.status_code == 403 and "code already used" in replay.json()["errors"][0]
    with pytest.raises(hvac.exceptions.Forbidden):
        app.write_data("sys/mfa/validate", data={"mfa_request_id": second, "mfa_payload": {method_id: [code]}})

    # another auth mount is not enforced, and the enforcement can be removed
    plain = httpx.post(f"{srv.addr}/v1/auth/plain/login/bob", json={"password": PASSWORD}, timeout=30)
    assert plain.status_code == 400  # no such user there: the point is no mfa_requirement
    root.write_data("auth/plain/users/bob", data={"password": PASSWORD})
    assert app.auth.userpass.login("bob", PASSWORD, mount_point="plain")["auth"]["client_token"]
    root.delete("identity/mfa/login-enforcement/staff")
    assert app.auth.userpass.login("alice", PASSWORD)["auth"]["client_token"]


def test_lockout_after_max_validation_attempts(root: hvac.Client, srv: StrongroomServer) -> None:
    entity_id = _user_entity(srv, root, "userpass", "carol")
    method_id = _method(root, method_name="carol-totp", max_validation_attempts=2)
    url = root.write_data(
        "identity/mfa/method/totp/admin-generate", data={"method_id": method_id, "entity_id": entity_id}
    )["data"]["url"]
    root.write_data(
        "identity/mfa/login-enforcement/carol",
        data={"mfa_method_ids": [method_id], "identity_entity_ids": [entity_id]},
    )
    app = srv.client(token="")
    request_id = app.auth.userpass.login("carol", PASSWORD)["auth"]["mfa_requirement"]["mfa_request_id"]

    def validate(code: str) -> httpx.Response:
        return httpx.post(
            f"{srv.addr}/v1/sys/mfa/validate",
            json={"mfa_request_id": request_id, "mfa_payload": {method_id: [code]}},
            timeout=30,
        )

    right = code_from_url(url)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(2):
        resp = validate(wrong)
        assert resp.status_code == 403 and "failed to validate TOTP passcode" in resp.json()["errors"][0]
    locked = validate(code_from_url(url))
    assert locked.status_code == 403 and "maximum TOTP validation attempts" in locked.json()["errors"][0]
    assert "client_token" not in locked.text
    root.delete("identity/mfa/login-enforcement/carol")


def test_self_enrolment_group_enforcement_and_destroy(root: hvac.Client, srv: StrongroomServer) -> None:
    entity_id = _user_entity(srv, root, "userpass", "dave")
    method_id = _method(root, method_name="dave-totp")
    group_id = root.write_data("identity/group", data={"name": "mfa-staff", "member_entity_ids": [entity_id]})["data"][
        "id"
    ]
    root.sys.create_or_update_policy(
        "self-enrol", 'path "identity/mfa/method/totp/generate" { capabilities = ["update"] }'
    )
    root.write_data("auth/userpass/users/dave", data={"password": PASSWORD, "policies": "reader,self-enrol"})
    dave = srv.client(token="")
    dave.auth.userpass.login("dave", PASSWORD)
    url = dave.write_data("identity/mfa/method/totp/generate", data={"method_id": method_id})["data"]["url"]
    entity_name = root.read(f"identity/entity/id/{entity_id}")["data"]["name"]
    assert url.startswith(f"otpauth://totp/Strongroom:{entity_name}?")  # the account an authenticator app shows

    root.write_data(
        "identity/mfa/login-enforcement/group", data={"mfa_method_ids": [method_id], "identity_group_ids": [group_id]}
    )
    app = srv.client(token="")
    request_id = app.auth.userpass.login("dave", PASSWORD)["auth"]["mfa_requirement"]["mfa_request_id"]
    ok = app.write_data(
        "sys/mfa/validate", data={"mfa_request_id": request_id, "mfa_payload": {method_id: [code_from_url(url)]}}
    )
    assert ok["auth"]["client_token"] and ok["auth"]["entity_id"] == entity_id

    root.write_data("identity/mfa/method/totp/admin-destroy", data={"method_id": method_id, "entity_id": entity_id})
    request_id = app.auth.userpass.login("dave", PASSWORD)["auth"]["mfa_requirement"]["mfa_request_id"]
    gone = httpx.post(
        f"{srv.addr}/v1/sys/mfa/validate",
        json={"mfa_request_id": request_id, "mfa_payload": {method_id: [code_from_url(url)]}},
        timeout=30,
    )
    assert gone.status_code == 403 and "does not contain the TOTP secret" in gone.json()["errors"][0]
    root.delete("identity/mfa/login-enforcement/group")


def test_single_phase_login_with_x_vault_mfa_header(root: hvac.Client, srv: StrongroomServer) -> None:
    entity_id = _user_entity(srv, root, "userpass", "erin")
    method_id = _method(root, method_name="erin-totp")
    url = root.write_data(
        "identity/mfa/method/totp/admin-generate", data={"method_id": method_id, "entity_id": entity_id}
    )["data"]["url"]
    root.write_data(
        "identity/mfa/login-enforcement/erin", data={"mfa_method_ids": [method_id], "identity_entity_ids": [entity_id]}
    )
    login = f"{srv.addr}/v1/auth/userpass/login/erin"
    code = code_from_url(url)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    refused = httpx.post(login, json={"password": PASSWORD}, headers={"X-Vault-MFA": f"erin-totp:{wrong}"}, timeout=30)
    assert refused.status_code == 403 and "client_token" not in refused.text
    # by method name, as the Vault CLI's -mfa flag sends it
    ok = httpx.post(login, json={"password": PASSWORD}, headers={"X-Vault-MFA": f"erin-totp:{code}"}, timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.json()["auth"]["client_token"] and ok.json()["auth"]["mfa_requirement"] is None
    again = httpx.post(login, json={"password": PASSWORD}, headers={"X-Vault-MFA": f"{method_id}:{code}"}, timeout=30)
    assert again.status_code == 403 and "code already used" in again.text
    root.delete("identity/mfa/login-enforcement/erin")


def test_totp_keys_never_reach_storage_in_clear(root: hvac.Client, srv: StrongroomServer) -> None:
    entity_id = _user_entity(srv, root, "userpass", "frank")
    method_id = _method(root, method_name="frank-totp")
    url = root.write_data(
        "identity/mfa/method/totp/admin-generate", data={"method_id": method_id, "entity_id": entity_id}
    )["data"]["url"]
    secret = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))["secret"]
    raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    stored = b"".join(
        p.read_bytes()
        for p in Path(srv.storage_path).parent.iterdir()
        if p.name.startswith(Path(srv.storage_path).name)
    )
    assert stored and secret.encode() not in stored and raw not in stored
    method = root.read(f"identity/mfa/method/totp/{method_id}")["data"]
    assert secret not in str(method)


def test_concurrent_validations_with_one_code_yield_one_token(root: hvac.Client, srv: StrongroomServer) -> None:
    entity_id = _user_entity(srv, root, "userpass", "gina")
    method_id = _method(root, method_name="gina-totp")
    url = root.write_data(
        "identity/mfa/method/totp/admin-generate", data={"method_id": method_id, "entity_id": entity_id}
    )["data"]["url"]
    root.write_data(
        "identity/mfa/login-enforcement/gina", data={"mfa_method_ids": [method_id], "identity_entity_ids": [entity_id]}
    )
    app = srv.client(token="")
    pending = [app.auth.userpass.login("gina", PASSWORD)["auth"]["mfa_requirement"]["mfa_request_id"] for _ in range(6)]
    code = code_from_url(url)

    def validate(request_id: str) -> int:
        return httpx.post(
            f"{srv.addr}/v1/sys/mfa/validate",
            json={"mfa_request_id": request_id, "mfa_payload": {method_id: [code]}},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(max_workers=len(pending)) as pool:
        statuses = sorted(pool.map(validate, pending))
    assert statuses == [200] + [403] * (len(pending) - 1)
    root.delete("identity/mfa/login-enforcement/gina")
