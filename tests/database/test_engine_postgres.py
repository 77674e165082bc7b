"""The database engine over HTTP against a real PostgreSQL server, including revocation while it is down."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import psycopg
import pytest

from database.conftest import REPO, PostgresNode
from database.helpers import check, wait_until

pytestmark = pytest.mark.postgres

READONLY = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT pg_read_all_data TO "{{name}}";',
]


def _setup(http, node: PostgresNode, admin: tuple[str, str], **role) -> None:
    check(http.post("/v1/sys/mounts/database", json={"type": "database"}), 204)
    url = f"postgresql://{{{{username}}}}:{{{{password}}}}@{node.host}:{node.port}/postgres"
    config = {"plugin_name": "postgresql-database-plugin", "connection_url": url, "username": admin[0],
              "password": admin[1], "allowed_roles": ["readonly"]}  # fmt: skip
    check(http.post("/v1/database/config/pg", json=config), 204)
    check(
        http.post("/v1/database/roles/readonly", json={"db_name": "pg", "creation_statements": READONLY, **role}), 204
    )


def _valid_until(node: PostgresNode, user: str) -> dt.datetime | None:
    with psycopg.connect(node.dsn) as conn:
        row = conn.execute("SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
    return None if row is None else row[0]


def test_postgres_credentials_lifecycle(server, postgres_node, postgres_admin):
    http = server.http()
    _setup(http, postgres_node, postgres_admin, default_ttl="1h", max_ttl="3h")
    data = check(http.get("/v1/database/config/pg"))["data"]
    assert "{{password}}" in data["connection_details"]["connection_url"]
    assert postgres_admin[1] not in str(data)

    body = check(http.get("/v1/database/creds/readonly"))
    user, pw = body["data"]["username"], body["data"]["password"]
    assert len(user) <= 63 and body["lease_duration"] == 3600
    assert postgres_node.can_login(user, pw)
    first = _valid_until(postgres_node, user)
    assert first is not None

    check(http.put("/v1/sys/leases/renew", json={"lease_id": body["lease_id"], "increment": 7200}))
    assert _valid_until(postgres_node, user) > first  # the database itself extends the user's life

    check(http.put("/v1/sys/leases/revoke", json={"lease_id": body["lease_id"]}), 204)
    wait_until(lambda: _valid_until(postgres_node, user) is None, message="role dropped")
    assert not postgres_node.can_login(user, pw)


def test_revocation_retries_until_the_database_returns(server, postgres_admin, tmp_path_factory):
    """Expiry while PostgreSQL is down: revocation fails, is retried with backoff, and succeeds once it is back."""
    directory = tmp_path_factory.mktemp("pg-down")
    script = [sys.executable, str(REPO / "scripts" / "postgres-node")]
    dsn = subprocess.run([*script, "start", str(directory)], capture_output=True, text=True, check=True).stdout.strip()
    node = PostgresNode(dsn)
    try:
        with psycopg.connect(node.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{postgres_admin[0]}\" WITH LOGIN SUPERUSER PASSWORD '{postgres_admin[1]}'")
        http = server.http()
        _setup(http, node, postgres_admin, default_ttl="3s")
        body = check(http.get("/v1/database/creds/readonly"))
        user = body["data"]["username"]
        assert _valid_until(node, user) is not None

        subprocess.run([*script, "stop", "--keep", str(directory)], check=True, capture_output=True)
        # the lease expires while the database is down; its revocation fails and is retried
        wait_until(
            lambda: http.put("/v1/sys/leases/lookup", json={"lease_id": body["lease_id"]}).json()
            .get("data", {}).get("ttl", 1) <= 0,
            timeout=20,
            message="lease to expire",
        )  # fmt: skip
        lookup = http.put("/v1/sys/leases/lookup", json={"lease_id": body["lease_id"]})
        assert lookup.status_code == 200, "the lease must survive a failed revocation"

        subprocess.run([*script, "start", str(directory)], check=True, capture_output=True)
        # nothing leaked: the user is dropped once the database is back, and the lease is gone
        wait_until(lambda: _valid_until(node, user) is None, timeout=60, message="retried revocation")
        wait_until(
            lambda: http.put("/v1/sys/leases/lookup", json={"lease_id": body["lease_id"]}).status_code != 200,
            message="lease removal",
        )
        # the server recorded the failed attempts (its log names the lease, never the password)
        log = server.log_path.read_text(errors="replace")
        assert body["lease_id"] in log and body["data"]["password"] not in log
    finally:
        subprocess.run([*script, "stop", str(directory)], capture_output=True)
