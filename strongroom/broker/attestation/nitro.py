"""Verify an AWS Nitro Enclaves attestation document, following AWS's documented process.

Decode the COSE_Sign1, check every payload field's syntax, build the chain leaf → cabundle (reversed) → a pinned root,
check each certificate's validity at the injected ``now``, its CA/keyUsage constraints and issuer signature, then the
ES384 signature with the leaf's key, and finally the caller's nonce. CRLs are not used (AWS says not to).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from strongroom.broker.attestation.aws_root import aws_nitro_root
from strongroom.broker.attestation.cose import decode_sign1, verify_sign1
from strongroom.broker.attestation.document import AttestationDocument, AttestationError

_PCR_SIZES = {32, 48, 64}
_MAX_OPTIONAL = {"user_data": 512, "nonce": 512, "public_key": 1024}


def _parse_payload(payload: bytes) -> dict[str, object]:
    try:
        doc = cbor2.loads(payload)
    except Exception:
        raise AttestationError("attestation payload is not valid CBOR") from None
    if not isinstance(doc, dict):
        raise AttestationError("attestation payload is not a map")
    if not isinstance(doc.get("module_id"), str) or not doc["module_id"]:
        raise AttestationError("attestation payload lacks module_id")
    if doc.get("digest") != "SHA384":
        raise AttestationError("attestation digest must be SHA384")
    if not isinstance(doc.get("timestamp"), int) or doc["timestamp"] <= 0:
        raise AttestationError("attestation payload lacks a timestamp")
    pcrs = doc.get("pcrs")
    if not isinstance(pcrs, dict) or not 1 <= len(pcrs) <= 32:
        raise AttestationError("attestation payload has no PCRs")
    for idx, value in pcrs.items():
        bad_index = not isinstance(idx, int) or not 0 <= idx < 32
        if bad_index or not isinstance(value, bytes) or len(value) not in _PCR_SIZES:
            raise AttestationError("attestation payload has a malformed PCR")
    if not isinstance(doc.get("certificate"), bytes):
        raise AttestationError("attestation payload lacks the signing certificate")
    bundle = doc.get("cabundle")
    if not isinstance(bundle, list) or not bundle or not all(isinstance(c, bytes) for c in bundle):
        raise AttestationError("attestation payload lacks the CA bundle")
    for name, limit in _MAX_OPTIONAL.items():
        value = doc.get(name)
        # Real NSM documents carry absent optional fields as CBOR null.
        if value is not None and (not isinstance(value, bytes) or len(value) > limit):
            raise AttestationError(f"attestation payload field {name} is malformed")
    return doc


def _load(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise AttestationError("attestation certificate is not valid DER") from None


def _check_cert(cert: x509.Certificate, now: dt.datetime, *, ca: bool, below: int) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise AttestationError("an attestation certificate is not valid at this time")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise AttestationError("an attestation certificate lacks basicConstraints or keyUsage") from None
    if ca:
        if not bc.ca or not ku.key_cert_sign:
            raise AttestationError("an attestation CA certificate may not sign certificates")
        if bc.path_length is not None and below > bc.path_length:
            raise AttestationError("attestation certificate chain exceeds a path length constraint")
    elif bc.ca or not ku.digital_signature:
        raise AttestationError("the attestation signing certificate is not an end-entity signing certificate")


def _verify_chain(
    leaf: x509.Certificate, bundle: list[bytes], roots: Sequence[x509.Certificate], now: dt.datetime
) -> str:
    root_der = bundle[0]
    trusted = [r for r in roots if hmac.compare_digest(r.public_bytes(Encoding.DER), root_der)]
    if not trusted:
        raise AttestationError("attestation chain does not end at a trusted root")
    chain = [leaf, *[_load(d) for d in reversed(bundle[1:])], trusted[0]]
    for depth, cert in enumerate(chain):
        _check_cert(cert, now, ca=depth > 0, below=max(depth - 1, 0))
    for child, issuer in zip(chain, chain[1:], strict=False):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, Exception) as exc:
            raise AttestationError("attestation certificate chain signature does not verify") from exc
    return hashlib.sha256(root_der).hexdigest()


def verify_nitro(
    raw: bytes,
    *,
    now: dt.datetime | None = None,
    roots: Sequence[x509.Certificate] | None = None,
    expected_nonce: bytes | None = None,
) -> AttestationDocument:
    """The verified document; raises AttestationError for anything that is not a genuine, current, matching one."""
    now = now or dt.datetime.now(dt.UTC)
    roots = list(roots) if roots is not None else [aws_nitro_root()]
    protected, payload, signature = decode_sign1(raw)
    doc = _parse_payload(payload)
    leaf = _load(doc["certificate"])  # type: ignore[arg-type]
    fingerprint = _verify_chain(leaf, doc["cabundle"], roots, now)  # type: ignore[arg-type]
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AttestationError("attestation signing certificate does not hold an EC key")
    verify_sign1(key, protected, payload, signature)
    nonce = doc.get("nonce")
    if expected_nonce is not None and (nonce is None or not hmac.compare_digest(nonce, expected_nonce)):  # type: ignore[arg-type]
        raise AttestationError("attestation nonce does not match the challenge")
    return AttestationDocument(
        module_id=doc["module_id"],  # type: ignore[arg-type]
        timestamp_ms=doc["timestamp"],  # type: ignore[arg-type]
        pcrs=dict(doc["pcrs"]),  # type: ignore[call-overload]
        public_key=doc.get("public_key"),  # type: ignore[arg-type]
        user_data=doc.get("user_data"),  # type: ignore[arg-type]
        nonce=nonce,  # type: ignore[arg-type]
        root_fingerprint=fingerprint,
    )
