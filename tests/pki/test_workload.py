"""Workload certificate identities: what bootstrap installs (``pki/`` with a root, role ``workload``, and
``kubernetes-reader`` allowed to issue on it), pods logging in through the Kubernetes stand-in
(``tests/identity/k8s_tokens.py``'s ``FakeCluster``, the one stand-in allowed: a Kubernetes API server cannot run
here) and getting certificates that name exactly their own ServiceAccount, and two services completing mutual TLS
with Python's ``ssl`` through ``strongroom.secretstore.certificate()``."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
from cryptography import x509

from strongroom import secretstore
from strongroom.secretstore.certificate import Certificate, check_peer, peer_spiffe_id
from tests.conftest import StrongroomServer, wait_for
from tests.identity.k8s_tokens import FakeCluster

from .conftest import openssl, write

TRUST_DOMAIN = "cluster.local"


@dataclass
class Env:
    server: StrongroomServer
    cluster: FakeCluster
    root: hvac.Client

    def login(self, namespace: str, name: str) -> str:
        sa = self.cluster.accounts.get((namespace, name)) or self.cluster.service_account(namespace, name)
        client = self.server.client(token="")
        client.auth.kubernetes.login("default", self.cluster.projected_token(sa))
        return str(client.token)


@pytest.fixture(scope="module")
def env(pki_server: StrongroomServer) -> Iterator[Env]:
    cluster = FakeCluster().start()
    root = pki_server.client()
    root.auth.kubernetes.configure(kubernetes_host=cluster.url, kubernetes_ca_cert=cluster.ca_pem,
                                   token_reviewer_jwt=cluster.reviewer_token)
    yield Env(pki_server, cluster, root)
    cluster.stop()


def _spiffe(namespace: str, name: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{name}"


def _uris(pem: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)


def test_bootstrap_installs_the_workload_ca_and_role(env: Env) -> None:
    role = env.root.secrets.pki.read_role("workload")["data"]
    assert role["allowed_uri_sans_template"] is True and role["require_cn"] is False
    assert role["allowed_uri_sans"][0].startswith(f"spiffe://{TRUST_DOMAIN}/ns/{{{{identity.entity.aliases.")
    policy = env.root.sys.read_policy("kubernetes-reader")["data"]["rules"]
    assert 'path "pki/issue/workload"' in policy
    # bootstrap is idempotent: running it again keeps the same CA
    ca = env.root.secrets.pki.read_ca_certificate()
    with env.server.http() as h:
        assert h.post("/v1/sys/bootstrap").status_code in (200, 204)
    assert env.root.secrets.pki.read_ca_certificate() == ca


def test_a_pod_gets_a_certificate_naming_exactly_its_service_account(env: Env, tmp_path: Path) -> None:
    token = env.login("default", "s-emoji")
    with env.server.http(token=token) as pod:
        resp = pod.post("/v1/pki/issue/workload", json={})
        assert resp.status_code == 200, resp.text
        data = resp.json()["data"]
        assert _uris(data["certificate"]) == [_spiffe("default", "s-emoji")]
        ca_file = write(tmp_path / "ca.pem", data["issuing_ca"])
        leaf_file = write(tmp_path / "leaf.pem", data["certificate"])
        for purpose in ("sslclient", "sslserver"):
            ok = openssl("verify", "-CAfile", ca_file, "-purpose", purpose, leaf_file)
            assert ok.returncode == 0 and "OK" in ok.stdout, ok.stdout + ok.stderr
        # naming itself explicitly is fine too
        resp = pod.post("/v1/pki/issue/workload", json={"uri_sans": _spiffe("default", "s-emoji")})
        assert resp.status_code == 200

        # another ServiceAccount's identity, by URI, by glob, or by common name, is refused and nothing is issued
        for body in ({"uri_sans": _spiffe("default", "s-ledger")}, {"uri_sans": _spiffe("default", "*")},
                     {"uri_sans": f"spiffe://{TRUST_DOMAIN}/ns/default/sa/s-emoji/../s-ledger"},
                     {"common_name": "s-ledger.default.svc"},
                     {"uri_sans": [_spiffe("default", "s-emoji"), _spiffe("prod", "s-emoji")]}):
            resp = pod.post("/v1/pki/issue/workload", json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert resp.json()["errors"], body
        # and it may not use any other role, sign a CSR, or change the role
        assert pod.post("/v1/pki/sign/workload", json={"csr": "x"}).status_code == 403
        assert pod.post("/v1/pki/roles/workload", json={"allowed_uri_sans": "*"}).status_code == 403
        assert pod.post("/v1/pki/root/generate/internal", json={"common_name": "x"}).status_code == 403


def test_identity_values_that_would_widen_access_yield_no_certificate(env: Env) -> None:
    # the stand-in vouches for whatever name it is given; a real API server never would, but the template must hold
    for name in ("a*b", "x+y"):
        token = env.login("default", name)
        with env.server.http(token=token) as pod:
            resp = pod.post("/v1/pki/issue/workload", json={})
            assert resp.status_code == 400, resp.text
            assert "does not name a URI this role allows" in resp.json()["errors"][0]
            resp = pod.post("/v1/pki/issue/workload", json={"uri_sans": _spiffe("default", name)})
            assert resp.status_code == 400, resp.text
    # a root token has no Kubernetes identity: the template cannot resolve
    with env.server.http() as h:
        resp = h.post("/v1/pki/issue/workload", json={})
        assert resp.status_code == 400


def _pod_client(env: Env, tmp_path: Path, namespace: str, name: str) -> secretstore.Client:
    sa = env.cluster.accounts.get((namespace, name)) or env.cluster.service_account(namespace, name)
    (tmp_path / f"{name}.token").write_text(env.cluster.projected_token(sa))
    (tmp_path / f"{name}.ns").write_text(namespace)
    return secretstore.Client(addr=env.server.addr, token_file=str(tmp_path / f"{name}.token"),
                              namespace_file=str(tmp_path / f"{name}.ns"))


def _serve_once(ctx: ssl.SSLContext, seen: dict[str, object]) -> tuple[socket.socket, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with ctx.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = check_peer(tls, TRUST_DOMAIN)
                tls.sendall(b"hello " + str(seen["peer"]).encode())
        except (ssl.SSLError, OSError) as exc:
            seen["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def _connect(ctx: ssl.SSLContext, port: int) -> tuple[str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, \
            ctx.wrap_socket(raw, server_hostname="s-emoji") as tls:
        return peer_spiffe_id(tls), tls.recv(200)


def test_two_services_complete_mutual_tls_and_refuse_another_trust_domain(env: Env, tmp_path: Path) -> None:
    emoji = Certificate(client=_pod_client(env, tmp_path, "default", "s-emoji"), backoff_initial=0.2)
    ledger = Certificate(client=_pod_client(env, tmp_path, "default", "s-ledger"), backoff_initial=0.2)
    try:
        assert emoji.wait(30).spiffe_id == _spiffe("default", "s-emoji") and emoji.ready()
        assert ledger.wait(30).spiffe_id == _spiffe("default", "s-ledger")
        seen: dict[str, object] = {}
        listener, thread = _serve_once(emoji.server_context(), seen)
        with listener:
            peer, greeting = _connect(ledger.client_context(), listener.getsockname()[1])
            thread.join(20)
        assert peer == _spiffe("default", "s-emoji") and greeting == b"hello " + _spiffe("default", "s-ledger").encode()
        assert seen["peer"] == _spiffe("default", "s-ledger")

        # a service whose certificate comes from another trust domain's CA is refused, both ways
        env.root.sys.enable_secrets_engine("pki", path="pki-elsewhere")
        env.root.secrets.pki.generate_root("internal", "Elsewhere CA", extra_params={"key_type": "ec"},
                                           mount_point="pki-elsewhere")
        env.root.secrets.pki.create_or_update_role(
            "workload", {"allowed_uri_sans": ["spiffe://elsewhere.example/*"], "require_cn": False, "ttl": "1h",
                         "key_type": "ec"}, mount_point="pki-elsewhere")
        stranger = Certificate(mount="pki-elsewhere", addr=env.server.addr,
                               token_provider=lambda: env.server.root_token,
                               uri_sans=("spiffe://elsewhere.example/ns/default/sa/s-ledger",))
        try:
            stranger.wait(30)
            seen = {}
            listener, thread = _serve_once(emoji.server_context(), seen)
            with listener, pytest.raises(ssl.SSLError):
                _connect(stranger.client_context(), listener.getsockname()[1])
            thread.join(20)
            assert "peer" not in seen and isinstance(seen.get("error"), ssl.SSLError)
            seen = {}
            listener, thread = _serve_once(stranger.server_context(), seen)
            with listener, pytest.raises(ssl.SSLError):
                _connect(ledger.client_context(), listener.getsockname()[1])
            thread.join(20)
        finally:
            stranger.close()
    finally:
        emoji.close()
        ledger.close()


def test_the_certificate_is_renewed_at_two_thirds_of_its_lifetime(env: Env, tmp_path: Path) -> None:
    changes: list[str] = []
    cert = Certificate(client=_pod_client(env, tmp_path, "default", "s-renew"), ttl="6s",
                       on_change=lambda c: changes.append(c.serial_number))
    try:
        first = cert.wait(30)
        lifetime = first.not_after - first.received_at
        assert 4 < lifetime <= 6.5
        ctx = cert.server_context()
        wait_for(lambda: len(changes) >= 2, timeout=30, message="a renewed certificate")
        second = cert.current()
        assert second.serial_number != first.serial_number
        renewed_after = second.received_at - first.received_at
        assert lifetime * 0.55 <= renewed_after <= lifetime * 0.85, renewed_after
        assert second.spiffe_id == _spiffe("default", "s-renew") and cert.ready()
        assert ctx.cert_store_stats()["x509_ca"] >= 1
    finally:
        cert.close()


def test_an_unreachable_server_means_not_ready_and_retries(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe is closed
    cert = Certificate(addr=f"http://127.0.0.1:{port}", token_provider=lambda: "unused", backoff_initial=0.05,
                       backoff_max=0.1)
    try:
        with pytest.raises(secretstore.Unavailable):
            cert.wait(0.5)
        assert not cert.ready()
        wait_for(lambda: cert.stats["failures"] >= 2, timeout=10, message="retries with backoff")
        assert "cannot reach Strongroom" in cert.stats["last_error"]
    finally:
        cert.close()
