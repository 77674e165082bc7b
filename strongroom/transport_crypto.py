"""End-to-end encryption of secret values from a client to the server (the "transport" key).

HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256) + HKDF-SHA256 + AES-256-GCM, from ``cryptography``: the client
encrypts to the server's published public key; only the server, inside the write handler, can decrypt. The HPKE ``info``
binds the key version, the envelope format and the destination (``ctx``, the API path the value is meant for), and HPKE
binds the ephemeral key (``enc``) into the key schedule, so an envelope can be neither re-labelled with another key
version nor replayed to another path by whoever sits in between: a TLS-terminating proxy sees only the envelope.

Envelope (what travels): ``base64(JSON{"v": 1, "alg": ..., "key_version": n, "ctx": path, "enc": b64, "ct": b64})``.
Shared by the CLI (``seal_json``) and the server (``open_json``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

ALGORITHM = "HPKE-Base-X25519-HKDF-SHA256-AES-256-GCM"
ENVELOPE_VERSION = 1
MAX_ENVELOPE_CHARS = 4 * 1024 * 1024
_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
_ENC_LEN = 32
_RAW = serialization.Encoding.Raw


class EnvelopeError(ValueError):
    """The envelope is malformed or does not open. The message is safe to show; it never contains plaintext."""


def _info(key_version: int, context: str) -> bytes:
    return f"strongroom transport v{ENVELOPE_VERSION} key_version={key_version} ctx={context}".encode()


def canonical_context(path: str) -> str:
    """The destination as both ends name it: the API path without ``/v1/`` and outer slashes."""
    path = path.strip("/")
    return path[3:] if path.startswith("v1/") else path


def new_private_key() -> bytes:
    return X25519PrivateKey.generate().private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def public_key_of(private_raw: bytes) -> bytes:
    return (
        X25519PrivateKey.from_private_bytes(private_raw).public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    )


def fingerprint(public_raw: bytes) -> str:
    """``SHA256:<base64>``, the OpenSSH style people already compare by eye."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(public_raw).digest()).decode().rstrip("=")


def seal(public_key_b64: str, key_version: int, plaintext: bytes, context: str = "") -> str:
    try:
        public = X25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
    except (ValueError, binascii.Error):
        raise EnvelopeError("the server's transport key is not a valid X25519 public key") from None
    context = canonical_context(context)
    sealed = _SUITE.encrypt(plaintext, public, info=_info(key_version, context))
    doc = {
        "v": ENVELOPE_VERSION,
        "alg": ALGORITHM,
        "key_version": key_version,
        "ctx": context,
        "enc": base64.b64encode(sealed[:_ENC_LEN]).decode(),
        "ct": base64.b64encode(sealed[_ENC_LEN:]).decode(),
    }
    return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def seal_json(public_key_b64: str, key_version: int, value: dict[str, Any], context: str = "") -> str:
    return seal(public_key_b64, key_version, json.dumps(value, separators=(",", ":")).encode(), context)


def parse(envelope: object) -> tuple[int, bytes, str]:
    """(key version, enc || ciphertext, destination context) from an envelope, or EnvelopeError."""
    if not isinstance(envelope, str) or not envelope or len(envelope) > MAX_ENVELOPE_CHARS:
        raise EnvelopeError("transport envelope must be a non-empty base64 string")
    try:
        doc = json.loads(base64.b64decode(envelope, validate=True))
    except (ValueError, binascii.Error):
        raise EnvelopeError("transport envelope is not base64 JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != ENVELOPE_VERSION or doc.get("alg") != ALGORITHM:
        raise EnvelopeError("unsupported transport envelope version or algorithm")
    version, enc, ct, ctx = doc.get("key_version"), doc.get("enc"), doc.get("ct"), doc.get("ctx", "")
    if not isinstance(version, int) or isinstance(version, bool) or not isinstance(enc, str) or not isinstance(ct, str):
        raise EnvelopeError("transport envelope is missing key_version, enc or ct")
    if not isinstance(ctx, str) or len(ctx) > 4096:
        raise EnvelopeError("transport envelope has a malformed ctx")
    try:
        enc_raw, ct_raw = base64.b64decode(enc, validate=True), base64.b64decode(ct, validate=True)
    except (ValueError, binascii.Error):
        raise EnvelopeError("transport envelope fields are not base64") from None
    if len(enc_raw) != _ENC_LEN or len(ct_raw) < 16:
        raise EnvelopeError("transport envelope has a malformed ephemeral key or ciphertext")
    return version, enc_raw + ct_raw, ctx


def open_sealed(private_raw: bytes, key_version: int, sealed: bytes, context: str = "") -> bytes:
    try:
        return _SUITE.decrypt(
            sealed, X25519PrivateKey.from_private_bytes(private_raw), info=_info(key_version, context)
        )
    except (InvalidTag, ValueError):
        raise EnvelopeError("transport envelope failed to decrypt (wrong key or tampered)") from None


def open_json(private_raw: bytes, key_version: int, sealed: bytes, context: str = "") -> dict[str, Any]:
    plaintext = open_sealed(private_raw, key_version, sealed, context)
    try:
        value = json.loads(plaintext)
    except ValueError:
        raise EnvelopeError("transport envelope does not hold a JSON object") from None
    if not isinstance(value, dict):
        raise EnvelopeError("transport envelope does not hold a JSON object")
    return value
