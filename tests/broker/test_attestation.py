"""Nitro attestation verification: the real AWS sample (clock injected) and synthetic documents from a test CA."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from strongroom.attestation.cose import sign1
from strongroom.attestation.document import AttestationError
from strongroom.attestation.nitro import verify_nitro
from strongroom.attestation.testca import AttestationCA
from strongroom.broker.attestation.local import InsecureAttestorRefused, LocalAttestor

SAMPLE = Path(__file__).resolve().parent / "fixtures" / "sui_nitro_attestation.hex"  # licence: fixtures/README.md
SAMPLE_TIME = dt.datetime(2024, 11, 14, 23, 46, 29, tzinfo=dt.UTC)
GOOD_PCR0 = bytes.fromhex("ab" * 48)


def _sample() -> bytes:
    return bytes.fromhex(SAMPLE.read_text().strip())


def test_real_aws_document_verifies_at_its_time():
    doc = verify_nitro(_sample(), now=SAMPLE_TIME)
    assert doc.module_id == "i-0f73a4b4cb74cc9f2-enc0192e4188fef781d"
    assert doc.root_fingerprint == "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    assert doc.debug_mode  # PCR0-2 are zero: a debug enclave, which the key-release policy refuses
    assert doc.pcrs[3].hex().startswith("639a8b65")
    assert doc.user_data is not None and len(doc.user_data) == 32
    assert doc.nonce is None and doc.public_key is None


def test_real_document_rejected_when_stale_or_altered():
    raw = _sample()
    with pytest.raises(AttestationError, match="not valid at this time"):
        verify_nitro(raw, now=SAMPLE_TIME + dt.timedelta(hours=3))
    flipped = bytearray(raw)
    flipped[-5] ^= 0x01
    with pytest.raises(AttestationError, match="signature"):
        verify_nitro(bytes(flipped), now=SAMPLE_TIME)
    with pytest.raises(AttestationError, match="nonce"):
        verify_nitro(raw, now=SAMPLE_TIME, expected_nonce=b"x" * 32)


def test_real_document_rejected_under_another_root():
    other = AttestationCA.generate()
    with pytest.raises(AttestationError, match="trusted root"):
        verify_nitro(_sample(), now=SAMPLE_TIME, roots=[other.root])


@pytest.fixture(scope="module")
def ca() -> AttestationCA:
    return AttestationCA.generate()


def test_synthetic_document_carries_pcrs_nonce_user_data_public_key(ca):
    nonce = b"n" * 32
    raw = ca.document({0: GOOD_PCR0, 1: bytes(48)}, nonce=nonce, user_data=b"ud", public_key=b"pk")
    doc = verify_nitro(raw, roots=[ca.root], expected_nonce=nonce)
    assert doc.measurement == GOOD_PCR0.hex() and not doc.debug_mode
    assert (doc.nonce, doc.user_data, doc.public_key) == (nonce, b"ud", b"pk")


def test_synthetic_document_not_trusted_by_default(ca):
    with pytest.raises(AttestationError, match="trusted root"):
        verify_nitro(ca.document({0: GOOD_PCR0}))  # only the AWS root is trusted unless told otherwise


def test_wrong_nonce_refused(ca):
    raw = ca.document({0: GOOD_PCR0}, nonce=b"a" * 32)
    with pytest.raises(AttestationError, match="nonce"):
        verify_nitro(raw, roots=[ca.root], expected_nonce=b"b" * 32)


def test_expired_leaf_refused(ca):
    raw = ca.document({0: GOOD_PCR0}, leaf_lifetime=dt.timedelta(minutes=1))
    with pytest.raises(AttestationError, match="not valid"):
        verify_nitro(raw, roots=[ca.root], now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))


def test_signature_by_other_key_refused(ca):
    raw = ca.document({0: GOOD_PCR0}, signer=ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(AttestationError, match="signature"):
        verify_nitro(raw, roots=[ca.root])


def test_payload_swapped_under_valid_signature_refused(ca):
    protected, unprotected, payload, sig = cbor2.loads(ca.document({0: GOOD_PCR0}))
    doc = cbor2.loads(payload)
    doc["pcrs"][0] = bytes.fromhex("cd" * 48)
    forged = cbor2.dumps([protected, unprotected, cbor2.dumps(doc), sig])
    with pytest.raises(AttestationError, match="signature"):
        verify_nitro(forged, roots=[ca.root])


def test_malformed_documents_refused(ca):
    for raw in (b"", b"\x00garbage", cbor2.dumps([1, 2, 3]), cbor2.dumps({"a": 1})):
        with pytest.raises(AttestationError):
            verify_nitro(raw, roots=[ca.root])
    protected, unprotected, payload, sig = cbor2.loads(ca.document({0: GOOD_PCR0}))
    with pytest.raises(AttestationError, match="ES384"):
        verify_nitro(cbor2.dumps([cbor2.dumps({1: -7}), unprotected, payload, sig]), roots=[ca.root])
    bad = cbor2.loads(payload)
    bad["digest"] = "SHA256"
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(AttestationError, match="SHA384"):
        verify_nitro(sign1(key, cbor2.dumps(bad)), roots=[ca.root])


def test_end_entity_cannot_act_as_ca(ca):
    """A leaf certificate placed in the bundle as an intermediate must not extend the chain."""
    from cryptography.hazmat.primitives.serialization import Encoding

    protected, unprotected, payload, sig = cbor2.loads(ca.document({0: GOOD_PCR0}))
    doc = cbor2.loads(payload)
    leaf_der = doc["certificate"]
    doc["cabundle"] = [ca.root.public_bytes(Encoding.DER), ca.intermediate.public_bytes(Encoding.DER), leaf_der]
    with pytest.raises(AttestationError):
        verify_nitro(cbor2.dumps([protected, unprotected, cbor2.dumps(doc), sig]), roots=[ca.root])


def test_local_attestor_refuses_unless_marked_insecure():
    with pytest.raises(InsecureAttestorRefused):
        LocalAttestor("ab" * 48)
    with pytest.raises(InsecureAttestorRefused):
        LocalAttestor("ab" * 48, insecure="yes")  # type: ignore[arg-type]
    local = LocalAttestor("ab" * 48, insecure=True)
    raw = local.attest(nonce=b"c" * 32)
    assert verify_nitro(raw, roots=local.roots, expected_nonce=b"c" * 32).measurement == "ab" * 48
    with pytest.raises(AttestationError):
        verify_nitro(raw)  # never accepted where the AWS root is the trust anchor


_UNKNOWN = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.7.1"), b"\x05\x00")


def test_unknown_critical_extension_on_the_leaf_is_refused(ca):
    raw = ca.document({0: GOOD_PCR0}, leaf_extensions=[(_UNKNOWN, True)])
    with pytest.raises(AttestationError, match="critical extension"):
        verify_nitro(raw, roots=[ca.root])
    # The same extension marked non-critical may be ignored, as RFC 5280 allows.
    assert verify_nitro(ca.document({0: GOOD_PCR0}, leaf_extensions=[(_UNKNOWN, False)]), roots=[ca.root])


def test_unknown_critical_extension_on_an_intermediate_is_refused():
    odd = AttestationCA.generate(intermediate_extensions=[(_UNKNOWN, True)])
    with pytest.raises(AttestationError, match="critical extension"):
        verify_nitro(odd.document({0: GOOD_PCR0}), roots=[odd.root])


def test_leaf_without_digital_signature_usage_is_refused(ca):
    from strongroom.attestation import testca

    usage = x509.KeyUsage(**dict(testca._USAGE, digital_signature=False, key_cert_sign=False))
    protected, unprotected, payload, sig = cbor2.loads(ca.document({0: GOOD_PCR0}))
    doc = cbor2.loads(payload)
    leaf = x509.load_der_x509_certificate(doc["certificate"])
    key = ec.generate_private_key(ec.SECP384R1())
    builder = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(leaf.issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(leaf.not_valid_before_utc).not_valid_after(leaf.not_valid_after_utc)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(usage, critical=True))
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    doc["certificate"] = builder.sign(ca.intermediate_key, hashes.SHA384()).public_bytes(Encoding.DER)
    with pytest.raises(AttestationError, match="may not make signatures"):
        verify_nitro(sign1(key, cbor2.dumps(doc)), roots=[ca.root])
