"""Vault's versioned envelope for transit output: ``vault:v<N>:<base64>``.

Ciphertexts, signatures and HMACs all carry the key version they were made with. For symmetric keys the base64 part is
``nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)``, exactly as Vault lays it out, so Vault's ciphertext decrypts here
with the same key imported, and the other way round.
"""

from __future__ import annotations

import base64
import binascii

from strongroom.core.logical import InvalidRequest

PREFIX = "vault:v"


def encode(version: int, payload: bytes, *, urlsafe: bool = False) -> str:
    if urlsafe:  # JWS-marshaled signatures: base64url without padding, as Go's RawURLEncoding
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    else:
        body = base64.b64encode(payload).decode()
    return f"{PREFIX}{version}:{body}"


def split(value: str, kind: str = "ciphertext") -> tuple[int, str]:
    """The version and the still-encoded body, or Vault's error for a malformed value."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        raise InvalidRequest(f"invalid {kind}: no prefix")
    parts = value[len(PREFIX):].split(":", 1)
    if len(parts) != 2:
        raise InvalidRequest(f"invalid {kind}: wrong number of fields")
    try:
        version = int(parts[0])
    except ValueError:
        raise InvalidRequest(f"invalid {kind}: version number could not be decoded") from None
    if not parts[0].isdigit():
        raise InvalidRequest(f"invalid {kind}: version number could not be decoded")
    # Vault's compatibility with the first implementation, whose keys started at zero
    return max(version, 1), parts[1]


def decode_body(body: str, *, urlsafe: bool = False, kind: str = "ciphertext") -> bytes:
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        if kind == "signature":
            raise InvalidRequest("invalid base64 signature value") from None
        raise InvalidRequest(f"invalid {kind}: could not decode base64") from None


def b64decode(value: str, what: str) -> bytes:
    """Strict standard base64 of a request field, with Vault's wording for the field."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"failed to base64-decode {what}") from None
