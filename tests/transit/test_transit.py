"""The transit engine through hvac's ``secrets.transit`` API (and httpx where hvac has no method), one server.

Known-answer tests build Vault's ciphertext independently with ``cryptography`` from a fixed key and nonce, and wrap
imported keys exactly as Vault's BYOK guide does (RSA-OAEP-SHA256 of an ephemeral AES-256 key, then RFC 5649 AES key
wrap with padding of the target key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator

import httpx
import hvac
import hvac.exceptions
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from tests.conftest import StrongroomServer, wait_for

MOUNT = "transit"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    # a fast auto-rotation check so the test can watch a due key rotate without waiting an hour
    s = StrongroomServer(tmp_path_factory.mktemp("transit"), env={"STRONGROOM_TRANSIT_ROTATE_CHECK": "0.2"}).start()
    s.client().sys.enable_secrets_engine("transit", path=MOUNT)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(srv: StrongroomServer) -> hvac.Client:
    return srv.client()


@pytest.fixture(scope="module")
def http(srv: StrongroomServer) -> Iterator[httpx.Client]:
    with srv.http() as c:
        yield c


@pytest.fixture(scope="module")
def wrapping_pub(http: httpx.Client) -> rsa.RSAPublicKey:
    resp = http.get(f"/v1/{MOUNT}/wrapping_key")
    assert resp.status_code == 200, resp.text
    key = serialization.load_pem_public_key(resp.json()["data"]["public_key"].encode())
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 4096
    return key


def vault_wrap(wrapping_pub: rsa.RSAPublicKey, target: bytes) -> str:
    """Vault's BYOK guide, step by step: ephemeral AES-256 key, RSA-OAEP(SHA-256) of it, KWP of the target."""
    ephemeral = os.urandom(32)
    wrapped_aes = wrapping_pub.encrypt(
        ephemeral, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    )
    return b64(wrapped_aes + aes_key_wrap_with_padding(ephemeral, target))


def errors_of(resp: httpx.Response) -> list[str]:
    return resp.json().get("errors", [])


# --- keys -----------------------------------------------------------------------------------------------------------


def test_key_lifecycle_create_read_list_config_delete(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    created = t.create_key("life", mount_point=MOUNT)
    assert created["data"]["type"] == "aes256-gcm96"
    data = t.read_key("life", mount_point=MOUNT)["data"]
    assert data["latest_version"] == 1 and data["min_decryption_version"] == 1 and data["deletion_allowed"] is False
    assert data["supports_encryption"] and not data["supports_signing"] and list(data["keys"]) == ["1"]
    assert "life" in t.list_keys(mount_point=MOUNT)["data"]["keys"]

    resp = http.delete(f"/v1/{MOUNT}/keys/life")
    assert resp.status_code == 400 and "deletion is not allowed for this policy" in errors_of(resp)[0]
    assert t.read_key("life", mount_point=MOUNT)["data"]["name"] == "life"

    t.update_key_configuration("life", deletion_allowed=True, mount_point=MOUNT)
    t.delete_key("life", mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.InvalidPath):
        t.read_key("life", mount_point=MOUNT)


@pytest.mark.parametrize(
    ("key_type", "encrypts", "signs"),
    [
        ("aes128-gcm96", True, False),
        ("aes256-gcm96", True, False),
        ("chacha20-poly1305", True, False),
        ("ed25519", False, True),
        ("ecdsa-p256", False, True),
        ("ecdsa-p384", False, True),
        ("ecdsa-p521", False, True),
        ("rsa-2048", True, True),
        ("rsa-3072", True, True),
        ("rsa-4096", True, True),
        ("hmac", False, False),
    ],
)
def test_every_key_type(client: hvac.Client, key_type: str, encrypts: bool, signs: bool) -> None:
    t = client.secrets.transit
    name = f"type-{key_type}"
    if key_type in ("aes128-gcm96", "hmac"):  # hvac's client-side check does not know these (Vault does)
        client.adapter.post(f"/v1/{MOUNT}/keys/{name}", json={"type": key_type})
    else:
        t.create_key(name, key_type=key_type, mount_point=MOUNT)
    data = t.read_key(name, mount_point=MOUNT)["data"]
    assert data["type"] == key_type
    assert data["supports_encryption"] is encrypts and data["supports_signing"] is signs
    if signs:
        assert data["keys"]["1"]["public_key"]
        resp = t.sign_data(name, hash_input=b64(b"message"), mount_point=MOUNT)
        sig = resp["data"]["signature"]
        assert sig.startswith("vault:v1:")
        ok = t.verify_signed_data(name, hash_input=b64(b"message"), signature=sig, mount_point=MOUNT)
        assert ok["data"]["valid"] is True
    if encrypts:
        ct = t.encrypt_data(name, plaintext=b64(b"per-type"), mount_point=MOUNT)["data"]["ciphertext"]
        assert base64.b64decode(t.decrypt_data(name, ciphertext=ct, mount_point=MOUNT)["data"]["plaintext"]) == (
            b"per-type"
        )
    if key_type == "hmac":
        assert data["key_size"] == 32
        mac = t.generate_hmac(name, hash_input=b64(b"x"), mount_point=MOUNT)["data"]["hmac"]
        assert mac.startswith("vault:v1:")


def test_create_refuses_bad_settings_and_changes_nothing(http: httpx.Client) -> None:
    cases = [
        ({"type": "aes512"}, "unknown key type aes512"),
        ({"convergent_encryption": True}, "convergent encryption requires derivation to be enabled"),
        ({"auto_rotate_period": "10m"}, "auto rotate period must be 0 to disable or at least an hour"),
        ({"type": "hmac", "key_size": 8}, "invalid key_size 8"),
        ({"type": "rsa-2048", "derived": True}, "not supported for keys of type rsa-2048"),
    ]
    for body, message in cases:
        resp = http.post(f"/v1/{MOUNT}/keys/badkey", json=body)
        assert resp.status_code == 400, (body, resp.text)
        assert message in errors_of(resp)[0]
    assert http.get(f"/v1/{MOUNT}/keys/badkey").status_code == 404


def test_encrypt_to_missing_key_creates_it_but_decrypt_does_not(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    ct = t.encrypt_data("upserted", plaintext=b64(b"hi"), mount_point=MOUNT)["data"]["ciphertext"]
    assert t.read_key("upserted", mount_point=MOUNT)["data"]["type"] == "aes256-gcm96"
    assert base64.b64decode(t.decrypt_data("upserted", ciphertext=ct, mount_point=MOUNT)["data"]["plaintext"]) == b"hi"
    resp = http.post(f"/v1/{MOUNT}/decrypt/nosuchkey", json={"ciphertext": ct})
    assert resp.status_code == 400 and errors_of(resp) == ["encryption key not found"]
    assert http.get(f"/v1/{MOUNT}/keys/nosuchkey").status_code == 404


def test_malformed_ciphertexts_get_vaults_errors(client: hvac.Client, http: httpx.Client) -> None:
    client.secrets.transit.create_key("errs", mount_point=MOUNT)
    cases = {
        "nonsense": "invalid ciphertext: no prefix",
        "vault:v1": "invalid ciphertext: wrong number of fields",
        "vault:vx:AAAA": "invalid ciphertext: version number could not be decoded",
        "vault:v9:AAAA": "invalid ciphertext: version is too new",
        "vault:v1:!!!": "invalid ciphertext: could not decode base64",
        "vault:v1:" + b64(os.urandom(40)): "cipher: message authentication failed",
    }
    for value, message in cases.items():
        resp = http.post(f"/v1/{MOUNT}/decrypt/errs", json={"ciphertext": value})
        assert resp.status_code == 400, resp.text
        assert errors_of(resp) == [message]
    resp = http.post(f"/v1/{MOUNT}/encrypt/errs", json={"plaintext": "not base64!"})
    assert resp.status_code == 400 and "base64" in errors_of(resp)[0]


# --- known answers: Vault's ciphertext layout -------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["aes256-gcm96", "aes128-gcm96", "chacha20-poly1305"])
def test_vault_ciphertext_from_fixed_key_and_nonce_decrypts(
    client: hvac.Client, http: httpx.Client, wrapping_pub: rsa.RSAPublicKey, key_type: str
) -> None:
    key = bytes(range(16 if key_type == "aes128-gcm96" else 32))
    nonce = bytes.fromhex("000102030405060708090a0b")
    plaintext, aad = b"the quick brown fox", b"row-17"
    aead = ChaCha20Poly1305(key) if key_type == "chacha20-poly1305" else AESGCM(key)
    vault_ct = "vault:v1:" + b64(nonce + aead.encrypt(nonce, plaintext, None))
    vault_ct_aad = "vault:v1:" + b64(nonce + aead.encrypt(nonce, plaintext, aad))

    name = f"kat-{key_type}"
    resp = http.post(f"/v1/{MOUNT}/keys/{name}/import", json={"ciphertext": vault_wrap(wrapping_pub, key),
                                                                "type": key_type})
    assert resp.status_code in (200, 204), resp.text
    t = client.secrets.transit
    out = t.decrypt_data(name, ciphertext=vault_ct, mount_point=MOUNT)["data"]["plaintext"]
    assert base64.b64decode(out) == plaintext
    resp = http.post(f"/v1/{MOUNT}/decrypt/{name}", json={"ciphertext": vault_ct_aad, "associated_data": b64(aad)})
    assert base64.b64decode(resp.json()["data"]["plaintext"]) == plaintext
    resp = http.post(f"/v1/{MOUNT}/decrypt/{name}", json={"ciphertext": vault_ct_aad})
    assert resp.status_code == 400

    # and the other way: the server's ciphertext is nonce ‖ ciphertext ‖ tag under the same key
    ct = t.encrypt_data(name, plaintext=b64(plaintext), mount_point=MOUNT)["data"]["ciphertext"]
    raw = base64.b64decode(ct.removeprefix("vault:v1:"))
    assert len(raw) == 12 + len(plaintext) + 16
    assert aead.decrypt(raw[:12], raw[12:], None) == plaintext


def test_convergent_encryption_matches_vaults_derivation_exactly(client: hvac.Client) -> None:
    t = client.secrets.transit
    t.create_key("conv", derived=True, convergent_encryption=True, exportable=True, mount_point=MOUNT)
    key = base64.b64decode(t.export_key("conv", "encryption-key", mount_point=MOUNT)["data"]["keys"]["1"])
    context, plaintext = b"tenant-42", b"card 4111 1111 1111 1111"
    # Vault: HKDF-SHA256(key, salt=nil, info=context) -> 32 encryption bytes ‖ 32 nonce-HMAC bytes (convergent v3)
    derived = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=context).derive(key)
    nonce = hmac.new(derived[32:], plaintext, hashlib.sha256).digest()[:12]
    expected = "vault:v1:" + b64(nonce + AESGCM(derived[:32]).encrypt(nonce, plaintext, None))

    got = [
        t.encrypt_data("conv", plaintext=b64(plaintext), context=b64(context), mount_point=MOUNT)["data"]["ciphertext"]
        for _ in range(2)
    ]
    assert got == [expected, expected]
    data = t.read_key("conv", mount_point=MOUNT)["data"]
    assert data["convergent_encryption"] is True and data["convergent_encryption_version"] == 3
    assert data["kdf"] == "hkdf_sha256"


def test_derived_key_needs_the_right_context(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("derived", derived=True, exportable=True, mount_point=MOUNT)
    ct = t.encrypt_data("derived", plaintext=b64(b"x"), context=b64(b"ctx-a"), mount_point=MOUNT)["data"]["ciphertext"]
    key = base64.b64decode(t.export_key("derived", "encryption-key", mount_point=MOUNT)["data"]["keys"]["1"])
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ctx-a").derive(key)
    raw = base64.b64decode(ct.split(":", 2)[2])
    assert AESGCM(derived).decrypt(raw[:12], raw[12:], None) == b"x"
    resp = http.post(f"/v1/{MOUNT}/decrypt/derived", json={"ciphertext": ct, "context": b64(b"ctx-b")})
    assert resp.status_code == 400 and errors_of(resp) == ["cipher: message authentication failed"]
    resp = http.post(f"/v1/{MOUNT}/decrypt/derived", json={"ciphertext": ct})
    assert resp.status_code == 400 and errors_of(resp)[0].startswith("missing 'context' for key derivation")


# --- batches, rotation, rewrap ------------------------------------------------------------------------------------


def test_batch_encrypt_decrypt_with_references_and_partial_failure(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("batch", mount_point=MOUNT)
    items = [{"plaintext": b64(f"item-{i}".encode()), "reference": f"r{i}"} for i in range(5)]
    results = t.encrypt_data("batch", batch_input=items, mount_point=MOUNT)["data"]["batch_results"]
    assert [r["reference"] for r in results] == [f"r{i}" for i in range(5)]
    dec = t.decrypt_data("batch", batch_input=[{"ciphertext": r["ciphertext"]} for r in results], mount_point=MOUNT)
    assert [base64.b64decode(r["plaintext"]) for r in dec["data"]["batch_results"]] == [
        f"item-{i}".encode() for i in range(5)
    ]

    bad = [{"ciphertext": results[0]["ciphertext"]}, {"ciphertext": "garbage"}]
    resp = http.post(f"/v1/{MOUNT}/decrypt/batch", json={"batch_input": bad})
    assert resp.status_code == 400
    out = resp.json()["data"]["batch_results"]
    assert base64.b64decode(out[0]["plaintext"]) == b"item-0" and out[1]["error"] == "invalid ciphertext: no prefix"
    resp = http.post(f"/v1/{MOUNT}/decrypt/batch", json={"batch_input": bad, "partial_failure_response_code": 207})
    assert resp.status_code == 207

    resp = http.post(f"/v1/{MOUNT}/encrypt/batch", json={"batch_input": [
        {"plaintext": b64(b"a"), "context": b64(b"c")}, {"plaintext": b64(b"b")}]})
    assert resp.status_code == 400
    assert errors_of(resp) == ["context should be set either in all the request blocks or in none"]


def test_rotate_rewrap_min_versions_and_trim(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("rot", mount_point=MOUNT)
    ct1 = t.encrypt_data("rot", plaintext=b64(b"v1 data"), mount_point=MOUNT)["data"]["ciphertext"]
    t.rotate_key("rot", mount_point=MOUNT)
    ct2 = t.encrypt_data("rot", plaintext=b64(b"v2 data"), mount_point=MOUNT)["data"]
    assert ct2["key_version"] == 2 and ct2["ciphertext"].startswith("vault:v2:")
    rewrapped = t.rewrap_data("rot", ciphertext=ct1, mount_point=MOUNT)["data"]
    assert rewrapped["key_version"] == 2 and rewrapped["ciphertext"].startswith("vault:v2:")
    old = t.encrypt_data("rot", plaintext=b64(b"old"), key_version=1, mount_point=MOUNT)["data"]
    assert old["key_version"] == 1

    t.rotate_key("rot", mount_point=MOUNT)
    t.update_key_configuration("rot", min_decryption_version=2, min_encryption_version=3, mount_point=MOUNT)
    resp = http.post(f"/v1/{MOUNT}/decrypt/rot", json={"ciphertext": ct1})
    assert resp.status_code == 400
    assert errors_of(resp) == ["ciphertext or signature version is disallowed by policy (too old)"]
    resp = http.post(f"/v1/{MOUNT}/encrypt/rot", json={"plaintext": b64(b"x"), "key_version": 2})
    assert errors_of(resp) == ["requested version for encryption is less than the minimum encryption key version"]
    assert sorted(t.read_key("rot", mount_point=MOUNT)["data"]["keys"]) == ["2", "3"]

    resp = http.post(f"/v1/{MOUNT}/keys/rot/config", json={"min_encryption_version": 9})
    assert resp.status_code == 400 and "latest key version is 3" in errors_of(resp)[0]
    resp = http.post(f"/v1/{MOUNT}/keys/rot/trim", json={"min_available_version": 3})
    assert resp.status_code == 400 and "greater than minimum decryption version" in errors_of(resp)[0]

    t.trim_key("rot", min_version=2, mount_point=MOUNT)
    data = t.read_key("rot", mount_point=MOUNT)["data"]
    assert data["min_available_version"] == 2
    resp = http.post(f"/v1/{MOUNT}/keys/rot/config", json={"min_decryption_version": 1})
    assert resp.status_code == 400 and "min available version is 2" in errors_of(resp)[0]
    dec = t.decrypt_data("rot", ciphertext=rewrapped["ciphertext"], mount_point=MOUNT)["data"]["plaintext"]
    assert base64.b64decode(dec) == b"v1 data"


def test_config_settings_that_cannot_be_undone(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("cfg", mount_point=MOUNT)
    t.update_key_configuration("cfg", exportable=True, allow_plaintext_backup=True, auto_rotate_period="24h",
                               mount_point=MOUNT)
    data = t.read_key("cfg", mount_point=MOUNT)["data"]
    assert data["exportable"] and data["allow_plaintext_backup"] and data["auto_rotate_period"] == 86400
    for body, message in [({"exportable": False}, "cannot disable exportability"),
                          ({"allow_plaintext_backup": False}, "cannot disable plaintext backup"),
                          ({"auto_rotate_period": "59m"}, "at least an hour"),
                          ({"min_decryption_version": -1}, "cannot be negative")]:
        resp = http.post(f"/v1/{MOUNT}/keys/cfg/config", json=body)
        assert resp.status_code == 400 and message in errors_of(resp)[0], resp.text
    resp = http.post(f"/v1/{MOUNT}/keys/missing/config", json={"deletion_allowed": True})
    assert resp.status_code == 400


def test_auto_rotation_rotates_a_due_key(client: hvac.Client) -> None:
    t = client.secrets.transit
    t.create_key("auto-src", exportable=True, allow_plaintext_backup=True, auto_rotate_period="1h",
                 mount_point=MOUNT)
    # a backup whose only version was created two hours ago: restored, it is due at once
    backup = json.loads(base64.b64decode(t.backup_key("auto-src", mount_point=MOUNT)["data"]["backup"]))
    two_hours_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
    backup["policy"]["keys"]["1"]["time"] = two_hours_ago
    backup["archived_keys"]["keys"][1]["time"] = two_hours_ago
    t.restore_key(b64(json.dumps(backup).encode()), name="auto", mount_point=MOUNT)
    wait_for(lambda: t.read_key("auto", mount_point=MOUNT)["data"]["latest_version"] == 2, timeout=15,
             message="auto-rotation")
    assert t.read_key("auto-src", mount_point=MOUNT)["data"]["latest_version"] == 1


# --- export, backup, restore ------------------------------------------------------------------------------------


def test_export(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("noexport", mount_point=MOUNT)
    resp = http.get(f"/v1/{MOUNT}/export/encryption-key/noexport")
    assert resp.status_code == 400 and errors_of(resp) == ["private key material is not exportable"]

    t.create_key("ed", key_type="ed25519", mount_point=MOUNT)
    # hvac's export_key does not offer "public-key" (Vault does): that one export goes through httpx
    pub = http.get(f"/v1/{MOUNT}/export/public-key/ed").json()["data"]["keys"]["1"]
    sig = t.sign_data("ed", hash_input=b64(b"m"), mount_point=MOUNT)["data"]["signature"]
    ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(pub)).verify(
        base64.b64decode(sig.split(":", 2)[2]), b"m"
    )

    t.create_key("ecx", key_type="ecdsa-p256", exportable=True, mount_point=MOUNT)
    t.rotate_key("ecx", mount_point=MOUNT)
    keys = t.export_key("ecx", "signing-key", mount_point=MOUNT)["data"]["keys"]
    assert sorted(keys) == ["1", "2"]
    priv = serialization.load_pem_private_key(keys["2"].encode(), password=None)
    assert isinstance(priv, ec.EllipticCurvePrivateKey) and keys["2"].startswith("-----BEGIN EC PRIVATE KEY")
    latest = t.export_key("ecx", "signing-key", version="latest", mount_point=MOUNT)["data"]["keys"]
    assert latest == {"2": keys["2"]}
    hk = t.export_key("ecx", "hmac-key", version=1, mount_point=MOUNT)["data"]["keys"]["1"]
    assert len(base64.b64decode(hk)) == 32
    resp = http.get(f"/v1/{MOUNT}/export/encryption-key/ecx")
    assert resp.status_code == 400
    resp = http.get(f"/v1/{MOUNT}/export/bogus-key/ecx")
    assert resp.status_code == 400


def test_backup_and_restore(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("bk", mount_point=MOUNT)
    resp = http.get(f"/v1/{MOUNT}/backup/bk")
    assert resp.status_code == 400 and errors_of(resp) == ["exporting is disallowed on the policy"]
    t.update_key_configuration("bk", exportable=True, mount_point=MOUNT)
    resp = http.get(f"/v1/{MOUNT}/backup/bk")
    assert resp.status_code == 400 and errors_of(resp) == ["plaintext backup is disallowed on the policy"]
    t.update_key_configuration("bk", allow_plaintext_backup=True, mount_point=MOUNT)

    ct = t.encrypt_data("bk", plaintext=b64(b"survives"), mount_point=MOUNT)["data"]["ciphertext"]
    backup = t.backup_key("bk", mount_point=MOUNT)["data"]["backup"]
    t.restore_key(backup, name="bk-copy", mount_point=MOUNT)
    out = t.decrypt_data("bk-copy", ciphertext=ct, mount_point=MOUNT)["data"]["plaintext"]
    assert base64.b64decode(out) == b"survives"
    assert "restore_info" in t.read_key("bk-copy", mount_point=MOUNT)["data"]

    resp = http.post(f"/v1/{MOUNT}/restore/bk-copy", json={"backup": backup})
    assert resp.status_code == 400 and errors_of(resp) == ['key "bk-copy" already exists']
    resp = http.post(f"/v1/{MOUNT}/restore", json={"backup": b64(b"{not json")})
    assert resp.status_code == 400
    tampered = json.loads(base64.b64decode(backup))
    tampered["policy"]["keys"]["1"]["key"] = b64(b"short")
    tampered["archived_keys"]["keys"][1]["key"] = b64(b"short")
    resp = http.post(f"/v1/{MOUNT}/restore/bk-bad", json={"backup": b64(json.dumps(tampered).encode())})
    assert resp.status_code == 400 and errors_of(resp) == ["failed to restore the policy: invalid backup"]
    assert http.get(f"/v1/{MOUNT}/keys/bk-bad").status_code == 404
    t.restore_key(backup, name="bk-copy", force=True, mount_point=MOUNT)
    # without a name the key comes back under its own
    t.update_key_configuration("bk", deletion_allowed=True, mount_point=MOUNT)
    t.delete_key("bk", mount_point=MOUNT)
    t.restore_key(backup, mount_point=MOUNT)
    assert base64.b64decode(t.decrypt_data("bk", ciphertext=ct, mount_point=MOUNT)["data"]["plaintext"]) == (
        b"survives"
    )


def _vault_entry(**fields: object) -> dict[str, object]:
    """A KeyEntry as Vault's keysutil serialises it with Go's encoding/json."""
    entry: dict[str, object] = {
        "key": None, "hmac_key": b64(os.urandom(32)), "time": "2024-03-01T12:00:00.123456789Z", "ec_x": None,
        "ec_y": None, "ec_d": None, "rsa_key": None, "rsa_public_key": None, "public_key": "",
        "convergent_version": 0, "creation_time": 1709294400, "certificate_chain": None,
    }
    entry.update(fields)
    return entry


def _vault_backup(type_id: int, name: str, entries: list[dict[str, object]]) -> str:
    """Vault's backup document (KeyData): the policy plus the archive, version N at index N (version 0 empty)."""
    policy = {
        "name": name, "keys": {str(i + 1): e for i, e in enumerate(entries)}, "derived": False, "kdf": 1,
        "convergent_encryption": False, "exportable": True, "min_decryption_version": 1, "min_encryption_version": 0,
        "latest_version": len(entries), "archive_version": len(entries), "archive_min_version": 0,
        "min_available_version": 0, "deletion_allowed": False, "convergent_version": 0, "type": type_id,
        "backup_info": {"time": "2024-03-02T00:00:00Z", "version": len(entries)}, "restore_info": None,
        "allow_plaintext_backup": True, "version_template": "", "storage_prefix": "", "auto_rotate_period": 0,
        "Imported": False, "AllowImportedKeyRotation": False,
    }
    empty = _vault_entry(hmac_key=None, time="0001-01-01T00:00:00Z", creation_time=0)
    doc = {"policy": policy, "archived_keys": {"keys": [empty, *entries]}}
    return b64(json.dumps(doc).encode())


def test_vault_backups_restore_and_ours_have_vaults_shape(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    aes_v1, aes_v2 = os.urandom(32), os.urandom(32)
    nonce = os.urandom(12)
    t.restore_key(_vault_backup(0, "from-vault-aes", [_vault_entry(key=b64(aes_v1)), _vault_entry(key=b64(aes_v2))]),
                  mount_point=MOUNT)
    for version, key in ((1, aes_v1), (2, aes_v2)):
        ct = f"vault:v{version}:" + b64(nonce + AESGCM(key).encrypt(nonce, b"moved from vault", None))
        out = t.decrypt_data("from-vault-aes", ciphertext=ct, mount_point=MOUNT)["data"]["plaintext"]
        assert base64.b64decode(out) == b"moved from vault"

    ec_key = ec.generate_private_key(ec.SECP256R1())
    n = ec_key.private_numbers()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = rsa_key.private_numbers()
    go_rsa = {"N": r.public_numbers.n, "E": r.public_numbers.e, "D": r.d, "Primes": [r.p, r.q],
              "Precomputed": {"Dp": r.dmp1, "Dq": r.dmq1, "Qinv": r.iqmp, "CRTValues": []}}
    t.restore_key(_vault_backup(1, "from-vault-ec", [_vault_entry(
        ec_x=n.public_numbers.x, ec_y=n.public_numbers.y, ec_d=n.private_value)]), mount_point=MOUNT)
    t.restore_key(_vault_backup(3, "from-vault-rsa", [_vault_entry(rsa_key=go_rsa)]), mount_point=MOUNT)
    sig = t.sign_data("from-vault-ec", hash_input=b64(b"m"), mount_point=MOUNT)["data"]["signature"]
    ec_key.public_key().verify(_sig(sig), b"m", ec.ECDSA(hashes.SHA256()))
    sig = t.sign_data("from-vault-rsa", hash_input=b64(b"m"), signature_algorithm="pkcs1v15",
                      mount_point=MOUNT)["data"]["signature"]
    rsa_key.public_key().verify(_sig(sig), b"m", padding.PKCS1v15(), hashes.SHA256())

    # and a backup made here has Vault's shape: numeric type, Go big integers, archive indexed by version
    doc = json.loads(base64.b64decode(t.backup_key("from-vault-ec", mount_point=MOUNT)["data"]["backup"]))
    assert doc["policy"]["type"] == 1 and doc["policy"]["keys"]["1"]["ec_d"] == n.private_value
    archive = doc["archived_keys"]["keys"]
    assert archive[1]["ec_x"] == n.public_numbers.x and archive[0]["ec_d"] is None
    doc = json.loads(base64.b64decode(t.backup_key("from-vault-rsa", mount_point=MOUNT)["data"]["backup"]))
    assert doc["policy"]["keys"]["1"]["rsa_key"]["N"] == r.public_numbers.n

    resp = http.post(f"/v1/{MOUNT}/restore/x", json={"backup": b64(json.dumps({"archived_keys": {}}).encode())})
    assert resp.status_code == 400
    assert errors_of(resp) == ["failed to restore the policy: backup data does not contain a policy"]


# --- data keys, random, hash, hmac --------------------------------------------------------------------------------


def test_datakeys(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("dk", mount_point=MOUNT)
    data = t.generate_data_key("dk", key_type="plaintext", mount_point=MOUNT)["data"]
    assert len(base64.b64decode(data["plaintext"])) == 32
    dec = t.decrypt_data("dk", ciphertext=data["ciphertext"], mount_point=MOUNT)["data"]["plaintext"]
    assert dec == data["plaintext"]
    wrapped = t.generate_data_key("dk", key_type="wrapped", bits=512, mount_point=MOUNT)["data"]
    assert "plaintext" not in wrapped
    dec = t.decrypt_data("dk", ciphertext=wrapped["ciphertext"], mount_point=MOUNT)["data"]["plaintext"]
    assert len(base64.b64decode(dec)) == 64
    resp = http.post(f"/v1/{MOUNT}/datakey/plaintext/dk", json={"bits": 100})
    assert resp.status_code == 400
    resp = http.post(f"/v1/{MOUNT}/datakey/other/dk", json={})
    assert resp.status_code == 400


def test_random(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    out = t.generate_random_bytes(n_bytes=16, output_format="hex", mount_point=MOUNT)["data"]["random_bytes"]
    assert len(bytes.fromhex(out)) == 16
    assert len(base64.b64decode(t.generate_random_bytes(mount_point=MOUNT)["data"]["random_bytes"])) == 32
    resp = http.post(f"/v1/{MOUNT}/random/24", json={})
    assert len(base64.b64decode(resp.json()["data"]["random_bytes"])) == 24
    resp = http.post(f"/v1/{MOUNT}/random/all/8", json={"format": "hex"})
    assert len(resp.json()["data"]["random_bytes"]) == 16
    for path, body in [("random", {"bytes": 0}), ("random", {"bytes": 2 * 1024 * 1024}),
                       ("random", {"format": "b32"}), ("random/moon/8", {})]:
        assert http.post(f"/v1/{MOUNT}/{path}", json=body).status_code == 400, path


def test_hash(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    data = b"hash me"
    assert t.hash_data(b64(data), mount_point=MOUNT)["data"]["sum"] == hashlib.sha256(data).hexdigest()
    out = t.hash_data(b64(data), algorithm="sha2-512", output_format="base64", mount_point=MOUNT)["data"]["sum"]
    assert base64.b64decode(out) == hashlib.sha512(data).digest()
    resp = http.post(f"/v1/{MOUNT}/hash/sha3-256", json={"input": b64(data)})
    assert resp.json()["data"]["sum"] == hashlib.sha3_256(data).hexdigest()
    resp = http.post(f"/v1/{MOUNT}/hash", json={"input": b64(data), "algorithm": "md5"})
    assert resp.status_code == 400 and errors_of(resp) == ["unsupported algorithm md5"]


def test_hmac_and_verify(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("mac", exportable=True, mount_point=MOUNT)
    key = base64.b64decode(t.export_key("mac", "hmac-key", mount_point=MOUNT)["data"]["keys"]["1"])
    data = b"authenticate me"
    mac = t.generate_hmac("mac", hash_input=b64(data), mount_point=MOUNT)["data"]["hmac"]
    assert mac == "vault:v1:" + b64(hmac.new(key, data, hashlib.sha256).digest())
    mac512 = t.generate_hmac("mac", hash_input=b64(data), algorithm="sha2-512", mount_point=MOUNT)["data"]["hmac"]
    assert mac512 == "vault:v1:" + b64(hmac.new(key, data, hashlib.sha512).digest())
    ok = t.verify_signed_data("mac", hash_input=b64(data), hmac=mac, mount_point=MOUNT)["data"]["valid"]
    assert ok is True
    bad = t.verify_signed_data("mac", hash_input=b64(b"other"), hmac=mac, mount_point=MOUNT)["data"]["valid"]
    assert bad is False
    resp = http.post(f"/v1/{MOUNT}/verify/mac/sha2-512", json={"input": b64(data), "hmac": mac512})
    assert resp.json()["data"]["valid"] is True
    resp = http.post(f"/v1/{MOUNT}/hmac/mac", json={"batch_input": [{"input": b64(b"a")}, {"input": "%%"}]})
    assert resp.status_code == 400
    res = resp.json()["data"]["batch_results"]
    assert res[0]["hmac"].startswith("vault:v1:") and "error" in res[1]
    resp = http.post(f"/v1/{MOUNT}/verify/mac", json={"input": b64(data)})
    assert resp.status_code == 400


# --- signatures ---------------------------------------------------------------------------------------------------


def _public(client: hvac.Client, name: str) -> object:
    pem = client.secrets.transit.read_key(name, mount_point=MOUNT)["data"]["keys"]["1"]["public_key"]
    return serialization.load_pem_public_key(pem.encode())


def _sig(value: str, urlsafe: bool = False) -> bytes:
    body = value.split(":", 2)[2]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)) if urlsafe else base64.b64decode(body)


def test_ecdsa_signatures_asn1_jws_prehashed_verify_outside(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("ec", key_type="ecdsa-p384", mount_point=MOUNT)
    pub = _public(client, "ec")
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    msg = b"ecdsa message"
    sig = t.sign_data("ec", hash_input=b64(msg), hash_algorithm="sha2-384", mount_point=MOUNT)["data"]
    assert sig["key_version"] == 1
    pub.verify(_sig(sig["signature"]), msg, ec.ECDSA(hashes.SHA384()))
    jws = t.sign_data("ec", hash_input=b64(msg), marshaling_algorithm="jws", mount_point=MOUNT)["data"]["signature"]
    raw = _sig(jws, urlsafe=True)
    assert len(raw) == 96 and "=" not in jws
    pub.verify(encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big")), msg,
               ec.ECDSA(hashes.SHA256()))
    assert t.verify_signed_data("ec", hash_input=b64(msg), signature=jws, marshaling_algorithm="jws",
                                mount_point=MOUNT)["data"]["valid"] is True
    digest = hashlib.sha256(msg).digest()
    pre = t.sign_data("ec", hash_input=b64(digest), prehashed=True, mount_point=MOUNT)["data"]["signature"]
    pub.verify(_sig(pre), msg, ec.ECDSA(hashes.SHA256()))
    assert t.verify_signed_data("ec", hash_input=b64(b"tampered"), signature=pre,
                                mount_point=MOUNT)["data"]["valid"] is False
    resp = http.post(f"/v1/{MOUNT}/sign/ec", json={"input": b64(msg), "hash_algorithm": "md5"})
    assert resp.status_code == 400


def test_rsa_signatures_pss_and_pkcs1v15_and_url_algorithm(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("rsa", key_type="rsa-2048", mount_point=MOUNT)
    pub = _public(client, "rsa")
    assert isinstance(pub, rsa.RSAPublicKey)
    msg = b"rsa message"
    pss = t.sign_data("rsa", hash_input=b64(msg), mount_point=MOUNT)["data"]["signature"]
    pub.verify(_sig(pss), msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
               hashes.SHA256())
    p15 = t.sign_data("rsa", hash_input=b64(msg), signature_algorithm="pkcs1v15", hash_algorithm="sha2-512",
                      mount_point=MOUNT)["data"]["signature"]
    pub.verify(_sig(p15), msg, padding.PKCS1v15(), hashes.SHA512())
    resp = http.post(f"/v1/{MOUNT}/verify/rsa/sha2-512", json={"input": b64(msg), "signature": p15,
                                                                "signature_algorithm": "pkcs1v15"})
    assert resp.json()["data"]["valid"] is True
    resp = http.post(f"/v1/{MOUNT}/sign/rsa/sha2-384", json={"input": b64(msg)})
    pub.verify(_sig(resp.json()["data"]["signature"]), msg,
               padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=padding.PSS.AUTO), hashes.SHA384())
    resp = http.post(f"/v1/{MOUNT}/sign/rsa", json={"input": b64(msg), "signature_algorithm": "dsa"})
    assert resp.status_code == 400


def test_batch_sign_and_verify(client: hvac.Client) -> None:
    t = client.secrets.transit
    t.create_key("bsig", key_type="ed25519", mount_point=MOUNT)
    items = [{"input": b64(f"m{i}".encode()), "reference": str(i)} for i in range(3)]
    sigs = t.sign_data("bsig", batch_input=items, mount_point=MOUNT)["data"]["batch_results"]
    assert [s["reference"] for s in sigs] == ["0", "1", "2"]
    verify_items = [{"input": items[i]["input"], "signature": sigs[i]["signature"]} for i in range(3)]
    verify_items.append({"input": b64(b"forged"), "signature": sigs[0]["signature"]})
    resp = client.adapter.post(f"/v1/{MOUNT}/verify/bsig", json={"batch_input": verify_items})
    assert [r["valid"] for r in resp["data"]["batch_results"]] == [True, True, True, False]


def test_derived_ed25519_signs_per_context(client: hvac.Client, http: httpx.Client) -> None:
    t = client.secrets.transit
    t.create_key("ed-derived", key_type="ed25519", derived=True, mount_point=MOUNT)
    out = t.sign_data("ed-derived", hash_input=b64(b"m"), context=b64(b"user-1"), mount_point=MOUNT)["data"]
    pub = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(out["public_key"]))
    pub.verify(_sig(out["signature"]), b"m")
    assert t.verify_signed_data("ed-derived", hash_input=b64(b"m"), signature=out["signature"],
                                context=b64(b"user-2"), mount_point=MOUNT)["data"]["valid"] is False
    resp = http.get(f"/v1/{MOUNT}/keys/ed-derived", params={"context": b64(b"user-1")})
    assert resp.json()["data"]["keys"]["1"]["public_key"] == out["public_key"]


# --- BYOK ---------------------------------------------------------------------------------------------------------


def test_byok_import_rsa_and_import_version(client: hvac.Client, http: httpx.Client,
                                            wrapping_pub: rsa.RSAPublicKey) -> None:
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    resp = http.post(f"/v1/{MOUNT}/keys/imported-rsa/import",
                     json={"ciphertext": vault_wrap(wrapping_pub, der), "type": "rsa-2048"})
    assert resp.status_code in (200, 204), resp.text
    t = client.secrets.transit
    data = t.read_key("imported-rsa", mount_point=MOUNT)["data"]
    assert data["imported_key"] is True and data["imported_key_allow_rotation"] is False
    sig = t.sign_data("imported-rsa", hash_input=b64(b"byok"), signature_algorithm="pkcs1v15",
                      mount_point=MOUNT)["data"]["signature"]
    priv.public_key().verify(_sig(sig), b"byok", padding.PKCS1v15(), hashes.SHA256())
    # RSA-OAEP-SHA256 under the imported key opens here
    ct = priv.public_key().encrypt(b"secret", padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                             algorithm=hashes.SHA256(), label=None))
    out = t.decrypt_data("imported-rsa", ciphertext="vault:v1:" + b64(ct), mount_point=MOUNT)["data"]["plaintext"]
    assert base64.b64decode(out) == b"secret"

    resp = http.post(f"/v1/{MOUNT}/keys/imported-rsa/rotate")
    assert resp.status_code == 400 and "does not allow rotation" in errors_of(resp)[0]
    resp = http.post(f"/v1/{MOUNT}/keys/imported-rsa/import",
                     json={"ciphertext": vault_wrap(wrapping_pub, der), "type": "rsa-2048"})
    assert resp.status_code == 400 and "cannot be used with an existing key" in errors_of(resp)[0]

    second = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der2 = second.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    resp = http.post(f"/v1/{MOUNT}/keys/imported-rsa/import_version", json={"ciphertext": vault_wrap(wrapping_pub,
                                                                                                       der2)})
    assert resp.status_code in (200, 204), resp.text
    assert t.read_key("imported-rsa", mount_point=MOUNT)["data"]["latest_version"] == 2

    wrong_type = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    resp = http.post(f"/v1/{MOUNT}/keys/imported-rsa/import_version",
                     json={"ciphertext": vault_wrap(wrapping_pub, wrong_type)})
    assert resp.status_code == 400
    resp = http.post(f"/v1/{MOUNT}/keys/import-garbage/import", json={"ciphertext": b64(os.urandom(600))})
    assert resp.status_code == 400
    assert http.get(f"/v1/{MOUNT}/keys/import-garbage").status_code == 404
    resp = http.post(f"/v1/{MOUNT}/keys/life2/import_version", json={"ciphertext": vault_wrap(wrapping_pub, der)})
    assert resp.status_code == 400 and "no key found" in errors_of(resp)[0]


def test_byok_import_with_sha1_oaep_and_allowed_rotation(http: httpx.Client, client: hvac.Client,
                                                         wrapping_pub: rsa.RSAPublicKey) -> None:
    key = os.urandom(32)
    ephemeral = os.urandom(32)
    wrapped = wrapping_pub.encrypt(ephemeral, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(),
                                                           label=None))
    body = {"ciphertext": b64(wrapped + aes_key_wrap_with_padding(ephemeral, key)), "hash_function": "SHA1",
            "allow_rotation": True}
    assert http.post(f"/v1/{MOUNT}/keys/imp-sha1/import", json=body).status_code in (200, 204)
    t = client.secrets.transit
    ct = t.encrypt_data("imp-sha1", plaintext=b64(b"abc"), mount_point=MOUNT)["data"]["ciphertext"]
    raw = base64.b64decode(ct.split(":", 2)[2])
    assert AESGCM(key).decrypt(raw[:12], raw[12:], None) == b"abc"
    t.rotate_key("imp-sha1", mount_point=MOUNT)
    assert t.read_key("imp-sha1", mount_point=MOUNT)["data"]["latest_version"] == 2


# --- key material stays behind the barrier ----------------------------------------------------------------------


def test_key_material_is_never_stored_in_clear(client: hvac.Client, srv: StrongroomServer) -> None:
    t = client.secrets.transit
    t.create_key("barrier", exportable=True, mount_point=MOUNT)
    key = base64.b64decode(t.export_key("barrier", "encryption-key", mount_point=MOUNT)["data"]["keys"]["1"])
    stored = b"".join(p.read_bytes() for p in srv.workdir.glob("strongroom.db*"))
    assert stored, "the server's storage files exist"
    for form in (key, b64(key).encode(), key.hex().encode()):
        assert form not in stored


# --- policies, seal -------------------------------------------------------------------------------------------------


def test_acl_encrypt_only_token_cannot_create_keys_or_decrypt(client: hvac.Client, srv: StrongroomServer) -> None:
    t = client.secrets.transit
    t.create_key("acl", mount_point=MOUNT)
    client.sys.create_or_update_policy(
        "transit-encrypt-only", f'path "{MOUNT}/encrypt/*" {{ capabilities = ["update"] }}'
    )
    token = client.auth.token.create(policies=["transit-encrypt-only"], ttl="10m")["auth"]["client_token"]
    with srv.http(token) as limited:
        resp = limited.post(f"/v1/{MOUNT}/encrypt/acl", json={"plaintext": b64(b"ok")})
        assert resp.status_code == 200, resp.text
        ct = resp.json()["data"]["ciphertext"]
        # a missing key would be created: that is a create, which this token lacks
        resp = limited.post(f"/v1/{MOUNT}/encrypt/acl-new", json={"plaintext": b64(b"no")})
        assert resp.status_code == 403
        assert limited.post(f"/v1/{MOUNT}/decrypt/acl", json={"ciphertext": ct}).status_code == 403
    assert client.adapter.get(f"/v1/{MOUNT}/keys/acl-new", raise_exception=False).status_code == 404


def test_keys_survive_seal_and_unseal(client: hvac.Client, srv: StrongroomServer) -> None:
    t = client.secrets.transit
    t.create_key("sealed", key_type="chacha20-poly1305", mount_point=MOUNT)
    ct = t.encrypt_data("sealed", plaintext=b64(b"across seals"), mount_point=MOUNT)["data"]["ciphertext"]
    client.sys.seal()
    assert httpx.post(f"{srv.addr}/v1/{MOUNT}/decrypt/sealed", json={"ciphertext": ct},
                      headers={"X-Vault-Token": srv.root_token}).status_code == 503
    httpx.put(f"{srv.addr}/v1/sys/unseal", json={"key": srv.unseal_key}, timeout=10)
    srv.wait_unsealed()
    out = t.decrypt_data("sealed", ciphertext=ct, mount_point=MOUNT)["data"]["plaintext"]
    assert base64.b64decode(out) == b"across seals"
