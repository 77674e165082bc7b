"""The light client distribution (``clients/python``, ``strongroom-secretstore``) installed alone in a fresh
virtualenv: none of the server's dependencies come with it, and a service can still read its secret from a real
server with ``strongroom.secretstore`` exactly as it does beside the server.

The venv lives under ``tmp_path``; pip downloads httpx and PyJWT through its cache in the user's home. The client's
source is copied (its links to ``strongroom/secretstore`` resolved) so the build leaves nothing in the shared tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StrongroomServer
from tests.workflow.pod import PUBLIC_PEM, make_pod

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "clients" / "python"
SERVER_ONLY = ("granian", "cassandra", "psycopg", "cryptography", "grpc", "uvicorn", "hcl2", "click", "orjson")


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("client-venv")
    source = work / "source"
    shutil.copytree(CLIENT, source, symlinks=False, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    r = subprocess.run([*pip, "install", "-q", str(source)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"pip install clients/python failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    return venv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    srv = StrongroomServer(Path(tempfile.mkdtemp(dir=tmp_path_factory.mktemp("server")))).start()
    yield srv
    srv.stop()


def _python(venv: Path, code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # a clean environment: nothing from this test process's PYTHONPATH may leak the repository's modules in
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "STRONGROOM_", "VAULT_"))}
    return subprocess.run([str(venv / "bin" / "python"), "-c", textwrap.dedent(code)], env={**clean, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_distribution_depends_on_httpx_and_pyjwt_only() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "strongroom-secretstore"
    assert sorted(d.split("==")[0] for d in project["dependencies"]) == ["PyJWT", "httpx"]
    server = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "strongroom-secretstore==0.1.0" in server["project"]["dependencies"]
    assert "strongroom.secretstore*" in server["tool"]["setuptools"]["packages"]["find"]["exclude"]


def test_installed_alone_it_brings_none_of_the_server(client_venv: Path, tmp_path: Path) -> None:
    r = _python(client_venv, f"""
        import importlib.util, json, sys
        import strongroom.secretstore, strongroom.secretstore.aio, strongroom.secretstore.database
        print(json.dumps({{
            "file": strongroom.secretstore.__file__,
            "present": [m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m) is not None],
            "server": importlib.util.find_spec("strongroom.cli") is not None,
        }}))
    """, {}, tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    import json

    seen = json.loads(r.stdout)
    assert seen["file"].startswith(str(client_venv)), seen
    assert seen["present"] == [] and seen["server"] is False, seen
    listed = subprocess.run([str(client_venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    names = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert {"strongroom-secretstore", "httpx", "pyjwt"} <= names
    assert not names & {"strongroom", "granian", "cassandra-driver", "psycopg", "cryptography", "grpcio"}, names


def test_it_reads_a_secret_from_a_real_server(client_venv: Path, server: StrongroomServer, tmp_path: Path) -> None:
    with server.http() as http:
        r = http.post("/v1/auth/kubernetes/config",
                      json={"kubernetes_host": "https://k8s.invalid", "pem_keys": [PUBLIC_PEM]})  # fmt: skip
        assert r.status_code in (200, 204), r.text
    value = "light-" + os.urandom(12).hex()
    server.client().secrets.kv.v2.create_or_update_secret(
        path="k8s/default/s-emoji/canary/2019-05-11", secret={"data": value}, cas=0, mount_point="secret"
    )
    pod = make_pod(tmp_path, "default", "s-emoji")
    cwd = tmp_path / "service"
    cwd.mkdir()
    (cwd / "expected").write_text(value)
    r = _python(client_venv, """
        import asyncio
        from strongroom import secretstore

        # the same lines a service writes beside the server
        password = secretstore.path("canary", "2019-05-11").string()
        assert secretstore.ready()
        assert asyncio.run(secretstore.aio.path("canary", "2019-05-11").string()) == password
        try:
            secretstore.path("canary", "1999-01-01").string()
        except secretstore.SecretNotFound as exc:
            print("not found:", exc)
        assert password == open("expected").read(), "the secret read differs from the one written"
        print("matches")
    """, pod.env(server.addr), cwd)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "not found: secret not found: secret/k8s/default/s-emoji/canary/1999-01-01",
        "matches",
    ], r.stdout
