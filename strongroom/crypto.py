"""The one module that touches cryptographic primitives.

Everything else in Strongroom calls this narrow API: seal/open bytes bound to a storage path, split/combine a key,
HMAC a value, make and hash tokens. Primitives come from ``cryptography``; randomness from ``secrets``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_NONCE_BYTES = 12
_B62 = string.ascii_letters + string.digits


class DecryptionError(Exception):
    """Ciphertext failed authentication: wrong key, wrong path, or tampered bytes."""


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM encrypt; the result is nonce || ciphertext+tag, bound to ``associated_data``."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, blob: bytes, associated_data: bytes) -> bytes:
    if len(blob) < _NONCE_BYTES + 16:
        raise DecryptionError("ciphertext too short")
    try:
        return AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], associated_data)
    except InvalidTag:
        raise DecryptionError("message authentication failed") from None


class Cipher:
    """A reusable AES-256-GCM key: avoids rebuilding the AESGCM object on every storage operation."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def open(self, blob: bytes, associated_data: bytes) -> bytes:
        if len(blob) < _NONCE_BYTES + 16:
            raise DecryptionError("ciphertext too short")
        try:
            return self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise DecryptionError("message authentication failed") from None


# --- HMAC and hashing -------------------------------------------------------------------------------------------


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hmac_sha256_hex(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


class HmacKey:
    """A keyed HMAC-SHA256 prepared once; each use copies the keyed state instead of re-deriving the pads."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes) -> None:
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def hexdigest(self, data: bytes) -> str:
        h = self._base.copy()
        h.update(data)
        return h.hexdigest()

    def digest(self, data: bytes) -> bytes:
        h = self._base.copy()
        h.update(data)
        return h.digest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def constant_time_eq(a: bytes | str, b: bytes | str) -> bool:
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def derive_key(root: bytes, purpose: str) -> bytes:
    """A sub-key for one purpose (HKDF-SHA256), so one secret never serves two jobs."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()).derive(root)


# --- identifiers and tokens -------------------------------------------------------------------------------------


def random_base62(length: int) -> str:
    return "".join(secrets.choice(_B62) for _ in range(length))


def new_uuid() -> str:
    b = bytearray(secrets.token_bytes(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_hex(nbytes: int) -> str:
    return secrets.token_hex(nbytes)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- Shamir secret sharing over GF(2^8) --------------------------------------------------------------------------
# The field is GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1; each secret byte gets its own random polynomial whose
# constant term is that byte. A share is the polynomial values followed by its one-byte x coordinate (Vault's layout).

_EXP = [0] * 512
_LOG = [0] * 256


def _init_tables() -> None:
    x = 1
    for i in range(255):
        _EXP[i] = x
        _LOG[x] = i
        # multiply by the generator 3 = x + 1
        x2 = x << 1
        if x2 & 0x100:
            x2 ^= 0x11B
        x = x2 ^ x
    for i in range(255, 512):
        _EXP[i] = _EXP[i - 255]


_init_tables()


def _gf_mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _gf_div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError
    if a == 0:
        return 0
    return _EXP[(_LOG[a] - _LOG[b]) % 255]


def shamir_split(secret: bytes, shares: int, threshold: int) -> list[bytes]:
    if not 1 <= threshold <= shares <= 255:
        raise ValueError("need 1 <= threshold <= shares <= 255")
    if not secret:
        raise ValueError("cannot split an empty secret")
    if shares == 1:
        return [secret + b"\x01"] if threshold == 1 else []
    xs = list(range(1, 256))
    # distinct, non-zero x coordinates in random order
    for i in range(len(xs) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        xs[i], xs[j] = xs[j], xs[i]
    xs = xs[:shares]
    out = [bytearray(len(secret) + 1) for _ in range(shares)]
    for s, x in zip(out, xs, strict=True):
        s[-1] = x
    for idx, byte in enumerate(secret):
        coeffs = [byte] + [secrets.randbelow(256) for _ in range(threshold - 1)]
        for s, x in zip(out, xs, strict=True):
            # Horner evaluation
            y = 0
            for c in reversed(coeffs):
                y = _gf_mul(y, x) ^ c
            s[idx] = y
    return [bytes(s) for s in out]


def shamir_combine(parts: list[bytes]) -> bytes:
    if len(parts) < 1:
        raise ValueError("less than one part cannot be used to reconstruct the secret")
    if len(parts) == 1:
        return parts[0][:-1]
    length = len(parts[0])
    if length < 2 or any(len(p) != length for p in parts):
        raise ValueError("all parts must be the same length")
    xs = [p[-1] for p in parts]
    if len(set(xs)) != len(xs) or 0 in xs:
        raise ValueError("duplicate part detected")
    secret = bytearray(length - 1)
    for idx in range(length - 1):
        acc = 0
        for i, xi in enumerate(xs):
            # Lagrange basis at 0
            num, den = 1, 1
            for j, xj in enumerate(xs):
                if i != j:
                    num = _gf_mul(num, xj)
                    den = _gf_mul(den, xi ^ xj)
            acc ^= _gf_mul(parts[i][idx], _gf_div(num, den))
        secret[idx] = acc
    return bytes(secret)


def xor_bytes(a: bytes, b: bytes) -> bytes:
    if len(a) != len(b):
        raise ValueError("length mismatch")
    return bytes(x ^ y for x, y in zip(a, b, strict=True))
