"""`strongroom server`: dev mode, configuration files, TLS, start-up errors, clean shutdown."""

from __future__ import annotations

import datetime
import signal
import subprocess

import httpx
import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import STRONGROOM, free_port


def _run(args: list[str], tmp_path, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STRONGROOM, *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def test_dev_server_prints_root_token_mounts_kv_v2_and_stops_on_sigterm(server):
    log = server.log_path.read_text()
    assert f"Root Token: {server.root_token}" in log
    mounts = server.client().sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv" and mounts["secret/"]["options"] == {"version": "2"}
    assert {"sys/", "cubbyhole/", "identity/"} <= set(mounts)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=15) == 0


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (
            'storage "sqlite" { path = "x.db" }\nlistener "tcp" { address = "127.0.0.1:1"\n tls_disable = true }\n'
            "bogus_stanza { x = 1 }",
            "unknown stanza",
        ),
        ('storage "etcd" { path = "x" }\nlistener "tcp" { tls_disable = true }', "unknown storage type"),
        (
            'storage "sqlite" { path = "x.db" }\nlistener "tcp" { address = "nonsense"\n tls_disable = true }',
            "host:port",
        ),
        ('storage "sqlite" { path = "x.db" }\nlistener "tcp" { address = "127.0.0.1:8200" }', "tls_cert_file"),
        ('storage "sqlite" { path = "x.db" }\nlistener "tcp" { tls_disable = "maybe" }', "true or false"),
        ('storage "sqlite" {', "cannot parse"),
    ],
)
def test_bad_config_is_a_clear_startup_error(tmp_path, text, expect):
    cfg = tmp_path / "bad.hcl"
    cfg.write_text(text)
    result = _run(["server", "--config", str(cfg)], tmp_path)
    assert result.returncode == 1
    assert expect in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_listener_serves_https(tmp_path):
    cert, key = _self_signed(tmp_path)
    port = free_port()
    cfg = tmp_path / "tls.hcl"
    cfg.write_text(
        f'storage "sqlite" {{ path = "{tmp_path / "tls.db"}" }}\n'
        f'listener "tcp" {{\n address = "127.0.0.1:{port}"\n tls_cert_file = "{cert}"\n tls_key_file = "{key}"\n}}\n'
        'api_addr = "https://127.0.0.1"\nui = false\ndisable_mlock = true\nlog_level = "warn"\n'
    )
    proc = subprocess.Popen(
        [STRONGROOM, "server", "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "https://127.0.0.1" in line
        client = hvac.Client(url=f"https://127.0.0.1:{port}", verify=str(cert))
        assert client.sys.is_initialized() is False
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"https://127.0.0.1:{port}/v1/sys/health")  # not trusted without the CA
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_status_and_operator_commands(server_factory, tmp_path):
    srv = server_factory(
        config_text='storage "sqlite" { path = "{storage}" }\n'
        'listener "tcp" {\n address = "127.0.0.1:{port}"\n tls_disable = true\n}\n'
    )
    env = {"VAULT_ADDR": srv.addr}
    import os

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STRONGROOM, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=30
        )

    out = run("operator", "init", "--key-shares", "3", "--key-threshold", "2")
    assert out.returncode == 0, out.stderr
    keys = [line.split(": ")[1] for line in out.stdout.splitlines() if line.startswith("Unseal Key")]
    root = next(line.split(": ")[1] for line in out.stdout.splitlines() if line.startswith("Initial Root Token"))
    assert len(keys) == 3
    assert run("status").returncode == 2
    assert "Unseal Progress: 1/2" in run("operator", "unseal", keys[0]).stdout
    assert "Sealed: false" in run("operator", "unseal", keys[2]).stdout
    assert run("status").returncode == 0
    env["STRONGROOM_TOKEN"] = root
    assert run("operator", "bootstrap").returncode == 0
    assert "kubernetes-reader" in hvac.Client(url=srv.addr, token=root).sys.list_acl_policies()["data"]["keys"]
    assert run("operator", "seal").returncode == 0
    assert run("status").returncode == 2
