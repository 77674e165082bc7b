"""The enclave side of key release: an ephemeral RSA key whose public half goes into the attestation document.

The key-release component encrypts the seed to that key (RSA-OAEP-SHA256 wrapping a fresh AES-256-GCM key, the shape
KMS uses for ``CiphertextForRecipient``), so whoever relays the answer — the parent instance — cannot read it; only
the attested process holding the private half can.
"""

from __future__ import annotations

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from strongroom import crypto

_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_AAD = b"strongroom-broker-seed-release/v1"
_WRAPPED = 256  # RSA-2048 ciphertext length


class RecipientError(Exception):
    pass


def wrap_for(public_key_der: bytes, plaintext: bytes) -> bytes:
    try:
        key = serialization.load_der_public_key(public_key_der)
    except ValueError:
        raise RecipientError("the attested public key is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 2048:
        raise RecipientError("the attested public key must be RSA-2048")
    content_key = crypto.new_key()
    return key.encrypt(content_key, _OAEP) + crypto.seal(content_key, plaintext, _AAD)


class Recipient:
    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def public_der(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def open(self, blob: bytes) -> dict[str, object]:
        try:
            content_key = self._key.decrypt(blob[:_WRAPPED], _OAEP)
            return orjson.loads(crypto.open_sealed(content_key, blob[_WRAPPED:], _AAD))
        except (ValueError, crypto.DecryptionError):
            raise RecipientError("the released seed could not be opened with this recipient key") from None
