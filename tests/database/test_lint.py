"""``strongroom lint manifests DIR`` through the real console script."""

from __future__ import annotations

import os
import subprocess
import sys


def _strongroom(*args: str) -> subprocess.CompletedProcess[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    return subprocess.run([exe, *args], capture_output=True, text=True)


def _sa(name: str, annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> str:
    lines = ["apiVersion: v1", "kind: ServiceAccount", "metadata:", f"  name: {name}", "  namespace: default"]
    if annotations:
        lines.append("  annotations:")
        lines += [f'    {k}: "{v}"' for k, v in annotations.items()]
    if labels:
        lines.append("  labels:")
        lines += [f'    {k}: "{v}"' for k, v in labels.items()]
    return "\n".join(lines) + "\n"


def test_lint_fails_for_each_cassandra_user_without_keyspace(tmp_path):
    (tmp_path / "ledger.yaml").write_text(
        _sa("s-ledger", {"strongroom.io/cluster": "cassandra-premium1", "strongroom.io/keyspace": "ledger"})
    )
    (tmp_path / "emoji.yaml").write_text(_sa("s-emoji", {"strongroom.io/cluster": "cassandra-premium1"}))
    (tmp_path / "receipts.yaml").write_text(_sa("s-receipts", labels={"strongroom.io/uses-cassandra": "true"}))
    (tmp_path / "bad.yaml").write_text(_sa("s-bad", {"strongroom.io/keyspace": "no-dashes-allowed"}))
    (tmp_path / "web.yaml").write_text(_sa("s-web"))
    result = _strongroom("lint", "manifests", str(tmp_path))
    assert result.returncode == 1
    err = result.stderr
    assert "ServiceAccount default/s-emoji uses Cassandra (strongroom.io/cluster=cassandra-premium1)" in err
    assert "ServiceAccount default/s-receipts uses Cassandra (label strongroom.io/uses-cassandra)" in err
    assert "add the annotation strongroom.io/keyspace" in err
    assert "default/s-bad has an invalid strongroom.io/keyspace" in err
    assert "s-ledger" not in err and "s-web" not in err
    assert "3 problem(s) in 5 ServiceAccount(s)" in err


def test_lint_passes_clean_manifests_and_custom_prefix(tmp_path):
    (tmp_path / "ledger.yaml").write_text(_sa("s-ledger", {"monzo.com/cluster": "c1", "monzo.com/keyspace": "ledger"}))
    result = _strongroom("lint", "manifests", str(tmp_path), "--prefix", "monzo.com")
    assert result.returncode == 0, result.stderr
    assert "1 ServiceAccount(s) checked" in result.stdout
    assert _strongroom("lint", "manifests", str(tmp_path / "missing")).returncode == 2


def test_lint_checks_the_cluster_annotation_against_known_clusters(tmp_path):
    (tmp_path / "ledger.yaml").write_text(
        _sa("s-ledger", {"strongroom.io/cluster": "cassandra-premium1", "strongroom.io/keyspace": "ledger"})
    )
    (tmp_path / "typo.yaml").write_text(
        _sa("s-typo", {"strongroom.io/cluster": "casandra-premium1", "strongroom.io/keyspace": "typo"})
    )
    (tmp_path / "odd.yaml").write_text(
        _sa("s-odd", {"strongroom.io/cluster": "premium/../root", "strongroom.io/keyspace": "odd"})
    )
    known = _strongroom("lint", "manifests", str(tmp_path), "--cluster", "cassandra-*", "--cluster", "pg-main")
    assert known.returncode == 1
    assert "default/s-typo names an unknown cluster strongroom.io/cluster='casandra-premium1'" in known.stderr
    assert "known clusters are cassandra-*, pg-main" in known.stderr
    assert "default/s-odd has an invalid strongroom.io/cluster 'premium/../root'" in known.stderr
    assert "s-ledger" not in known.stderr
    assert "2 problem(s) in 3 ServiceAccount(s)" in known.stderr

    # the same list from the environment, as CI would set it; without any list only the syntax is checked
    env = {**os.environ, "STRONGROOM_LINT_CLUSTERS": "cassandra-premium1,casandra-premium1"}
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    from_env = subprocess.run([exe, "lint", "manifests", str(tmp_path)], capture_output=True, text=True, env=env)
    assert from_env.returncode == 1 and "1 problem(s) in 3 ServiceAccount(s)" in from_env.stderr
    (tmp_path / "odd.yaml").unlink()
    assert _strongroom("lint", "manifests", str(tmp_path)).returncode == 0


def test_lint_checks_postgresql_users_schema(tmp_path):
    (tmp_path / "good.yaml").write_text(
        _sa("s-payments", {"strongroom.io/database": "postgresql", "strongroom.io/cluster": "pg-main",
                           "strongroom.io/keyspace": "payments"})  # fmt: skip
    )
    (tmp_path / "missing.yaml").write_text(_sa("s-cards", {"strongroom.io/database": "postgres"}))
    (tmp_path / "flag.yaml").write_text(_sa("s-flag", labels={"strongroom.io/uses-postgresql": "true"}))
    (tmp_path / "digit.yaml").write_text(
        _sa("s-digit", {"strongroom.io/database": "postgresql", "strongroom.io/keyspace": "1payments"})
    )
    (tmp_path / "system.yaml").write_text(
        _sa("s-system", {"strongroom.io/database": "postgresql", "strongroom.io/keyspace": "pg_catalog"})
    )
    (tmp_path / "schema.yaml").write_text(
        _sa("s-schema", {"strongroom.io/database": "postgresql", "strongroom.io/schema": "orders"})
    )
    result = _strongroom("lint", "manifests", str(tmp_path), "--cluster", "pg-*")
    assert result.returncode == 1
    err = result.stderr
    assert "default/s-cards uses PostgreSQL (strongroom.io/database=postgres) but does not declare its schema" in err
    assert "default/s-flag uses PostgreSQL (label strongroom.io/uses-postgresql)" in err
    assert "default/s-digit has an invalid PostgreSQL schema '1payments'" in err
    assert "default/s-system has an invalid PostgreSQL schema 'pg_catalog'" in err
    assert "default/s-schema has a strongroom.io/schema annotation, which the database engine ignores" in err
    assert "default/s-schema uses PostgreSQL" in err
    # a PostgreSQL user's cluster annotation does not make it a Cassandra user
    assert "s-payments" not in err and "Cassandra" not in err
    assert "6 problem(s) in 6 ServiceAccount(s)" in err
