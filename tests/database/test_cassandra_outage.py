"""Cassandra down at expiry: the revocation fails, is retried with backoff, and drops the user once the node is back.

Runs its own Cassandra node (the session's shared node stays up for the other tests).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from database.conftest import REPO, CassandraNode
from database.helpers import check, wait_until

pytestmark = pytest.mark.cassandra

SCRIPT = [sys.executable, str(REPO / "scripts" / "cassandra-node")]


def _node(*args: str) -> str:
    result = subprocess.run([*SCRIPT, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_revocation_is_retried_until_cassandra_returns(server, tmp_path):
    directory = tmp_path / "node"
    port = int(_node("start", str(directory)).splitlines()[-1])
    node = CassandraNode("127.0.0.1", port)
    try:
        http = server.http()
        check(http.post("/v1/sys/mounts/database", json={"type": "database"}), 204)
        config = {"plugin_name": "cassandra-database-plugin", "hosts": "127.0.0.1", "port": port,
                  "username": "cassandra", "password": "cassandra", "allowed_roles": "short"}  # fmt: skip
        check(http.post("/v1/database/config/main", json=config), 204)
        check(http.post("/v1/database/roles/short", json={"db_name": "main", "default_ttl": "10s"}), 204)
        body = check(http.get("/v1/database/creds/short"))
        user, pw = body["data"]["username"], body["data"]["password"]
        assert node.can_login(user, pw)

        _node("stop", str(directory))

        def lease_ttl() -> int:
            return check(http.put("/v1/sys/leases/lookup", json={"lease_id": body["lease_id"]}))["data"]["ttl"]

        # the lease expires while Cassandra is down: revocation fails and the lease is kept for another try
        wait_until(lambda: lease_ttl() <= 0, timeout=30, message="lease expiry")
        assert http.put("/v1/sys/leases/lookup", json={"lease_id": body["lease_id"]}).status_code == 200

        _node("start", str(directory), "--port", str(port))
        assert node.can_login("cassandra", "cassandra")
        # nothing leaked: a retry drops the user and removes the lease
        wait_until(lambda: not node.can_login(user, pw), timeout=90, message="retried revocation")
        wait_until(
            lambda: http.put("/v1/sys/leases/lookup", json={"lease_id": body["lease_id"]}).status_code != 200,
            message="lease removal",
        )
        # the server recorded the failed attempts (its log names the lease, never the password)
        log = server.log_path.read_text(errors="replace")
        assert body["lease_id"] in log and body["data"]["password"] not in log
    finally:
        subprocess.run([*SCRIPT, "stop", str(directory)], capture_output=True, timeout=60)
