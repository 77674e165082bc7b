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
# Vault's scheme and layout: the field is GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1 (0x11b); each secret byte gets
# its own random polynomial whose constant term is that byte; a share is the polynomial values followed by its one-byte,
# non-zero x coordinate. Field arithmetic on secret values is branch-free and table-free (masks over all eight bits,
# inversion as a^254), so its timing does not depend on the secret; only the public x coordinates steer control flow.


def _gf_mul(a: int, b: int) -> int:
    """Product in GF(2^8): Russian-peasant multiplication, eight fixed rounds, masks instead of branches."""
    r = 0
    for i in (7, 6, 5, 4, 3, 2, 1, 0):
        r = ((r << 1) & 0xFF) ^ (-(r >> 7) & 0x1B) ^ (-((b >> i) & 1) & a)
    return r


def _gf_inv(a: int) -> int:
    """a^-1 = a^254 (Fermat) by a fixed chain of squarings and products; 0 maps to 0."""
    b = _gf_mul(a, a)  # a^2
    c = _gf_mul(a, b)  # a^3
    b = _gf_mul(c, c)  # a^6
    b = _gf_mul(b, b)  # a^12
    c = _gf_mul(b, c)  # a^15
    b = _gf_mul(b, b)  # a^24
    b = _gf_mul(b, b)  # a^48
    b = _gf_mul(b, c)  # a^63
    b = _gf_mul(b, b)  # a^126
    b = _gf_mul(a, b)  # a^127
    return _gf_mul(b, b)  # a^254


def _gf_div(a: int, b: int) -> int:
    if b == 0:  # b is a difference of public x coordinates, never a secret
        raise ZeroDivisionError("division by zero in GF(2^8)")
    return _gf_mul(a, _gf_inv(b))


def _shuffled_x_coordinates() -> list[int]:
    """1..255 in uniformly random order (Fisher-Yates with ``secrets``); x = 0 would be the secret itself."""
    xs = list(range(1, 256))
    for i in range(len(xs) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        xs[i], xs[j] = xs[j], xs[i]
    return xs


def _evaluate(coefficients: list[int], x: int) -> int:
    """Horner's rule: coefficients[0] is the constant term."""
    y = 0
    for c in reversed(coefficients):
        y = _gf_mul(y, x) ^ c
    return y


def shamir_split(secret: bytes, shares: int, threshold: int) -> list[bytes]:
    """Split into ``shares`` parts, any ``threshold`` of which recombine (Vault's ``shamir.Split``)."""
    if shares < threshold:
        raise ValueError("parts cannot be less than threshold")
    if shares > 255:
        raise ValueError("parts cannot exceed 255")
    if threshold < 2:
        raise ValueError("threshold must be at least 2")
    if not secret:
        raise ValueError("cannot split an empty secret")
    xs = _shuffled_x_coordinates()[:shares]
    out = [bytearray(len(secret) + 1) for _ in range(shares)]
    for s, x in zip(out, xs, strict=True):
        s[-1] = x
    for idx, byte in enumerate(secret):
        coefficients = [byte] + [secrets.randbelow(256) for _ in range(threshold - 1)]
        for s, x in zip(out, xs, strict=True):
            s[idx] = _evaluate(coefficients, x)
    return [bytes(s) for s in out]


def shamir_combine(parts: list[bytes]) -> bytes:
    """Recombine parts made by :func:`shamir_split` (Lagrange interpolation at 0). Parts must have distinct, non-zero
    x coordinates; with fewer parts than the threshold the result is a wrong value, not an error (as in Vault)."""
    if len(parts) < 2:
        raise ValueError("less than two parts cannot be used to reconstruct the secret")
    length = len(parts[0])
    if length < 2:
        raise ValueError("parts must be at least two bytes")
    if any(len(p) != length for p in parts):
        raise ValueError("all parts must be the same length")
    xs = [p[-1] for p in parts]
    if 0 in xs:
        raise ValueError("invalid part: x coordinate zero")
    if len(set(xs)) != len(xs):
        raise ValueError("duplicate part detected")
    # The Lagrange basis at 0 depends only on the public x coordinates: compute it once, not once per byte.
    basis = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = _gf_mul(num, xj)
                den = _gf_mul(den, xi ^ xj)
        basis.append(_gf_div(num, den))
    secret = bytearray(length - 1)
    for idx in range(length - 1):
        acc = 0
        for part, weight in zip(parts, basis, strict=True):
            acc ^= _gf_mul(part[idx], weight)
        secret[idx] = acc
    return bytes(secret)


def xor_bytes(a: bytes, b: bytes) -> bytes:
    if len(a) != len(b):
        raise ValueError("length mismatch")
    return bytes(x ^ y for x, y in zip(a, b, strict=True))
