"""The broker's seed opens only for an attested, allowed build — through a real Strongroom server's transit engine.

The seed is transit ciphertext under a key bound to an attestation policy; the broker sends its attestation document
(from the local attestor, whose CA the key trusts) and opens the answer with its enclave-held key. Holding the sealed
file and the broker's decrypt token — the old "anyone with both files" attack — opens nothing. The allowed list
changes only with the token a two-approver broker-deploy request yields.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from broker.conftest import base_config, signing_key
from strongroom.attestation.recipient import Recipient
from strongroom.attestation.testca import AttestationCA, load_or_create_ca
from strongroom.broker.attestation.local import LocalAttestor
from strongroom.broker.config import ConfigError, parse_config
from strongroom.broker.kinds.broker_deploy import deploy_policy
from strongroom.broker.seed import SeedKeys, SeedSealed, SeedServer, new_seed, read_sealed, write_sealed
from strongroom.broker.startup import unseal
from tests.conftest import StrongroomServer

TRUSTED = "ab" * 48
OTHER = "cd" * 48
_NAMES = itertools.count()


@pytest.fixture(scope="module")
def strongroom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    s = StrongroomServer(tmp_path_factory.mktemp("seed-server")).start()
    s.client().sys.enable_secrets_engine("transit", path="transit")
    yield s
    s.stop()


def _seal(srv: StrongroomServer, tmp: Path, idp: Any, receiver: Any, key: str,
          allowed: list[str]) -> tuple[Any, SeedKeys]:
    """A broker config whose seed is sealed under ``key`` for ``allowed``, with a decrypt-only token on disk."""
    raw = base_config(tmp, idp, receiver, srv.addr)
    raw["seed"].update({"attestor": "local", "insecure": True, "transit_key": key})
    config = parse_config(raw, tmp)
    ca = load_or_create_ca(config.seed.local_ca_file, "test-local-attestor")
    seed = new_seed(signing_key(), "hvs.broker-token")
    operator = SeedServer(srv.addr, srv.root_token, "transit", key)
    operator.bind(allowed, ca.root.public_bytes(Encoding.PEM).decode())
    write_sealed(config.seed.file, operator.seal(seed))
    root = srv.client()
    root.sys.create_or_update_policy(f"seed-{key}", f'path "transit/decrypt/{key}" {{ capabilities = ["update"] }}')
    token = root.auth.token.create(policies=[f"seed-{key}"], no_default_policy=True)["auth"]["client_token"]
    Path(config.seed.token_file).write_text(token)
    return config, seed


def _attestor(config: Any, measurement: str) -> LocalAttestor:
    return LocalAttestor(measurement, insecure=True, ca=load_or_create_ca(config.seed.local_ca_file, "x"))


def test_startup_opens_only_for_an_allowed_build(strongroom, tmp_path, idp, receiver):
    config, seed = _seal(strongroom, tmp_path, idp, receiver, f"seed-{next(_NAMES)}", [TRUSTED])
    with pytest.raises(SeedSealed, match=f"PCR0 {OTHER} is not allowed"):
        unseal(config, _attestor(config, OTHER))
    opened, measured = unseal(config, _attestor(config, TRUSTED))
    assert opened == seed and measured == TRUSTED
    names = [orjson.loads(line)["type"] for line in Path(config.audit_log).read_bytes().splitlines()]
    assert names == ["mpa.seed-release-refused", "mpa.seed-released"]
    sealed = Path(config.seed.file).read_bytes()
    assert b"PRIVATE" not in sealed and b"hvs." not in sealed and read_sealed(config.seed.file)["version"] == 2


def test_both_files_and_the_token_open_nothing(strongroom, tmp_path, idp, receiver):
    """The old attack: whoever reads the sealed seed and the token beside it still needs an accepted attestation."""
    config, _ = _seal(strongroom, tmp_path, idp, receiver, f"seed-{next(_NAMES)}", [TRUSTED])
    sealed = read_sealed(config.seed.file)
    token = Path(config.seed.token_file).read_text()
    url = f"{strongroom.addr}/v1/transit/decrypt/{config.seed.transit_key}"
    aad = base64.b64encode(b"strongroom-broker-seed/v2").decode()
    body = {"ciphertext": sealed["ciphertext"], "associated_data": aad}
    for who in (token, strongroom.root_token):
        r = httpx.post(url, json=body, headers={"X-Vault-Token": who}, timeout=10)
        assert r.status_code == 400 and "bound to an attestation policy" in r.text and "plaintext" not in r.text
    # a document from a CA of the attacker's own, or from a debug-mode enclave, is refused
    me = Recipient()
    forged = AttestationCA.generate().document({0: bytes.fromhex(TRUSTED)}, public_key=me.public_der)
    debug = load_or_create_ca(config.seed.local_ca_file, "x").document({0: bytes(48)}, public_key=me.public_der)
    for document, why in ((forged, "trusted root"), (debug, "debug-mode")):
        r = httpx.post(url, json={**body, "attestation_document": base64.b64encode(document).decode()},
                       headers={"X-Vault-Token": token}, timeout=10)
        assert r.status_code == 400 and why in r.text, r.text
    # and the broker itself, attesting another build, stays sealed
    with pytest.raises(SeedSealed, match="not allowed"):
        unseal(config, _attestor(config, OTHER))


def test_the_key_file_stand_in_is_gone(tmp_path, idp, receiver):
    raw = base_config(tmp_path, idp, receiver)
    raw["seed"]["kek_file"] = str(tmp_path / "kek")
    with pytest.raises(ConfigError, match="kek_file"):
        parse_config(raw, tmp_path)
    raw["seed"].pop("kek_file")
    raw["seed"].pop("token_file")
    with pytest.raises(ConfigError, match="token_file"):
        parse_config(raw, tmp_path)


def test_broker_deploy_token_updates_exactly_the_seed_keys_policy(strongroom, make_broker, tmp_path, idp, receiver):
    """Two approvers → a token that may change this key's PCR lists and nothing else → the new build opens."""
    config, seed = _seal(strongroom, tmp_path, idp, receiver, "broker-seed", [TRUSTED])
    root = strongroom.http()
    root.post("/v1/sys/policies/acl/broker-deploy", json={"policy": deploy_policy("transit", "broker-seed")}
              ).raise_for_status()
    root.post("/v1/sys/policies/acl/mpa-broker", json={"policy": 'path "auth/token/create/mpa-deploy" '
                                                                   '{ capabilities = ["update"] }'}).raise_for_status()
    root.post("/v1/auth/token/roles/mpa-deploy", json={"allowed_policies": ["broker-deploy"], "orphan": True}
              ).raise_for_status()
    broker_token = root.post("/v1/auth/token/create", json={"policies": ["mpa-broker"]}).json()["auth"]["client_token"]
    kind = {"type": "broker-deploy", "request_groups": ["security"], "approve_groups": ["platform-leads", "security"],
            "token_role": "mpa-deploy"}
    broker = make_broker(strongroom=(strongroom.addr, broker_token), **{"broker-deploy": kind})
    req = broker.request("sam", kind="broker-deploy", reason="Deploy release 2.4.1 built from tag v2.4.1",
                         params={"measurement": OTHER})
    assert broker.review("bob", req["id"]).json()["request"]["state"] == "pending"  # one approver is not enough
    assert broker.fetch("sam", req["id"]).status_code == 409
    assert broker.review("carol", req["id"]).json()["request"]["state"] == "approved"
    cred = broker.fetch("sam", req["id"]).json()["credential"]
    assert cred["path"] == "transit/keys/broker-seed/attestation" and cred["measurement"] == OTHER
    with pytest.raises(SeedSealed):
        unseal(config, _attestor(config, OTHER))
    deployer = SeedServer(strongroom.addr, cred["token"], "transit", "broker-seed")
    assert deployer.allow_measurement(OTHER) == sorted([TRUSTED, OTHER])
    opened, measured = unseal(config, _attestor(config, OTHER))
    assert opened == seed and measured == OTHER
    # the token can neither decrypt, nor swap the trusted root, nor touch another key
    with httpx.Client(base_url=strongroom.addr, headers={"X-Vault-Token": cred["token"]}, timeout=10) as c:
        assert c.post("/v1/transit/decrypt/broker-seed", json={"ciphertext": "vault:v1:AAAA"}).status_code == 403
        r = c.post("/v1/transit/keys/broker-seed/attestation", json={"root_certificate": "x", "pcr0": [OTHER]})
        assert r.status_code == 403
        assert c.post("/v1/transit/keys/other/attestation", json={"pcr0": [OTHER]}).status_code == 403
        assert c.post("/v1/transit/keys/broker-seed/config", json={"deletion_allowed": True}).status_code == 403


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


def test_seed_never_in_repr():
    seed = SeedKeys(signing_key(), "hvs.broker-token")
    assert "PRIVATE" not in repr(seed) and "hvs." not in repr(seed)


def test_broker_deploy_measurement_validated(broker):
    r = broker.as_("sam").post("/v1/requests", json={"kind": "broker-deploy", "reason": "Deploy release 2.4.1 now",
                                                     "params": {"measurement": "not-hex"}})
    assert r.status_code == 400 and "SHA-384" in r.json()["errors"][0]
