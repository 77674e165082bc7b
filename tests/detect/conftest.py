"""Fixtures for detect: a real Kafka 4 node (KRaft), webhook receivers, and ``strongroom detect`` as a subprocess.

The Kafka node is started once per run by ``scripts/kafka-node`` unless ``STRONGROOM_TEST_KAFKA`` names one
(``host:port``), as ``STRONGROOM_TEST_POSTGRES`` does for PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import STRONGROOM, StrongroomServer, free_port, wait_for

REPO = Path(__file__).resolve().parents[2]


def _script(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{name} {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("STRONGROOM_TEST_KAFKA")
    if given:
        yield given
        return
    directory = tmp_path_factory.mktemp("kafka")
    brokers = _script("kafka-node", "start", str(directory)).splitlines()[-1]
    try:
        yield brokers
    finally:
        _script("kafka-node", "stop", str(directory))


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser DSN: ``STRONGROOM_TEST_POSTGRES``, or a server of this run's own."""
    given = os.environ.get("STRONGROOM_TEST_POSTGRES")
    if given:
        yield given
        return
    directory = tmp_path_factory.mktemp("postgres")
    dsn = _script("postgres-node", "start", str(directory)).splitlines()[-1]
    try:
        yield dsn
    finally:
        _script("postgres-node", "stop", str(directory))


@pytest.fixture
def fresh_database(postgres_dsn: str) -> str:
    """A DSN for a database of this test's own on that server."""
    import secrets
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = "detect_" + secrets.token_hex(4)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return urlunsplit(urlsplit(postgres_dsn)._replace(path="/" + name))


class Webhook:
    """A local HTTP server standing in for Slack and PagerDuty: records every POST body; can fail the first N."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.fail_next = 0
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook._lock:
                    if hook.fail_next > 0:
                        hook.fail_next -= 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    hook.posts.append((self.path, json.loads(body)))
                self.send_response(202 if self.path.startswith("/pd") else 200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def pd(self) -> list[dict[str, Any]]:
        with self._lock:
            return [b for p, b in self.posts if p.startswith("/pd")]

    def slack(self) -> list[dict[str, Any]]:
        with self._lock:
            return [b for p, b in self.posts if p.startswith("/slack")]

    def pd_for(self, rule: str) -> list[dict[str, Any]]:
        return [b for b in self.pd() if b["payload"]["class"] == rule]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


class Detect:
    """``strongroom detect`` as a real process, from a configuration this helper writes."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.metrics_port = free_port()
        self.config = {"metrics_address": f"127.0.0.1:{self.metrics_port}", **config}
        self.config_path = workdir / f"detect-{self.metrics_port}.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.log_path = workdir / f"detect-{self.metrics_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Detect:
        out = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen([STRONGROOM, "detect", "--config", str(self.config_path)], stdout=out,
                                     stderr=subprocess.STDOUT)
        wait_for(self._up, timeout=30, message=f"detect metrics (log: {self.log_path})")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"detect exited with {self.proc.returncode}: {self.log_path.read_text()}")
        return "strongroom detect started" in self.log_path.read_text(errors="replace") and self.metrics() != ""

    def metrics(self) -> str:
        try:
            return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return ""

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        total = 0.0
        for line in self.metrics().splitlines():
            head, _, value = line.rpartition(" ")
            metric, _, rest = head.partition("{")
            if metric == name and all(w in rest.rstrip("}").split(",") for w in wanted):
                total += float(value)
        return total

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def detect_factory(tmp_path: Path) -> Iterator:
    made: list[Detect] = []

    def make(config: dict[str, Any], start: bool = True) -> Detect:
        d = Detect(tmp_path, config)
        made.append(d)
        return d.start() if start else d

    yield make
    for d in made:
        d.stop()


def module_server(tmp_path_factory: pytest.TempPathFactory, name: str) -> StrongroomServer:
    return StrongroomServer(tmp_path_factory.mktemp(name)).start()


def user_token(srv: StrongroomServer, username: str, policies: list[str], team: str = "") -> tuple[str, str]:
    """A userpass login for ``username`` (its entity created by the login), optionally with a team and group."""
    root = srv.client()
    if "userpass/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("userpass")
    root.write(f"auth/userpass/users/{username}", password="pw-" + username, token_policies=",".join(policies))
    auth = srv.client(token="").auth.userpass.login(username, "pw-" + username)["auth"]
    if team:
        root.write(f"identity/entity/id/{auth['entity_id']}", metadata={"team": team})
    return auth["client_token"], auth["entity_id"]


READ_ALL = 'path "secret/data/k8s/*" { capabilities = ["read", "list"] }'
