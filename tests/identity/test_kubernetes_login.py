"""Kubernetes workload login over HTTP with hvac, against a real server and the TokenReview stand-in.

The Kubernetes API server is the one part that cannot run here; ``FakeCluster`` (tests/identity/k8s_tokens.py) stands
in for its TokenReview endpoint with the real wire format, over TLS with its own CA.
"""

from __future__ import annotations

import time

import hvac
import pytest

from .k8s_tokens import ec_key, legacy_claims, projected_claims, rsa_key, unsigned


def _errors(resp) -> list[str]:  # noqa: ANN001
    return resp.json().get("errors", [])


def test_config_read_never_returns_the_reviewer_jwt(k8s) -> None:  # noqa: ANN001
    data = k8s.root.auth.kubernetes.read_config()
    assert data["kubernetes_host"] == k8s.cluster.url
    assert data["token_reviewer_jwt_set"] is True
    assert "token_reviewer_jwt" not in data
    assert k8s.cluster.reviewer_token not in str(data)
    assert data["disable_iss_validation"] is True and data["disable_local_ca_jwt"] is False


def test_config_rejects_bad_input(k8s) -> None:  # noqa: ANN001
    with k8s.server.http() as http:
        r = http.post("/v1/auth/kubernetes/config", json={"kubernetes_ca_cert": k8s.cluster.ca_pem})
        assert r.status_code == 400 and _errors(r) == ["no host provided"]
        r = http.post("/v1/auth/kubernetes/config", json={"kubernetes_host": k8s.cluster.url,
                                                          "kubernetes_ca_cert": "-----BEGIN CERTIFICATE-----\nAA\n"})
        assert r.status_code == 400 and "contains no valid certificates" in _errors(r)[0]
        r = http.post("/v1/auth/kubernetes/config", json={"kubernetes_host": k8s.cluster.url, "pem_keys": ["nope"]})
        assert r.status_code == 400 and "valid RSA or ECDSA public keys" in _errors(r)[0]
    # nothing changed
    assert k8s.root.auth.kubernetes.read_config()["kubernetes_host"] == k8s.cluster.url


def test_role_crud_with_globs_and_token_fields(k8s) -> None:  # noqa: ANN001
    root = k8s.root
    root.auth.kubernetes.create_role("payments", bound_service_account_names=["s-pay*"],
                                     bound_service_account_namespaces=["prod-*"], policies=["Pay"], ttl="1h",
                                     audience="vault")
    role = root.auth.kubernetes.read_role("payments")
    assert role["bound_service_account_names"] == ["s-pay*"]
    assert role["token_policies"] == ["pay"] and role["token_ttl"] == 3600 and role["audience"] == "vault"
    assert role["alias_name_source"] == "serviceaccount_uid"
    assert "payments" in root.auth.kubernetes.list_roles()["keys"]  # hvac's LIST verb
    with k8s.server.http() as http:
        assert "payments" in http.get("/v1/auth/kubernetes/role", params={"list": "true"}).json()["data"]["keys"]
    with k8s.server.http() as http:
        r = http.post("/v1/auth/kubernetes/role/bad", json={"bound_service_account_names": ["*", "x"],
                                                            "bound_service_account_namespaces": ["a"]})
        assert r.status_code == 400
        r = http.post("/v1/auth/kubernetes/role/bad", json={"bound_service_account_names": ["x"]})
        assert r.status_code == 400 and "bound_service_account_namespaces" in _errors(r)[0]
    root.auth.kubernetes.delete_role("payments")
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.auth.kubernetes.read_role("payments")


@pytest.mark.parametrize("shape", ["legacy", "projected"])
@pytest.mark.parametrize("keyname", ["RS256", "ES256"])
def test_login_both_shapes_and_algorithms(k8s, shape: str, keyname: str) -> None:  # noqa: ANN001
    key = k8s.cluster.keys[0] if keyname == "RS256" else k8s.cluster.keys[1]
    assert key.alg == keyname
    sa = k8s.cluster.service_account("default", "s-emoji")
    token = k8s.cluster.legacy_token(sa, key) if shape == "legacy" else k8s.cluster.projected_token(sa, key)
    client = k8s.server.client(token="")
    auth = client.auth.kubernetes.login("default", token)["auth"]
    assert auth["policies"] == ["default", "kubernetes-reader"]
    meta = auth["metadata"]
    assert meta["role"] == "default"
    assert meta["service_account_name"] == "s-emoji" and meta["service_account_namespace"] == "default"
    assert meta["service_account_uid"] == sa.uid
    assert meta["service_account_secret_name"] == (sa.secret_name if shape == "legacy" else "")
    assert auth["entity_id"]
    looked = client.auth.token.lookup_self()["data"]
    assert looked["display_name"] == "kubernetes-default-s-emoji"
    # the entity alias carries exactly the four ServiceAccount keys, under the mount's accessor
    entity = k8s.root.secrets.identity.read_entity(auth["entity_id"])["data"]
    (alias,) = entity["aliases"]
    assert alias["mount_accessor"] == k8s.accessor and alias["name"] == sa.uid
    assert set(alias["metadata"]) == {"service_account_name", "service_account_namespace", "service_account_uid",
                                      "service_account_secret_name"}
    assert k8s.cluster.reviews, "with no pem_keys the TokenReview API must confirm the token"


def test_second_login_reuses_the_entity(k8s) -> None:  # noqa: ANN001
    sa = k8s.cluster.service_account("default", "s-emoji")
    first = k8s.server.client(token="").auth.kubernetes.login("default", k8s.cluster.projected_token(sa))
    second = k8s.server.client(token="").auth.kubernetes.login("default", k8s.cluster.legacy_token(sa))
    assert first["auth"]["entity_id"] == second["auth"]["entity_id"]


def test_login_refusals_use_vaults_messages(k8s) -> None:  # noqa: ANN001
    c = k8s.cluster
    sa = c.service_account("default", "s-emoji")
    k8s.root.auth.kubernetes.create_role("emoji-only", bound_service_account_names=["s-emoji"],
                                         bound_service_account_namespaces=["default"], audience="strongroom",
                                         policies=["kubernetes-reader"])
    cases = [
        ({"jwt": c.projected_token(sa)}, 400, "missing role"),
        ({"role": "default"}, 400, "missing jwt"),
        ({"role": "nope", "jwt": c.projected_token(sa)}, 400, 'invalid role name "nope"'),
        ({"role": "default", "jwt": c.projected_token(sa, ttl=-3600)}, 403, "token is expired"),
        ({"role": "default", "jwt": c.projected_token(sa, nbf_offset=3600)}, 403, "token not valid yet"),
        ({"role": "default", "jwt": unsigned(projected_claims(sa))}, 403, "permission denied"),
        ({"role": "default", "jwt": unsigned(legacy_claims(sa))}, 403, "permission denied"),
        ({"role": "default", "jwt": "not.a.jwt"}, 403, "permission denied"),
        ({"role": "default", "jwt": rsa_key().sign(projected_claims(sa))}, 403, "permission denied"),
        ({"role": "emoji-only", "jwt": c.projected_token(sa, audiences=["someone-else"])}, 403,
         "invalid audience (aud) claim"),
        ({"role": "emoji-only", "jwt": c.projected_token(c.service_account("default", "s-ledger"),
                                                         audiences=["strongroom"])}, 403,
         "service account name not authorized"),
        ({"role": "emoji-only", "jwt": c.projected_token(c.service_account("kube-system", "s-emoji"),
                                                         audiences=["strongroom"])}, 403, "namespace not authorized"),
    ]
    for body, status, message in cases:
        with k8s.server.http(token="") as http:
            r = http.post("/v1/auth/kubernetes/login", json=body)
        assert r.status_code == status, (body.get("role"), r.text)
        assert any(message in e for e in _errors(r)), (message, r.text)
        assert "auth" not in r.json() or r.json()["auth"] is None
    # the right audience gets in
    assert k8s.login(c.projected_token(sa, audiences=["strongroom"]), role="emoji-only").is_authenticated()


def test_deleted_service_account_is_refused_by_token_review(k8s) -> None:  # noqa: ANN001
    sa = k8s.cluster.service_account("default", "s-gone")
    token = k8s.cluster.legacy_token(sa)
    assert k8s.login(token).is_authenticated()
    k8s.cluster.delete(sa)
    r = k8s.login_http(token)
    assert r.status_code == 403 and _errors(r) == ["permission denied"]
    # recreated with the same name: a new UID, so the old token still does not work
    k8s.cluster.service_account("default", "s-gone")
    assert k8s.login_http(token).status_code == 403


def test_tls_to_the_api_server_needs_the_configured_ca(k8s) -> None:  # noqa: ANN001
    other_ca = k8s.cluster.ca_pem  # keep the good one for later
    k8s.root.auth.kubernetes.configure(kubernetes_host=k8s.cluster.url, token_reviewer_jwt=k8s.cluster.reviewer_token)
    sa = k8s.cluster.service_account("default", "s-emoji")
    assert k8s.login_http(k8s.cluster.projected_token(sa)).status_code == 403  # untrusted certificate
    k8s.root.auth.kubernetes.configure(kubernetes_host=k8s.cluster.url, kubernetes_ca_cert=other_ca,
                                       token_reviewer_jwt=k8s.cluster.reviewer_token)
    assert k8s.login(k8s.cluster.projected_token(sa)).is_authenticated()


def test_pem_keys_verify_locally_without_token_review(k8s) -> None:  # noqa: ANN001
    c = k8s.cluster
    k8s.root.auth.kubernetes.configure(kubernetes_host="https://127.0.0.1:1", pem_keys=[k.cert_pem for k in c.keys])
    sa = c.service_account("default", "s-emoji")
    assert k8s.login(c.projected_token(sa)).is_authenticated()
    with k8s.server.http() as http:  # bare public keys work too
        r = http.post("/v1/auth/kubernetes/config", json={"kubernetes_host": "https://127.0.0.1:1",
                                                          "pem_keys": [k.public_pem for k in c.keys]})
        assert r.status_code == 204, r.text
    before = len(c.reviews)
    for key in c.keys:
        assert k8s.login(c.projected_token(sa, key)).is_authenticated()
    assert len(c.reviews) == before, "projected tokens verified by pem_keys need no TokenReview"
    # a token signed by a key that is not configured, or ES256 forged with a fresh key, is refused
    for forged in (rsa_key().sign(projected_claims(sa)), ec_key().sign(projected_claims(sa))):
        r = k8s.login_http(forged)
        assert r.status_code == 403 and _errors(r) == ["permission denied"]
    # a legacy token never expires, so even with pem_keys the API server must confirm it still exists
    r = k8s.login_http(c.legacy_token(sa))
    assert r.status_code == 403


def test_renew_rechecks_the_role(k8s) -> None:  # noqa: ANN001
    k8s.root.auth.kubernetes.create_role("short", bound_service_account_names=["*"],
                                         bound_service_account_namespaces=["*"], policies=["kubernetes-reader"],
                                         ttl="10m", max_ttl="1h")
    sa = k8s.cluster.service_account("default", "s-emoji")
    client = k8s.login(k8s.cluster.projected_token(sa), role="short")
    renewed = client.auth.token.renew_self()["auth"]
    assert 0 < renewed["lease_duration"] <= 600
    k8s.root.auth.kubernetes.delete_role("short")
    with pytest.raises(hvac.exceptions.VaultError):
        client.auth.token.renew_self()


def test_expiry_is_checked_with_small_leeway_only(k8s) -> None:  # noqa: ANN001
    sa = k8s.cluster.service_account("default", "s-emoji")
    just_expired = k8s.cluster.projected_token(sa, now=time.time() - 3600 - 120)
    assert k8s.login_http(just_expired).status_code == 403


def test_alias_name_source_serviceaccount_name(k8s) -> None:  # noqa: ANN001
    k8s.root.auth.kubernetes.create_role("by-name", bound_service_account_names=["*"],
                                         bound_service_account_namespaces=["*"], policies=["kubernetes-reader"],
                                         alias_name_source="serviceaccount_name")
    sa = k8s.cluster.service_account("default", "s-emoji")
    client = k8s.login(k8s.cluster.projected_token(sa), role="by-name")
    entity_id = client.auth.token.lookup_self()["data"]["entity_id"]
    (alias,) = k8s.root.secrets.identity.read_entity(entity_id)["data"]["aliases"]
    assert alias["name"] == "default/s-emoji"
    # the templated reader policy keys on metadata, so access is the same
    k8s.root.secrets.kv.v2.create_or_update_secret(path="k8s/default/s-emoji/a/v1", secret={"data": "1"},
                                                   mount_point="secret")
    got = client.secrets.kv.v2.read_secret_version(path="k8s/default/s-emoji/a/v1", mount_point="secret",
                                                   raise_on_deleted_version=True)
    assert got["data"]["data"] == {"data": "1"}
    with k8s.server.http() as http:
        r = http.post("/v1/auth/kubernetes/role/bad", json={"bound_service_account_names": ["a"],
                                                            "bound_service_account_namespaces": ["b"],
                                                            "alias_name_source": "pod_name"})
        assert r.status_code == 400


def test_identity_survives_a_restart(k8s) -> None:  # noqa: ANN001
    sa = k8s.cluster.service_account("default", "s-emoji")
    before = k8s.login(k8s.cluster.projected_token(sa)).auth.token.lookup_self()["data"]["entity_id"]
    k8s.root.secrets.kv.v2.create_or_update_secret(path="k8s/default/s-emoji/a/v1", secret={"data": "1"},
                                                   mount_point="secret")
    k8s.server.restart()
    client = k8s.login(k8s.cluster.projected_token(sa))
    assert client.auth.token.lookup_self()["data"]["entity_id"] == before
    got = client.secrets.kv.v2.read_secret_version(path="k8s/default/s-emoji/a/v1", mount_point="secret",
                                                   raise_on_deleted_version=True)
    assert got["data"]["data"] == {"data": "1"}
