"""Real databases for the database engine's tests: a Cassandra 5.0 node and a PostgreSQL server.

Both are started once per session by ``scripts/cassandra-node`` / ``scripts/postgres-node`` (the same scripts CI uses),
unless CI already started them and says where: ``STRONGROOM_TEST_CASSANDRA=host:port`` (superuser
cassandra/cassandra) and ``STRONGROOM_TEST_POSTGRES=<superuser DSN>``. Nothing here is a stand-in.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CassandraNode:
    host: str
    port: int
    username: str = "cassandra"
    password: str = "cassandra"

    def session(self, username: str | None = None, password: str | None = None, keyspace: str | None = None):
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy

        cluster = Cluster(
            [self.host],
            port=self.port,
            execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=RoundRobinPolicy())},
            protocol_version=5,
            auth_provider=PlainTextAuthProvider(username or self.username, password or self.password),
            connect_timeout=10,
            schema_metadata_enabled=False,
            token_metadata_enabled=False,
        )
        try:
            return cluster.connect(keyspace)
        except Exception:
            cluster.shutdown()
            raise

    def can_login(self, username: str, password: str) -> bool:
        from cassandra.cluster import NoHostAvailable

        try:
            s = self.session(username, password)
        except NoHostAvailable:
            return False
        s.cluster.shutdown()
        return True


@dataclass
class PostgresNode:
    dsn: str

    def dsn_for(self, username: str, password: str, dbname: str = "postgres") -> str:
        from urllib.parse import quote, urlsplit

        parts = urlsplit(self.dsn)
        return (
            f"postgresql://{quote(username, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}/{dbname}"
        )

    @property
    def host(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.dsn).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        from urllib.parse import urlsplit

        return urlsplit(self.dsn).port or 5432

    def can_login(self, username: str, password: str) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.dsn_for(username, password), connect_timeout=5):
                return True
        except psycopg.OperationalError:
            return False


def _script(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"scripts/{name} {' '.join(args)} failed:\n{result.stderr[-4000:]}", pytrace=False)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def cassandra_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraNode]:
    given = os.environ.get("STRONGROOM_TEST_CASSANDRA")
    if given:
        host, _, port = given.rpartition(":")
        yield CassandraNode(host or "127.0.0.1", int(port))
        return
    directory = tmp_path_factory.mktemp("cassandra")
    began = time.monotonic()
    port = int(_script("cassandra-node", "start", str(directory)).splitlines()[-1])
    print(f"\nCassandra node ready on port {port} in {time.monotonic() - began:.1f}s", file=sys.stderr)
    try:
        yield CassandraNode("127.0.0.1", port)
    finally:
        _script("cassandra-node", "stop", str(directory))


@pytest.fixture(scope="session")
def postgres_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresNode]:
    given = os.environ.get("STRONGROOM_TEST_POSTGRES")
    if given:
        yield PostgresNode(given)
        return
    directory = tmp_path_factory.mktemp("postgres")
    dsn = _script("postgres-node", "start", str(directory)).splitlines()[-1]
    try:
        yield PostgresNode(dsn)
    finally:
        _script("postgres-node", "stop", str(directory))


@pytest.fixture(scope="session")
def cassandra_keyspaces(cassandra_node: CassandraNode) -> list[str]:
    """Two service keyspaces with a table each: ``ledger`` and ``emoji``."""
    s = cassandra_node.session()
    try:
        for ks in ("ledger", "emoji"):
            s.execute(
                f"CREATE KEYSPACE IF NOT EXISTS {ks} "
                "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
            )
            s.execute(f"CREATE TABLE IF NOT EXISTS {ks}.events (id text PRIMARY KEY, body text)")
    finally:
        s.cluster.shutdown()
    return ["ledger", "emoji"]


@pytest.fixture
def cassandra_admin(cassandra_node: CassandraNode) -> Iterator[tuple[str, str]]:
    """A fresh superuser for the engine, so a test that rotates its password leaves the node's own superuser alone."""
    name, password = f"sr_admin_{secrets.token_hex(4)}", secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
    s = cassandra_node.session()
    try:
        s.execute(f"CREATE ROLE '{name}' WITH PASSWORD = '{password}' AND LOGIN = true AND SUPERUSER = true")
        yield name, password
        s.execute(f"DROP ROLE IF EXISTS '{name}'")
    finally:
        s.cluster.shutdown()


@pytest.fixture
def postgres_admin(postgres_node: PostgresNode) -> Iterator[tuple[str, str]]:
    """A fresh role that may create roles, as Vault's documentation recommends for the plugin's user."""
    import psycopg

    name, password = f"sr_admin_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    with psycopg.connect(postgres_node.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{name}\" WITH LOGIN SUPERUSER PASSWORD '{password}'")
    yield name, password
    with psycopg.connect(postgres_node.dsn, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{name}"')
