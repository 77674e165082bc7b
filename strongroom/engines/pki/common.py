"""Fields and helpers shared by the pki paths: subject fields, TTL arithmetic, output formats."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from cryptography import x509

from strongroom.core.logical import InvalidRequest
from strongroom.engines.pki import certutil
from strongroom.framework import Field, FieldData, FieldType

SYSTEM_MAX_TTL = 32 * 24 * 3600  # Vault's system max lease TTL, the default when a role sets none

SUBJECT_FIELDS: dict[str, Field] = {
    "common_name": Field(FieldType.STRING, "The requested common name.", default=""),
    "alt_names": Field(FieldType.COMMA_STRING_LIST, "DNS names and email addresses for the SAN.", default=[]),
    "ip_sans": Field(FieldType.COMMA_STRING_LIST, "IP addresses for the SAN.", default=[]),
    "uri_sans": Field(FieldType.COMMA_STRING_LIST, "URIs for the SAN.", default=[]),
    "other_sans": Field(FieldType.COMMA_STRING_LIST, "Not supported.", default=[]),
    "ttl": Field(FieldType.DURATION, "Requested lifetime of the certificate.", default=0),
    "not_after": Field(FieldType.STRING, "Requested expiry as UTC RFC 3339 (instead of ttl).", default=""),
    "format": Field(FieldType.STRING, "pem, der or pem_bundle.", default="pem", allowed=("pem", "der", "pem_bundle")),
    "private_key_format": Field(FieldType.STRING, "der (PEM of the traditional form) or pkcs8.", default="der",
                                allowed=("", "der", "pem", "pkcs8")),
    "exclude_cn_from_sans": Field(FieldType.BOOL, "Do not copy the common name into the DNS/email SANs.",
                                  default=False),
    "serial_number": Field(FieldType.STRING, "The subject's serialNumber attribute.", default=""),
}

CA_FIELDS: dict[str, Field] = {
    **SUBJECT_FIELDS,
    "key_type": Field(FieldType.STRING, "rsa, ec or ed25519.", default="rsa", allowed=("rsa", "ec", "ed25519")),
    "key_bits": Field(FieldType.INT, "Key size (0: the type's default).", default=0),
    "max_path_length": Field(FieldType.INT, "The CA's maximum path length (-1: none).", default=-1),
    "permitted_dns_domains": Field(FieldType.COMMA_STRING_LIST, "DNS name constraints.", default=[]),
    "ou": Field(FieldType.COMMA_STRING_LIST, "OU of the subject.", default=[]),
    "organization": Field(FieldType.COMMA_STRING_LIST, "O of the subject.", default=[]),
    "country": Field(FieldType.COMMA_STRING_LIST, "C of the subject.", default=[]),
    "locality": Field(FieldType.COMMA_STRING_LIST, "L of the subject.", default=[]),
    "province": Field(FieldType.COMMA_STRING_LIST, "ST of the subject.", default=[]),
    "street_address": Field(FieldType.COMMA_STRING_LIST, "Street of the subject.", default=[]),
    "postal_code": Field(FieldType.COMMA_STRING_LIST, "Postal code of the subject.", default=[]),
    "issuer_name": Field(FieldType.STRING, "A name for the new issuer.", default=""),
    "key_name": Field(FieldType.STRING, "A name for the new key.", default=""),
    "key_ref": Field(FieldType.STRING, "An existing key to use (type existing).", default="default"),
}


def subject_from(fd: FieldData, common_name: str | None = None) -> certutil.Subject:
    return certutil.Subject(
        common_name=fd.get("common_name") if common_name is None else common_name,
        ou=_opt(fd, "ou"), organization=_opt(fd, "organization"), country=_opt(fd, "country"),
        locality=_opt(fd, "locality"), province=_opt(fd, "province"), street_address=_opt(fd, "street_address"),
        postal_code=_opt(fd, "postal_code"), serial_number=fd.get("serial_number"),
    )


def _opt(fd: FieldData, name: str) -> list[str]:
    try:
        return list(fd.get(name) or [])
    except KeyError:
        return []


def split_alt_names(names: list[str]) -> tuple[list[str], list[str]]:
    """Vault's ``alt_names`` hold both DNS names and email addresses."""
    dns = [n for n in names if "@" not in n]
    emails = [n for n in names if "@" in n]
    return dns, emails


def not_after(fd: FieldData, default_ttl: int, max_ttl: int, warnings: list[str]) -> dt.datetime:
    """The requested expiry: ``not_after`` or ``ttl`` (else ``default_ttl``), capped at ``max_ttl`` with Vault's
    warning."""
    issued = certutil.now()
    text = fd.get("not_after")
    if text:
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequest(f"error parsing not_after: {text}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when
    ttl = int(fd.get("ttl") or 0) or default_ttl or max_ttl
    if max_ttl and ttl > max_ttl:
        warnings.append(f"TTL \"{ttl}s\" is longer than permitted maxTTL \"{max_ttl}s\", so maxTTL is being used")
        ttl = max_ttl
    return issued + dt.timedelta(seconds=ttl)


def check_within_issuer(when: dt.datetime, issuer: x509.Certificate, behavior: str, warnings: list[str]) -> dt.datetime:
    limit = issuer.not_valid_after_utc
    if when <= limit:
        return when
    if behavior == "truncate":
        return limit
    if behavior == "permit":
        return when
    raise InvalidRequest(
        f"cannot satisfy request, as TTL would result in notAfter of {when.strftime('%Y-%m-%dT%H:%M:%SZ')} that is "
        f"beyond the expiration of the CA certificate at {limit.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )


def encode_cert(cert: x509.Certificate, fmt: str) -> str:
    if fmt == "der":
        return base64.b64encode(certutil.cert_der(cert)).decode()
    return certutil.cert_pem(cert)


def encode_pem(pem: str, fmt: str) -> str:
    return encode_cert(certutil.load_cert(pem), fmt) if fmt == "der" else pem


def encode_key(key: certutil.PrivateKey, fmt: str, key_format: str) -> tuple[str, str]:
    """The private key as Vault returns it, and its ``private_key_type``."""
    from cryptography.hazmat.primitives import serialization

    key_type, _ = certutil.key_type_of(key)
    if fmt == "der":
        pkcs8 = key_format == "pkcs8"
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8 if pkcs8 or key_type == "ed25519"
            else serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return base64.b64encode(der).decode(), key_type
    return certutil.private_pem(key, key_format).strip(), key_type


def cert_fields(cert: x509.Certificate) -> dict[str, Any]:
    return {"serial_number": certutil.serial_hex(cert.serial_number),
            "expiration": int(cert.not_valid_after_utc.timestamp())}
