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
