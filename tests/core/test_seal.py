"""Init, unseal, seal, generate-root and rekey through the real HTTP API with hvac."""

from __future__ import annotations

import base64
import dis
import functools
import itertools
import time

import httpx
import hvac
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom import crypto
from strongroom.core.logical import InvalidRequest
from strongroom.core.seal import KeyCollector

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


# --- Shamir secret sharing (strongroom.crypto): Vault's scheme, checked against an independent reference ----------
# The reference below is deliberately naive and obviously correct: carry-less multiplication followed by long division
# by the AES polynomial x^8+x^4+x^3+x+1 (0x11b), powers by repeated multiplication, inverses by search, polynomials
# evaluated term by term. Vault's layout: a share is the polynomial's values for each secret byte, then one x byte.

def ref_mul(a: int, b: int) -> int:
    product = 0
    for i in range(8):
        if (b >> i) & 1:
            product ^= a << i
    for bit in range(14, 7, -1):
        if (product >> bit) & 1:
            product ^= 0x11B << (bit - 8)
    return product


def ref_pow(a: int, k: int) -> int:
    r = 1
    for _ in range(k):
        r = ref_mul(r, a)
    return r


@functools.cache
def ref_inv(a: int) -> int:
    return next(b for b in range(1, 256) if ref_mul(a, b) == 1)


def ref_eval(coefficients: list[int], x: int) -> int:
    y = 0
    for k, c in enumerate(coefficients):
        y ^= ref_mul(c, ref_pow(x, k))
    return y


def ref_interpolate(points: list[tuple[int, int]], x: int) -> int:
    """Lagrange interpolation at x through (xi, yi), in the reference arithmetic."""
    total = 0
    for i, (xi, yi) in enumerate(points):
        term = yi
        for j, (xj, _) in enumerate(points):
            if i != j:
                term = ref_mul(term, ref_mul(x ^ xj, ref_inv(xi ^ xj)))
        total ^= term
    return total


def vault_split(secret: bytes, xs: list[int], coefficient_rows: list[list[int]]) -> list[bytes]:
    """Vault's Split with fixed coefficients (row i: the polynomial of secret byte i, constant term first)."""
    return [bytes([ref_eval(row, x) for row in coefficient_rows] + [x]) for x in xs]


# Vectors made with the reference for secret b"strongroom", threshold 3, x = 1, 2, 0x80, 0xff and coefficients
# c_ij = (37*i + 11*j + 5) mod 256; pinned here so that a change of layout or field shows as a failure.
VECTOR_SECRET = b"strongroom"
VECTOR_XS = [1, 2, 0x80, 0xFF]
VECTOR_ROWS = [[b] + [(37 * i + 11 * j + 5) % 256 for j in (1, 2)] for i, b in enumerate(VECTOR_SECRET)]
VECTOR_SHARES = ["78014d9a657a6562145801", "3f05498fb7937c31086c02", "c1260536cdc36e8252cf80", "9c4d5de4fc73eec5f44eff"]


def test_field_arithmetic_matches_the_reference_and_fips_197():
    assert crypto._gf_mul(0x57, 0x83) == 0xC1  # FIPS-197 section 4.2
    assert crypto._gf_mul(0x57, 0x13) == 0xFE
    assert crypto._gf_mul(0x53, 0xCA) == 0x01
    for a in range(256):
        for b in range(256):
            assert crypto._gf_mul(a, b) == ref_mul(a, b), (a, b)
    for a in range(1, 256):
        assert crypto._gf_inv(a) == ref_inv(a)
        assert crypto._gf_div(ref_mul(a, 0x1D), a) == 0x1D


def test_field_multiplication_has_no_secret_dependent_branches_or_table_lookups():
    # the only control flow in _gf_mul is its fixed eight-round loop; _gf_inv is straight-line; neither indexes a table
    for fn in (crypto._gf_mul, crypto._gf_inv):
        ops = {ins.opname for ins in dis.get_instructions(fn)}
        assert not {o for o in ops if "JUMP_IF" in o or o.startswith("POP_JUMP")}, (fn.__name__, ops)
        assert "BINARY_SUBSCR" not in ops and "COMPARE_OP" not in ops, (fn.__name__, ops)
    assert not hasattr(crypto, "_EXP") and not hasattr(crypto, "_LOG")


def test_known_vectors_in_vaults_layout():
    shares = vault_split(VECTOR_SECRET, VECTOR_XS, VECTOR_ROWS)
    assert [s.hex() for s in shares] == VECTOR_SHARES
    assert all(len(s) == len(VECTOR_SECRET) + 1 and s[-1] == x for s, x in zip(shares, VECTOR_XS, strict=True))
    for subset in itertools.combinations(shares, 3):
        assert crypto.shamir_combine(list(subset)) == VECTOR_SECRET
    assert crypto.shamir_combine(shares) == VECTOR_SECRET  # more than the threshold works too
    assert crypto.shamir_combine(shares[:2]) != VECTOR_SECRET


@settings(max_examples=60, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=40),
    xs=st.lists(st.integers(1, 255), min_size=2, max_size=8, unique=True),
    data=st.data(),
)
def test_combine_recovers_any_vault_split_with_fixed_coefficients(secret, xs, data):
    threshold = data.draw(st.integers(2, len(xs)))
    rows = [[b] + data.draw(st.lists(st.integers(0, 255), min_size=threshold - 1, max_size=threshold - 1))
            for b in secret]
    shares = vault_split(secret, xs, rows)
    subset = data.draw(st.lists(st.sampled_from(shares), min_size=threshold, max_size=len(shares), unique=True))
    assert crypto.shamir_combine(subset) == secret


@settings(max_examples=50, deadline=None)
@given(secret=st.binary(min_size=1, max_size=32), data=st.data())
def test_split_then_any_threshold_subset_reconstructs(secret, data):
    n = data.draw(st.integers(2, 10))
    t = data.draw(st.integers(2, n))
    shares = crypto.shamir_split(secret, n, t)
    xs = [s[-1] for s in shares]
    assert len(shares) == n and len(set(xs)) == n and 0 not in xs
    assert all(len(s) == len(secret) + 1 for s in shares)
    subset = data.draw(st.permutations(shares).map(lambda p: p[: data.draw(st.integers(t, n))]))
    assert crypto.shamir_combine(list(subset)) == secret
    # every share lies on one polynomial of degree t-1 whose constant term is the secret (reference arithmetic)
    basis = shares[:t]
    for share in shares[t:]:
        for idx in range(len(secret)):
            assert ref_interpolate([(s[-1], s[idx]) for s in basis], share[-1]) == share[idx]
    assert bytes(ref_interpolate([(s[-1], s[idx]) for s in basis], 0) for idx in range(len(secret))) == secret


@settings(max_examples=20, deadline=None)
@given(secret=st.binary(min_size=1, max_size=2), data=st.data())
def test_fewer_than_threshold_shares_leave_every_secret_equally_possible(secret, data):
    # For t-1 real shares, each of the 256 values a missing t-th share could take completes them to a different
    # secret byte: the known shares are consistent with every candidate secret, each by exactly one polynomial, so
    # (with uniformly random coefficients) they say nothing about the secret.
    t = data.draw(st.integers(2, 5))
    n = data.draw(st.integers(t, 8))
    shares = crypto.shamir_split(secret, n, t)
    known = shares[: t - 1]
    used = {s[-1] for s in known}
    x_missing = data.draw(st.integers(1, 255).filter(lambda x: x not in used))
    for idx in range(len(secret)):
        completions = set()
        for y in range(256):
            parts = [bytes([s[idx], s[-1]]) for s in known] + [bytes([y, x_missing])]
            completions.add(crypto.shamir_combine(parts)[0])
        assert completions == set(range(256))


def test_duplicate_zero_and_malformed_parts_are_refused():
    shares = crypto.shamir_split(b"k" * 32, 5, 3)
    with pytest.raises(ValueError, match="duplicate part detected"):
        crypto.shamir_combine([shares[0], shares[1], shares[0]])
    relabelled = shares[1][:-1] + shares[0][-1:]  # a different share claiming the same x
    with pytest.raises(ValueError, match="duplicate part detected"):
        crypto.shamir_combine([shares[0], relabelled, shares[2]])
    zero_x = shares[2][:-1] + b"\x00"  # x = 0 would be the secret itself; never a valid share
    with pytest.raises(ValueError, match="x coordinate zero"):
        crypto.shamir_combine([shares[0], shares[1], zero_x])
    with pytest.raises(ValueError, match="same length"):
        crypto.shamir_combine([shares[0], shares[1][:-2] + shares[1][-1:]])
    with pytest.raises(ValueError, match="less than two parts"):
        crypto.shamir_combine([shares[0]])
    for n, t in ((2, 3), (256, 3), (5, 1)):
        with pytest.raises(ValueError):
            crypto.shamir_split(b"secret", n, t)
    with pytest.raises(ValueError):
        crypto.shamir_split(b"", 3, 2)


def test_a_repeated_unseal_key_is_ignored_and_wrong_sizes_are_refused():
    shares = crypto.shamir_split(b"u" * 32, 3, 2)
    collector = KeyCollector(threshold=2)
    assert collector.add(shares[0]) is False
    assert collector.add(bytes(shares[0])) is False  # the same key again: not counted, as in Vault
    assert collector.progress == 1
    for bad in (b"short", b"x" * 34):
        with pytest.raises(InvalidRequest):
            collector.add(bad)
    assert collector.progress == 1
    assert collector.add(shares[2]) is True
    assert crypto.shamir_combine(collector.parts) == b"u" * 32


def test_combining_32_byte_shares_is_fast():
    shares = crypto.shamir_split(crypto.new_key(), 10, 10)
    started = time.perf_counter()
    for _ in range(10):
        crypto.shamir_combine(shares)
    assert (time.perf_counter() - started) / 10 < 0.1  # an unseal of the largest sensible threshold, well under 100 ms
