"""The broker as an OIDC issuer: its signing key, the discovery document and JWKS, and minting ID tokens."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from strongroom import crypto


def generate_signing_key(algorithm: str = "RS256") -> str:
    """A new private key as PKCS#8 PEM, for sealing into the broker's seed."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcIssuer:
    def __init__(self, private_key_pem: str, issuer: str) -> None:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            self.algorithm = "RS256"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            self.algorithm = "ES256"
        else:
            raise ValueError("the broker's signing key must be RSA or P-256")
        self._key = key
        self.issuer = issuer
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = _b64url(hashlib.sha256(spki).digest())

    def jwks(self) -> dict[str, Any]:
        public = self._key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.algorithm})
        return {"keys": [jwk]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.algorithm],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "jti", "groups", "mpa_request_id",
                                 "mpa_approvers"],
        }

    def mint(self, claims: dict[str, Any], ttl: int, *, now: float | None = None) -> tuple[str, int]:
        """A signed token valid for ``ttl`` seconds from now; returns (token, exp)."""
        issued = int(now if now is not None else time.time())
        exp = issued + max(1, int(ttl))
        body = {**claims, "iss": self.issuer, "iat": issued, "nbf": issued, "exp": exp, "jti": crypto.new_uuid()}
        token = jwt.encode(body, self._key, algorithm=self.algorithm, headers={"kid": self.kid, "typ": "JWT"})
        return token, exp

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        return jwt.decode(token, self._key.public_key(), algorithms=[self.algorithm], audience=audience,
                          issuer=self.issuer)
