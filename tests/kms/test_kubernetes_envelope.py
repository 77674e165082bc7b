"""kube-apiserver's own KMS v2 envelope code stores a Secret through the plugin and reads it back, across a rotation.

``kmsv2client/`` is a small Go program built here with ``go build`` (modules from the Go module proxy, cached in the
user's GOMODCACHE, never in the repository). It loads an EncryptionConfiguration with k8s.io/apiserver's
``encryptionconfig.LoadEncryptionConfig`` — the code kube-apiserver runs at start — so the Status probe, the DEK seed
generation, the ``kmsv2`` envelope format and the staleness check are Kubernetes' own. Each run is one API server start
with an empty DEK cache, so every read asks the plugin to decrypt.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for

from .conftest import KEY, MOUNT, Plugin, key_id, seal, unseal

HERE = Path(__file__).parent / "kmsv2client"
ETCD_KEY = "/registry/secrets/default/s-emoji-db"
SECRET = json.dumps({
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s-emoji-db", "namespace": "default"},
    "type": "Opaque", "data": {"password": "aHVudGVyMi1kby1ub3QtbG9n"},
}).encode()


@pytest.fixture(scope="module")
def kmsv2client(tmp_path_factory: pytest.TempPathFactory) -> str:
    go = shutil.which("go")
    assert go, "Go must be installed to build tests/kms/kmsv2client"
    # k8s.io/apiserver decides the minimum Go (the go directive of go.mod); never let go fetch a toolchain
    need = re.search(r"^go (\d+)\.(\d+)", (HERE / "go.mod").read_text(), re.M)
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout
    have = re.search(r"go(\d+)\.(\d+)", version)
    assert need and have and tuple(map(int, have.groups())) >= tuple(map(int, need.groups())), (need, version)
    out = tmp_path_factory.mktemp("go") / "kmsv2client"
    # -mod=readonly: the committed go.mod/go.sum must be enough; modules go to the user's GOMODCACHE
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "GOTOOLCHAIN": "local"}
    r = subprocess.run([go, "build", "-o", str(out), "."], cwd=HERE, env=env, capture_output=True, text=True,
                       timeout=1500)
    assert r.returncode == 0, f"go build failed:\n{r.stderr[-4000:]}"
    return str(out)


@pytest.fixture(scope="module")
def apiserver(kmsv2client: str, plugin: Plugin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    yield ApiServer(kmsv2client, plugin, tmp_path_factory.mktemp("apiserver"))


class ApiServer:
    """Runs the Go program with an EncryptionConfiguration naming the plugin's socket, as kube-apiserver would get."""

    def __init__(self, binary: str, plugin: Plugin, workdir: Path) -> None:
        self.binary, self.plugin, self.workdir = binary, plugin, workdir
        self.config = workdir / "encryption-config.yaml"
        self.config.write_text(f"""apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: ["secrets"]
    providers:
      - kms:
          apiVersion: v2
          name: strongroom
          endpoint: unix://{plugin.socket}
          timeout: 5s
      - identity: {{}}
""")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, "-config", str(self.config), *args], capture_output=True, text=True,
                              timeout=120)

    def ok(self, *args: str) -> dict:
        r = self.run(*args)
        log = self.plugin.log_text()[-3000:]
        assert r.returncode == 0, f"kmsv2client {args[0]} failed: {r.stderr[-3000:]}\nplugin log: {log}"
        return json.loads(r.stdout)


def test_status_through_the_k8s_io_kms_client(apiserver: ApiServer, kms_server) -> None:  # noqa: ANN001
    r = subprocess.run([apiserver.binary, "-socket", apiserver.plugin.socket, "status"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    latest = kms_server.client().secrets.transit.read_key(KEY, mount_point=MOUNT)["data"]["latest_version"]
    assert st == {"version": "v2", "healthz": "ok", "key_id": key_id(latest)}


def test_secret_stored_read_back_rotated_and_migrated(apiserver: ApiServer, kms_server) -> None:  # noqa: ANN001
    root = kms_server.client()
    before = root.secrets.transit.read_key(KEY, mount_point=MOUNT)["data"]["latest_version"]
    plain = apiserver.workdir / "secret.json"
    plain.write_bytes(SECRET)
    stored = apiserver.workdir / "stored-1"

    wrote = apiserver.ok("write", "-key", ETCD_KEY, "-in", str(plain), "-out", str(stored))
    assert wrote["key_id"] == key_id(before)
    assert wrote["encrypted_dek_source_type"] == "HKDF_SHA256_XNONCE_AES_GCM_SEED"
    blob = stored.read_bytes()
    assert blob.startswith(b"k8s:enc:kms:v2:strongroom:")
    assert b"hunter2" not in blob and b"aHVudGVyMi" not in blob and b"s-emoji-db" not in blob

    # a restarted API server (empty DEK cache) reads it through the plugin's Decrypt
    read = apiserver.ok("read", "-key", ETCD_KEY, "-in", str(stored))
    assert read["plaintext"].encode() == SECRET and read["stale"] is False

    # the value is bound to its etcd key: moved elsewhere it does not decrypt
    r = apiserver.run("read", "-key", "/registry/secrets/default/someone-else", "-in", str(stored))
    assert r.returncode != 0

    root.secrets.transit.rotate_key(KEY, mount_point=MOUNT)
    migrated = apiserver.workdir / "stored-2"
    read = apiserver.ok("read", "-key", ETCD_KEY, "-in", str(stored), "-rewrite-out", str(migrated))
    assert read["plaintext"].encode() == SECRET
    assert read["key_id"] == key_id(before)
    assert read["stale"] is True, "a new key_id must mark old objects stale so storage migration re-encrypts them"
    assert read["rewritten_key_id"] == key_id(before + 1)

    again = apiserver.ok("read", "-key", ETCD_KEY, "-in", str(migrated))
    assert again["plaintext"].encode() == SECRET and again["stale"] is False
    assert again["key_id"] == key_id(before + 1)
    # the object written before the rotation still reads (old version still allowed)
    assert apiserver.ok("read", "-key", ETCD_KEY, "-in", str(stored))["plaintext"].encode() == SECRET


def test_sealed_strongroom_fails_closed_for_the_api_server(apiserver: ApiServer, kms_server) -> None:  # noqa: ANN001
    plain = apiserver.workdir / "sealed.json"
    plain.write_bytes(SECRET)
    stored = apiserver.workdir / "stored-before-seal"
    apiserver.ok("write", "-key", ETCD_KEY, "-in", str(plain), "-out", str(stored))
    seal(kms_server)
    try:
        # an API server starting now cannot prime its DEK state (Status unhealthy), so it reads nothing
        r = apiserver.run("read", "-key", ETCD_KEY, "-in", str(stored))
        assert r.returncode != 0 and "hunter2" not in r.stdout
        r = apiserver.run("write", "-key", ETCD_KEY, "-in", str(plain), "-out", str(apiserver.workdir / "never"))
        assert r.returncode != 0
        assert not (apiserver.workdir / "never").exists()
        st = subprocess.run([apiserver.binary, "-socket", apiserver.plugin.socket, "status"], capture_output=True,
                            text=True, timeout=60)
        assert st.returncode == 0 and "sealed" in json.loads(st.stdout)["healthz"].lower(), st.stdout
    finally:
        unseal(kms_server)
    wait_for(lambda: apiserver.plugin.status().healthz == "ok", timeout=20, message="plugin healthy after unseal")
    assert apiserver.ok("read", "-key", ETCD_KEY, "-in", str(stored))["plaintext"].encode() == SECRET
