"""The KMS v2 plugin driven over its Unix socket by a client generated from the upstream k8s.io/kms api.proto.

One server and one plugin for the module; tests that rotate, seal or change the key state read the state they start
from instead of assuming an order.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
import subprocess

import grpc
import hvac
import pytest

from tests.conftest import STRONGROOM, wait_for

from .conftest import KEY, MOUNT, Plugin, key_id, plugin_token, seal, unseal

SEED = 32  # kube-apiserver's DEK seed size


def _latest(root: hvac.Client) -> int:
    return root.secrets.transit.read_key(KEY, mount_point=MOUNT)["data"]["latest_version"]


def _rpc_error(fn) -> grpc.RpcError:  # noqa: ANN001
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value


def test_status_is_v2_ok_with_the_key_version(plugin: Plugin, kms_server) -> None:  # noqa: ANN001
    st = plugin.status()
    assert st.version == "v2"
    assert st.healthz == "ok"
    assert st.key_id == key_id(_latest(kms_server.client()))
    assert len(st.key_id.encode()) <= 1024


def test_socket_is_owner_only(plugin: Plugin) -> None:
    mode = os.stat(plugin.socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) & 0o077 == 0, oct(mode)


def test_encrypt_decrypt_round_trip_is_real_transit_ciphertext(plugin: Plugin, kms_server) -> None:  # noqa: ANN001
    seed = secrets.token_bytes(SEED)
    resp = plugin.encrypt(seed)
    assert resp.key_id == plugin.status().key_id
    assert resp.ciphertext.startswith(f"vault:v{_latest(kms_server.client())}:".encode())
    assert 0 < len(resp.ciphertext) <= 1024 and seed not in resp.ciphertext
    assert dict(resp.annotations) == {"transit.strongroom.io": f"{MOUNT}/{KEY}".encode()}
    assert plugin.decrypt(resp) == seed
    # the same ciphertext opens through the transit API itself: nothing plugin-private wraps it
    opened = kms_server.client().secrets.transit.decrypt_data(KEY, resp.ciphertext.decode(), mount_point=MOUNT)
    assert opened["data"]["plaintext"] == base64.b64encode(seed).decode()
    # two encryptions of one seed differ (fresh nonce each time)
    assert plugin.encrypt(seed).ciphertext != resp.ciphertext


def test_rotation_changes_key_id_and_old_ciphertext_still_decrypts(plugin: Plugin, kms_server) -> None:  # noqa: ANN001
    root = kms_server.client()
    before = _latest(root)
    old_seed = secrets.token_bytes(SEED)
    old = plugin.encrypt(old_seed)
    assert old.key_id == key_id(before)

    root.secrets.transit.rotate_key(KEY, mount_point=MOUNT)
    st = plugin.status()
    assert st.healthz == "ok" and st.key_id == key_id(before + 1) != old.key_id
    new_seed = secrets.token_bytes(SEED)
    new = plugin.encrypt(new_seed)
    assert new.key_id == key_id(before + 1)
    assert new.ciphertext.startswith(f"vault:v{before + 1}:".encode())
    assert plugin.decrypt(old) == old_seed
    assert plugin.decrypt(new) == new_seed

    # a version the key no longer allows is refused, not answered from anywhere else
    root.secrets.transit.update_key_configuration(KEY, min_decryption_version=before + 1, mount_point=MOUNT)
    try:
        err = _rpc_error(lambda: plugin.decrypt(old))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert plugin.decrypt(new) == new_seed
    finally:
        root.secrets.transit.update_key_configuration(KEY, min_decryption_version=1, mount_point=MOUNT)
    assert plugin.decrypt(old) == old_seed


def test_bad_requests_are_refused_with_invalid_argument(plugin: Plugin) -> None:
    good = plugin.encrypt(secrets.token_bytes(SEED))
    version = int(good.key_id.rsplit(":v", 1)[1])
    cases = {
        "empty plaintext": lambda: plugin.encrypt(b""),
        "oversize plaintext": lambda: plugin.encrypt(b"x" * 4096),
        "another key's id": lambda: plugin.decrypt(good, key_id=key_id(version, key="other")),
        "another mount's id": lambda: plugin.decrypt(good, key_id=key_id(version, mount="elsewhere")),
        "key id of another version": lambda: plugin.decrypt(good, key_id=key_id(version + 7)),
        "empty key id": lambda: plugin.decrypt(good, key_id=""),
        "not a transit ciphertext": lambda: plugin.decrypt(good, ciphertext=b"k8s:enc:aescbc:v1:key1:xxxx"),
        "binary ciphertext": lambda: plugin.decrypt(good, ciphertext=b"\xff\xfe\x00vault:v1:AAAA"),
        "oversize ciphertext": lambda: plugin.decrypt(good, ciphertext=b"vault:v1:" + b"A" * 2000),
    }
    for name, call in cases.items():
        err = _rpc_error(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, err)
        assert "Traceback" not in (err.details() or "")


def test_tampered_ciphertext_fails_closed(plugin: Plugin) -> None:
    seed = secrets.token_bytes(SEED)
    good = plugin.encrypt(seed)
    head, body = good.ciphertext.rsplit(b":", 1)
    flipped = bytearray(base64.b64decode(body))
    flipped[-1] ^= 1
    tampered = head + b":" + base64.b64encode(bytes(flipped))
    err = _rpc_error(lambda: plugin.decrypt(good, ciphertext=tampered))
    assert err.code() != grpc.StatusCode.OK
    assert seed.hex() not in (err.details() or "")
    assert plugin.decrypt(good) == seed


def test_kms_plugin_policy_grants_exactly_that_key(plugin: Plugin, kms_server) -> None:  # noqa: ANN001
    root = kms_server.client()
    text = root.sys.read_policy("kms-plugin")["data"]["rules"]
    for path in (f"{MOUNT}/encrypt/{KEY}", f"{MOUNT}/decrypt/{KEY}", f"{MOUNT}/keys/{KEY}"):
        assert f'path "{path}"' in text
    root.secrets.transit.create_key("other", mount_point=MOUNT)
    with kms_server.http(plugin_token(root)) as http:
        b64 = "AAAA"
        assert http.post(f"/v1/{MOUNT}/encrypt/{KEY}", json={"plaintext": b64}).status_code == 200
        assert http.get(f"/v1/{MOUNT}/keys/{KEY}").status_code == 200
        refused = [
            http.post(f"/v1/{MOUNT}/encrypt/other", json={"plaintext": b64}),
            http.post(f"/v1/{MOUNT}/keys/{KEY}/rotate"),
            http.post(f"/v1/{MOUNT}/keys/{KEY}/config", json={"min_decryption_version": 1}),
            http.delete(f"/v1/{MOUNT}/keys/{KEY}"),
            http.get(f"/v1/{MOUNT}/export/encryption-key/{KEY}"),
            http.get(f"/v1/{MOUNT}/keys", params={"list": "true"}),
            http.get("/v1/secret/data/anything"),
        ]
        for r in refused:
            assert r.status_code == 403, (r.request.url, r.status_code, r.text)
            assert r.json()["errors"]


def test_token_file_rotation_is_picked_up(plugin: Plugin, kms_server) -> None:  # noqa: ANN001
    root = kms_server.client()
    assert plugin.status().healthz == "ok"
    old = plugin.token_file.read_text().strip()  # type: ignore[attr-defined]
    root.auth.token.revoke(old)
    plugin.token_file.write_text(plugin_token(root) + "\n")  # type: ignore[attr-defined]
    # the held token is now refused: the plugin re-reads the file once and carries on
    seed = secrets.token_bytes(SEED)
    assert plugin.decrypt(plugin.encrypt(seed)) == seed
    assert plugin.status().healthz == "ok"


def test_sealed_server_makes_status_unhealthy_and_calls_fail(plugin: Plugin, kms_server) -> None:  # noqa: ANN001
    seed = secrets.token_bytes(SEED)
    earlier = plugin.encrypt(seed)
    healthy = plugin.status()
    seal(kms_server)
    try:
        st = plugin.status()
        assert st.version == "v2"
        assert st.healthz != "ok" and "sealed" in st.healthz.lower(), st.healthz
        assert st.key_id == healthy.key_id  # the last key ID seen, so kube-apiserver does not rotate on an outage
        err = _rpc_error(lambda: plugin.encrypt(secrets.token_bytes(SEED)))
        assert err.code() == grpc.StatusCode.UNAVAILABLE, err
        # nothing is cached in the plugin: a DEK it opened a moment ago is refused too
        err = _rpc_error(lambda: plugin.decrypt(earlier))
        assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    finally:
        unseal(kms_server)
    wait_for(lambda: plugin.status().healthz == "ok", timeout=20, message="plugin healthy after unseal")
    assert plugin.decrypt(earlier) == seed


def test_unreachable_strongroom_is_unhealthy(tmp_path, unreachable_addr: str, kms_server) -> None:  # noqa: ANN001
    token_file = tmp_path / "token"
    token_file.write_text(plugin_token(kms_server.client()))
    p = Plugin(tmp_path, unreachable_addr, "--token-file", str(token_file))
    try:
        st = p.status()
        assert st.version == "v2" and st.healthz != "ok" and st.healthz
        assert st.key_id == ""  # never reached Strongroom, so no key ID to report
        err = _rpc_error(lambda: p.encrypt(secrets.token_bytes(SEED)))
        assert err.code() == grpc.StatusCode.UNAVAILABLE, err
        assert "Traceback" not in p.log_text()
    finally:
        p.stop()
    assert not os.path.exists(p.socket), "a stopped plugin removes its socket"


def test_cli_refuses_bad_arguments(tmp_path, kms_server) -> None:  # noqa: ANN001
    base = [STRONGROOM, "kms-plugin", "--addr", kms_server.addr]
    sock = f"unix://{tmp_path}/x.sock"
    tok = tmp_path / "token"
    tok.write_text("not-checked-before-start")
    empty = tmp_path / "empty"
    empty.write_text("")
    runs = {
        "no auth": base + ["--listen", sock, "--key", KEY],
        "both auths": base + ["--listen", sock, "--key", KEY, "--token-file", str(tok), "--k8s-role", "r"],
        "no key": base + ["--listen", sock, "--token-file", str(tok)],
        "relative socket": base + ["--listen", "unix://kms.sock", "--key", KEY, "--token-file", str(tok)],
        "relative socket, one slash": base + ["--listen", "unix:kms.sock", "--key", KEY, "--token-file", str(tok)],
        "tcp listen": base + ["--listen", "tcp://127.0.0.1:1", "--key", KEY, "--token-file", str(tok)],
        "bad key name": base + ["--listen", sock, "--key", "../sys", "--token-file", str(tok)],
        "empty token file": base + ["--listen", sock, "--key", KEY, "--token-file", str(empty)],
        "missing jwt file": base + ["--listen", sock, "--key", KEY, "--k8s-role", "r", "--jwt-file", f"{tmp_path}/no"],
        "socket dir missing": base + ["--listen", f"unix://{tmp_path}/no/x", "--key", KEY, "--token-file", str(tok)],
    }
    for name, argv in runs.items():
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, name
        assert "Traceback" not in r.stderr, (name, r.stderr)
        assert "Error" in r.stderr, (name, r.stderr)
    assert not (tmp_path / "x.sock").exists()


def test_a_live_socket_is_not_taken_over(plugin: Plugin, kms_server) -> None:  # noqa: ANN001
    r = subprocess.run([STRONGROOM, "kms-plugin", "--listen", f"unix://{plugin.socket}", "--key", KEY,
                        "--addr", kms_server.addr, "--token-file", str(plugin.token_file)],  # type: ignore[attr-defined]
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "in use" in r.stderr, r.stderr
    assert plugin.status().healthz == "ok"


def test_print_policy_for_another_key(kms_server) -> None:  # noqa: ANN001
    r = subprocess.run([STRONGROOM, "kms-plugin", "--print-policy", "--key", "etcd-kek", "--mount", "kms"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert 'path "kms/encrypt/etcd-kek"' in r.stdout and 'path "kms/decrypt/etcd-kek"' in r.stdout
    # the printed text is a policy the server accepts as is
    root = kms_server.client()
    root.sys.create_or_update_policy("kms-plugin-etcd-kek", r.stdout)
    assert "kms/keys/etcd-kek" in root.sys.read_policy("kms-plugin-etcd-kek")["data"]["rules"]


def test_a_missing_transit_key_is_unhealthy_not_created(tmp_path, kms_server) -> None:  # noqa: ANN001
    token_file = tmp_path / "token"
    token_file.write_text(kms_server.root_token)  # even a root token: the plugin never creates keys
    p = Plugin(tmp_path, kms_server.addr, "--token-file", str(token_file), key="no-such-key")
    try:
        st = p.status()
        assert st.healthz == f"strongroom: transit key {MOUNT}/no-such-key does not exist" and st.key_id == ""
        err = _rpc_error(lambda: p.encrypt(secrets.token_bytes(SEED)))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
    finally:
        p.stop()
    with kms_server.http() as http:
        assert http.get(f"/v1/{MOUNT}/keys/no-such-key").status_code == 404


def test_token_is_renewed_before_it_runs_out(kms_server, tmp_path) -> None:  # noqa: ANN001
    """The renewal the plugin's background thread triggers, run in-process against the real server."""
    from strongroom.kms.transit import KeyRef, TransitKey
    from strongroom.secretstore.settings import Settings

    root = kms_server.client()
    audit = tmp_path / "audit.log"
    root.sys.enable_audit_device("file", path="kms-renew", options={"file_path": str(audit)})
    try:
        token = plugin_token(root, ttl="90s")
        token_file = tmp_path / "token"
        token_file.write_text(token)
        transit = TransitKey(KeyRef(MOUNT, KEY), Settings(addr=kms_server.addr, max_attempts=1),
                             token_file=str(token_file))
        try:
            transit.keep_token_fresh()  # reads the file, looks the token up
            assert "auth/token/renew-self" not in audit.read_text()
            # pretend 80 of the 90 seconds have passed (the engine's clock, not a sleep)
            transit._client._engine._token.obtained -= 80
            transit.keep_token_fresh()
            assert "auth/token/renew-self" in audit.read_text()
            assert transit.latest_version() >= 1  # and the renewed token goes on working
        finally:
            transit.close()
    finally:
        root.sys.disable_audit_device("kms-renew")


def test_plugin_started_while_sealed_becomes_healthy_after_unseal(kms_server, tmp_path) -> None:  # noqa: ANN001
    token_file = tmp_path / "token"
    token_file.write_text(plugin_token(kms_server.client()))
    seal(kms_server)
    p = None
    try:
        p = Plugin(tmp_path, kms_server.addr, "--token-file", str(token_file))
        st = p.status()
        assert st.healthz != "ok" and "sealed" in st.healthz.lower() and st.key_id == "", st.healthz
        assert _rpc_error(lambda: p.encrypt(secrets.token_bytes(SEED))).code() == grpc.StatusCode.UNAVAILABLE
    finally:
        unseal(kms_server)
    try:
        wait_for(lambda: p.status().healthz == "ok", timeout=20, message="plugin healthy after unseal")
        seed = secrets.token_bytes(SEED)
        assert p.decrypt(p.encrypt(seed)) == seed
    finally:
        p.stop()
