"""PGP-wrapped key material: unseal keys and root tokens encrypted to operators' OpenPGP keys, as Vault does.

Each operator is a throw-away key pair made by Debian's ``gpg`` in its own GNUPGHOME under pytest's tmp_path; what the
server returns is decrypted with ``gpg --decrypt`` and then used (unseal, root token), so the tests prove the whole
path a real operator walks. Driven through hvac (``initialize``, ``start_rekey``, ``read_backup_keys`` ...) and httpx.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import hvac
import pytest

from tests.conftest import STRONGROOM, StrongroomServer

CONFIG = """
storage "sqlite" { path = "{storage}" }
listener "tcp" {
  address     = "127.0.0.1:{port}"
  tls_disable = true
}
log_level = "warn"
"""


@dataclass
class Operator:
    home: Path
    fingerprint: str  # lowercase, as Vault reports it
    public_b64: str  # base64 of the binary public key, as `vault operator init -pgp-keys` sends it

    def gpg(self, *args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--quiet", *args],
            input=data, capture_output=True, timeout=60, check=False,
        )

    def decrypt(self, message: bytes) -> bytes:
        out = self.gpg("--decrypt", data=message)
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        return out.stdout


def make_operator(home: Path, name: str, *, can_encrypt: bool = True) -> Operator:
    home.mkdir(mode=0o700)
    subkey = "Subkey-Type: ECDH\nSubkey-Curve: cv25519\n" if can_encrypt else ""
    spec = (
        f"%no-protection\nKey-Type: EDDSA\nKey-Curve: ed25519\n{subkey}"
        f"Name-Real: {name}\nName-Email: {name}@example.org\nExpire-Date: 0\n%commit\n"
    )
    op = Operator(home, "", "")
    made = op.gpg("--gen-key", data=spec.encode())
    assert made.returncode == 0, made.stderr.decode(errors="replace")
    listing = op.gpg("--with-colons", "--fingerprint", "--list-keys").stdout.decode()
    op.fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")).lower()
    op.public_b64 = base64.b64encode(op.gpg("--export", op.fingerprint).stdout).decode()
    return op


@pytest.fixture(scope="module")
def operators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Operator]]:
    base = tmp_path_factory.mktemp("gpg")
    ops = [make_operator(base / f"op{i}", f"operator{i}") for i in range(4)]
    ops.append(make_operator(base / "signer", "signer", can_encrypt=False))  # operators[4]: a sign-only key
    yield ops
    for op in ops:  # key generation and decryption start a gpg-agent per home: stop each one
        subprocess.run(["gpgconf", "--homedir", str(op.home), "--kill", "all"], capture_output=True, check=False)


def start_server(tmp_path_factory: pytest.TempPathFactory) -> StrongroomServer:
    return StrongroomServer(tmp_path_factory.mktemp("srv"), config_text=CONFIG).start()


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory, operators: list[Operator]) -> Iterator[dict]:
    """A server initialised with three PGP-wrapped shares (threshold two) and a PGP-wrapped root token."""
    srv = start_server(tmp_path_factory)
    client = hvac.Client(url=srv.addr)
    result = client.sys.initialize(
        secret_shares=3,
        secret_threshold=2,
        pgp_keys=[op.public_b64 for op in operators[:3]],
        root_token_pgp_key=operators[3].public_b64,
    )
    yield {"server": srv, "result": result}
    srv.stop()


def unseal_with(addr: str, keys: list[str]) -> dict:
    status: dict = {}
    for key in keys:
        status = httpx.put(f"{addr}/v1/sys/unseal", json={"key": key}, timeout=10).json()
    return status


def test_init_shares_and_root_token_are_encrypted_to_each_operator(initialised, operators):
    srv, result = initialised["server"], initialised["result"]
    assert len(result["keys"]) == 3 and len(result["keys_base64"]) == 3
    shares = []
    for i, (hex_key, b64_key) in enumerate(zip(result["keys"], result["keys_base64"], strict=True)):
        message = base64.b64decode(b64_key)
        assert bytes.fromhex(hex_key) == message  # keys and keys_base64 carry the same PGP message
        assert len(message) > 33  # an OpenPGP message, not a bare 33-byte share
        share_hex = operators[i].decrypt(message).decode()
        assert len(bytes.fromhex(share_hex)) == 33  # Vault's layout: 32 y-bytes and one x byte, hex-encoded
        shares.append(share_hex)
        # nobody else can read operator i's share
        other = operators[(i + 1) % 3].gpg("--decrypt", data=message)
        assert other.returncode != 0
    assert len(set(shares)) == 3

    root = operators[3].decrypt(base64.b64decode(result["root_token"])).decode()
    assert root.startswith("hvs.") and root not in result["root_token"]

    assert hvac.Client(url=srv.addr).sys.is_sealed() is True
    # the encrypted form does not unseal; the decrypted shares do, any two of three
    bad = httpx.put(f"{srv.addr}/v1/sys/unseal", json={"key": result["keys_base64"][0]}, timeout=10)
    assert bad.status_code == 400
    assert hvac.Client(url=srv.addr).sys.is_sealed() is True
    httpx.put(f"{srv.addr}/v1/sys/unseal", json={"reset": True}, timeout=10)
    status = unseal_with(srv.addr, [shares[2], shares[0]])
    assert status["sealed"] is False

    client = hvac.Client(url=srv.addr, token=root)
    assert client.auth.token.lookup_self()["data"]["policies"] == ["root"]
    initialised["shares"] = shares
    initialised["root"] = root


def test_rekey_with_pgp_keys_and_backup(initialised, operators):
    srv, root = initialised["server"], initialised["root"]
    old_shares = initialised["shares"]
    client = hvac.Client(url=srv.addr, token=root)
    chosen = [operators[3], operators[1]]
    start = client.sys.start_rekey(
        secret_shares=2, secret_threshold=2, pgp_keys=[op.public_b64 for op in chosen], backup=True
    )
    assert start["started"] is True and start["backup"] is True
    assert start["pgp_fingerprints"] == [op.fingerprint for op in chosen]
    assert client.sys.read_rekey_progress()["pgp_fingerprints"] == [op.fingerprint for op in chosen]

    client.sys.rekey(old_shares[0], nonce=start["nonce"])
    done = client.sys.rekey(old_shares[1], nonce=start["nonce"])
    assert done["complete"] is True and done["backup"] is True
    assert done["pgp_fingerprints"] == [op.fingerprint for op in chosen]
    new_shares = [op.decrypt(base64.b64decode(k)).decode() for op, k in zip(chosen, done["keys_base64"], strict=True)]

    backup = client.sys.read_backup_keys()
    assert backup["data"]["nonce"] == start["nonce"]
    assert backup["data"]["keys"] == {op.fingerprint: [k] for op, k in zip(chosen, done["keys"], strict=True)}
    assert backup["data"]["keys_base64"] == {
        op.fingerprint: [k] for op, k in zip(chosen, done["keys_base64"], strict=True)
    }

    # the backup needs sudo, as in Vault
    client.sys.create_or_update_policy("backup-no-sudo", 'path "sys/rekey/backup" { capabilities = ["read"] }')
    weak = client.auth.token.create(policies=["backup-no-sudo"])["auth"]["client_token"]
    assert httpx.get(f"{srv.addr}/v1/sys/rekey/backup", headers={"X-Vault-Token": weak}).status_code == 403
    client.sys.create_or_update_policy(
        "backup-sudo", 'path "sys/rekey/backup" { capabilities = ["read", "delete", "sudo"] }'
    )
    strong = client.auth.token.create(policies=["backup-sudo"])["auth"]["client_token"]
    assert hvac.Client(url=srv.addr, token=strong).sys.read_backup_keys()["data"]["nonce"] == start["nonce"]

    # the new shares, recovered from the backup copies, unseal; the old ones no longer do
    client.sys.seal()
    backup_shares = [
        op.decrypt(bytes.fromhex(backup["data"]["keys"][op.fingerprint][0])).decode() for op in chosen
    ]
    assert backup_shares == new_shares
    httpx.put(f"{srv.addr}/v1/sys/unseal", json={"key": old_shares[0]}, timeout=10)
    assert httpx.put(f"{srv.addr}/v1/sys/unseal", json={"key": old_shares[2]}, timeout=10).status_code == 400
    httpx.put(f"{srv.addr}/v1/sys/unseal", json={"reset": True}, timeout=10)
    assert unseal_with(srv.addr, backup_shares)["sealed"] is False
    initialised["shares"] = new_shares

    # DELETE removes the backup; reading it then is a 400 with Vault's message
    deleted = httpx.delete(f"{srv.addr}/v1/sys/rekey/backup", headers={"X-Vault-Token": strong})
    assert deleted.status_code == 204
    gone = httpx.get(f"{srv.addr}/v1/sys/rekey/backup", headers={"X-Vault-Token": root})
    assert gone.status_code == 400 and gone.json() == {"errors": ["no backed-up keys found"]}


def test_generate_root_encrypted_to_a_pgp_key(initialised, operators):
    srv, shares = initialised["server"], initialised["shares"]
    client = hvac.Client(url=srv.addr)
    start = client.sys.start_root_token_generation(pgp_key=operators[2].public_b64)
    assert start["started"] is True and start["pgp_fingerprint"] == operators[2].fingerprint
    assert "otp" not in start or not start["otp"]
    assert client.sys.read_root_generation_progress()["pgp_fingerprint"] == operators[2].fingerprint
    client.sys.generate_root(key=shares[0], nonce=start["nonce"])
    done = client.sys.generate_root(key=shares[1], nonce=start["nonce"])
    assert done["complete"] is True and done["pgp_fingerprint"] == operators[2].fingerprint
    assert done["encoded_root_token"] == done["encoded_token"]
    token = operators[2].decrypt(base64.b64decode(done["encoded_token"])).decode()
    assert token.startswith("hvs.") and token != initialised["root"]
    assert operators[0].gpg("--decrypt", data=base64.b64decode(done["encoded_token"])).returncode != 0
    new_root = hvac.Client(url=srv.addr, token=token)
    assert new_root.auth.token.lookup_self()["data"]["policies"] == ["root"]
    new_root.sys.enable_secrets_engine("kv", path="made-by-pgp-root", options={"version": "2"})


def test_rekey_and_generate_root_refuse_bad_pgp_input_and_change_nothing(initialised, operators):
    srv, root = initialised["server"], initialised["root"]
    http = httpx.Client(base_url=srv.addr, headers={"X-Vault-Token": root}, timeout=30)
    keys = [op.public_b64 for op in operators[:2]]
    cases = [
        ({"secret_shares": 3, "secret_threshold": 2, "pgp_keys": keys}, "incorrect number of PGP keys for rekey"),
        (
            {"secret_shares": 2, "secret_threshold": 2, "backup": True},
            "cannot request a backup of the new keys without providing PGP keys for encryption",
        ),
        ({"secret_shares": 2, "secret_threshold": 2, "pgp_keys": ["keybase:jefferai", keys[0]]}, "keybase"),
        ({"secret_shares": 2, "secret_threshold": 2, "pgp_keys": [keys[0], "bm90IGEga2V5"]}, "error parsing"),
        ({"secret_shares": 2, "secret_threshold": 2, "pgp_keys": "not-a-list"}, "must be a list"),
    ]
    for body, message in cases:
        resp = http.put("/v1/sys/rekey/init", json=body)
        assert resp.status_code == 400, body
        assert message in resp.json()["errors"][0], resp.json()
        assert http.get("/v1/sys/rekey/init").json()["started"] is False
    resp = http.put("/v1/sys/generate-root/attempt", json={"pgp_key": "%%% not base64"})
    assert resp.status_code == 400 and "error decoding given PGP key" in resp.json()["errors"][0]
    assert http.get("/v1/sys/generate-root/attempt").json()["started"] is False


def test_init_refuses_bad_pgp_input_and_stays_uninitialised(tmp_path_factory, operators):
    srv = start_server(tmp_path_factory)
    try:
        keys = [op.public_b64 for op in operators[:3]]
        secret_key = base64.b64encode(operators[0].gpg("--export-secret-keys", operators[0].fingerprint).stdout)
        two_in_one = base64.b64encode(base64.b64decode(keys[1]) + base64.b64decode(keys[2])).decode()
        cases = [
            (
                {"secret_shares": 3, "secret_threshold": 2, "pgp_keys": keys[:2]},
                "invalid seal configuration: count mismatch between number of provided PGP keys and number of shares",
            ),
            ({"secret_shares": 2, "secret_threshold": 2, "pgp_keys": ["keybase:alice", keys[0]]}, "keybase"),
            ({"secret_shares": 2, "secret_threshold": 2, "pgp_keys": [keys[0], "***"]}, "error decoding"),
            ({"secret_shares": 2, "secret_threshold": 2, "pgp_keys": [keys[0], secret_key.decode()]}, "private key"),
            (  # a key that can only sign cannot receive a share
                {"secret_shares": 2, "secret_threshold": 2, "pgp_keys": [keys[0], operators[4].public_b64]},
                "error encrypting PGP message",
            ),
            (  # two keys in one entry: which operator would that be?
                {"secret_shares": 2, "secret_threshold": 2, "pgp_keys": [keys[0], two_in_one]},
                "more than one key",
            ),
            ({"secret_shares": 1, "secret_threshold": 1, "root_token_pgp_key": "aGVsbG8="}, "error parsing"),
            ({"secret_shares": 1, "secret_threshold": 1, "root_token_pgp_key": 7}, "root_token_pgp_key"),
        ]
        for body, message in cases:
            resp = httpx.put(f"{srv.addr}/v1/sys/init", json=body, timeout=30)
            assert resp.status_code == 400, (body, resp.text)
            assert resp.json()["errors"] and message in resp.json()["errors"][0], resp.json()
            assert httpx.get(f"{srv.addr}/v1/sys/init").json() == {"initialized": False}
            # secrets never echo back: the key material is not in the error
            assert all(k not in resp.text for k in keys)
    finally:
        srv.stop()


def test_operator_init_cli_with_pgp_key_files(tmp_path_factory, operators):
    srv = start_server(tmp_path_factory)
    try:
        files = tmp_path_factory.mktemp("keys")
        paths = []
        for i, op in enumerate(operators[:3]):
            path = files / f"op{i}.asc"
            if i == 0:  # armored, as `gpg --armor --export` writes it
                path.write_bytes(op.gpg("--armor", "--export", op.fingerprint).stdout)
            elif i == 1:  # binary
                path.write_bytes(base64.b64decode(op.public_b64))
            else:  # base64, as Vault's docs suggest (gpg --export | base64)
                path.write_text(op.public_b64 + "\n")
            paths.append(str(path))
        root_file = files / "root.asc"
        root_file.write_bytes(operators[3].gpg("--armor", "--export", operators[3].fingerprint).stdout)
        out = subprocess.run(
            [STRONGROOM, "operator", "init", "--key-shares", "3", "--key-threshold", "2", "--addr", srv.addr,
             "--pgp-keys", ",".join(paths), "--root-token-pgp-key", str(root_file)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        keys = [ln.split(": ", 1)[1] for ln in lines if ln.startswith("Unseal Key ")]
        root_b64 = next(ln.split(": ", 1)[1] for ln in lines if ln.startswith("Initial Root Token: "))
        assert len(keys) == 3
        shares = [op.decrypt(base64.b64decode(k)).decode() for op, k in zip(operators, keys, strict=False)]
        assert unseal_with(srv.addr, shares[1:])["sealed"] is False
        root = operators[3].decrypt(base64.b64decode(root_b64)).decode()
        assert hvac.Client(url=srv.addr, token=root).auth.token.lookup_self()["data"]["policies"] == ["root"]

        def cli(*args: str) -> str:
            done = subprocess.run(
                [STRONGROOM, "operator", "generate-root", "--addr", srv.addr, *args],
                capture_output=True, text=True, timeout=120, check=False,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        started = cli("--init", "--pgp-key", str(root_file))
        assert f"PGP Fingerprint: {operators[3].fingerprint}" in started and "OTP:" not in started
        cli(shares[0])
        finished = cli(shares[2]).splitlines()
        encoded = next(ln.split(": ", 1)[1] for ln in finished if ln.startswith("Encoded Token: "))
        new_root = operators[3].decrypt(base64.b64decode(encoded)).decode()
        assert new_root != root
        assert hvac.Client(url=srv.addr, token=new_root).auth.token.lookup_self()["data"]["policies"] == ["root"]
    finally:
        srv.stop()
