"""End to end through the real entry point: `strongroom broker --config FILE` and `strongroom mpa …` as engineers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest

from broker.conftest import PEOPLE
from broker.harness import free_port, wait_for
from strongroom.broker.build import build_artifact, measurement
from strongroom.broker.kinds.broker_deploy import deploy_policy

STRONGROOM = str(Path(sys.executable).parent / "strongroom")


def _config(tmp: Path, idp, receiver, port: int, strongroom) -> Path:
    text = f"""
[broker]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
storage = "sqlite:///broker.db"
audit_log = "audit.jsonl"
production = false

[idp]
issuer = "{idp.issuer}"
audience = "{idp.audience}"
jwks_url = "{idp.jwks_url}"

[seed]
file = "seed.json"
token_file = "seed-token"
attestor = "local"
insecure = true

[strongroom]
addr = "{strongroom.addr}"

[notify]
slack_webhook = "{receiver.url}/slack"
critical_webhook = "{receiver.url}/page"

[break_glass]
groups = ["sre-oncall"]
duration = "5m"

[kinds.k8s-admin]
type = "kubernetes"
request_groups = ["platform"]
approve_groups = ["platform-leads"]
approvals = 1
max_duration = "15m"
request_ttl = "1h"
audience = "kubernetes"
groups = ["mpa:cluster-admin"]

[kinds.broker-deploy]
type = "broker-deploy"
request_groups = ["security"]
approve_groups = ["platform-leads", "security"]
token_role = "mpa-deploy"
"""
    path = tmp / "broker.toml"
    path.write_text(text)
    # the broker decrypts its seed with a token that can do nothing else — and that alone opens nothing
    root = strongroom.client()
    if "transit/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("transit", path="transit")
    root.sys.create_or_update_policy("broker-seed", 'path "transit/decrypt/broker-seed" { capabilities = ["update"] }')
    token = root.auth.token.create(policies=["broker-seed"], no_default_policy=True)["auth"]["client_token"]
    (tmp / "seed-token").write_text(token)
    # the broker's own token (sealed into the seed) mints broker-deploy tokens through a role, and nothing more
    root.sys.create_or_update_policy("broker-deploy", deploy_policy("transit", "broker-seed"))
    root.sys.create_or_update_policy("mpa-broker", 'path "auth/token/create/mpa-deploy" { capabilities = ["update"] }\n'
                                     'path "sys/audit-events" { capabilities = ["update"] }')
    strongroom.http().post("/v1/auth/token/roles/mpa-deploy", json={"allowed_policies": ["broker-deploy"],
                                                                     "orphan": True}).raise_for_status()
    own = root.auth.token.create(policies=["mpa-broker"], no_default_policy=True)["auth"]["client_token"]
    (tmp / "broker-token").write_text(own)
    return path


def _seal(cfg: Path, strongroom, allowed: str, cwd: Path) -> None:
    """seal-seed as the operator; a key already bound by an earlier attempt is pointed at ``allowed`` by root."""
    (cwd / "seed.json").unlink(missing_ok=True)
    env = {**os.environ, "STRONGROOM_TOKEN": strongroom.root_token}
    r = subprocess.run([STRONGROOM, "broker", "seal-seed", "--config", str(cfg), "--measurement", allowed,
                        "--strongroom-token-file", str(cwd / "broker-token")],
                       capture_output=True, text=True, cwd=cwd, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    strongroom.http().post("/v1/transit/keys/broker-seed/attestation", json={"pcr0": [allowed]}).raise_for_status()


def _run(*args: str, cwd: Path, token: str | None = None, addr: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if token:
        env["STRONGROOM_IDP_TOKEN"] = token
    if addr:
        env["STRONGROOM_MPA_ADDR"] = addr
    return subprocess.run([STRONGROOM, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


class _Proc:
    def __init__(self, args: list[str], cwd: Path) -> None:
        self.log = cwd / "broker.log"
        self.proc = subprocess.Popen([STRONGROOM, *args], cwd=cwd, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def served(tmp_path, idp, receiver, server):
    port = free_port()
    cfg = _config(tmp_path, idp, receiver, port, server)
    addr = f"http://127.0.0.1:{port}"
    # The local attestor measures the source tree it runs from. Other work may edit that tree between sealing and
    # starting (the seal then correctly stays shut), so seal for the current build and retry a few times.
    for _ in range(5):
        _seal(cfg, server, measurement(build_artifact()), tmp_path)
        proc = _Proc(["broker", "--config", str(cfg)], tmp_path)

        def up(proc: _Proc = proc) -> bool:
            if proc.proc.poll() is not None:
                return True
            try:
                return httpx.get(f"{addr}/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, message="broker up")
        if proc.proc.poll() is None:
            break
        assert "is not allowed" in proc.log.read_text(), proc.log.read_text()
    else:
        pytest.fail("the source tree kept changing under the test")
    yield addr, tmp_path
    proc.stop()


def _tok(idp, who: str) -> str:
    p = PEOPLE[who]
    return idp.token(p["sub"], p["groups"], email=p["email"], name=who)


def test_request_review_fetch_through_the_cli(served, idp):
    addr, cwd = served
    alice, bob = _tok(idp, "alice"), _tok(idp, "bob")
    r = _run("mpa", "request", "k8s-admin", "--reason", "Drain node ip-10-0-1-7 for INC-812", "--duration", "10m",
             cwd=cwd, token=alice, addr=addr)
    assert r.returncode == 0, r.stderr
    rid = next(w for w in r.stdout.split() if w.startswith("mpa-"))
    assert "platform-leads" in r.stdout
    r = _run("mpa", "review", cwd=cwd, token=bob, addr=addr)
    assert rid in r.stdout
    r = _run("mpa", "review", rid, "--approve", "-c", "matches the incident", cwd=cwd, token=alice, addr=addr)
    assert r.returncode != 0 and "own request" in r.stderr
    r = _run("mpa", "review", rid, "--approve", "-c", "matches the incident", cwd=cwd, token=bob, addr=addr)
    assert r.returncode == 0 and "approved" in r.stdout, r.stderr
    r = _run("mpa", "fetch", rid, cwd=cwd, token=alice, addr=addr)
    assert r.returncode == 0, r.stderr
    cred = json.loads(r.stdout)
    claims = jwt.decode(cred["id_token"], options={"verify_signature": False})
    assert claims["mpa_request_id"] == rid and claims["iss"] == addr
    r = _run("mpa", "fetch", rid, cwd=cwd, token=alice, addr=addr)
    assert r.returncode != 0 and "only once" in r.stderr
    r = _run("mpa", "show", rid, cwd=cwd, token=alice, addr=addr)
    assert "bob@bank.test" in r.stdout and "fetched" in r.stdout
    r = _run("mpa", "list", "--mine", cwd=cwd, token=alice, addr=addr)
    assert rid in r.stdout
    r = _run("mpa", "revoke", rid, cwd=cwd, token=alice, addr=addr)
    assert r.returncode == 0, r.stderr
    assert "cannot be revoked" in r.stderr  # an honest note: the OIDC token lives until its (short) expiry
    r = _run("audit", "verify", str(cwd / "audit.jsonl"), cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr


def test_cancel_and_break_glass_through_the_cli(served, idp, receiver):
    addr, cwd = served
    alice, dave, bob = _tok(idp, "alice"), _tok(idp, "dave"), _tok(idp, "bob")
    r = _run("mpa", "request", "k8s-admin", "--reason", "test", cwd=cwd, token=alice, addr=addr)
    assert r.returncode != 0 and "placeholder" in r.stderr
    r = _run("mpa", "request", "k8s-admin", "--reason", "Inspect kube-proxy config for INC-77", cwd=cwd, token=alice,
             addr=addr)
    rid = next(w for w in r.stdout.split() if w.startswith("mpa-"))
    assert _run("mpa", "cancel", rid, cwd=cwd, token=alice, addr=addr).returncode == 0
    r = _run("mpa", "break-glass", "k8s-admin", "--reason", "Cluster DNS down, INC-900, restarting coredns",
             cwd=cwd, token=dave, addr=addr)
    assert r.returncode == 0, r.stderr
    assert "paged" in r.stderr
    bg = next(w.rstrip(":") for w in r.stderr.split() if w.startswith("mpa-bg-"))
    wait_for(lambda: receiver.bodies("/page"), message="page")
    r = _run("mpa", "list", cwd=cwd, token=bob, addr=addr)
    assert "awaiting acknowledgement" in r.stdout
    r = _run("mpa", "review", bg, "--approve", "-c", "Saw the incident channel; fine", cwd=cwd, token=bob, addr=addr)
    assert r.returncode == 0, r.stderr


def test_broker_deploy_allows_a_new_build_through_the_cli(served, idp, server):
    addr, cwd = served
    sam, bob, carol = _tok(idp, "sam"), _tok(idp, "bob"), _tok(idp, "carol")
    new = "ef" * 48
    r = _run("mpa", "request", "broker-deploy", "--reason", "Deploy release 2.5.0 built from tag v2.5.0",
             "--measurement", new, cwd=cwd, token=sam, addr=addr)
    assert r.returncode == 0, r.stderr
    rid = next(w for w in r.stdout.split() if w.startswith("mpa-"))
    for who in (bob, carol):
        r = _run("mpa", "review", rid, "--approve", "-c", "tag v2.5.0 reviewed and built", cwd=cwd, token=who,
                 addr=addr)
        assert r.returncode == 0, r.stderr
    r = _run("mpa", "fetch", rid, cwd=cwd, token=sam, addr=addr)
    assert r.returncode == 0, r.stderr
    (cwd / "deploy.json").write_text(r.stdout)
    r = _run("broker", "allow-measurement", "--config", str(cwd / "broker.toml"), "--credential-file",
             str(cwd / "deploy.json"), cwd=cwd)
    assert r.returncode == 0 and new in r.stdout, r.stderr
    assert new in server.http().get("/v1/transit/keys/broker-seed/attestation").json()["data"]["pcr0"]
    # the same credential cannot decrypt the seed
    token = json.loads((cwd / "deploy.json").read_text())["token"]
    sealed = json.loads((cwd / "seed.json").read_text())["ciphertext"]
    r = httpx.post(f"{server.addr}/v1/transit/decrypt/broker-seed", json={"ciphertext": sealed},
                   headers={"X-Vault-Token": token}, timeout=10)
    assert r.status_code == 403


def test_broker_refuses_to_serve_with_wrong_measurement(tmp_path, idp, receiver, server):
    cfg = _config(tmp_path, idp, receiver, free_port(), server)
    _seal(cfg, server, "cd" * 48, tmp_path)
    r = _run("broker", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode != 0
    assert "refusing to serve" in r.stderr and f"PCR0 {measurement(build_artifact())} is not allowed" in r.stderr
    assert b"seed-release-refused" in (tmp_path / "audit.jsonl").read_bytes()
