"""Verify an AWS Nitro Enclaves attestation document, following AWS's documented process.

Decode the COSE_Sign1, check every payload field's syntax, then have ``cryptography.x509.verification`` validate the
chain leaf → cabundle (reversed) → a pinned root at the injected ``now`` (signatures, validity, CA constraints, and
no unknown critical extension anywhere), insisting that the path it found is exactly the bundle; then the ES384
signature with the leaf's key, and finally the caller's nonce. CRLs are not used (AWS says not to).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from strongroom import crypto
from strongroom.attestation.aws_root import aws_nitro_root
from strongroom.attestation.cose import decode_sign1, verify_sign1
from strongroom.attestation.document import AttestationDocument, AttestationError

_PCR_SIZES = {32, 48, 64}
_MAX_OPTIONAL = {"user_data": 512, "nonce": 512, "public_key": 1024}


def _parse_payload(payload: bytes) -> dict[str, Any]:
    """The payload map, every field syntax-checked (so the caller may read it as typed)."""
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


def _leaf_is_a_signer(_policy: Policy, _cert: x509.Certificate, bc: x509.BasicConstraints) -> None:
    if bc.ca:
        raise ValueError("the attestation signing certificate is a CA certificate")


def _leaf_may_sign(_policy: Policy, _cert: x509.Certificate, ku: x509.KeyUsage) -> None:
    if not ku.digital_signature:
        raise ValueError("the attestation signing certificate may not make signatures")


def _verifier(root: x509.Certificate, now: dt.datetime) -> ClientVerifier:
    """RFC 5280 path validation by ``cryptography`` with Nitro's profile.

    CAs get the Web PKI CA rules (basicConstraints with CA, keyCertSign, path lengths). Nitro's leaf has neither a
    subjectAltName nor an extendedKeyUsage, so the end-entity policy asks only for what AWS puts there: a
    non-CA basicConstraints and a keyUsage with digitalSignature. Any critical extension that no policy accounts
    for fails validation, at every depth.
    """
    ee = (
        ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _leaf_is_a_signer)
        .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _leaf_may_sign)
    )
    return (
        PolicyBuilder()
        .store(Store([root]))
        .time(now)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
        .build_client_verifier()
    )


def _verify_chain(
    leaf: x509.Certificate, bundle: list[bytes], roots: Sequence[x509.Certificate], now: dt.datetime
) -> str:
    root_der = bundle[0]
    trusted = [r for r in roots if crypto.constant_time_eq(r.public_bytes(Encoding.DER), root_der)]
    if not trusted:
        raise AttestationError("attestation chain does not end at a trusted root")
    intermediates = [_load(d) for d in reversed(bundle[1:])]
    expected = [leaf, *intermediates, trusted[0]]
    if any(not c.not_valid_before_utc <= now <= c.not_valid_after_utc for c in expected):
        raise AttestationError("an attestation certificate is not valid at this time")
    try:
        chain = _verifier(trusted[0], now).verify(leaf, intermediates).chain
    except VerificationError as exc:
        raise AttestationError(f"attestation certificate chain does not verify: {_why(exc)}") from None
    # AWS documents the bundle as the exact path root → leaf: a certificate that is not on it has no business there.
    if [c.public_bytes(Encoding.DER) for c in chain] != [c.public_bytes(Encoding.DER) for c in expected]:
        raise AttestationError("attestation CA bundle is not the path from the signing certificate to the root")
    return crypto.sha256_hex(root_der)


def _why(exc: VerificationError) -> str:
    # cryptography appends a repr of the offending certificate; the reason before it is enough for a log line.
    return str(exc).split(" (encountered processing", 1)[0].removeprefix("validation failed: ")


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
    leaf = _load(doc["certificate"])
    fingerprint = _verify_chain(leaf, doc["cabundle"], roots, now)
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AttestationError("attestation signing certificate does not hold an EC key")
    verify_sign1(key, protected, payload, signature)
    nonce = doc.get("nonce")
    if expected_nonce is not None and (nonce is None or not crypto.constant_time_eq(nonce, expected_nonce)):
        raise AttestationError("attestation nonce does not match the challenge")
    return AttestationDocument(
        module_id=doc["module_id"],
        timestamp_ms=doc["timestamp"],
        pcrs=dict(doc["pcrs"]),
        public_key=doc.get("public_key"),
        user_data=doc.get("user_data"),
        nonce=nonce,
        root_fingerprint=fingerprint,
    )
