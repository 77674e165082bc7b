"""Init, unseal, seal, generate-root and rekey through the real HTTP API with hvac."""

from __future__ import annotations

import base64

import httpx
import hvac
import pytest

INIT_CONFIG = """
storage "sqlite" { path = "{storage}" }
listener "tcp" {
  address     = "127.0.0.1:{port}"
  tls_disable = true
}
log_level = "warn"
"""


@pytest.fixture
def fresh(server_factory):
    """An uninitialised server started from a configuration file."""
    return server_factory(config_text=INIT_CONFIG)


def test_init_unseal_seal_unseal_with_five_shares_threshold_three(fresh):
    client = hvac.Client(url=fresh.addr)
    assert client.sys.is_initialized() is False
    result = client.sys.initialize(secret_shares=5, secret_threshold=3)
    keys, keys_b64, root = result["keys"], result["keys_base64"], result["root_token"]
    assert len(keys) == 5 and len(keys_b64) == 5 and len(set(keys)) == 5
    assert root.startswith("hvs.") and len(root) == 28
    assert client.sys.is_initialized() is True
    assert client.sys.is_sealed() is True

    # two keys are not enough; a repeated key does not count twice
    client.sys.submit_unseal_key(keys[0])
    status = client.sys.submit_unseal_key(keys[0])
    assert status["sealed"] is True and status["progress"] == 1
    status = client.sys.submit_unseal_key(keys_b64[1])  # base64 works as well as hex
    assert status["sealed"] is True and status["progress"] == 2
    status = client.sys.submit_unseal_key(keys[2])
    assert status["sealed"] is False and status["t"] == 3 and status["n"] == 5

    client.token = root
    client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    client.secrets.kv.v2.create_or_update_secret("app/cfg", secret={"v": "survives-seal"})

    client.sys.seal()
    assert client.sys.is_sealed() is True
    with pytest.raises(hvac.exceptions.VaultDown):
        client.secrets.kv.v2.read_secret_version("app/cfg")

    # any three of the five, in any order
    client.sys.submit_unseal_keys([keys[4], keys[1], keys[3]])
    assert client.sys.is_sealed() is False
    assert client.secrets.kv.v2.read_secret_version("app/cfg")["data"]["data"] == {"v": "survives-seal"}


def test_wrong_unseal_keys_do_not_unseal_and_reset_discards_progress(fresh):
    client = hvac.Client(url=fresh.addr)
    result = client.sys.initialize(secret_shares=3, secret_threshold=2)
    other = hvac.Client(url=fresh.addr)
    client.sys.submit_unseal_key(result["keys"][0])
    assert client.sys.read_seal_status()["progress"] == 1
    other.sys.submit_unseal_key(reset=True)
    assert client.sys.read_seal_status()["progress"] == 0
    # a forged share combines to the wrong key and fails to open the root key
    forged = bytes.fromhex(result["keys"][0])
    forged = bytes([forged[0] ^ 0xFF]) + forged[1:]
    client.sys.submit_unseal_key(result["keys"][1])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.submit_unseal_key(forged.hex())
    assert client.sys.is_sealed() is True
    resp = httpx.put(f"{fresh.addr}/v1/sys/unseal", json={"key": "not-hex-or-base64!"})
    assert resp.status_code == 400 and resp.json()["errors"]


def test_sealed_server_answers_503_except_unauthenticated_sys(fresh):
    client = hvac.Client(url=fresh.addr)
    result = client.sys.initialize(secret_shares=1, secret_threshold=1)
    for path in ("secret/data/x", "sys/mounts", "auth/token/lookup-self", "sys/policies/acl"):
        resp = httpx.get(f"{fresh.addr}/v1/{path}", headers={"X-Vault-Token": result["root_token"]})
        assert resp.status_code == 503, path
        assert resp.json() == {"errors": ["Vault is sealed"]}
    assert httpx.get(f"{fresh.addr}/v1/sys/seal-status").status_code == 200
    assert httpx.get(f"{fresh.addr}/v1/sys/health").status_code == 503
    assert httpx.get(f"{fresh.addr}/v1/sys/health?sealedcode=299").status_code == 299
    assert httpx.get(f"{fresh.addr}/v1/sys/init").json() == {"initialized": True}


def test_health_codes_for_uninitialised_and_active(fresh):
    assert httpx.get(f"{fresh.addr}/v1/sys/health").status_code == 501
    assert httpx.get(f"{fresh.addr}/v1/sys/health?uninitcode=200").status_code == 200
    client = hvac.Client(url=fresh.addr)
    keys = client.sys.initialize(secret_shares=1, secret_threshold=1)["keys"]
    client.sys.submit_unseal_key(keys[0])
    body = httpx.get(f"{fresh.addr}/v1/sys/health").json()
    assert body["initialized"] is True and body["sealed"] is False and body["standby"] is False
    assert httpx.head(f"{fresh.addr}/v1/sys/health").status_code == 200
    assert httpx.get(f"{fresh.addr}/v1/sys/health?activecode=204").status_code == 204
    leader = httpx.get(f"{fresh.addr}/v1/sys/leader").json()
    assert leader["ha_enabled"] is False


def test_seal_needs_sudo(server):
    client = server.client()
    client.sys.create_or_update_policy("no-sudo", 'path "sys/seal" { capabilities = ["update"] }')
    token = client.auth.token.create(policies=["no-sudo"])["auth"]["client_token"]
    with pytest.raises(hvac.exceptions.Forbidden):
        server.client(token).sys.seal()
    assert client.sys.is_sealed() is False
    client.sys.create_or_update_policy("sudo", 'path "sys/seal" { capabilities = ["update", "sudo"] }')
    token = client.auth.token.create(policies=["sudo"])["auth"]["client_token"]
    server.client(token).sys.seal()
    assert client.sys.is_sealed() is True


def test_generate_root_with_otp_decodes_to_a_working_root_token(fresh):
    client = hvac.Client(url=fresh.addr)
    result = client.sys.initialize(secret_shares=3, secret_threshold=2)
    client.sys.submit_unseal_keys(result["keys"][:2])
    client.token = result["root_token"]

    otp = "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZab"[i] for i in range(28))
    assert len(otp) == 28
    start = client.sys.start_root_token_generation(otp=otp)
    assert start["started"] is True and start["required"] == 2
    nonce = start["nonce"]
    step = client.sys.generate_root(key=result["keys"][0], nonce=nonce)
    assert step["progress"] == 1 and step["complete"] is False
    done = client.sys.generate_root(key=result["keys"][2], nonce=nonce)
    assert done["complete"] is True
    encoded = done["encoded_token"]
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    new_root = bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True)).decode()
    assert new_root.startswith("hvs.") and new_root != result["root_token"]

    fresh_client = hvac.Client(url=fresh.addr, token=new_root)
    assert fresh_client.auth.token.lookup_self()["data"]["policies"] == ["root"]
    fresh_client.sys.enable_secrets_engine("kv", path="made-by-new-root", options={"version": "2"})


def test_generate_root_refuses_wrong_otp_length_and_wrong_nonce(fresh):
    client = hvac.Client(url=fresh.addr)
    result = client.sys.initialize(secret_shares=1, secret_threshold=1)
    client.sys.submit_unseal_key(result["keys"][0])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.start_root_token_generation(otp="short")
    generated = httpx.put(f"{fresh.addr}/v1/sys/generate-root/attempt", json={}).json()
    assert len(generated["otp"]) == 28
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.generate_root(key=result["keys"][0], nonce="wrong-nonce")
    client.sys.cancel_root_generation()
    assert client.sys.read_root_generation_progress()["started"] is False


def test_rekey_replaces_the_unseal_keys(fresh):
    client = hvac.Client(url=fresh.addr)
    result = client.sys.initialize(secret_shares=3, secret_threshold=2)
    client.sys.submit_unseal_keys(result["keys"][:2])
    client.token = result["root_token"]
    start = client.sys.start_rekey(secret_shares=4, secret_threshold=3)
    nonce = start["nonce"]
    client.sys.rekey(result["keys"][0], nonce=nonce)
    done = client.sys.rekey(result["keys"][1], nonce=nonce)
    assert done["complete"] is True and len(done["keys"]) == 4
    client.sys.seal()
    # the old keys no longer open the server (the new threshold is three)
    client.sys.submit_unseal_key(result["keys"][0])
    client.sys.submit_unseal_key(result["keys"][1])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.submit_unseal_key(result["keys"][2])
    assert client.sys.is_sealed()
    client.sys.submit_unseal_key(reset=True)
    client.sys.submit_unseal_keys(done["keys"][1:4])
    assert client.sys.is_sealed() is False
    assert client.sys.read_seal_status()["n"] == 4


def test_rotate_adds_a_key_term_and_old_data_stays_readable(server):
    client = server.client()
    client.secrets.kv.v2.create_or_update_secret("before-rotate", secret={"v": "1"})
    term = client.sys.get_encryption_key_status()["data"]["term"]
    client.sys.rotate_encryption_key()
    assert client.sys.get_encryption_key_status()["data"]["term"] == term + 1
    client.secrets.kv.v2.create_or_update_secret("after-rotate", secret={"v": "2"})
    server.restart()
    client = server.client()
    assert client.secrets.kv.v2.read_secret_version("before-rotate")["data"]["data"] == {"v": "1"}
    assert client.secrets.kv.v2.read_secret_version("after-rotate")["data"]["data"] == {"v": "2"}
