"""Trust anchors given as PEM text (an attestation policy's ``root_certificate``)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from strongroom import crypto

MAX_ROOTS = 8


def load_roots(pem: str) -> list[x509.Certificate]:
    """The certificates in ``pem``; ValueError with a message safe to show when there are none or they are bad."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise ValueError("root_certificate is not a PEM certificate") from None
    if not certs or len(certs) > MAX_ROOTS:
        raise ValueError(f"root_certificate must hold between 1 and {MAX_ROOTS} PEM certificates")
    return certs


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex (the form AWS publishes for its Nitro root)."""
    return crypto.sha256_hex(cert.public_bytes(Encoding.DER))
