"""The transit engine's only contact with cryptographic primitives (all from ``cryptography`` and ``secrets``).

Everything the engine does to bytes goes through this module's narrow functions: AEAD seal/open (AES-GCM,
ChaCha20-Poly1305), Vault's HKDF key derivation and convergent nonce, key generation, signatures, RSA-OAEP, HMAC,
hashing, AES key unwrap (RFC 5649) for BYOK, and key (de)serialisation. No other transit module imports
``cryptography``; they work with bytes and the opaque key objects returned here.
"""

from __future__ import annotations

import hmac as _hmac
import secrets
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as _chmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

NONCE_SIZE = 12  # GCM96 and ChaCha20-Poly1305 (IETF): the nonce Vault prepends to every ciphertext


class CryptoError(Exception):
    """A failure whose message is safe to show (never key material)."""


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha2-224": hashes.SHA224,
    "sha2-256": hashes.SHA256,
    "sha2-384": hashes.SHA384,
    "sha2-512": hashes.SHA512,
    "sha2-512/224": hashes.SHA512_224,
    "sha2-512/256": hashes.SHA512_256,
    "sha3-224": hashes.SHA3_224,
    "sha3-256": hashes.SHA3_256,
    "sha3-384": hashes.SHA3_384,
    "sha3-512": hashes.SHA3_512,
}
HASH_NAMES = tuple(_HASHES)
# the OAEP hash names of Vault's import endpoints
_OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA1": hashes.SHA1, "SHA224": hashes.SHA224, "SHA256": hashes.SHA256, "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
OAEP_HASH_NAMES = tuple(_OAEP_HASHES)
CURVES: dict[str, ec.EllipticCurve] = {"ecdsa-p256": ec.SECP256R1(), "ecdsa-p384": ec.SECP384R1(),
                                       "ecdsa-p521": ec.SECP521R1()}


def random_bytes(n: int) -> bytes:
    return secrets.token_bytes(n)


def _hash(name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[name]()
    except KeyError:
        raise CryptoError(f"unsupported hash algorithm {name}") from None


def digest(name: str, data: bytes) -> bytes:
    h = hashes.Hash(_hash(name))
    h.update(data)
    return h.finalize()


def hmac(name: str, key: bytes, data: bytes) -> bytes:
    h = _chmac.HMAC(key, _hash(name))
    h.update(data)
    return h.finalize()


def equal(a: bytes | str, b: bytes | str) -> bool:
    """Constant-time comparison of MACs."""
    a_b = a.encode() if isinstance(a, str) else a
    b_b = b.encode() if isinstance(b, str) else b
    return _hmac.compare_digest(a_b, b_b)


# --- symmetric ----------------------------------------------------------------------------------------------------


def hkdf(key: bytes, context: bytes, length: int) -> bytes:
    """Vault's ``DeriveKey`` with KDF ``hkdf_sha256``: HKDF-SHA256, no salt, the context as info."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=context).derive(key)


def _aead(key_type: str, key: bytes) -> AESGCM | ChaCha20Poly1305:
    if key_type == "chacha20-poly1305":
        return ChaCha20Poly1305(key)
    return AESGCM(key)


def seal(key_type: str, key: bytes, plaintext: bytes, aad: bytes | None, nonce: bytes | None = None) -> bytes:
    """``nonce ‖ ciphertext ‖ tag`` exactly as Vault lays it out; a fresh random nonce unless one is given."""
    nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_SIZE)
    return nonce + _aead(key_type, key).encrypt(nonce, plaintext, aad or None)


def open_(key_type: str, key: bytes, blob: bytes, aad: bytes | None) -> bytes:
    if len(blob) < NONCE_SIZE:
        raise CryptoError("invalid ciphertext length")
    try:
        return _aead(key_type, key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad or None)
    except InvalidTag:
        raise CryptoError("cipher: message authentication failed") from None


def convergent_nonce(hmac_key: bytes, plaintext: bytes) -> bytes:
    """Convergent encryption version 3: the nonce is HMAC-SHA256(derived HMAC key, plaintext), truncated."""
    return hmac("sha2-256", hmac_key, plaintext)[:NONCE_SIZE]


# --- asymmetric: generation and (de)serialisation -----------------------------------------------------------------


def generate(key_type: str) -> tuple[bytes, str]:
    """New private key material for an asymmetric type: (stored bytes, formatted public key as Vault shows it)."""
    if key_type == "ed25519":
        priv = ed25519.Ed25519PrivateKey.generate()
        return ed25519_storage(priv.private_bytes_raw())
    if key_type in CURVES:
        ec_priv = ec.generate_private_key(CURVES[key_type])
        return _pkcs8(ec_priv), public_pem(ec_priv.public_key())
    if key_type.startswith("rsa-"):
        rsa_priv = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
        return _pkcs8(rsa_priv), public_pem(rsa_priv.public_key())
    raise CryptoError(f"unknown key type {key_type}")


def ed25519_storage(seed: bytes) -> tuple[bytes, str]:
    """Go's 64-byte Ed25519 private key (seed ‖ public) and the base64 public key Vault shows."""
    import base64

    pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return seed + pub, base64.b64encode(pub).decode()


def _pkcs8(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(pub: Any) -> str:
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_private(key_type: str, stored: bytes) -> Any:
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(stored[:32])
    return serialization.load_der_private_key(stored, password=None)


def load_public_pem(pem: str) -> Any:
    return serialization.load_pem_public_key(pem.encode())


def import_private(key_type: str, der: bytes) -> tuple[bytes, str]:
    """A PKCS#8 DER private key (Vault's BYOK target format) checked against the key type."""
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise CryptoError("error parsing asymmetric key: not a PKCS#8 private key") from None
    if key_type == "ed25519":
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise CryptoError("invalid key: expected an ed25519 private key")
        return ed25519_storage(key.private_bytes_raw())
    if key_type in CURVES:
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != CURVES[key_type].name:
            raise CryptoError(f"invalid key: expected a {key_type} private key")
    elif key_type.startswith("rsa-"):
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != int(key_type[4:]):
            raise CryptoError(f"invalid key: expected a {key_type} private key")
    else:
        raise CryptoError(f"unknown key type {key_type}")
    return _pkcs8(key), public_pem(key.public_key())


def export_private(key_type: str, stored: bytes) -> str:
    """Vault's export formats: base64 Go Ed25519 key, PEM ``EC PRIVATE KEY`` and PEM PKCS#1 ``RSA PRIVATE KEY``."""
    import base64

    if key_type == "ed25519":
        return base64.b64encode(stored).decode()
    key = load_private(key_type, stored)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def derive_ed25519(key: bytes, context: bytes) -> Any:
    """A derived Ed25519 key: Vault feeds HKDF output to ``ed25519.GenerateKey``, which reads a 32-byte seed."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(hkdf(key, context, 32))


def ed25519_public_b64(priv: Any) -> str:
    import base64

    return base64.b64encode(priv.public_key().public_bytes_raw()).decode()


# --- asymmetric: operations ---------------------------------------------------------------------------------------


def _pss_salt(salt_length: str, alg: hashes.HashAlgorithm, signing: bool) -> Any:
    if salt_length in ("", "auto"):
        return padding.PSS.MAX_LENGTH if signing else padding.PSS.AUTO  # Go's PSSSaltLengthAuto on each side
    if salt_length == "hash":
        return alg.digest_size
    try:
        n = int(salt_length)
    except ValueError:
        raise CryptoError(f"salt length value {salt_length!r} is invalid") from None
    if n < 0:
        raise CryptoError(f"requested salt length {n} is invalid")
    return n


def sign(key_type: str, priv: Any, message: bytes, *, hash_algorithm: str, prehashed: bool,
         signature_algorithm: str, marshaling: str, salt_length: str = "auto") -> bytes:
    if key_type == "ed25519":
        return priv.sign(message)
    alg = _hash(hash_algorithm)
    if key_type in CURVES:
        data = message if prehashed else digest(hash_algorithm, message)
        if len(data) != alg.digest_size:
            raise CryptoError("input is not a digest of the requested hash algorithm")
        der = priv.sign(data, ec.ECDSA(Prehashed(alg)))
        if marshaling == "jws":
            r, s = decode_dss_signature(der)
            size = (CURVES[key_type].key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return der
    data = message if prehashed else digest(hash_algorithm, message)
    if len(data) != alg.digest_size:
        raise CryptoError("input is not a digest of the requested hash algorithm")
    pad: padding.AsymmetricPadding
    if signature_algorithm == "pkcs1v15":
        pad = padding.PKCS1v15()
    else:
        pad = padding.PSS(mgf=padding.MGF1(alg), salt_length=_pss_salt(salt_length, alg, True))
    try:
        return priv.sign(data, pad, Prehashed(alg))
    except ValueError as exc:
        raise CryptoError(f"signing failed: {exc}") from None


def verify(key_type: str, pub: Any, message: bytes, sig: bytes, *, hash_algorithm: str, prehashed: bool,
           signature_algorithm: str, marshaling: str, salt_length: str = "auto") -> bool:
    try:
        if key_type == "ed25519":
            pub.verify(sig, message)
            return True
        alg = _hash(hash_algorithm)
        data = message if prehashed else digest(hash_algorithm, message)
        if len(data) != alg.digest_size:
            return False
        if key_type in CURVES:
            if marshaling == "jws":
                half = len(sig) // 2
                sig = encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))
            pub.verify(sig, data, ec.ECDSA(Prehashed(alg)))
            return True
        pad: padding.AsymmetricPadding
        if signature_algorithm == "pkcs1v15":
            pad = padding.PKCS1v15()
        else:
            pad = padding.PSS(mgf=padding.MGF1(alg), salt_length=_pss_salt(salt_length, alg, False))
        pub.verify(sig, data, pad, Prehashed(alg))
        return True
    except (InvalidSignature, ValueError):
        return False


def rsa_encrypt(pub: Any, plaintext: bytes) -> bytes:
    try:
        return pub.encrypt(plaintext, _oaep(hashes.SHA256))
    except ValueError:
        raise CryptoError("failed to RSA encrypt the plaintext: message too long for RSA key size") from None


def rsa_decrypt(priv: Any, ciphertext: bytes) -> bytes:
    try:
        return priv.decrypt(ciphertext, _oaep(hashes.SHA256))
    except ValueError:
        raise CryptoError("failed to RSA decrypt the ciphertext: crypto/rsa: decryption error") from None


def _oaep(alg: Any) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(alg()), algorithm=alg(), label=None)


# --- BYOK ---------------------------------------------------------------------------------------------------------


def new_wrapping_key() -> bytes:
    return _pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=4096))


def wrapping_public_pem(stored: bytes) -> str:
    return public_pem(serialization.load_der_private_key(stored, password=None).public_key())


def unwrap_import(wrapping_key: bytes, blob: bytes, hash_function: str) -> bytes:
    """Vault's BYOK format: RSA-OAEP(hash_function) of an ephemeral AES-256 key (one 4096-bit block), then the
    target key wrapped with it by AES key wrap with padding (RFC 5649)."""
    priv = serialization.load_der_private_key(wrapping_key, password=None)
    assert isinstance(priv, rsa.RSAPrivateKey)
    size = priv.key_size // 8
    if len(blob) <= size:
        raise CryptoError("provided ciphertext is too short")
    try:
        ephemeral = priv.decrypt(blob[:size], _oaep(_OAEP_HASHES[hash_function]))
    except ValueError:
        raise CryptoError("failed to decrypt the ephemeral key: crypto/rsa: decryption error") from None
    try:
        return aes_key_unwrap_with_padding(ephemeral, blob[size:])
    except (InvalidUnwrap, ValueError):
        raise CryptoError("failed to unwrap the target key: integrity check failed") from None


# --- Vault's backup format: key numbers as Go's encoding/json writes them -----------------------------------------


def rsa_numbers(stored: bytes) -> dict[str, Any]:
    """Go's ``rsa.PrivateKey`` JSON (N, E, D, Primes, Precomputed) for a stored PKCS#8 RSA key."""
    key = serialization.load_der_private_key(stored, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    nums = key.private_numbers()
    pub = nums.public_numbers
    return {"N": pub.n, "E": pub.e, "D": nums.d, "Primes": [nums.p, nums.q],
            "Precomputed": {"Dp": nums.dmp1, "Dq": nums.dmq1, "Qinv": nums.iqmp, "CRTValues": []}}


def rsa_from_numbers(raw: dict[str, Any]) -> tuple[bytes, str]:
    n, e, d = int(raw["N"]), int(raw["E"]), int(raw["D"])
    primes = [int(x) for x in raw["Primes"]]
    if len(primes) != 2:
        raise CryptoError("only two-prime RSA keys are supported")
    p, q = primes
    nums = rsa.RSAPrivateNumbers(p=p, q=q, d=d, dmp1=rsa.rsa_crt_dmp1(d, p), dmq1=rsa.rsa_crt_dmq1(d, q),
                                 iqmp=rsa.rsa_crt_iqmp(p, q), public_numbers=rsa.RSAPublicNumbers(e=e, n=n))
    key = nums.private_key()
    return _pkcs8(key), public_pem(key.public_key())


def ec_numbers(stored: bytes) -> tuple[int, int, int]:
    """(x, y, d) of a stored PKCS#8 EC key, as Vault's ``ec_x``/``ec_y``/``ec_d``."""
    key = serialization.load_der_private_key(stored, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    nums = key.private_numbers()
    return nums.public_numbers.x, nums.public_numbers.y, nums.private_value


def ec_from_numbers(key_type: str, d: int) -> tuple[bytes, str]:
    key = ec.derive_private_key(d, CURVES[key_type])
    return _pkcs8(key), public_pem(key.public_key())
