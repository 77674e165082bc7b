"""The plugin logs in with its own ServiceAccount token (``--k8s-role``) and keeps a short-lived token alive.

The Kubernetes API server that answers TokenReview is the project's one allowed stand-in (tests/identity/k8s_tokens.py,
real wire format over TLS); everything else is the real server and the real plugin process.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import StrongroomServer, wait_for
from tests.identity.k8s_tokens import FakeCluster

from .conftest import Plugin

ROLE = "kms-plugin"
TOKEN_TTL = 2  # seconds: short, so the test sees the plugin replace tokens that run out


@pytest.fixture(scope="module")
def cluster(kms_server: StrongroomServer) -> Iterator[FakeCluster]:
    c = FakeCluster().start()
    root = kms_server.client()
    # bootstrap (dev mode) mounted auth/kubernetes; point it at the stand-in cluster
    root.auth.kubernetes.configure(kubernetes_host=c.url, kubernetes_ca_cert=c.ca_pem,
                                   token_reviewer_jwt=c.reviewer_token)
    with kms_server.http() as http:
        r = http.post(f"/v1/auth/kubernetes/role/{ROLE}", json={
            "bound_service_account_names": ["kms-plugin"], "bound_service_account_namespaces": ["kube-system"],
            "token_policies": ["kms-plugin"], "token_ttl": TOKEN_TTL, "token_max_ttl": 3600})
        assert r.status_code in (200, 204), r.text
    yield c
    c.stop()


def _sa_token_file(cluster: FakeCluster, workdir: Path, namespace: str, name: str) -> Path:
    path = workdir / "sa-token"
    path.write_text(cluster.projected_token(cluster.service_account(namespace, name)))
    return path


def test_kubernetes_login_works_and_short_tokens_are_replaced(cluster: FakeCluster, kms_server, tmp_path) -> None:  # noqa: ANN001
    jwt_file = _sa_token_file(cluster, tmp_path, "kube-system", "kms-plugin")
    p = Plugin(tmp_path, kms_server.addr, "--k8s-role", ROLE, "--jwt-file", str(jwt_file))
    try:
        assert p.status().healthz == "ok"
        logins = len(cluster.reviews)
        assert logins >= 1, "the plugin logs in through TokenReview"
        seed = secrets.token_bytes(32)
        resp = p.encrypt(seed)
        # keep calling until two more logins have happened: each login's token lives TOKEN_TTL seconds, so the
        # plugin must keep replacing them, and it must keep answering while it does
        wait_for(lambda: p.status().healthz == "ok" and len(cluster.reviews) >= logins + 2, timeout=30, interval=0.2,
                 message="the plugin to log in again as its short-lived tokens run out")
        assert p.decrypt(resp) == seed
        assert "Traceback" not in p.log_text() and seed.hex() not in p.log_text()
    finally:
        p.stop()


def test_a_service_account_the_role_does_not_bind_gets_nothing(cluster: FakeCluster, kms_server, tmp_path) -> None:  # noqa: ANN001
    jwt_file = _sa_token_file(cluster, tmp_path, "default", "s-emoji")
    p = Plugin(tmp_path, kms_server.addr, "--k8s-role", ROLE, "--jwt-file", str(jwt_file))
    try:
        st = p.status()
        assert st.healthz != "ok" and st.key_id == ""
        with pytest.raises(grpc.RpcError) as info:
            p.encrypt(secrets.token_bytes(32))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, info.value
    finally:
        p.stop()
