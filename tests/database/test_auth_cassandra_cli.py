"""``strongroom auth cassandra read|write`` and ``cassandra-forward`` through the real console script."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest
from cassandra import Unauthorized

from database.helpers import RO, check, setup_cassandra, wait_until, write_manifests

pytestmark = pytest.mark.cassandra


def _strongroom(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    full_env = {**os.environ, "STRONGROOM_CONFIG": "/nonexistent/config.toml", **(env or {})}
    full_env.pop("STRONGROOM_TOKEN", None)
    return subprocess.run([exe, *args], capture_output=True, text=True, env=full_env, timeout=60)


@pytest.fixture
def engine(server, cassandra_node, cassandra_keyspaces, cassandra_admin, tmp_path):
    http = server.http()
    setup_cassandra(http, cassandra_node, cassandra_admin)
    manifests = tmp_path / "manifests"
    write_manifests(manifests, [{"name": "s-ledger", "annotations": {"strongroom.io/keyspace": "ledger"}}])
    check(http.post("/v1/database/serviceaccounts/config", json={"manifests_dir": str(manifests)}), 204)
    wait_until(lambda: http.get("/v1/database/roles/k8s_ro_s-ledger_default").status_code == 200, message="sync")
    return http


def _cqlsh_args(stdout: str) -> list[str]:
    return shlex.split(stdout.strip().splitlines()[-1])


def test_read_gives_read_only_credentials_for_the_services_keyspace(server, engine, cassandra_node):
    result = _strongroom(
        "auth", "cassandra", "read", "-e", "s101", "service.ledger", "--addr", server.addr,
        "--token", server.root_token, "--print", "--plain",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Authenticating against s101" in result.stderr
    assert "Username: v_root_k8s_ro_s_ledger_" in result.stderr
    args = _cqlsh_args(result.stdout)
    assert args[0] == "cqlsh" and args[-2:] == ["127.0.0.1", "9042"]
    user, pw = args[args.index("-u") + 1], args[args.index("-p") + 1]
    s = cassandra_node.session(user, pw)
    try:
        s.execute("SELECT * FROM ledger.events LIMIT 1")
        with pytest.raises(Unauthorized):
            s.execute("INSERT INTO ledger.events (id, body) VALUES ('human', 'no')")
    finally:
        s.cluster.shutdown()


def test_write_and_all_keyspaces(server, engine, cassandra_node):
    result = _strongroom("auth", "cassandra", "write", "service.ledger", "--addr", server.addr, "--token",
                         server.root_token, "--print", "--plain")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "k8s_rw_s_ledger" in result.stderr

    # --all-keyspaces needs the stored role ro_all, which only some teams' policies grant
    result = _strongroom("auth", "cassandra", "read", "service.ledger", "--all-keyspaces", "--addr", server.addr,
                         "--token", server.root_token, "--print", "--plain")  # fmt: skip
    assert result.returncode == 1 and "unknown role: ro_all" in result.stderr
    all_ro = RO.replace('KEYSPACE "{{keyspace}}"', "ALL KEYSPACES")
    check(engine.post("/v1/database/roles/ro_all", json={"db_name": "cassandra", "creation_statements": all_ro}), 204)
    result = _strongroom("auth", "cassandra", "read", "service.ledger", "--all-keyspaces", "--addr", server.addr,
                         "--token", server.root_token, "--print", "--plain")  # fmt: skip
    assert result.returncode == 0, result.stderr
    args = _cqlsh_args(result.stdout)
    assert cassandra_node.can_login(args[args.index("-u") + 1], args[args.index("-p") + 1])


def test_denied_by_policy_is_a_clear_error(server, engine):
    policy = 'path "secret/*" { capabilities = ["read"] }'
    check(engine.put("/v1/sys/policies/acl/nothing", json={"policy": policy}), 204)
    token = check(engine.post("/v1/auth/token/create", json={"policies": ["nothing"]}))["auth"]["client_token"]
    result = _strongroom("auth", "cassandra", "write", "service.ledger", "--addr", server.addr, "--token", token,
                         "--plain")  # fmt: skip
    assert result.returncode == 1
    assert "permission denied" in result.stderr and "database/creds/k8s_rw_s-ledger_default" in result.stderr


def test_cassandra_forward_uses_the_bastion():
    result = _strongroom("cassandra-forward", "--dry-run", env={"STRONGROOM_BASTION": "alice@bastion.s101"})
    assert result.returncode == 0
    assert result.stdout.strip() == (
        "ssh -N -o ExitOnForwardFailure=yes -L 127.0.0.1:9042:cassandra-premium1:9042 alice@bastion.s101"
    )
    assert _strongroom("cassandra-forward", "--dry-run").returncode == 2  # no bastion configured
