"""ServiceAccount JWTs minted exactly as Kubernetes mints them, and a TokenReview stand-in.

Kubernetes signs ServiceAccount tokens with the API server's service-account key (RS256 or ES256), ``kid`` being the
base64url SHA-256 of the public key's DER. Two claim shapes exist:

* legacy Secret-based tokens: ``iss: kubernetes/serviceaccount``, no ``exp``/``aud``, and the
  ``kubernetes.io/serviceaccount/{namespace,secret.name,service-account.name,service-account.uid}`` claims;
* projected (bound) tokens: ``iss`` the API server's issuer, ``aud``, ``exp``, ``iat``, ``nbf``, ``jti``,
  ``sub: system:serviceaccount:<ns>:<name>`` and ``kubernetes.io: {namespace, node, pod, serviceaccount, warnafter}``.

:class:`FakeCluster` is the ONE stand-in the project allows (a Kubernetes API server cannot run on these machines):
an HTTPS server answering ``POST /apis/authentication.k8s.io/v1/tokenreviews`` with the real TokenReview wire format
(201 Created, the request object echoed back with ``status.authenticated/user/audiences`` filled in, or
``status.error`` for a token it does not accept). It verifies signatures with the cluster key, expiry, audiences,
that the ServiceAccount still exists with the same UID, and that the caller presented a bearer token.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

API_ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = [API_ISSUER]
LEGACY_ISSUER = "kubernetes/serviceaccount"


@dataclass
class SigningKey:
    alg: str
    private: Any

    @property
    def public_pem(self) -> str:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def cert_pem(self) -> str:
        """The public key in a self-signed certificate (Vault accepts either; hvac insists on certificates)."""
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "service-account-signer")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.private.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .sign(self.private, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def kid(self) -> str:
        der = self.private.public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid})


def rsa_key() -> SigningKey:
    return SigningKey("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key() -> SigningKey:
    return SigningKey("ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class ServiceAccountRef:
    namespace: str
    name: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    secret_name: str = ""

    def __post_init__(self) -> None:
        self.secret_name = self.secret_name or f"{self.name}-token-{uuid.uuid4().hex[:5]}"


def legacy_claims(sa: ServiceAccountRef) -> dict[str, Any]:
    return {
        "iss": LEGACY_ISSUER,
        "kubernetes.io/serviceaccount/namespace": sa.namespace,
        "kubernetes.io/serviceaccount/secret.name": sa.secret_name,
        "kubernetes.io/serviceaccount/service-account.name": sa.name,
        "kubernetes.io/serviceaccount/service-account.uid": sa.uid,
        "sub": f"system:serviceaccount:{sa.namespace}:{sa.name}",
    }


def projected_claims(sa: ServiceAccountRef, *, audiences: list[str] | None = None, ttl: int = 3600,
                     now: float | None = None, nbf_offset: int = 0) -> dict[str, Any]:
    now = int(time.time() if now is None else now)
    return {
        "aud": list(API_AUDIENCES if audiences is None else audiences),
        "exp": now + ttl,
        "iat": now,
        "iss": API_ISSUER,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": sa.namespace,
            "node": {"name": "node-a", "uid": str(uuid.uuid4())},
            "pod": {"name": f"{sa.name}-7d9f8c6b5-x2x4q", "uid": str(uuid.uuid4())},
            "serviceaccount": {"name": sa.name, "uid": sa.uid},
            "warnafter": now + min(ttl, 3607) - 7,
        },
        "nbf": now + nbf_offset,
        "sub": f"system:serviceaccount:{sa.namespace}:{sa.name}",
    }


def unsigned(claims: dict[str, Any]) -> str:
    """An ``alg: none`` token: what an attacker without the key can produce."""
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


# --- TLS for the stand-in -------------------------------------------------------------------------------------------


def _tls_material(tmpdir: str) -> tuple[str, str, str]:
    """(CA PEM, server cert file, server key file) for 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = f"{tmpdir}/apiserver.crt", f"{tmpdir}/apiserver.key"
    with open(cert_file, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return ca.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file


# --- the cluster ----------------------------------------------------------------------------------------------------


class FakeCluster:
    """Signing keys, the ServiceAccounts that exist, and the TokenReview endpoint (see the module docstring)."""

    def __init__(self, keys: list[SigningKey] | None = None) -> None:
        self.keys = keys or [rsa_key(), ec_key()]
        self.accounts: dict[tuple[str, str], ServiceAccountRef] = {}
        self.reviews: list[dict[str, Any]] = []
        self._tmp = tempfile.TemporaryDirectory()
        self.ca_pem, cert_file, key_file = _tls_material(self._tmp.name)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self.reviewer = self.service_account("kube-system", "strongroom-token-reviewer")

    def start(self) -> FakeCluster:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._tmp.cleanup()

    # -- service accounts and their tokens --

    def service_account(self, namespace: str, name: str) -> ServiceAccountRef:
        sa = ServiceAccountRef(namespace, name)
        self.accounts[(namespace, name)] = sa
        return sa

    def delete(self, sa: ServiceAccountRef) -> None:
        self.accounts.pop((sa.namespace, sa.name), None)

    def legacy_token(self, sa: ServiceAccountRef, key: SigningKey | None = None) -> str:
        return (key or self.keys[0]).sign(legacy_claims(sa))

    def projected_token(self, sa: ServiceAccountRef, key: SigningKey | None = None, **kw: Any) -> str:
        return (key or self.keys[0]).sign(projected_claims(sa, **kw))

    @property
    def reviewer_token(self) -> str:
        return self.legacy_token(self.reviewer)

    # -- the API server's view of a token --

    def _authenticate(self, token: str, want_aud: list[str]) -> tuple[dict[str, Any] | None, list[str], str]:
        """(claims, audiences, error) as the API server's service-account authenticator decides."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None, [], "invalid bearer token, token is malformed"
        for key in self.keys:
            if header.get("alg") != key.alg:
                continue
            try:
                claims = jwt.decode(token, key.private.public_key(), algorithms=[key.alg],
                                    options={"verify_aud": False, "verify_iss": False})
            except jwt.ExpiredSignatureError:
                return None, [], "service account token has expired"
            except jwt.PyJWTError:
                continue
            break
        else:
            return None, [], "invalid bearer token, square/go-jose: error in cryptographic primitive"
        token_aud = claims.get("aud")
        token_aud = API_AUDIENCES if token_aud is None else ([token_aud] if isinstance(token_aud, str) else token_aud)
        wanted = want_aud or API_AUDIENCES
        matched = [a for a in wanted if a in token_aud]
        if not matched:
            return None, [], "token audiences do not match the requested audiences"
        projected = claims.get("kubernetes.io") or {}
        ns = projected.get("namespace") or claims.get("kubernetes.io/serviceaccount/namespace")
        sa = projected.get("serviceaccount") or {}
        name = sa.get("name") or claims.get("kubernetes.io/serviceaccount/service-account.name")
        uid = sa.get("uid") or claims.get("kubernetes.io/serviceaccount/service-account.uid")
        live = self.accounts.get((ns, name))
        if live is None or live.uid != uid:
            return None, [], f'serviceaccounts "{name}" not found'
        return claims, matched, ""

    def review(self, bearer: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not bearer:
            return 401, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
        caller, _, _ = self._authenticate(bearer, [])
        if caller is None:
            return 401, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
        spec = body.get("spec") or {}
        claims, auds, error = self._authenticate(str(spec.get("token", "")), list(spec.get("audiences") or []))
        out = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
               "metadata": {"creationTimestamp": None}, "spec": spec}
        if claims is None:
            out["status"] = {"user": {}, "error": f"[invalid bearer token, {error}]"}
            return 201, out
        projected = claims.get("kubernetes.io") or {}
        ns = projected.get("namespace") or claims["kubernetes.io/serviceaccount/namespace"]
        sa = projected.get("serviceaccount") or {}
        name = sa.get("name") or claims["kubernetes.io/serviceaccount/service-account.name"]
        uid = sa.get("uid") or claims["kubernetes.io/serviceaccount/service-account.uid"]
        extra: dict[str, list[str]] = {}
        if projected:
            extra = {"authentication.kubernetes.io/credential-id": [f"JTI={claims.get('jti', '')}"],
                     "authentication.kubernetes.io/node-name": [projected["node"]["name"]],
                     "authentication.kubernetes.io/node-uid": [projected["node"]["uid"]],
                     "authentication.kubernetes.io/pod-name": [projected["pod"]["name"]],
                     "authentication.kubernetes.io/pod-uid": [projected["pod"]["uid"]]}
        out["status"] = {
            "authenticated": True,
            "user": {"username": f"system:serviceaccount:{ns}:{name}", "uid": uid,
                     "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
                     **({"extra": extra} if extra else {})},
            "audiences": auds,
        }
        return 201, out

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
                    self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                     "reason": "NotFound", "message": "the server could not find the requested "
                                                                      "resource"})
                    return
                auth = self.headers.get("Authorization", "")
                bearer = auth[7:] if auth.startswith("Bearer ") else ""
                body = json.loads(raw or b"{}")
                cluster.reviews.append(body)
                status, out = cluster.review(bearer, body)
                self._send(status, out)

            def _send(self, status: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
