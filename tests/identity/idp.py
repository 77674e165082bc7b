"""A test IdP: a signing key that mints staff JWTs, and its published documents (JWKS, OIDC discovery) served as
static JSON over HTTP. Nothing is emulated: an IdP's key endpoints are static documents."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "strongroom"


class Idp:
    def __init__(self, issuer: str = "https://idp.bank.example") -> None:
        self.issuer = issuer
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:12]

    @property
    def public_pem(self) -> str:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def rotate(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:12]

    def token(self, user_id: str, groups: list[str] | None = None, *, ttl: int = 600, issuer: str | None = None,
              audience: str | list[str] = AUDIENCE, now: float | None = None, **extra: Any) -> str:
        now = int(time.time() if now is None else now)
        claims = {"iss": issuer or self.issuer, "sub": user_id, "aud": audience, "iat": now, "nbf": now,
                  "exp": now + ttl, "email": f"{user_id}@bank.example", **extra}
        if groups is not None:
            claims["groups"] = groups
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


class IdpDocuments:
    """Serves an Idp's /.well-known/openid-configuration and /keys as static JSON on loopback."""

    def __init__(self, idp: Idp) -> None:
        self.idp = idp
        self.fetches = 0
        docs = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": docs.idp.issuer, "jwks_uri": f"{docs.url}/keys",
                            "id_token_signing_alg_values_supported": ["RS256"]}
                elif self.path == "/keys":
                    docs.fetches += 1
                    body = docs.idp.jwks()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
