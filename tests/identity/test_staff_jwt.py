"""Staff login through the jwt auth method: IdP groups decide policies, tokens are tied to the staff user's ID."""

from __future__ import annotations

import time

import hvac
import pytest

from .idp import AUDIENCE, Idp, IdpDocuments

ENG_POLICY = 'path "secret/metadata/*" { capabilities = ["list", "read"] }'
ALL_STAFF_POLICY = 'path "sys/mounts" { capabilities = ["read"] }'


@pytest.fixture
def staff(server):  # noqa: ANN001, ANN201
    """auth/jwt trusting the IdP's static key; external group eng (policy eng) aliased to the IdP group "eng"."""
    idp = Idp()
    root = server.client()
    root.sys.enable_auth_method("jwt", path="jwt")
    root.auth.jwt.configure(jwt_validation_pubkeys=[idp.public_pem], bound_issuer=idp.issuer, path="jwt")
    root.auth.jwt.create_role("staff", role_type="jwt", user_claim="sub", groups_claim="groups",
                              bound_audiences=[AUDIENCE], claim_mappings={"email": "email"}, token_ttl="1h",
                              allowed_redirect_uris=[], path="jwt")
    root.sys.create_or_update_policy("eng", ENG_POLICY)
    root.sys.create_or_update_policy("all-staff", ALL_STAFF_POLICY)
    accessor = root.sys.list_auth_methods()["data"]["jwt/"]["accessor"]
    eng = root.secrets.identity.create_or_update_group(name="eng", group_type="external", policies=["eng"])["data"]
    root.secrets.identity.create_or_update_group_alias(name="eng", mount_accessor=accessor, canonical_id=eng["id"])
    root.secrets.kv.v2.create_or_update_secret(path="k8s/default/s-emoji/canary/v1", secret={"data": "x"},
                                               mount_point="secret")
    return server, idp, root, accessor, eng["id"]


def _login(server, token: str, role: str = "staff") -> dict:  # noqa: ANN001
    return server.client(token="").auth.jwt.jwt_login(role, token, path="jwt")["auth"]


def wait_for(predicate, timeout: float, message: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)  # polling with a deadline, not waiting for a fixed time
    raise TimeoutError(message)


def _try_login(server, token: str, path: str) -> bool:  # noqa: ANN001
    with server.http(token="") as http:
        return http.post(f"/v1/auth/{path}/login", json={"role": "staff", "jwt": token}).status_code == 200


def _can_list(server, token: str) -> bool:  # noqa: ANN001
    with server.http(token=token) as http:
        return http.get("/v1/secret/metadata/k8s/", params={"list": "true"}).status_code == 200


def test_group_eng_gets_eng_policies_and_others_do_not(staff) -> None:  # noqa: ANN001
    server, idp, root, accessor, eng_id = staff
    auth = _login(server, idp.token("user_0001", ["eng", "cafe"]))
    assert auth["identity_policies"] == ["eng"]
    assert "eng" in auth["policies"] and "eng" not in auth["token_policies"]
    assert _can_list(server, auth["client_token"])
    outsider = _login(server, idp.token("user_0002", ["sales"]))
    assert "eng" not in outsider["policies"]
    assert not _can_list(server, outsider["client_token"])
    members = root.secrets.identity.read_group(eng_id)["data"]["member_entity_ids"]
    assert members == [auth["entity_id"]]


def test_token_is_tied_to_the_staff_user_id(staff) -> None:  # noqa: ANN001
    server, idp, root, accessor, _ = staff
    auth = _login(server, idp.token("user_00009Xyz", ["eng"]))
    again = _login(server, idp.token("user_00009Xyz", ["eng"]))
    assert auth["entity_id"] == again["entity_id"]
    found = root.secrets.identity.lookup_entity(alias_name="user_00009Xyz", alias_mount_accessor=accessor)["data"]
    assert found["id"] == auth["entity_id"]
    (alias,) = found["aliases"]
    assert alias["name"] == "user_00009Xyz" and alias["metadata"] == {"email": "user_00009Xyz@bank.example"}
    me = server.client(token=auth["client_token"]).auth.token.lookup_self()["data"]
    assert me["entity_id"] == auth["entity_id"]
    assert me["display_name"] == "jwt-user_00009Xyz"
    assert me["meta"] == {"role": "staff", "email": "user_00009Xyz@bank.example"}


def test_leaving_the_group_at_the_idp_drops_the_policies_at_next_login(staff) -> None:  # noqa: ANN001
    server, idp, root, _, eng_id = staff
    first = _login(server, idp.token("user_0003", ["eng"]))
    assert _can_list(server, first["client_token"])
    later = _login(server, idp.token("user_0003", []))
    assert later["entity_id"] == first["entity_id"]
    assert "eng" not in later["policies"]
    assert not _can_list(server, later["client_token"])
    assert root.secrets.identity.read_group(eng_id)["data"]["member_entity_ids"] == []


def test_parent_group_policies_are_inherited(staff) -> None:  # noqa: ANN001
    server, idp, root, _, eng_id = staff
    root.secrets.identity.create_or_update_group(name="all-staff", policies=["all-staff"], member_group_ids=[eng_id])
    auth = _login(server, idp.token("user_0004", ["eng"]))
    assert auth["identity_policies"] == ["all-staff", "eng"]
    with server.http(token=auth["client_token"]) as http:
        assert http.get("/v1/sys/mounts").status_code == 200


@pytest.mark.parametrize(("make", "message"), [
    (lambda idp: idp.token("user_0005", ["eng"], now=time.time() - 3600), "token is expired"),
    (lambda idp: idp.token("user_0005", ["eng"], now=time.time() + 3600), "not valid yet"),
    (lambda idp: idp.token("user_0005", ["eng"], issuer="https://evil.example"), "invalid issuer"),
    (lambda idp: Idp("https://evil.example").token("user_0005", ["eng"]), "no known key"),
    (lambda idp: Idp().token("user_0005", ["eng"]), "no known key"),
    (lambda idp: idp.token("user_0005", ["eng"], audience="someone-else"), "aud claim does not match"),
    (lambda idp: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyXzAwMDUiLCJncm91cHMiOlsiZW5nIl19.", "no known key"),
    (lambda idp: "garbage", "error parsing token"),
])
def test_bad_idp_tokens_are_refused(staff, make, message: str) -> None:  # noqa: ANN001
    server, idp, *_ = staff
    with server.http(token="") as http:
        r = http.post("/v1/auth/jwt/login", json={"role": "staff", "jwt": make(idp)})
    assert r.status_code == 400, r.text
    assert any(message in e for e in r.json()["errors"]), r.text
    assert "client_token" not in r.text


def test_role_validation_and_bound_claims(staff) -> None:  # noqa: ANN001
    server, idp, root, *_ = staff
    with server.http() as http:
        r = http.post("/v1/auth/jwt/role/nobounds", json={"role_type": "jwt", "user_claim": "sub"})
        assert r.status_code == 400 and "at least one bound constraint" in r.json()["errors"][0]
        r = http.post("/v1/auth/jwt/role/nouser", json={"role_type": "jwt", "bound_audiences": ["x"]})
        assert r.status_code == 400 and "user claim" in r.json()["errors"][0]
        r = http.post("/v1/auth/jwt/role/glob", json={
            "role_type": "jwt", "user_claim": "sub", "bound_audiences": [AUDIENCE],
            "bound_claims": {"department": ["platform-*"]}, "bound_claims_type": "glob"})
        assert r.status_code in (200, 204), r.text
        role = http.get("/v1/auth/jwt/role/glob").json()["data"]
        assert role["bound_claims"] == {"department": ["platform-*"]} and role["bound_claims_type"] == "glob"
    assert _login(server, idp.token("user_0006", department="platform-sre"), role="glob")["client_token"]
    with server.http(token="") as http:
        r = http.post("/v1/auth/jwt/login", json={"role": "glob", "jwt": idp.token("user_0006", department="sales")})
        assert r.status_code == 400 and "does not match any associated bound claim values" in r.text
        r = http.post("/v1/auth/jwt/login", json={"role": "glob", "jwt": idp.token("user_0006")})
        assert r.status_code == 400 and 'claim "department" is missing' in r.json()["errors"][0]


def test_jwks_url_and_oidc_discovery_with_key_rotation(server) -> None:  # noqa: ANN001
    idp = Idp()
    docs = IdpDocuments(idp)
    idp.issuer = docs.url
    try:
        root = server.client()
        for path, kwargs in (("jwks", {"jwks_url": f"{docs.url}/keys", "bound_issuer": idp.issuer}),
                             ("oidc", {"oidc_discovery_url": docs.url})):
            root.sys.enable_auth_method("jwt", path=path)
            root.auth.jwt.configure(path=path, **kwargs)
            root.auth.jwt.create_role("staff", role_type="jwt", user_claim="sub", bound_audiences=[AUDIENCE],
                                      allowed_redirect_uris=[], path=path)
            auth = server.client(token="").auth.jwt.jwt_login("staff", idp.token("user_0007"), path=path)["auth"]
            assert auth["client_token"]
        config = root.auth.jwt.read_config(path="jwks")["data"]
        assert config["jwks_url"] == f"{docs.url}/keys" and "oidc_client_secret" not in config
        idp.rotate()  # a new kid: the keys are refetched (at most once a second), then cached
        before = docs.fetches
        wait_for(lambda: _try_login(server, idp.token("user_0007"), "jwks"), timeout=10, message="rotated key")
        for _ in range(3):
            assert server.client(token="").auth.jwt.jwt_login("staff", idp.token("user_0007"), path="jwks")["auth"]
        assert 1 <= docs.fetches - before <= 3
        with pytest.raises(hvac.exceptions.InvalidRequest):
            root.auth.jwt.configure(jwks_url=f"{docs.url}/keys", jwt_validation_pubkeys=[idp.public_pem], path="jwks")
    finally:
        docs.stop()
