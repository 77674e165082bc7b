"""JWT plumbing shared by the kubernetes and jwt auth methods: parsing, public keys, signatures, time claims.

Only asymmetric algorithms are ever accepted (no ``none``, no HMAC: a public key must never double as an HMAC
secret). Error messages never include the token.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import jwt
import orjson
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA")
KUBERNETES_ALGS = ASYMMETRIC_ALGS[:9]
DEFAULT_LEEWAY = 60  # seconds, go-jose's DefaultLeeway

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class TokenError(Exception):
    """A token that cannot be accepted; the message is safe to show the client."""


def _b64json(part: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise TokenError("failed to decode JWT part") from None


def parse_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS, without checking anything but its shape."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise TokenError("compact JWS format must have three parts")
    header, claims = _b64json(parts[0]), _b64json(parts[1])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("JWT header and claims must be JSON objects")
    return header, claims


def load_public_key(pem: str) -> PublicKey:
    """A PEM public key or certificate; only RSA, ECDSA (and Ed25519) keys are usable."""
    data = pem.strip().encode()
    key: Any
    try:
        key = load_pem_public_key(data)
    except ValueError:
        try:
            key = x509.load_pem_x509_certificate(data).public_key()
        except ValueError:
            raise TokenError("data does not contain any valid RSA or ECDSA public keys") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise TokenError("data does not contain any valid RSA or ECDSA public keys")
    return key


def key_fits_alg(key: Any, alg: str) -> bool:
    if alg.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    if alg.startswith("ES"):
        return isinstance(key, ec.EllipticCurvePublicKey)
    return alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey)


def verify_signature(token: str, keys: list[Any], allowed_algs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The claims, if one of ``keys`` verifies the signature with the header's (allowed, asymmetric) algorithm."""
    header, _ = parse_unverified(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed_algs or alg not in ASYMMETRIC_ALGS:
        raise TokenError(f"unsupported signing algorithm {alg!r}" if isinstance(alg, str) else "missing alg header")
    for key in keys:
        if not key_fits_alg(key, alg):
            continue
        try:
            return jwt.decode(token, key=key, algorithms=[alg], options={
                "verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False})
        except jwt.PyJWTError:
            continue
    raise TokenError("no known key successfully validated the token signature")


def _numeric(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"invalid {name} claim")
    return float(value)


def validate_times(claims: dict[str, Any], leeway: int = DEFAULT_LEEWAY, now: float | None = None,
                   require_exp: bool = False) -> None:
    """exp / nbf / iat with leeway, go-jose's rules and messages."""
    now = time.time() if now is None else now
    exp, nbf, iat = _numeric(claims, "exp"), _numeric(claims, "nbf"), _numeric(claims, "iat")
    if require_exp and exp is None:
        raise TokenError("no issue time, notbefore, or expiration time encoded in token")
    if exp is not None and now - leeway > exp:
        raise TokenError("go-jose/go-jose/jwt: validation failed, token is expired (exp)")
    if nbf is not None and now + leeway < nbf:
        raise TokenError("go-jose/go-jose/jwt: validation failed, token not valid yet (nbf)")
    if iat is not None and now + leeway < iat:
        raise TokenError("go-jose/go-jose/jwt: validation failed, token issued in the future (iat)")


def audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if aud is None:
        return []
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return list(aud)
    raise TokenError("invalid aud claim")


def glob_match(pattern: str, value: str) -> bool:
    """Vault's strutil glob: ``*`` matches any run of characters; nothing else is special."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == value
    if not value.startswith(parts[0]):
        return False
    pos = len(parts[0])
    for middle in parts[1:-1]:
        idx = value.find(middle, pos)
        if idx < 0:
            return False
        pos = idx + len(middle)
    return value.endswith(parts[-1]) and len(value) - len(parts[-1]) >= pos
