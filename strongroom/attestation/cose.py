"""COSE_Sign1 (RFC 8152) with ES384, the envelope of a Nitro attestation document.

Only what Nitro uses: an (optionally tag-18) array [protected, unprotected, payload, signature] whose protected header
is {1: -35} and whose signature is the raw 96-byte r||s over Sig_structure ["Signature1", protected, b"", payload].
"""

from __future__ import annotations

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from strongroom.attestation.document import AttestationError

ES384 = -35
_COORD = 48


def decode_sign1(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(protected, payload, signature) of an ES384 COSE_Sign1; raises AttestationError on any other shape."""
    try:
        obj = cbor2.loads(raw)
    except Exception:
        raise AttestationError("attestation document is not valid CBOR") from None
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != 18:
            raise AttestationError("unexpected CBOR tag on attestation document")
        obj = obj.value
    if not isinstance(obj, list | tuple) or len(obj) != 4:
        raise AttestationError("attestation document is not a COSE_Sign1 array")
    protected, unprotected, payload, signature = obj
    if not all(isinstance(x, bytes) for x in (protected, payload, signature)) or not isinstance(unprotected, dict):
        raise AttestationError("COSE_Sign1 fields have the wrong types")
    try:
        header = cbor2.loads(protected)
    except Exception:
        raise AttestationError("COSE protected header is not valid CBOR") from None
    if not isinstance(header, dict) or header.get(1) != ES384:
        raise AttestationError("attestation document is not signed with ES384")
    if len(signature) != 2 * _COORD:
        raise AttestationError("ES384 signature must be 96 bytes")
    return protected, payload, signature


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload])


def verify_sign1(public_key: ec.EllipticCurvePublicKey, protected: bytes, payload: bytes, signature: bytes) -> None:
    if not isinstance(public_key.curve, ec.SECP384R1):
        raise AttestationError("signing certificate key is not P-384")
    r = int.from_bytes(signature[:_COORD], "big")
    s = int.from_bytes(signature[_COORD:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), _sig_structure(protected, payload), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError("attestation document signature does not verify") from None


def sign1(private_key: ec.EllipticCurvePrivateKey, payload: bytes) -> bytes:
    """An untagged ES384 COSE_Sign1, as the Nitro Security Module emits it (used by the local attestor and tests)."""
    protected = cbor2.dumps({1: ES384})
    der = private_key.sign(_sig_structure(protected, payload), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    return cbor2.dumps([protected, {}, payload, r.to_bytes(_COORD, "big") + s.to_bytes(_COORD, "big")])
