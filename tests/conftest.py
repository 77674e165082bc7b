"""Shared fixtures: real Strongroom servers, started as subprocesses through the real `strongroom` entry point."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import hvac
import pytest

ROOT_TOKEN = "sr-test-root-token"
STRONGROOM = shutil.which("strongroom") or os.path.join(os.path.dirname(sys.executable), "strongroom")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):  # noqa: ANN001
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {message}" + (f" (last error: {last_exc!r})" if last_exc else ""))


class StrongroomServer:
    """A real server process. Dev mode by default; ``config_text`` runs it from a configuration file instead."""

    def __init__(
        self,
        workdir: Path,
        *,
        config_text: str | None = None,
        env: dict[str, str] | None = None,
        root_token: str = ROOT_TOKEN,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.root_token = root_token
        self.storage_path = str(workdir / "strongroom.db")
        self.config_text = config_text
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"
        self._started_once = False

    def _argv(self) -> list[str]:
        if self.config_text is not None:
            cfg = self.workdir / "server.hcl"
            cfg.write_text(self.config_text.replace("{port}", str(self.port)).replace("{storage}", self.storage_path))
            return [STRONGROOM, "server", "--config", str(cfg)]
        if self._started_once:
            # a restarted dev server keeps its storage but must be unsealed again
            cfg = self.workdir / "restart.hcl"
            cfg.write_text(
                f'storage "sqlite" {{ path = "{self.storage_path}" }}\n'
                f'listener "tcp" {{ address = "127.0.0.1:{self.port}"\n tls_disable = true }}\n'
            )
            return [STRONGROOM, "server", "--config", str(cfg)]
        return [
            STRONGROOM,
            "server",
            "--dev",
            "--dev-listen-address",
            f"127.0.0.1:{self.port}",
            "--dev-root-token-id",
            self.root_token,
            "--dev-storage",
            self.storage_path,
        ]

    def start(self) -> StrongroomServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(self._argv(), stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_for(self._up, timeout=30, message=f"server on {self.addr} (log: {self.log_path})")
        if self._started_once and self.config_text is None and self.unseal_key:
            httpx.put(f"{self.addr}/v1/sys/unseal", json={"key": self.unseal_key}, timeout=10)
            self.wait_unsealed()
        if not self._started_once and self.config_text is None:
            self.unseal_key = wait_for(self._read_unseal_key, timeout=10, message="dev server banner")
        self._started_once = True
        return self

    unseal_key: str = ""

    def _read_unseal_key(self) -> str:
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("Unseal Key: "):
                return line.split(": ", 1)[1].strip()
        return ""

    def wait_unsealed(self) -> None:
        wait_for(
            lambda: httpx.get(f"{self.addr}/v1/sys/seal-status", timeout=2).json()["sealed"] is False,
            timeout=15,
            message="unsealed",
        )

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {self.proc.returncode}: {self.log_path.read_text(errors='replace')}"
            )
        try:
            httpx.get(f"{self.addr}/v1/sys/seal-status", timeout=1)
            return True
        except httpx.HTTPError:
            return False

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, kill: bool = False) -> StrongroomServer:
        self.stop(kill=kill)
        return self.start()

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.root_token if token is None else token)

    def http(self, token: str | None = None) -> httpx.Client:
        tok = self.root_token if token is None else token
        return httpx.Client(base_url=self.addr, headers={"X-Vault-Token": tok} if tok else {}, timeout=30)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    servers: list[StrongroomServer] = []

    def make(**kwargs) -> StrongroomServer:  # noqa: ANN003
        workdir = Path(tempfile.mkdtemp(dir=tmp_path))
        srv = StrongroomServer(workdir, **kwargs).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def server(server_factory) -> StrongroomServer:  # noqa: ANN001
    return server_factory()


@pytest.fixture
def client(server: StrongroomServer) -> hvac.Client:
    return server.client()
