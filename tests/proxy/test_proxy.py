"""The staff proxy: IdP-verified people only, each with a short-lived child token of their own, no client token passed.

``strongroom proxy`` runs as a subprocess through the real entry point; the IdP is a real HTTP endpoint serving a
JWKS document; the server is a real dev server with a file audit device.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import Staff
from .staff import ISSUER, start_proxy


def _probe_path() -> str:
    return f"/v1/secret/data/k8s/default/s-probe/{uuid.uuid4().hex}/v1"


def _bad_tokens(staff: Staff) -> dict[str, str | None]:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = staff.idp.token("mallory")
    head, body, sig = good.split(".")
    forged_claims = jwt.decode(good, options={"verify_signature": False}) | {"sub": "admin"}
    forged_body = jwt.utils.base64url_encode(json.dumps(forged_claims).encode()).decode()
    return {
        "none": None,
        "expired": staff.idp.token("alice", ttl=-120),
        "foreign issuer": staff.idp.token("alice", issuer="https://evil.example"),
        "wrong audience": staff.idp.token("alice", audience="someone-else"),
        "unknown key": staff.idp.token("alice", key=other),
        "tampered": f"{head}.{forged_body}.{sig}",
        "garbage": "not-a-jwt",
    }


def test_unauthenticated_requests_never_reach_the_server(staff: Staff) -> None:
    before = len(staff.audit_entries())
    probes = []
    for case, token in _bad_tokens(staff).items():
        path = _probe_path()
        probes.append(path)
        with staff.proxy.http(token, **{"X-Vault-Token": staff.server.root_token}) as http:
            r = http.get(path)
            assert r.status_code == 401, (case, r.text)
            assert r.json()["errors"], case
            w = http.post(path, json={"data": {"data": "x"}})
            assert w.status_code == 401, case
    entries = staff.audit_entries()[before:]
    text = "\n".join(map(str, entries))
    for path in probes:
        assert path.removeprefix("/v1/") not in text


def test_reasons_are_specific_but_never_echo_the_token(staff: Staff) -> None:
    expired = staff.idp.token("alice", ttl=-120)
    with staff.proxy.http(expired) as http:
        r = http.get("/v1/sys/mounts")
    assert r.status_code == 401 and "expired" in r.text and expired not in r.text
    with staff.proxy.http(staff.idp.token("alice", issuer="https://evil.example")) as http:
        assert "foreign issuer" in http.get("/v1/sys/mounts").text


def test_requests_carry_a_child_token_for_the_staff_user(staff: Staff) -> None:
    with staff.proxy.http(staff.idp.token("alice")) as http:
        me = http.get("/v1/auth/token/lookup-self")
        assert me.status_code == 200, me.text
        data = me.json()["data"]
        again = http.get("/v1/auth/token/lookup-self").json()["data"]
    assert data["meta"]["staff_user"] == "alice"
    assert "alice" in data["display_name"]
    assert "web-user" in data["policies"] and "staff-proxy" not in data["policies"]
    assert 0 < data["ttl"] <= 300
    assert again["accessor"] == data["accessor"]  # cached per user
    with staff.proxy.http(staff.idp.token("bob")) as http:
        bob = http.get("/v1/auth/token/lookup-self").json()["data"]
    assert bob["meta"]["staff_user"] == "bob" and bob["accessor"] != data["accessor"]


def test_a_token_sent_by_the_client_is_stripped(staff: Staff) -> None:
    # a staff member who also holds the root token cannot smuggle it through: the child token is used instead
    root = staff.server.root_token
    for header in ({"X-Vault-Token": root}, {"Cookie": f"token={root}"}):
        with staff.proxy.http(staff.idp.token("alice"), **header) as http:
            r = http.get("/v1/sys/audit")
            assert r.status_code == 403, r.text
            assert http.get("/v1/auth/token/lookup-self").json()["data"]["meta"]["staff_user"] == "alice"


def test_staff_can_add_secrets_but_not_overwrite_or_read_values(staff: Staff) -> None:
    value = secrets.token_urlsafe(16)
    path = "/v1/secret/data/k8s/default/s-emoji/canary/2019-05-11"
    with staff.proxy.http(staff.idp.token("alice")) as http:
        assert http.post(path, json={"data": {"data": value}, "options": {"cas": 0}}).status_code == 200
        assert http.post(path, json={"data": {"data": "clobber"}}).status_code == 403
        assert http.get(path).status_code == 403
        listing = http.get("/v1/secret/metadata/k8s/default/s-emoji/canary/", params={"list": "true"})
        assert listing.json()["data"]["keys"] == ["2019-05-11"]
    stored = staff.root.secrets.kv.v2.read_secret_version(
        path="k8s/default/s-emoji/canary/2019-05-11", mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"]["data"] == value


def test_audit_trail_names_the_staff_user(staff: Staff) -> None:
    with staff.proxy.http(staff.idp.token("carol")) as http:
        assert http.get("/v1/sys/mounts").status_code == 200
    entries = [e for e in staff.audit_entries() if e.get("type") == "request"]
    mine = [e for e in entries if (e.get("request") or {}).get("path") == "sys/mounts"]
    assert mine, entries[-3:]
    auth = mine[-1]["auth"]
    assert auth["metadata"]["staff_user"] == "carol"
    assert "carol" in auth["display_name"]


@pytest.mark.parametrize("issuer", [ISSUER])
def test_proxy_refuses_to_start_without_its_token(tmp_path, issuer: str) -> None:  # noqa: ANN001
    import subprocess

    from .staff import STRONGROOM

    cfg = tmp_path / "p.toml"
    cfg.write_text(
        f'upstream = "http://127.0.0.1:9"\n[idp]\nissuer = "{issuer}"\naudience = "a"\njwks_url = "http://x"\n'
    )
    r = subprocess.run([STRONGROOM, "proxy", "--config", str(cfg)], capture_output=True, timeout=30, env={
        "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert r.returncode == 2 and b"no proxy token" in r.stderr


def test_revoked_child_token_is_replaced_and_never_outlives_the_staff_session(staff: Staff) -> None:
    idp_token = staff.idp.token("frank", ttl=90)
    with staff.proxy.http(idp_token) as http:
        first = http.get("/v1/auth/token/lookup-self").json()["data"]
        assert first["ttl"] <= 90  # bounded by the IdP token's expiry, not the configured 5m
        staff.root.auth.token.revoke_accessor(first["accessor"])
        r = http.get("/v1/sys/mounts")
        assert r.status_code == 200, r.text
        second = http.get("/v1/auth/token/lookup-self").json()["data"]
    assert second["accessor"] != first["accessor"] and second["meta"]["staff_user"] == "frank"


def test_proxy_runs_as_its_own_service_account_bounded_by_its_policies(staff: Staff, tmp_path) -> None:  # noqa: ANN001
    """As in the reference: the proxy's ServiceAccount logs in with the kubernetes method and gets only web-user plus
    the right to mint child tokens; nothing else, whatever a client sends."""
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    sa_jwt = jwt.encode({
        "iss": "https://kubernetes.default.svc.cluster.local", "aud": ["https://kubernetes.default.svc.cluster.local"],
        "sub": "system:serviceaccount:strongroom:staff-proxy", "iat": now, "nbf": now, "exp": now + 3600,
        "kubernetes.io": {"namespace": "strongroom",
                          "serviceaccount": {"name": "staff-proxy", "uid": str(uuid.uuid4())}},
    }, sa_key, algorithm="RS256")  # fmt: skip
    with staff.server.http() as http:
        assert http.post("/v1/auth/kubernetes/config", json={"kubernetes_host": "https://k8s.invalid",
                                                             "pem_keys": [pem.decode()]}).status_code in (200, 204)
        r = http.post("/v1/auth/kubernetes/role/staff-proxy", json={
            "bound_service_account_names": ["staff-proxy"], "bound_service_account_namespaces": ["strongroom"],
            "token_policies": ["web-user", "staff-proxy"], "token_ttl": "1h"})  # fmt: skip
        assert r.status_code in (200, 204), r.text
    pod = tmp_path / "pod"
    pod.mkdir()
    (pod / "token").write_text(sa_jwt)
    (pod / "namespace").write_text("strongroom")
    pod_env = {"STRONGROOM_SA_TOKEN_FILE": str(pod / "token"), "STRONGROOM_NAMESPACE_FILE": str(pod / "namespace")}
    proxy = start_proxy(pod, staff.server.addr, None, staff.idp, pod_env=pod_env)
    try:
        with proxy.http(staff.idp.token("grace")) as http:
            me = http.get("/v1/auth/token/lookup-self").json()["data"]
            assert me["meta"]["staff_user"] == "grace" and "web-user" in me["policies"]
            assert http.get("/v1/sys/audit").status_code == 403
    finally:
        proxy.stop()


def test_paths_that_would_leave_the_server_are_refused() -> None:
    import httpx as _httpx

    from strongroom.proxy.app import _upstream_url
    from strongroom.proxy.child_tokens import UpstreamRefused

    base = _httpx.URL("http://127.0.0.1:8200/v1/")
    assert str(_upstream_url(base, "secret/data/x", "version=1")) == "http://127.0.0.1:8200/v1/secret/data/x?version=1"
    for bad in ("http://attacker.example/steal", "//attacker.example/x", "../other", "a\\b", "https:/x://y"):
        with pytest.raises(UpstreamRefused):
            _upstream_url(base, bad, "")
