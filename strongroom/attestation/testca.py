"""A small P-384 certificate authority shaped like Nitro's (root → intermediate → short-lived leaf).

The local development attestor signs with it, and tests use it to make attestation documents with chosen contents.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from strongroom.attestation.cose import sign1

# An extra certificate extension and whether it is critical (tests use it to build chains Nitro never issues).
Extra = tuple[x509.ExtensionType, bool]

_USAGE = {
    "content_commitment": False, "key_encipherment": False, "data_encipherment": False, "key_agreement": False,
    "crl_sign": False, "encipher_only": False, "decipher_only": False,
}


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey,
    *, ca: bool, not_before: dt.datetime, not_after: dt.datetime, extra: Sequence[Extra] = (),
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    usage = dict(_USAGE, digital_signature=not ca, key_cert_sign=ca)
    if ca:
        usage["crl_sign"] = True
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
    )
    for ext, critical in extra:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(signer, hashes.SHA384())


@dataclass
class AttestationCA:
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, name: str = "strongroom-test-attestation", *, now: dt.datetime | None = None,
                 intermediate_extensions: Sequence[Extra] = (), intermediate_days: int = 30) -> AttestationCA:
        now = now or dt.datetime.now(dt.UTC)
        root_key = ec.generate_private_key(ec.SECP384R1())
        int_key = ec.generate_private_key(ec.SECP384R1())
        root = _cert(name, root_key, None, root_key, ca=True,
                     not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=3650))
        inter = _cert(f"{name}-intermediate", int_key, root.subject, root_key, ca=True,
                      not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=intermediate_days),
                      extra=intermediate_extensions)
        return cls(root, root_key, inter, int_key)

    def document(
        self,
        pcrs: dict[int, bytes],
        *,
        now: dt.datetime | None = None,
        nonce: bytes | None = None,
        user_data: bytes | None = None,
        public_key: bytes | None = None,
        module_id: str = "i-local-enc0000000000000000",
        leaf_lifetime: dt.timedelta = dt.timedelta(hours=3),
        signer: ec.EllipticCurvePrivateKey | None = None,
        leaf_extensions: Sequence[Extra] = (),
    ) -> bytes:
        """A COSE_Sign1 attestation document in Nitro's format, signed by a fresh leaf of this CA."""
        now = now or dt.datetime.now(dt.UTC)
        leaf_key = ec.generate_private_key(ec.SECP384R1())
        leaf = _cert(module_id, leaf_key, self.intermediate.subject, self.intermediate_key, ca=False,
                     not_before=now - dt.timedelta(minutes=5), not_after=now + leaf_lifetime, extra=leaf_extensions)
        payload = cbor2.dumps({
            "module_id": module_id,
            "digest": "SHA384",
            "timestamp": int(now.timestamp() * 1000),
            "pcrs": pcrs,
            "certificate": leaf.public_bytes(Encoding.DER),
            "cabundle": [self.root.public_bytes(Encoding.DER), self.intermediate.public_bytes(Encoding.DER)],
            "public_key": public_key,
            "user_data": user_data,
            "nonce": nonce,
        })
        return sign1(signer or leaf_key, payload)


_KEY_BLOCK = re.compile(rb"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----", re.S)


def load_or_create_ca(path: str | Path, name: str = "strongroom-local-insecure-attestor") -> AttestationCA:
    """The development attestor's CA, kept in one PEM file (root and intermediate, certificates then keys).

    A transit key that trusts it must see the same root across broker restarts, hence the file. Whoever can read it
    can sign documents for any build: it is for development only, which the broker's configuration enforces.
    """
    p = Path(path)
    if p.exists():
        data = p.read_bytes()
        try:
            root, inter = x509.load_pem_x509_certificates(data)[:2]
            keys = [serialization.load_pem_private_key(b, None) for b in _KEY_BLOCK.findall(data)]
        except ValueError:
            raise ValueError(f"{p} is not a local attestor CA file") from None
        if len(keys) != 2 or not all(isinstance(k, ec.EllipticCurvePrivateKey) for k in keys):
            raise ValueError(f"{p} is not a local attestor CA file")
        return AttestationCA(root, keys[0], inter, keys[1])  # type: ignore[arg-type]
    ca = AttestationCA.generate(name, intermediate_days=3650)
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in (ca.root, ca.intermediate)) + b"".join(
        k.private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        for k in (ca.root_key, ca.intermediate_key))
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_bytes(pem)
    tmp.chmod(0o600)
    tmp.replace(p)
    return ca
