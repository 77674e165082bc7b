"""Every X.509 operation of the pki engine, through ``cryptography`` only: keys, CSRs, certificates, CRLs, OCSP.

Handlers never touch ``cryptography`` directly; they call these narrow functions. Errors a caller can cause (a CSR
that does not parse, a key type that does not exist) are :class:`InvalidRequest` with Vault's wording.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from strongroom.core.logical import InvalidRequest

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

# Vault's defaults: rsa 2048, ec 256; 0 means "the default for the type"
DEFAULT_BITS = {"rsa": 2048, "ec": 256, "ed25519": 0}
RSA_BITS = (2048, 3072, 4096, 8192)
EC_CURVES: dict[int, ec.EllipticCurve] = {224: ec.SECP224R1(), 256: ec.SECP256R1(), 384: ec.SECP384R1(),
                                          521: ec.SECP521R1()}
EXT_KEY_USAGES = {
    "serverauth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientauth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codesigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailprotection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocspsigning": ExtendedKeyUsageOID.OCSP_SIGNING,
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}
KEY_USAGES = ("digitalsignature", "contentcommitment", "keyencipherment", "dataencipherment", "keyagreement",
              "certsign", "crlsign", "encipheronly", "decipheronly")
# leaves and CAs are back-dated this much, as Vault does, so a peer whose clock runs a little behind accepts them
BACKDATE = dt.timedelta(seconds=30)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# --- keys --------------------------------------------------------------------------------------------------------


def check_key_params(key_type: str, bits: int, *, allow_any: bool = False) -> int:
    """The effective key size for ``key_type``; refuses combinations Vault refuses."""
    if key_type == "any" and allow_any:
        return 0
    if key_type not in DEFAULT_BITS:
        raise InvalidRequest(f"unknown key type {key_type}")
    bits = bits or DEFAULT_BITS[key_type]
    if key_type == "rsa" and bits not in RSA_BITS:
        raise InvalidRequest(f"unsupported bit length for RSA key: {bits}")
    if key_type == "ec" and bits not in EC_CURVES:
        raise InvalidRequest(f"unsupported bit length for EC key: {bits}")
    if key_type == "ed25519":
        bits = 0
    return bits


def generate_key(key_type: str, bits: int) -> PrivateKey:
    bits = check_key_params(key_type, bits)
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if key_type == "ec":
        return ec.generate_private_key(EC_CURVES[bits])
    return ed25519.Ed25519PrivateKey.generate()


def key_type_of(key: PrivateKey | PublicKey) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ec", key.curve.key_size
    return "ed25519", 0


def private_pem(key: PrivateKey, fmt: str = "der") -> str:
    """PEM of a private key: ``pkcs8`` if asked, else the traditional form Vault returns (PKCS#8 for Ed25519)."""
    traditional = fmt != "pkcs8" and not isinstance(key, ed25519.Ed25519PrivateKey)
    encoding = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, encoding, serialization.NoEncryption()).decode()


def load_private(pem: str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise InvalidRequest("unsupported private key type")
    return key


def public_pem(key: PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _sig_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA512()
    return hashes.SHA256()


# --- encoding helpers ----------------------------------------------------------------------------------------------


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode().strip()


def cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def load_cert(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise InvalidRequest("unable to parse certificate: not a PEM certificate") from None


def load_certs(bundle: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(bundle.encode())
    except ValueError:
        raise InvalidRequest("no data found in PEM block") from None


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise InvalidRequest("certificate request could not be parsed") from None
    if not csr.is_signature_valid:
        raise InvalidRequest("request signature invalid")
    return csr


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode().strip()


def serial_hex(serial: int) -> str:
    """Vault's serial spelling: lower-case hex byte pairs joined by ':'."""
    raw = f"{serial:x}"
    if len(raw) % 2:
        raw = "0" + raw
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def parse_serial(text: str) -> int:
    cleaned = text.strip().lower().replace(":", "").replace("-", "")
    if not cleaned or len(cleaned) > 80:
        raise InvalidRequest("invalid serial number")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise InvalidRequest("invalid serial number") from None


def new_serial() -> int:
    # 159 random bits: positive, never more than 20 octets (RFC 5280 §4.1.2.2)
    return secrets.randbits(159) | (1 << 150)


def key_id(public: PublicKey) -> bytes:
    return x509.SubjectKeyIdentifier.from_public_key(public).digest


def colon_hex(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# --- names and subjects --------------------------------------------------------------------------------------------


@dataclass
class Subject:
    common_name: str = ""
    ou: Sequence[str] = ()
    organization: Sequence[str] = ()
    country: Sequence[str] = ()
    locality: Sequence[str] = ()
    province: Sequence[str] = ()
    street_address: Sequence[str] = ()
    postal_code: Sequence[str] = ()
    serial_number: str = ""

    def name(self) -> x509.Name:
        try:
            return self._name()
        except ValueError as exc:
            raise InvalidRequest(f"invalid subject: {exc}") from None

    def _name(self) -> x509.Name:
        attrs: list[x509.NameAttribute] = []
        for oid, values in ((NameOID.COUNTRY_NAME, self.country), (NameOID.STATE_OR_PROVINCE_NAME, self.province),
                            (NameOID.LOCALITY_NAME, self.locality), (NameOID.STREET_ADDRESS, self.street_address),
                            (NameOID.POSTAL_CODE, self.postal_code), (NameOID.ORGANIZATION_NAME, self.organization),
                            (NameOID.ORGANIZATIONAL_UNIT_NAME, self.ou)):
            attrs.extend(x509.NameAttribute(oid, v) for v in values if v)
        if self.common_name:
            attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, self.common_name))
        if self.serial_number:
            attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, self.serial_number))
        return x509.Name(attrs)


@dataclass
class SANs:
    dns: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)

    def extension(self) -> x509.SubjectAlternativeName | None:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in _unique(self.dns)]
        names += [x509.RFC822Name(e) for e in _unique(self.emails)]
        for ip in _unique(self.ips):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(ip)))
            except ValueError:
                raise InvalidRequest(f"the value {ip!r} is not a valid IP address") from None
        names += [x509.UniformResourceIdentifier(u) for u in _unique(self.uris)]
        return x509.SubjectAlternativeName(names) if names else None


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def csr_sans(csr: x509.CertificateSigningRequest) -> SANs:
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return SANs()
    return SANs(dns=ext.get_values_for_type(x509.DNSName),
                ips=[str(i) for i in ext.get_values_for_type(x509.IPAddress)],
                uris=ext.get_values_for_type(x509.UniformResourceIdentifier),
                emails=ext.get_values_for_type(x509.RFC822Name))


def common_name_of(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else ""
    return value if isinstance(value, str) else value.decode(errors="replace")


# --- building certificates -----------------------------------------------------------------------------------------


@dataclass
class Urls:
    issuing_certificates: list[str] = field(default_factory=list)
    crl_distribution_points: list[str] = field(default_factory=list)
    ocsp_servers: list[str] = field(default_factory=list)


@dataclass
class CertSpec:
    """What a certificate says, independent of who signs it."""

    subject: x509.Name
    public_key: PublicKey
    not_after: dt.datetime
    not_before: dt.datetime | None = None
    sans: SANs | None = None
    is_ca: bool = False
    max_path_length: int | None = None
    key_usage: Sequence[str] = ()
    ext_key_usage: Sequence[str] = ()
    ext_key_usage_oids: Sequence[str] = ()
    urls: Urls | None = None
    permitted_dns_domains: Sequence[str] = ()
    serial: int = 0
    extra_extensions: list[x509.Extension[x509.ExtensionType]] = field(default_factory=list)


def _key_usage(names: Iterable[str], is_ca: bool) -> x509.KeyUsage:
    flags = {n.lower().removeprefix("keyusage") for n in names}
    unknown = flags - set(KEY_USAGES)
    if unknown:
        raise InvalidRequest(f"unknown key usage: {', '.join(sorted(unknown))}")
    if is_ca:
        flags |= {"certsign", "crlsign"}
    agreement = "keyagreement" in flags
    return x509.KeyUsage(
        digital_signature="digitalsignature" in flags, content_commitment="contentcommitment" in flags,
        key_encipherment="keyencipherment" in flags, data_encipherment="dataencipherment" in flags,
        key_agreement=agreement, key_cert_sign="certsign" in flags, crl_sign="crlsign" in flags,
        encipher_only=agreement and "encipheronly" in flags, decipher_only=agreement and "decipheronly" in flags,
    )


def ext_key_usage_oids(names: Iterable[str], oids: Iterable[str] = ()) -> list[x509.ObjectIdentifier]:
    out: list[x509.ObjectIdentifier] = []
    for n in names:
        oid = EXT_KEY_USAGES.get(n.lower().removeprefix("extkeyusage"))
        if oid is None:
            raise InvalidRequest(f"unknown extended key usage: {n}")
        out.append(oid)
    for o in oids:
        try:
            out.append(x509.ObjectIdentifier(o))
        except ValueError:
            raise InvalidRequest(f"invalid OID for extended key usage: {o}") from None
    return list(dict.fromkeys(out))


def build(spec: CertSpec, issuer_cert: x509.Certificate | None, signer: PrivateKey) -> x509.Certificate:
    """Sign ``spec`` with ``signer``; a missing ``issuer_cert`` means self-signed (a root)."""
    issued_at = now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(spec.subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else spec.subject)
        .public_key(spec.public_key)
        .serial_number(spec.serial or new_serial())
        .not_valid_before(spec.not_before or issued_at - BACKDATE)
        .not_valid_after(spec.not_after)
        .add_extension(x509.BasicConstraints(ca=spec.is_ca, path_length=spec.max_path_length if spec.is_ca else None),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(spec.public_key), critical=False)
    )
    if spec.is_ca or spec.key_usage:
        builder = builder.add_extension(_key_usage(spec.key_usage, spec.is_ca), critical=True)
    issuer_public = issuer_cert.public_key() if issuer_cert is not None else spec.public_key
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public),  # type: ignore[arg-type]
        critical=False,
    )
    eku = ext_key_usage_oids(spec.ext_key_usage, spec.ext_key_usage_oids)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if spec.sans is not None:
        san = spec.sans.extension()
        if san is not None:
            builder = builder.add_extension(san, critical=False)
    if spec.permitted_dns_domains:
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=[x509.DNSName(d) for d in spec.permitted_dns_domains],
                                 excluded_subtrees=None),
            critical=True,
        )
    if spec.urls is not None:
        access = [x509.AccessDescription(x509.AuthorityInformationAccessOID.CA_ISSUERS,
                                         x509.UniformResourceIdentifier(u)) for u in spec.urls.issuing_certificates]
        access += [x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(u))
                   for u in spec.urls.ocsp_servers]
        if access:
            builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
        if spec.urls.crl_distribution_points:
            points = [x509.DistributionPoint([x509.UniformResourceIdentifier(u)], None, None, None)
                      for u in spec.urls.crl_distribution_points]
            builder = builder.add_extension(x509.CRLDistributionPoints(points), critical=False)
    for ext in spec.extra_extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    try:
        return builder.sign(signer, _sig_hash(signer))  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidRequest(f"unable to sign certificate: {exc}") from None


def make_csr(subject: x509.Name, key: PrivateKey, sans: SANs | None = None) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans is not None and sans.extension() is not None:
        builder = builder.add_extension(sans.extension(), critical=False)  # type: ignore[arg-type]
    try:
        return builder.sign(key, _sig_hash(key))  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidRequest(f"unable to create the CSR: {exc}") from None


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert_der(cert)).hexdigest()


# --- CRL and OCSP --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revoked:
    serial: int
    revoked_at: dt.datetime


def build_crl(issuer: x509.Certificate, key: PrivateKey, revoked: Iterable[Revoked], number: int,
              expiry: dt.timedelta) -> x509.CertificateRevocationList:
    issued_at = now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(issued_at)
        .next_update(issued_at + expiry)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),  # type: ignore[arg-type]
                       critical=False)
    )
    for r in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(r.serial).revocation_date(r.revoked_at).build()
        )
    return builder.sign(key, _sig_hash(key))  # type: ignore[arg-type]


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def der_to_pem(der: bytes, label: str) -> str:
    import base64

    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def load_ocsp_request(der: bytes) -> ocsp.OCSPRequest:
    try:
        return ocsp.load_der_ocsp_request(der)
    except ValueError:
        raise InvalidRequest("unable to parse OCSP request") from None


def ocsp_issuer_matches(req: ocsp.OCSPRequest, issuer: x509.Certificate) -> bool:
    """Whether the request's issuer name and key hashes (in the request's own hash algorithm) name ``issuer``."""
    algorithm = req.hash_algorithm
    name_hash = hashes.Hash(type(algorithm)())
    name_hash.update(issuer.subject.public_bytes())
    key_bytes = issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1) \
        if isinstance(issuer.public_key(), rsa.RSAPublicKey) else _subject_public_key_bits(issuer)
    key_hash = hashes.Hash(type(algorithm)())
    key_hash.update(key_bytes)
    return name_hash.finalize() == req.issuer_name_hash and key_hash.finalize() == req.issuer_key_hash


def _subject_public_key_bits(cert: x509.Certificate) -> bytes:
    public = cert.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)  # type: ignore[union-attr]


def ocsp_response(req: ocsp.OCSPRequest, issuer: x509.Certificate, key: PrivateKey, status: str,
                  revoked_at: dt.datetime | None, next_update: dt.timedelta) -> bytes:
    """A signed, successful OCSP response for the one certificate in ``req``, the issuer itself responding."""
    cert_status = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED,
                   "unknown": ocsp.OCSPCertStatus.UNKNOWN}[status]
    issued_at = now()
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=req.issuer_name_hash, issuer_key_hash=req.issuer_key_hash,
        serial_number=req.serial_number, algorithm=req.hash_algorithm, cert_status=cert_status,
        this_update=issued_at, next_update=issued_at + next_update if next_update else None,
        revocation_time=revoked_at if cert_status is ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    try:
        nonce = req.extensions.get_extension_for_class(x509.OCSPNonce)
        builder = builder.add_extension(nonce.value, critical=False)
    except x509.ExtensionNotFound:
        pass
    signed = builder.sign(key, _sig_hash(key))  # type: ignore[arg-type]
    return signed.public_bytes(serialization.Encoding.DER)


def ocsp_error(kind: str) -> bytes:
    status = {"malformed": ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
              "unauthorized": ocsp.OCSPResponseStatus.UNAUTHORIZED,
              "internal": ocsp.OCSPResponseStatus.INTERNAL_ERROR}[kind]
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
