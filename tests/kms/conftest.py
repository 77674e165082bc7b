"""A real server with a transit key, and a real ``strongroom kms-plugin`` process on a Unix socket in front of it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import hvac
import pytest

from strongroom.kms.proto import api_pb2, api_pb2_grpc
from tests.conftest import STRONGROOM, StrongroomServer, free_port, wait_for

KEY = "kubernetes-kms"  # the key the bootstrap policy kms-plugin names
MOUNT = "transit"


def key_id(version: int, key: str = KEY, mount: str = MOUNT) -> str:
    return f"strongroom:{mount}:{key}:v{version}"


class Plugin:
    """``strongroom kms-plugin`` as kube-apiserver's host would run it, and a client from the generated stubs."""

    def __init__(self, workdir: Path, addr: str, *auth: str, key: str = KEY) -> None:
        self.workdir = workdir
        self.socket = str(workdir / "kms.sock")
        self.log_path = workdir / "plugin.log"
        argv = [STRONGROOM, "kms-plugin", "--listen", f"unix://{self.socket}", "--key", key, "--addr", addr,
                "--timeout", "3", "--log-level", "debug", *auth]
        self.proc = subprocess.Popen(argv, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        self.stub = api_pb2_grpc.KeyManagementServiceStub(self.channel)
        wait_for(self._answers, timeout=30, message=f"kms plugin on {self.socket} (log: {self.log_path})")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"plugin exited with {self.proc.returncode}: {self.log_text()}")
        if not os.path.exists(self.socket):
            return False
        try:
            self.status()
            return True
        except grpc.RpcError:
            return False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> api_pb2.StatusResponse:
        return self.stub.Status(api_pb2.StatusRequest(), timeout=10)

    def encrypt(self, plaintext: bytes, uid: str = "uid-1") -> api_pb2.EncryptResponse:
        return self.stub.Encrypt(api_pb2.EncryptRequest(plaintext=plaintext, uid=uid), timeout=10)

    def decrypt(self, resp: api_pb2.EncryptResponse, *, ciphertext: bytes | None = None, key_id: str | None = None,
                uid: str = "uid-2") -> bytes:
        req = api_pb2.DecryptRequest(ciphertext=resp.ciphertext if ciphertext is None else ciphertext, uid=uid,
                                     key_id=resp.key_id if key_id is None else key_id,
                                     annotations=dict(resp.annotations))
        return self.stub.Decrypt(req, timeout=10).plaintext

    def stop(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def seal(server: StrongroomServer) -> None:
    server.client().sys.seal()
    wait_for(lambda: server.client().sys.read_seal_status()["sealed"], timeout=15, message="sealed")


def unseal(server: StrongroomServer) -> None:
    server.client().sys.submit_unseal_key(server.unseal_key)
    server.wait_unsealed()


def plugin_token(root: hvac.Client, ttl: str = "1h") -> str:
    """A token holding only the bootstrap policy ``kms-plugin`` (plus ``default``, for renew/lookup-self)."""
    return root.auth.token.create(policies=["kms-plugin"], ttl=ttl, renewable=True)["auth"]["client_token"]


@pytest.fixture(scope="module")
def kms_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    """A dev server (bootstrap installed policy kms-plugin) with transit mounted and key kubernetes-kms created."""
    srv = StrongroomServer(tmp_path_factory.mktemp("kms-server")).start()
    root = srv.client()
    root.sys.enable_secrets_engine("transit", path=MOUNT)
    root.secrets.transit.create_key(KEY, key_type="aes256-gcm96", mount_point=MOUNT)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def plugin(kms_server: StrongroomServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugin]:
    """The plugin authenticated by a token file holding a kms-plugin token."""
    workdir = tmp_path_factory.mktemp("kms-plugin")
    token_file = workdir / "token"
    token_file.write_text(plugin_token(kms_server.client()) + "\n")
    token_file.chmod(0o600)
    p = Plugin(workdir, kms_server.addr, "--token-file", str(token_file))
    p.token_file = token_file  # type: ignore[attr-defined]
    yield p
    p.stop()


@pytest.fixture
def unreachable_addr() -> str:
    return f"http://127.0.0.1:{free_port()}"
