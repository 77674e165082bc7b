"""The Go client (``clients/go``) against a real server and a real PostgreSQL, inside a simulated pod.

The pod is the one the Python client's tests use (``tests/workflow/pod.py``: ServiceAccount token and namespace files,
tokens signed by a key the ``auth/kubernetes`` mount is told about). This module prepares the server and runs
``go test -tags live ./...`` in ``clients/go`` with the pod's environment; any Go test failure fails it.

``database/creds/k8s_rw_s-emoji_default`` is resolved the way it is in a cluster: base role ``rw`` plus the
annotations of ServiceAccount ``default/s-emoji``, which the engine watches through the Kubernetes API stand-in
(``tests/database/kube_standin.py``, the one stand-in allowed; it speaks the API server's list/watch wire format)
serving the example manifest of ``deploy/kubernetes/examples``. ``k8s_ro_s-emoji_default`` is a stored role.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.conftest import StrongroomServer, wait_for
from tests.database.kube_standin import KubeAPI
from tests.workflow.pod import PUBLIC_PEM, make_pod

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
GO_MODULE = REPO / "clients" / "go"
READONLY = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";',
]
# the base role of k8s_rw_<sa>_<namespace>: {{keyspace}} is the schema the ServiceAccount's annotation names
READWRITE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT USAGE ON SCHEMA {{keyspace}} TO "{{name}}";',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {{keyspace}} TO "{{name}}";',
]
EXAMPLE_SA = REPO / "deploy" / "kubernetes" / "examples" / "service-account.yaml"


def _postgres_dsn(tmp: Path) -> Iterator[str]:
    given = os.environ.get("STRONGROOM_TEST_POSTGRES")
    if given:
        yield given
        return
    script = [sys.executable, str(REPO / "scripts" / "postgres-node")]
    r = subprocess.run([*script, "start", str(tmp)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    try:
        yield r.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([*script, "stop", str(tmp)], capture_output=True)


@pytest.fixture(scope="module")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _postgres_dsn(tmp_path_factory.mktemp("pg"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    srv = StrongroomServer(Path(tempfile.mkdtemp(dir=tmp_path_factory.mktemp("server")))).start()
    yield srv
    srv.stop()


def _check(resp, status: int = 204) -> None:  # noqa: ANN001
    assert resp.status_code == status, resp.text


@pytest.fixture(scope="module")
def admin(postgres_dsn: str) -> Iterator[tuple[str, str]]:
    name, password = f"sr_goadmin_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{name}\" WITH LOGIN SUPERUSER PASSWORD '{password}'")
    yield name, password
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def _can_login(dsn: str, user: str, password: str) -> bool:
    from urllib.parse import quote, urlsplit

    parts = urlsplit(dsn)
    url = f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}/postgres"
    try:
        with psycopg.connect(url, connect_timeout=5):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeAPI]:
    api = KubeAPI().start()
    for doc in yaml.safe_load_all(EXAMPLE_SA.read_text()):
        if doc and doc["kind"] == "ServiceAccount":
            api.put(doc)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def prepared(server: StrongroomServer, postgres_dsn: str, admin: tuple[str, str], kube: KubeAPI) -> dict[str, str]:
    from urllib.parse import urlsplit

    root = server.client()
    with server.http() as http:
        _check(http.post("/v1/auth/kubernetes/config",
                         json={"kubernetes_host": "https://k8s.invalid", "pem_keys": [PUBLIC_PEM]}))  # fmt: skip
        canary = secrets.token_urlsafe(24)
        for sa, value in (("s-emoji", canary), ("s-ledger", secrets.token_urlsafe(24))):
            root.secrets.kv.v2.create_or_update_secret(
                path=f"k8s/default/{sa}/canary/2019-05-11", secret={"data": value}, cas=0, mount_point="secret"
            )
        root.secrets.kv.v2.create_or_update_secret(
            path="k8s/default/s-emoji/config/v1", secret={"data": '{"pool": 5, "host": "db"}'}, cas=0,
            mount_point="secret",
        )
        sa = next(d for d in yaml.safe_load_all(EXAMPLE_SA.read_text()) if d and d["kind"] == "ServiceAccount")
        schema, cluster = (sa["metadata"]["annotations"][f"strongroom.io/{k}"] for k in ("keyspace", "cluster"))
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        pg = urlsplit(postgres_dsn)
        _check(http.post("/v1/sys/mounts/database", json={"type": "database"}))
        # the connection is named after the ServiceAccount's strongroom.io/cluster annotation
        _check(http.post(f"/v1/database/config/{cluster}", json={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@{pg.hostname}:{pg.port}/postgres",
            "username": admin[0], "password": admin[1], "allowed_roles": ["k8s_*_s-emoji_default"],
        }))  # fmt: skip
        for name, statements, ttl, max_ttl in (("rw", READWRITE, "3s", "8s"),
                                               ("k8s_ro_s-emoji_default", READONLY, "4s", "1h")):  # fmt: skip
            _check(http.post(f"/v1/database/roles/{name}", json={
                "db_name": cluster, "creation_statements": statements, "default_ttl": ttl, "max_ttl": max_ttl,
            }))  # fmt: skip
        _check(http.post("/v1/database/serviceaccounts/config",
                         json={"kubernetes_host": kube.url, "token": kube.token, "annotation_prefix": "strongroom.io"}))

        def synced() -> bool:
            return "kubernetes" in http.get("/v1/database/serviceaccounts/status").json()["data"]["synced_sources"]

        wait_for(synced, timeout=30, message="the ServiceAccount watch's first sync")
    return {"canary": canary}


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)
    assert go, "Go must be installed to test clients/go"
    need = re.search(r"^go (\d+)\.(\d+)", (GO_MODULE / "go.mod").read_text(), re.M)
    have = re.search(r"go(\d+)\.(\d+)", subprocess.run([go, "version"], capture_output=True, text=True).stdout)
    assert need and have and tuple(map(int, have.groups())) >= tuple(map(int, need.groups())), (need, have)
    return go


def _answer_login_requests(proc: subprocess.Popen[str], out: Path, dsn: str) -> list[str]:
    """While ``go test`` runs, try every set of credentials it hands over (``<name>.creds``) on PostgreSQL at once,
    while their lease is live, and answer in ``<name>.result``."""
    tried: list[str] = []
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        for creds in sorted(out.glob("*.creds")):
            if creds.stem in tried:
                continue
            user, password = creds.read_text().splitlines()
            (out / f"{creds.stem}.result").write_text("ok" if _can_login(dsn, user, password) else "refused")
            tried.append(creds.stem)
        time.sleep(0.05)
    return tried


def test_go_client_against_a_real_server(
    server: StrongroomServer, prepared: dict[str, str], postgres_dsn: str, tmp_path: Path
) -> None:
    pod = make_pod(tmp_path, "default", "s-emoji")
    out = tmp_path / "out"
    out.mkdir()
    # the Go module cache and build cache stay in the user's home (Go's defaults); never fetch a toolchain
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRONGROOM_", "VAULT_"))}
    env.update(pod.env(server.addr), GOFLAGS="-mod=readonly -buildvcs=false", GOTOOLCHAIN="local",
               SRTEST_CANARY=prepared["canary"], SRTEST_OUT=str(out))  # fmt: skip
    log = tmp_path / "go-test.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([_go(), "test", "-tags", "live", "-count=1", "-v", "./..."], cwd=GO_MODULE, env=env,
                                stdout=sink, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            tried = _answer_login_requests(proc, out, postgres_dsn)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    report = log.read_text()
    assert proc.returncode == 0, f"go test failed:\n{report[-12000:]}"
    passed = set(re.findall(r"^--- PASS: (\w+)", report, re.M))
    assert {"TestReadsItsOwnSecretWithNoConfiguration", "TestTypedErrorsNameThePathNeverTheValue",
            "TestTokenIsCachedRenewedAndReplacedWhenRevoked", "TestDatabaseCredentialsRenewThenFetchNewAtMaxTTL",
            "TestDatabaseCredentialsBackOffWhileTheServerIsAwayAndRecover",
            "TestNotReadyUntilCredentialsAndTheFallbackIsLoud"} <= passed, report[-12000:]  # fmt: skip
    # every set of credentials the Go client held was a real PostgreSQL user while its lease lived
    assert tried == ["first", "second", "recovered"]
    assert prepared["canary"] not in report  # the Go tests never print the secret


def test_the_readme_go_snippet_compiles(tmp_path: Path) -> None:
    """The Go lines in README's "Using Strongroom from a service" build against clients/go as written."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Using Strongroom from a service", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"```go\n(.*?)```", section, re.S)
    assert snippet, "README has no Go snippet in its service section"
    imports, body = [], []
    for line in snippet.group(1).splitlines():
        (imports if line.startswith("import ") else body).append(line)
    assert imports == ['import "github.com/strongroom/strongroom/clients/go/secretstore"'], imports
    program = "\n".join([
        "package main", "", 'import "context"', *imports, "",
        "type connectionPool struct{}", "", "func (connectionPool) Reconnect(user, password string) {}", "",
        "func main() {", "\tctx := context.Background()", "\tvar pool connectionPool", *body,
        "\t_, _, _, _ = password, cfg, creds, first", "\t_ = err", "}", "",
    ])  # fmt: skip
    (tmp_path / "main.go").write_text(program)
    (tmp_path / "go.mod").write_text(
        "module readme\n\ngo 1.22\n\nrequire github.com/strongroom/strongroom/clients/go v0.0.0\n\n"
        f"replace github.com/strongroom/strongroom/clients/go => {GO_MODULE}\n"
    )
    env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false", "GOTOOLCHAIN": "local", "GOPROXY": "off"}
    r = subprocess.run([_go(), "vet", "."], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{r.stderr}\n{program}"
