"""Database credentials at fleet size: issue and revoke credentials for 2,300 distinct ServiceAccounts.

The workload is vault-benchmark's ``cassandra_secret`` / ``postgresql_secret`` (GET ``database/creds/<role>`` in a
loop), with every request for a different ServiceAccount's dynamic role ``k8s_rw_s-svc-<i>_default``, so each one
resolves annotations, creates a database user with its grants, and registers a lease. Then every lease is revoked
(``sys/leases/revoke``, synchronous), which drops every user; the database is checked for leftovers.

    python bench/database_creds.py [--count 2300] [--concurrency 16] [--only cassandra|postgres]

Uses a real Strongroom dev server, a real Cassandra 5.0 node and a real PostgreSQL started by ``scripts/`` (or those
named by ``STRONGROOM_TEST_CASSANDRA=host:port`` / ``STRONGROOM_TEST_POSTGRES=dsn``). ServiceAccounts come from a
manifest directory; they share ``--keyspaces`` keyspaces (Cassandra keyspaces / PostgreSQL schemas), because creating
thousands of keyspaces would measure Cassandra's schema agreement, not credential issuing.
Target on the 2-core machine: all issued within 60 s and all revoked within 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
ROOT_TOKEN = "bench-root-token"  # noqa: S105 - a throwaway dev server's root token
CASSANDRA_RW = (
    "CREATE ROLE '{{username}}' WITH PASSWORD = '{{password}}' AND LOGIN = true;"
    "GRANT SELECT ON KEYSPACE \"{{keyspace}}\" TO '{{username}}';"
    "GRANT MODIFY ON KEYSPACE \"{{keyspace}}\" TO '{{username}}';"
)
POSTGRES_RW = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT USAGE ON SCHEMA "{{keyspace}}" TO "{{name}}";',
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script(name: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"scripts/{name} failed: {out.stderr[-2000:]}")
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))]


class Server:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        exe = shutil.which("strongroom") or str(Path(sys.executable).parent / "strongroom")
        self.log = open(workdir / "server.log", "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [exe, "server", "--dev", "--dev-listen-address", f"127.0.0.1:{self.port}", "--dev-root-token-id",
             ROOT_TOKEN, "--dev-storage", str(workdir / "strongroom.db"), "--log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.addr}/v1/sys/health", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        sys.exit("strongroom server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


def manifests(directory: Path, count: int, keyspaces: int) -> None:
    docs = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": f"s-svc-{i}", "namespace": "default",
                      "annotations": {"strongroom.io/keyspace": f"bench_ks_{i % keyspaces}"}}}
        for i in range(count)
    ]  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "serviceaccounts.yaml").write_text(yaml.safe_dump_all(docs))


def check(resp: httpx.Response, status: int = 204) -> Any:
    if resp.status_code != status:
        sys.exit(f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {resp.text[:500]}")
    return resp.json() if resp.content else None


async def run_phase(http: httpx.AsyncClient, requests: list[tuple[str, str, Any]], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    results: list[Any] = [None] * len(requests)
    errors: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(requests)):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            method, path, body = requests[i]
            t0 = time.perf_counter()
            resp = await http.request(method, path, json=body)
            latencies.append(time.perf_counter() - t0)
            if resp.status_code >= 400:
                errors.append(f"{resp.status_code} {resp.text[:200]}")
            else:
                results[i] = resp.json() if resp.content else None

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {
        "seconds": round(elapsed, 2),
        "per_second": round(len(requests) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "results": results,
    }


def setup(db: str, server: Server, count: int, concurrency: int, keyspaces: int, workdir: Path) -> str:
    """Mount, connection, base role ``rw`` and the ServiceAccount manifests; returns the mount."""
    mount = f"db_{db}"
    sync = httpx.Client(base_url=server.addr, headers={"X-Vault-Token": ROOT_TOKEN}, timeout=60)
    check(sync.post(f"/v1/sys/mounts/{mount}", json={"type": "database"}))
    if db == "cassandra":
        host, port = setup_cassandra(keyspaces)
        config = {"plugin_name": "cassandra-database-plugin", "hosts": host, "port": port, "username": "cassandra",
                  "password": "cassandra", "protocol_version": 4, "allowed_roles": "k8s_*"}  # fmt: skip
        role = {"db_name": "main", "creation_statements": CASSANDRA_RW}
    else:
        dsn = setup_postgres(keyspaces)
        config = {"plugin_name": "postgresql-database-plugin", "connection_url": dsn, "allowed_roles": "k8s_*",
                  "max_open_connections": concurrency}  # fmt: skip
        role = {"db_name": "main", "creation_statements": POSTGRES_RW}
    check(sync.post(f"/v1/{mount}/config/main", json=config))
    check(sync.post(f"/v1/{mount}/roles/rw", json=role))
    sa_dir = workdir / f"manifests-{db}"
    manifests(sa_dir, count, keyspaces)
    check(sync.post(f"/v1/{mount}/serviceaccounts/config", json={"manifests_dir": str(sa_dir)}))
    deadline = time.monotonic() + 60
    while "manifests" not in check(sync.get(f"/v1/{mount}/serviceaccounts/status"), 200)["data"]["synced_sources"]:
        if time.monotonic() > deadline:
            sys.exit("manifests did not sync")
        time.sleep(0.2)
    sync.close()
    return mount


async def phases(server: Server, mount: str, count: int, concurrency: int) -> tuple[dict, dict, list[str]]:
    async with httpx.AsyncClient(
        base_url=server.addr, headers={"X-Vault-Token": ROOT_TOKEN}, timeout=120,
        limits=httpx.Limits(max_connections=concurrency),
    ) as http:  # fmt: skip
        issue = await run_phase(
            http, [("GET", f"/v1/{mount}/creds/k8s_rw_s-svc-{i}_default", None) for i in range(count)], concurrency
        )
        issued = [r for r in issue.pop("results") if r]
        revoke = await run_phase(
            http,
            [("PUT", "/v1/sys/leases/revoke", {"lease_id": r["lease_id"], "sync": True}) for r in issued],
            concurrency,
        )
        revoke.pop("results")
    return issue, revoke, [r["data"]["username"] for r in issued]


def bench(db: str, server: Server, count: int, concurrency: int, keyspaces: int, workdir: Path) -> dict[str, Any]:
    mount = setup(db, server, count, concurrency, keyspaces, workdir)
    issue, revoke, usernames = asyncio.run(phases(server, mount, count, concurrency))
    left = users_present(db, usernames)
    return {"database": db, "service_accounts": count, "issued": len(usernames), "issue": issue, "revoke": revoke,
            "users_left_after_revoke": left}  # fmt: skip


# --- databases -------------------------------------------------------------------------------------------------------

_NODES: dict[str, Any] = {}


def setup_cassandra(keyspaces: int) -> tuple[str, int]:
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    given = os.environ.get("STRONGROOM_TEST_CASSANDRA")
    if given:
        host, _, port_s = given.rpartition(":")
        host, port = host or "127.0.0.1", int(port_s)
    else:
        directory = Path(tempfile.mkdtemp(prefix="bench-cassandra-"))
        t0 = time.monotonic()
        port, host = int(script("cassandra-node", "start", str(directory))), "127.0.0.1"
        print(f"cassandra node started in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        _NODES["cassandra_dir"] = directory
    cluster = Cluster([host], port=port, auth_provider=PlainTextAuthProvider("cassandra", "cassandra"))
    session = cluster.connect()
    for i in range(keyspaces):
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS bench_ks_{i} "
            "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
    _NODES["cassandra"] = (cluster, session)
    return host, port


def setup_postgres(keyspaces: int) -> str:
    import psycopg

    dsn = os.environ.get("STRONGROOM_TEST_POSTGRES")
    if not dsn:
        directory = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
        dsn = script("postgres-node", "start", str(directory))
        _NODES["postgres_dir"] = directory
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(keyspaces):
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "bench_ks_{i}"')
    _NODES["postgres"] = dsn
    return dsn


def users_present(db: str, usernames: list[str]) -> int:
    """How many of the users this run created still exist in the database (should be none)."""
    wanted = set(usernames)
    if db == "cassandra":
        _, session = _NODES["cassandra"]
        return sum(1 for row in session.execute("SELECT role FROM system_auth.roles") if row.role in wanted)
    import psycopg

    with psycopg.connect(_NODES["postgres"]) as conn:
        return sum(1 for (name,) in conn.execute("SELECT rolname FROM pg_roles") if name in wanted)


def teardown() -> None:
    if "cassandra" in _NODES:
        _NODES["cassandra"][0].shutdown()
    # each node is stopped whatever happened to the other
    for name, key in (("cassandra-node", "cassandra_dir"), ("postgres-node", "postgres_dir")):
        if key in _NODES:
            subprocess.run([sys.executable, str(REPO / "scripts" / name), "stop", str(_NODES[key])], check=False)
            shutil.rmtree(_NODES[key], ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--keyspaces", type=int, default=23)
    parser.add_argument("--only", choices=("cassandra", "postgres"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-db-creds-"))
    server = Server(workdir)
    reports = []
    try:
        for db in ("cassandra", "postgres"):
            if args.only in (None, db):
                reports.append(bench(db, server, args.count, args.concurrency, args.keyspaces, workdir))
    finally:
        server.stop()
        teardown()
        shutil.rmtree(workdir, ignore_errors=True)
    for r in reports:
        i, v = r["issue"], r["revoke"]
        print(
            f"{r['database']:>9}: {r['issued']}/{r['service_accounts']} issued in {i['seconds']}s "
            f"({i['per_second']}/s, p50 {i['p50_ms']}ms, p99 {i['p99_ms']}ms, {i['errors']} errors); "
            f"revoked in {v['seconds']}s ({v['per_second']}/s, p99 {v['p99_ms']}ms, {v['errors']} errors); "
            f"users left: {r['users_left_after_revoke']}"
        )
    print(json.dumps(reports, indent=2))
    ok = all(
        r["issue"]["seconds"] <= 60 and r["revoke"]["seconds"] <= 60 and r["users_left_after_revoke"] == 0
        and r["issued"] == r["service_accounts"]
        for r in reports
    )  # fmt: skip
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
