"""Setting up the database engine through the HTTP API, as an operator would."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

RW = (
    "CREATE ROLE '{{username}}' WITH PASSWORD = '{{password}}' AND LOGIN = true;"
    "GRANT SELECT ON KEYSPACE \"{{keyspace}}\" TO '{{username}}';"
    "GRANT MODIFY ON KEYSPACE \"{{keyspace}}\" TO '{{username}}';"
)
RO = (
    "CREATE ROLE '{{username}}' WITH PASSWORD = '{{password}}' AND LOGIN = true;"
    "GRANT SELECT ON KEYSPACE \"{{keyspace}}\" TO '{{username}}';"
)


def check(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, f"{resp.status_code}: {resp.text}"
    return resp.json() if resp.content else None


def write_manifests(directory: Path, accounts: list[dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    docs = []
    for sa in accounts:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": sa["name"],
                    "namespace": sa.get("namespace", "default"),
                    "annotations": sa.get("annotations", {}),
                },
            }
        )
    (directory / "serviceaccounts.yaml").write_text(yaml.safe_dump_all(docs))


def setup_cassandra(http: Any, node: Any, admin: tuple[str, str], *, mount: str = "database", **extra: Any) -> None:
    check(http.post(f"/v1/sys/mounts/{mount}", json={"type": "database"}), 204)
    config = {
        "plugin_name": "cassandra-database-plugin",
        "hosts": node.host,
        "port": node.port,
        "username": admin[0],
        "password": admin[1],
        "protocol_version": 4,
        "allowed_roles": "k8s_*,rw,ro,ro_all",
        **extra,
    }
    check(http.post(f"/v1/{mount}/config/cassandra", json=config), 204)
    check(http.post(f"/v1/{mount}/roles/rw", json={"db_name": "cassandra", "creation_statements": RW}), 204)
    check(http.post(f"/v1/{mount}/roles/ro", json={"db_name": "cassandra", "creation_statements": RO}), 204)


def wait_until(predicate: Any, timeout: float = 30.0, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {message}")
