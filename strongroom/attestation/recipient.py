"""The envelope that carries released plaintext to an attested recipient, and the recipient that opens it.

An attested process (an enclave) puts the public half of an ephemeral RSA key into its attestation document; whoever
releases a secret to it (transit's attested decrypt) encrypts to that key, so whoever relays the answer — the parent
instance, a proxy, the network — cannot read it. AWS KMS answers a ``Recipient`` with a CMS EnvelopedData
(RSAES-OAEP-SHA-256 key transport, AES-256-CBC content); this envelope keeps the same key transport and uses an
authenticated cipher for the content instead. Its exact layout, version 1 (all lengths in bytes)::

    0x01                      1  version
    len(wrapped_key)          2  big-endian unsigned
    wrapped_key               n  RSA-OAEP(SHA-256, MGF1-SHA-256, empty label) of a fresh 32-byte AES key
    nonce                    12  random
    ciphertext ‖ tag    len+16  AES-256-GCM of the plaintext under that key, nonce as above, and as associated
                                data the header (the first 3 + n bytes: version, length and wrapped key)

The recipient key is given as a DER SubjectPublicKeyInfo, as it is in the document's ``public_key``; RSA of 2048,
3072 or 4096 bits.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
RSA_SIZES = (2048, 3072, 4096)
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_NONCE = 12


class RecipientError(Exception):
    """The recipient key is unusable, or an envelope does not open; the message is safe to show."""


def load_recipient_key(public_key_der: bytes) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_der_public_key(public_key_der)
    except (ValueError, TypeError):
        raise RecipientError("the attested public key is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size not in RSA_SIZES:
        raise RecipientError("the attested public key must be RSA-2048, RSA-3072 or RSA-4096")
    return key


def seal_for(key: rsa.RSAPublicKey, plaintext: bytes) -> bytes:
    """One version-1 envelope of ``plaintext`` that only the holder of ``key``'s private half can open."""
    content_key = AESGCM.generate_key(bit_length=256)
    wrapped = key.encrypt(content_key, _OAEP)
    header = bytes([VERSION]) + len(wrapped).to_bytes(2, "big") + wrapped
    nonce = secrets.token_bytes(_NONCE)
    return header + nonce + AESGCM(content_key).encrypt(nonce, plaintext, header)


class Recipient:
    """The enclave's side: an ephemeral RSA key that lives only in this process's memory."""

    def __init__(self, key_size: int = 2048) -> None:
        if key_size not in RSA_SIZES:
            raise ValueError("recipient keys are RSA-2048, RSA-3072 or RSA-4096")
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)

    @property
    def public_der(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def open(self, envelope: bytes) -> bytes:
        if len(envelope) < 3 or envelope[0] != VERSION:
            raise RecipientError("not a version-1 recipient envelope")
        n = int.from_bytes(envelope[1:3], "big")
        header, rest = envelope[:3 + n], envelope[3 + n:]
        if len(header) != 3 + n or len(rest) < _NONCE + 16:
            raise RecipientError("the recipient envelope is truncated")
        try:
            content_key = self._key.decrypt(header[3:], _OAEP)
            return AESGCM(content_key).decrypt(rest[:_NONCE], rest[_NONCE:], header)
        except (ValueError, InvalidTag):
            raise RecipientError("the envelope could not be opened with this recipient key") from None
