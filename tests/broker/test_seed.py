"""Seed keys open only for an allowed measurement; the allowed list changes only through a two-approver deploy."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from broker.conftest import base_config, signing_key
from strongroom import crypto
from strongroom.broker.attestation.local import LocalAttestor
from strongroom.broker.attestation.testca import AttestationCA
from strongroom.broker.config import ConfigError, parse_config
from strongroom.broker.recipient import Recipient, RecipientError
from strongroom.broker.seed import KeyRelease, SeedKeys, SeedSealed, seal_seed, seed_from
from strongroom.broker.startup import unseal

TRUSTED = "ab" * 48
OTHER = "cd" * 48


@pytest.fixture
def sealed():
    kek = crypto.new_key()
    seed = SeedKeys(signing_key(), "hvs.broker-token")
    return kek, seed, seal_seed(kek, seed, [TRUSTED])


RECIPIENT = Recipient()


def _doc(ca: AttestationCA, measurement: str, nonce: bytes, public_key: bytes | None = RECIPIENT.public_der) -> bytes:
    return ca.document({0: bytes.fromhex(measurement), 1: bytes(48)}, nonce=nonce, public_key=public_key)


def _opened(wrapped: bytes) -> SeedKeys:
    return seed_from(RECIPIENT.open(wrapped))


def test_right_measurement_opens(sealed):
    kek, seed, blob = sealed
    ca = AttestationCA.generate()
    release = KeyRelease(kek, [ca.root])
    nonce = release.challenge()
    wrapped, doc = release.release(blob, _doc(ca, TRUSTED, nonce), nonce)
    assert _opened(wrapped) == seed and doc.measurement == TRUSTED
    assert b"PRIVATE" not in wrapped  # only the attested recipient key can read what is released
    with pytest.raises(RecipientError):
        Recipient().open(wrapped)


def test_release_needs_an_attested_recipient_key(sealed):
    kek, _, blob = sealed
    ca = AttestationCA.generate()
    release = KeyRelease(kek, [ca.root])
    nonce = release.challenge()
    with pytest.raises(SeedSealed, match="public key"):
        release.release(blob, _doc(ca, TRUSTED, nonce, public_key=None), nonce)


def test_wrong_measurement_stays_sealed(sealed):
    kek, _, blob = sealed
    ca = AttestationCA.generate()
    release = KeyRelease(kek, [ca.root])
    nonce = release.challenge()
    with pytest.raises(SeedSealed, match="not on the allowed list"):
        release.release(blob, _doc(ca, OTHER, nonce), nonce)


def test_replayed_document_stays_sealed(sealed):
    kek, _, blob = sealed
    ca = AttestationCA.generate()
    release = KeyRelease(kek, [ca.root])
    old = _doc(ca, TRUSTED, b"o" * 32)
    with pytest.raises(SeedSealed, match="nonce"):
        release.release(blob, old, release.challenge())


def test_debug_enclave_stays_sealed(sealed):
    kek, _, blob = sealed
    ca = AttestationCA.generate()
    release = KeyRelease(kek, [ca.root])
    nonce = release.challenge()
    with pytest.raises(SeedSealed, match="debug"):
        release.release(blob, ca.document({0: bytes(48)}, nonce=nonce), nonce)


def test_untrusted_attestor_stays_sealed(sealed):
    kek, _, blob = sealed
    rogue = AttestationCA.generate()
    release = KeyRelease(kek, [AttestationCA.generate().root])
    nonce = release.challenge()
    with pytest.raises(SeedSealed, match="trusted root"):
        release.release(blob, _doc(rogue, TRUSTED, nonce), nonce)


def test_editing_the_allowed_list_on_disk_breaks_the_seal(sealed):
    kek, _, blob = sealed
    ca = AttestationCA.generate()
    tampered = {**blob, "policy": {"allowed_measurements": [OTHER, TRUSTED]}}
    release = KeyRelease(kek, [ca.root])
    nonce = release.challenge()
    with pytest.raises(SeedSealed, match="does not open"):
        release.release(tampered, _doc(ca, OTHER, nonce), nonce)


def test_seed_never_in_repr(sealed):
    _, seed, blob = sealed
    assert "PRIVATE" not in repr(seed) and "hvs." not in repr(seed)
    assert b"PRIVATE" not in orjson.dumps(blob) and b"hvs." not in orjson.dumps(blob)


def test_startup_refuses_with_wrong_measurement_and_opens_with_right(tmp_path, idp, receiver):
    from strongroom.broker.seed import read_kek, write_sealed

    raw = base_config(tmp_path, idp, receiver)
    raw["seed"].update({"attestor": "local", "insecure": True})
    config = parse_config(raw, tmp_path)
    (tmp_path / "kek").write_text(crypto.new_key().hex())
    seed = SeedKeys(signing_key(), None)
    write_sealed(config.seed.file, seal_seed(read_kek(config.seed.kek_file), seed, [OTHER]))
    with pytest.raises(SeedSealed, match="not on the allowed list"):
        unseal(config, LocalAttestor(TRUSTED, insecure=True))
    write_sealed(config.seed.file, seal_seed(read_kek(config.seed.kek_file), seed, [TRUSTED]))
    opened, measured = unseal(config, LocalAttestor(TRUSTED, insecure=True))
    assert opened == seed and measured == TRUSTED
    names = [orjson.loads(line)["type"] for line in Path(config.audit_log).read_bytes().splitlines()]
    assert names == ["mpa.seed-release-refused", "mpa.seed-released"]


def test_production_config_never_accepts_local_attestor(tmp_path, idp, receiver):
    raw = base_config(tmp_path, idp, receiver)
    raw["broker"]["production"] = True
    raw["seed"].update({"attestor": "local", "insecure": True})
    with pytest.raises(ConfigError, match="insecure"):
        parse_config(raw, tmp_path)
    raw["broker"]["production"] = False
    raw["seed"]["insecure"] = False
    with pytest.raises(ConfigError, match="insecure"):
        parse_config(raw, tmp_path)


def test_production_config_needs_https(tmp_path, idp, receiver):
    raw = base_config(tmp_path, idp, receiver)
    raw["broker"]["production"] = True
    with pytest.raises(ConfigError, match="https"):
        parse_config(raw, tmp_path)
    raw["broker"]["public_url"] = "https://mpa.bank.test"
    raw["idp"]["jwks_url"] = "https://idp.bank.test/jwks.json"
    assert parse_config(raw, tmp_path).production


def test_broker_deploy_needs_two_approvers_in_config(tmp_path, idp, receiver):
    raw = base_config(tmp_path, idp, receiver)
    raw["kinds"]["broker-deploy"]["approvals"] = 1
    with pytest.raises(ConfigError, match="two approvers"):
        parse_config(raw, tmp_path)


def test_broker_deploy_flow_adds_measurement(make_broker, tmp_path):
    """Two approvers → grant signed by the sealed key → the key-release component re-seals for the new build."""
    broker = make_broker()
    kek = crypto.new_key()
    seed = SeedKeys(signing_key(), None)  # the same key the running broker holds
    blob = seal_seed(kek, seed, [TRUSTED])
    req = broker.request("sam", kind="broker-deploy", reason="Deploy release 2.4.1 built from tag v2.4.1",
                         params={"measurement": OTHER})
    assert broker.review("bob", req["id"]).json()["request"]["state"] == "pending"  # one approver is not enough
    assert broker.fetch("sam", req["id"]).status_code == 409
    assert broker.review("carol", req["id"]).json()["request"]["state"] == "approved"
    grant = broker.fetch("sam", req["id"]).json()["credential"]["grant"]
    import jwt

    # The grant names people (the person claim), so two accounts of one human never count as two approvers.
    ids = jwt.decode(grant, options={"verify_signature": False})["mpa_approver_ids"]
    assert ids == ["person:E1002", "person:E1003"]
    release = KeyRelease(kek, [])
    resealed = release.allow_measurement(blob, grant, "https://mpa.bank.test")
    assert resealed["policy"]["allowed_measurements"] == sorted([TRUSTED, OTHER])
    ca = AttestationCA.generate()
    release = KeyRelease(kek, [ca.root])
    nonce = release.challenge()
    assert _opened(release.release(resealed, _doc(ca, OTHER, nonce), nonce)[0]) == seed


def test_grant_from_other_key_or_one_approver_refused(make_broker):
    from strongroom.broker.kinds.broker_deploy import GRANT_AUDIENCE, GRANT_SUBJECT
    from strongroom.broker.oidc import OidcIssuer, generate_signing_key

    kek = crypto.new_key()
    blob = seal_seed(kek, SeedKeys(signing_key(), None), [TRUSTED])
    release = KeyRelease(kek, [])
    claims = {"sub": GRANT_SUBJECT, "aud": GRANT_AUDIENCE, "measurement": OTHER,
              "mpa_approver_ids": ["idp#u-bob", "idp#u-carol"]}
    rogue, _ = OidcIssuer(generate_signing_key("ES256"), "https://mpa.bank.test").mint(claims, 300)
    with pytest.raises(SeedSealed, match="not valid"):
        release.allow_measurement(blob, rogue, "https://mpa.bank.test")
    lone, _ = OidcIssuer(signing_key(), "https://mpa.bank.test").mint({**claims, "mpa_approver_ids": ["idp#u-bob"]},
                                                                      300)
    with pytest.raises(SeedSealed, match="two distinct"):
        release.allow_measurement(blob, lone, "https://mpa.bank.test")


def test_broker_deploy_measurement_validated(broker):
    r = broker.as_("sam").post("/v1/requests", json={"kind": "broker-deploy", "reason": "Deploy release 2.4.1 now",
                                                     "params": {"measurement": "not-hex"}})
    assert r.status_code == 400 and "SHA-384" in r.json()["errors"][0]
