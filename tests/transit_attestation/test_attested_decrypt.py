"""Attestation-bound transit keys, driven over HTTP against a real dev server.

Documents come from the test CA (``strongroom.attestation.testca``), shaped exactly like Nitro's; the real AWS sample
(a debug-mode enclave's document from 2024) is checked by a second server whose clock is set to the sample's time.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import hvac
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from cryptography.hazmat.primitives.serialization import Encoding

from strongroom.attestation.recipient import Recipient, RecipientError
from strongroom.attestation.testca import AttestationCA
from tests.conftest import StrongroomServer

MOUNT = "transit"
KEY = "broker-seed"
GOOD = bytes.fromhex("ab" * 48)
NEXT = bytes.fromhex("cd" * 48)
PCR1 = bytes.fromhex("11" * 48)
SECRET = b"the broker's seed: oidc key, audit key, token"
SAMPLE = Path(__file__).resolve().parents[1] / "broker" / "fixtures" / "sui_nitro_attestation.hex"
SAMPLE_TIME = "2024-11-14T23:46:29Z"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pcrs(pcr0: bytes = GOOD) -> dict[int, bytes]:
    out = {i: bytes(48) for i in range(16)}
    out[0], out[1] = pcr0, PCR1
    return out


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    s = StrongroomServer(tmp_path_factory.mktemp("transit-attest")).start()
    s.client().sys.enable_secrets_engine("transit", path=MOUNT)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http(srv: StrongroomServer) -> Iterator[httpx.Client]:
    with srv.http() as c:
        yield c


@pytest.fixture(scope="module")
def ca() -> AttestationCA:
    return AttestationCA.generate()


@pytest.fixture(scope="module")
def bound(http: httpx.Client, srv: StrongroomServer, ca: AttestationCA) -> str:
    """The key, bound to the test CA and PCR0 = GOOD, and a ciphertext of SECRET made before it was bound."""
    client = srv.client()
    client.secrets.transit.create_key(KEY, mount_point=MOUNT)
    ct = client.secrets.transit.encrypt_data(KEY, b64(SECRET), mount_point=MOUNT)["data"]["ciphertext"]
    root = ca.root.public_bytes(Encoding.PEM).decode()
    r = http.post(f"/v1/{MOUNT}/keys/{KEY}/attestation", json={"root_certificate": root, "pcr0": [GOOD.hex()]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["pcr0"] == [GOOD.hex()] and r.json()["data"]["refuse_debug_mode"] is True
    return ct


def _wrap_for_import(http: httpx.Client, key: bytes) -> str:
    """Vault's BYOK wrapping: RSA-OAEP-SHA256 of an ephemeral AES key, then AES key wrap with padding of ``key``."""
    pem = http.get(f"/v1/{MOUNT}/wrapping_key").json()["data"]["public_key"]
    wrapping = serialization.load_pem_public_key(pem.encode())
    assert isinstance(wrapping, rsa.RSAPublicKey)
    ephemeral = os.urandom(32)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    return b64(wrapping.encrypt(ephemeral, oaep) + aes_key_wrap_with_padding(ephemeral, key))


def attested_decrypt(http: httpx.Client, ciphertext: str, document: bytes, key: str = KEY) -> httpx.Response:
    body = {"ciphertext": ciphertext, "attestation_document": b64(document)}
    return http.post(f"/v1/{MOUNT}/decrypt/{key}", json=body)


def refused(resp: httpx.Response, fragment: str) -> None:
    assert resp.status_code == 400, resp.text
    errors = resp.json()["errors"]
    assert any(fragment in e for e in errors), errors


def test_allowed_document_gets_plaintext_only_for_its_own_key(http: httpx.Client, ca: AttestationCA, bound: str):
    enclave = Recipient()
    r = attested_decrypt(http, bound, ca.document(pcrs(), public_key=enclave.public_der))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert "plaintext" not in data and b64(SECRET) not in r.text
    envelope = base64.b64decode(data["ciphertext_for_recipient"])
    assert enclave.open(envelope) == SECRET
    with pytest.raises(RecipientError):  # the parent instance relaying the answer holds no such key
        Recipient().open(envelope)


def test_batch_decrypt_answers_every_item_for_the_recipient(
    srv: StrongroomServer, http: httpx.Client, ca: AttestationCA, bound: str
):
    other = srv.client().secrets.transit.encrypt_data(KEY, b64(b"second"), mount_point=MOUNT)["data"]["ciphertext"]
    enclave = Recipient()
    doc = ca.document(pcrs(), public_key=enclave.public_der)
    r = http.post(f"/v1/{MOUNT}/decrypt/{KEY}", json={
        "batch_input": [{"ciphertext": bound}, {"ciphertext": other}, {"ciphertext": "vault:v1:AAAA"}],
        "attestation_document": b64(doc), "partial_failure_response_code": 207})
    assert r.status_code == 207, r.text
    results = r.json()["data"]["batch_results"]
    assert [enclave.open(base64.b64decode(x["ciphertext_for_recipient"])) for x in results[:2]] == [SECRET, b"second"]
    assert "error" in results[2] and "plaintext" not in results[2]


def test_wrong_pcr0_is_refused(http: httpx.Client, ca: AttestationCA, bound: str):
    doc = ca.document(pcrs(NEXT), public_key=Recipient().public_der)
    refused(attested_decrypt(http, bound, doc), f"PCR0 {NEXT.hex()} is not allowed")


def test_too_old_and_expired_documents_are_refused(http: httpx.Client, ca: AttestationCA, bound: str):
    now = dt.datetime.now(dt.UTC)
    stale = ca.document(pcrs(), public_key=Recipient().public_der, now=now - dt.timedelta(minutes=10))
    refused(attested_decrypt(http, bound, stale), "more than max_document_age (300s)")
    expired = ca.document(pcrs(), public_key=Recipient().public_der, now=now - dt.timedelta(hours=2),
                          leaf_lifetime=dt.timedelta(hours=1))
    refused(attested_decrypt(http, bound, expired), "not valid at this time")
    future = ca.document(pcrs(), public_key=Recipient().public_der, now=now + dt.timedelta(minutes=10))
    refused(attested_decrypt(http, bound, future), "attestation document refused")


def test_debug_mode_document_is_refused(http: httpx.Client, ca: AttestationCA, bound: str):
    debug = {i: bytes(48) for i in range(16)}
    refused(attested_decrypt(http, bound, ca.document(debug, public_key=Recipient().public_der)), "debug-mode")


def test_tampered_or_foreign_documents_are_refused(http: httpx.Client, ca: AttestationCA, bound: str):
    doc = bytearray(ca.document(pcrs(), public_key=Recipient().public_der))
    doc[-3] ^= 0x01  # inside the ES384 signature
    refused(attested_decrypt(http, bound, bytes(doc)), "signature does not verify")
    forged = ca.document(pcrs(), public_key=Recipient().public_der, signer=ec.generate_private_key(ec.SECP384R1()))
    refused(attested_decrypt(http, bound, forged), "signature does not verify")
    stranger = AttestationCA.generate().document(pcrs(), public_key=Recipient().public_der)
    refused(attested_decrypt(http, bound, stranger), "trusted root")
    refused(attested_decrypt(http, bound, ca.document(pcrs())), "names no public key")
    refused(attested_decrypt(http, bound, b"not cbor at all"), "attestation document refused")


def test_root_cannot_decrypt_or_reveal_a_bound_key(srv: StrongroomServer, http: httpx.Client, bound: str):
    client = srv.client()
    with pytest.raises(hvac.exceptions.InvalidRequest, match="bound to an attestation policy"):
        client.secrets.transit.decrypt_data(KEY, bound, mount_point=MOUNT)
    r = http.post(f"/v1/{MOUNT}/decrypt/{KEY}", json={"batch_input": [{"ciphertext": bound}]})
    assert r.status_code == 400 and "plaintext" not in r.text
    refused(http.post(f"/v1/{MOUNT}/datakey/plaintext/{KEY}", json={}), "bound to an attestation policy")
    wrapped = http.post(f"/v1/{MOUNT}/datakey/wrapped/{KEY}", json={})
    assert wrapped.status_code == 200 and "plaintext" not in wrapped.json()["data"]
    for field in ("exportable", "allow_plaintext_backup"):
        refused(http.post(f"/v1/{MOUNT}/keys/{KEY}/config", json={field: True}), "bound to an attestation policy")
    refused(http.get(f"/v1/{MOUNT}/backup/{KEY}"), "bound to an attestation policy")
    assert http.get(f"/v1/{MOUNT}/export/encryption-key/{KEY}").status_code == 400
    key = client.secrets.transit.read_key(KEY, mount_point=MOUNT)["data"]
    assert key["attestation_bound"] is True and key["exportable"] is False
    # a backup of some other key cannot be restored over the bound one, and the binding cannot be removed
    client.secrets.transit.create_key("plain", exportable=True, allow_plaintext_backup=True, mount_point=MOUNT)
    backup = client.secrets.transit.backup_key("plain", mount_point=MOUNT)["data"]["backup"]
    refused(http.post(f"/v1/{MOUNT}/restore/{KEY}", json={"backup": backup, "force": True}), "cannot be restored")
    assert http.delete(f"/v1/{MOUNT}/keys/{KEY}/attestation").status_code in (404, 405)
    assert http.get(f"/v1/{MOUNT}/keys/{KEY}/attestation").json()["data"]["pcr0"] == [GOOD.hex()]


def test_rewrap_keeps_working_and_its_output_still_needs_a_document(
    srv: StrongroomServer, http: httpx.Client, ca: AttestationCA, bound: str
):
    client = srv.client()
    client.secrets.transit.rotate_key(KEY, mount_point=MOUNT)
    rewrapped = client.secrets.transit.rewrap_data(KEY, bound, mount_point=MOUNT)["data"]["ciphertext"]
    assert rewrapped.startswith("vault:v2:")
    enclave = Recipient()
    r = attested_decrypt(http, rewrapped, ca.document(pcrs(), public_key=enclave.public_der))
    assert enclave.open(base64.b64decode(r.json()["data"]["ciphertext_for_recipient"])) == SECRET


def test_policy_input_is_checked_and_bad_input_changes_nothing(srv: StrongroomServer, http: httpx.Client,
                                                               bound: str):
    url = f"/v1/{MOUNT}/keys/{KEY}/attestation"
    before = http.get(url).json()["data"]
    refused(http.post(url, json={"pcr0": ["xyz"]}), "hex")
    refused(http.post(url, json={"pcr0": ["00" * 48]}), "debug-mode")
    refused(http.post(url, json={"pcr0": []}), "at least one")
    refused(http.post(url, json={"refuse_debug_mode": False}), "cannot be disabled")
    refused(http.post(url, json={"max_document_age": "48h"}), "max_document_age")
    refused(http.post(url, json={"root_certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}),
            "root_certificate")
    assert http.get(url).json()["data"] == before
    # keys whose material may already be outside cannot be bound; neither can signing keys
    client = srv.client()
    client.secrets.transit.create_key("exp", exportable=True, mount_point=MOUNT)
    refused(http.post(f"/v1/{MOUNT}/keys/exp/attestation", json={"pcr0": [GOOD.hex()]}), "exportable")
    imported = http.post(f"/v1/{MOUNT}/keys/byok/import", json={"ciphertext": _wrap_for_import(http, os.urandom(32))})
    assert imported.status_code in (200, 204), imported.text
    refused(http.post(f"/v1/{MOUNT}/keys/byok/attestation", json={"pcr0": [GOOD.hex()]}), "imported")
    client.secrets.transit.create_key("signer", key_type="ed25519", mount_point=MOUNT)
    refused(http.post(f"/v1/{MOUNT}/keys/signer/attestation", json={"pcr0": [GOOD.hex()]}), "encryption keys")
    refused(http.post(f"/v1/{MOUNT}/keys/nokey/attestation", json={"pcr0": [GOOD.hex()]}), "no existing key")
    # a document for a key that has no attestation policy is refused rather than ignored
    ct = client.secrets.transit.encrypt_data("exp", b64(b"x"), mount_point=MOUNT)["data"]["ciphertext"]
    refused(attested_decrypt(http, ct, b"doc", key="exp"), "has no attestation policy")


def test_measurement_update_token_changes_only_that_policy(
    srv: StrongroomServer, http: httpx.Client, ca: AttestationCA, bound: str
):
    """What the broker-deploy grant's token may do: update exactly this key's policy, and nothing else."""
    root = srv.client()
    root.sys.create_or_update_policy("deploy-" + KEY, f'path "{MOUNT}/keys/{KEY}/attestation" {{ capabilities = '
                                                      '["update"] denied_parameters = { "root_certificate" = [] } }')
    token = root.auth.token.create(policies=["deploy-" + KEY], ttl="10m")["auth"]["client_token"]
    with srv.http(token) as deployer:
        r = deployer.post(f"/v1/{MOUNT}/keys/{KEY}/attestation", json={"pcr0": [GOOD.hex(), NEXT.hex()],
                                                                       "pcr1": [PCR1.hex()]})
        assert r.status_code == 200, r.text
        assert deployer.post(f"/v1/{MOUNT}/decrypt/{KEY}", json={"ciphertext": bound}).status_code == 403
        other_root = AttestationCA.generate().root.public_bytes(Encoding.PEM).decode()
        assert deployer.post(f"/v1/{MOUNT}/keys/{KEY}/attestation",
                             json={"root_certificate": other_root}).status_code == 403
        root.secrets.transit.create_key("unbound", mount_point=MOUNT)
        assert deployer.post(f"/v1/{MOUNT}/keys/unbound/attestation",
                             json={"pcr0": [NEXT.hex()]}).status_code == 403  # binding a new key is `create`
        assert deployer.post(f"/v1/{MOUNT}/keys/{KEY}/config", json={"min_decryption_version": 1}).status_code == 403
    enclave = Recipient()
    r = attested_decrypt(http, bound, ca.document(pcrs(NEXT), public_key=enclave.public_der))
    assert enclave.open(base64.b64decode(r.json()["data"]["ciphertext_for_recipient"])) == SECRET
    wrong_pcr1 = pcrs(NEXT)
    wrong_pcr1[1] = bytes(48)
    refused(attested_decrypt(http, bound, ca.document(wrong_pcr1, public_key=enclave.public_der)), "PCR1")


def test_real_aws_document_chain_verifies_but_debug_mode_is_refused(tmp_path: Path, http: httpx.Client):
    sample = bytes.fromhex(SAMPLE.read_text().strip())
    # the sample is from 2024: at the real time its certificates have expired
    assert http.post(f"/v1/{MOUNT}/keys/aws", json={}).status_code == 200
    assert http.post(f"/v1/{MOUNT}/keys/aws/attestation", json={"pcr0": [GOOD.hex()]}).status_code == 200
    ct = http.post(f"/v1/{MOUNT}/encrypt/aws", json={"plaintext": b64(SECRET)}).json()["data"]["ciphertext"]
    refused(attested_decrypt(http, ct, sample, key="aws"), "not valid at this time")
    # a dev server whose clock is the sample's: the chain to the AWS root verifies, and policy refuses debug mode
    clocked = StrongroomServer(tmp_path, env={"STRONGROOM_ATTESTATION_NOW": SAMPLE_TIME}).start()
    try:
        with clocked.http() as c:
            c.post("/v1/sys/mounts/transit", json={"type": "transit"}).raise_for_status()
            c.post("/v1/transit/keys/aws", json={}).raise_for_status()
            data = c.post("/v1/transit/keys/aws/attestation", json={"pcr0": [GOOD.hex()]}).json()["data"]
            assert data["root_fingerprints_sha256"] == [
                "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"]
            ct = c.post("/v1/transit/encrypt/aws", json={"plaintext": b64(SECRET)}).json()["data"]["ciphertext"]
            refused(attested_decrypt(c, ct, sample, key="aws"), "debug-mode")
            flipped = bytearray(sample)
            flipped[-5] ^= 0x01
            refused(attested_decrypt(c, ct, bytes(flipped), key="aws"), "signature does not verify")
    finally:
        clocked.stop()


def test_test_clock_makes_a_production_server_fail_closed(tmp_path: Path, ca: AttestationCA):
    config = ('storage "sqlite" { path = "{storage}" }\n'
              'listener "tcp" {\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}\n')
    prod = StrongroomServer(tmp_path, config_text=config, env={"STRONGROOM_ATTESTATION_NOW": SAMPLE_TIME}).start()
    try:
        init = httpx.put(f"{prod.addr}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1},
                         timeout=30).json()
        httpx.put(f"{prod.addr}/v1/sys/unseal", json={"key": init["keys_base64"][0]}, timeout=30)
        prod.wait_unsealed()
        with prod.http(init["root_token"]) as c:
            c.post("/v1/sys/mounts/transit", json={"type": "transit"}).raise_for_status()
            c.post("/v1/transit/keys/k", json={}).raise_for_status()
            root = ca.root.public_bytes(Encoding.PEM).decode()
            c.post("/v1/transit/keys/k/attestation", json={"pcr0": [GOOD.hex()], "root_certificate": root}
                   ).raise_for_status()
            ct = c.post("/v1/transit/encrypt/k", json={"plaintext": b64(SECRET)}).json()["data"]["ciphertext"]
            r = attested_decrypt(c, ct, ca.document(pcrs(), public_key=Recipient().public_der), key="k")
            assert r.status_code == 500 and "honoured only by a dev server" in r.json()["errors"][0], r.text
            assert b64(SECRET) not in r.text
    finally:
        prod.stop()
