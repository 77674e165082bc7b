"""Userpass over HTTP with hvac and httpx against one real dev server: users, login, timing, audit and renewal."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import hvac
import pytest

from tests.conftest import StrongroomServer

PASSWORD = "correct horse battery staple 42"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    s = StrongroomServer(tmp_path_factory.mktemp("userpass")).start()
    s.client().sys.enable_auth_method("userpass")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def root(srv: StrongroomServer) -> hvac.Client:
    return srv.client()


def _login(srv: StrongroomServer, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{srv.addr}/v1/auth/userpass/login/{username}", json={"password": password}, timeout=30)


def _errors(resp: httpx.Response) -> list[str]:
    return resp.json().get("errors", [])


def test_user_crud_and_login(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.userpass.create_or_update_user("Alice", PASSWORD, policies=["Ops", "audit"], token_ttl="15m")
    user = root.auth.userpass.read_user("alice")["data"]
    assert user["token_policies"] == ["audit", "ops"] and user["policies"] == ["audit", "ops"]
    assert user["token_ttl"] == 900
    assert "password" not in user and not any(PASSWORD in str(v) for v in user.values())
    assert "argon2" not in str(user)
    assert root.auth.userpass.list_user()["data"]["keys"] == ["alice"]

    app = srv.client(token="")
    auth = app.auth.userpass.login("ALICE", PASSWORD)["auth"]  # usernames are case-insensitive
    assert auth["policies"] == ["audit", "default", "ops"] and auth["lease_duration"] == 900
    assert auth["metadata"] == {"username": "alice"}
    assert app.lookup_token()["data"]["display_name"] == "userpass-alice"
    entity = root.read(f"identity/entity/id/{auth['entity_id']}")["data"]
    assert [(a["name"], a["mount_type"]) for a in entity["aliases"]] == [("alice", "userpass")]
    # a second login resolves to the same entity
    assert srv.client(token="").auth.userpass.login("alice", PASSWORD)["auth"]["entity_id"] == auth["entity_id"]

    root.auth.userpass.delete_user("alice")
    r = _login(srv, "alice", PASSWORD)
    assert r.status_code == 400 and _errors(r) == ["invalid username or password"]


def test_password_and_policy_updates(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.userpass.create_or_update_user("bob", "first-password", policies=["a"])
    root.auth.userpass.update_password_on_user("bob", "second-password")
    assert _login(srv, "bob", "first-password").status_code == 400
    assert _login(srv, "bob", "second-password").status_code == 200
    # updating other fields keeps the password
    root.auth.userpass.create_or_update_user("bob", token_ttl="1h")
    assert _login(srv, "bob", "second-password").status_code == 200
    with srv.http() as http:
        assert http.post("/v1/auth/userpass/users/bob/policies", json={"token_policies": "b,c"}).status_code == 204
    assert root.auth.userpass.read_user("bob")["data"]["token_policies"] == ["b", "c"]
    assert _login(srv, "bob", "second-password").json()["auth"]["token_policies"] == ["b", "c", "default"]


def test_bad_input_is_refused_and_changes_nothing(srv: StrongroomServer, root: hvac.Client) -> None:
    with srv.http() as http:
        r = http.post("/v1/auth/userpass/users/nopass", json={"policies": "x"})
        assert r.status_code == 400 and _errors(r) == ["missing password"]
        assert http.get("/v1/auth/userpass/users/nopass").status_code == 404
        r = http.post("/v1/auth/userpass/users/ghost/password", json={"password": "x"})
        assert r.status_code == 400 and _errors(r) == ["username does not exist"]
        root.auth.userpass.create_or_update_user("carol", PASSWORD)
        r = http.post("/v1/auth/userpass/users/carol/password", json={"password": ""})
        assert r.status_code == 400 and _errors(r) == ["missing password"]
        r = http.post("/v1/auth/userpass/users/carol", json={"token_ttl": "2h", "token_max_ttl": "1h"})
        assert r.status_code == 400
        r = http.post("/v1/auth/userpass/users/carol", json={"password": ["not", "a", "string"]})
        assert r.status_code == 400
    r = httpx.post(f"{srv.addr}/v1/auth/userpass/login/carol", json={}, timeout=30)
    assert r.status_code == 400 and _errors(r) == ["missing password"]
    assert root.auth.userpass.read_user("carol")["data"]["token_ttl"] == 0
    assert _login(srv, "carol", PASSWORD).status_code == 200


def test_unknown_user_costs_the_same_as_a_wrong_password(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.userpass.create_or_update_user("dave", PASSWORD)

    def timed(username: str) -> float:
        start = time.perf_counter()
        r = _login(srv, username, "not-the-password")
        elapsed = time.perf_counter() - start
        assert r.status_code == 400 and _errors(r) == ["invalid username or password"]
        return elapsed

    unknown, wrong = [], []
    for i in range(15):  # interleaved, so load on the machine affects both alike
        unknown.append(timed(f"nobody-{i}"))
        wrong.append(timed("dave"))
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 < ratio < 2.0, (ratio, unknown, wrong)
    # and both are memory-hard work, not an early return
    assert statistics.median(unknown) > 0.005


def test_audit_sees_only_the_password_hmac(srv: StrongroomServer, root: hvac.Client,
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    audit_file = tmp_path_factory.mktemp("audit") / "audit.log"
    root.sys.enable_audit_device("file", options={"file_path": str(audit_file)}, path="userpass-audit")
    try:
        root.auth.userpass.create_or_update_user("erin", PASSWORD)
        assert _login(srv, "erin", PASSWORD).status_code == 200
        assert _login(srv, "erin", "wrong " + PASSWORD).status_code == 400
        hashed = root.sys.calculate_hash("userpass-audit", PASSWORD)["data"]["hash"]
    finally:
        root.sys.disable_audit_device("userpass-audit")
    text = Path(audit_file).read_text()
    assert PASSWORD not in text
    assert "auth/userpass/login/erin" in text and hashed in text


def test_token_bound_cidrs(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.userpass.create_or_update_user("remote", PASSWORD, token_bound_cidrs=["10.0.0.0/8"])
    r = _login(srv, "remote", PASSWORD)
    assert r.status_code == 403 and r.json().get("auth") is None
    root.auth.userpass.create_or_update_user("remote", token_bound_cidrs=["127.0.0.1/32"])
    assert _login(srv, "remote", PASSWORD).status_code == 200


def test_renewal_rechecks_the_user(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.userpass.create_or_update_user("frank", PASSWORD, policies=["p"], token_ttl="5m", token_max_ttl="1h")
    app = srv.client(token="")
    app.auth.userpass.login("frank", PASSWORD)
    assert app.auth.token.renew_self()["auth"]["lease_duration"] == 300
    root.auth.userpass.create_or_update_user("frank", token_ttl="10m")
    assert app.auth.token.renew_self()["auth"]["lease_duration"] == 600
    with srv.http() as http:
        http.post("/v1/auth/userpass/users/frank/policies", json={"policies": "p,q"})
    with pytest.raises(hvac.exceptions.InvalidRequest, match="policies have changed"):
        app.auth.token.renew_self()
    other = srv.client(token="")
    other.auth.userpass.login("frank", PASSWORD)
    root.auth.userpass.delete_user("frank")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="no longer exists"):
        other.auth.token.renew_self()
