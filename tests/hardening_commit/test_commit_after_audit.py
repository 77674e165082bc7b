"""A change commits only after its audit response entry is recorded (DESIGN: "an acknowledged answer means audited and
durable"). The audit device fails between a request's entry and its response entry (see ``conftest.CutAudit``); the
client must get the refusal and, read back as root once the device works again, nothing may have changed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

from tests.database.conftest import PostgresNode
from tests.hardening_commit.cut_audit import CutAudit, padding

OLD = "value-before-the-outage"
NEW = "value-of-the-refused-write"


def _refused(resp: httpx.Response, cut: CutAudit) -> None:
    assert cut.cut.is_set(), "the audit device was not cut between the request and the response entry"
    assert resp.status_code == 500, resp.text
    errors = resp.json()["errors"]
    assert any("could not be recorded" in e and "nothing changed" in e for e in errors), errors


def _ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else None


def test_kv_v2_write_is_not_stored(server_module, cut_audit: CutAudit) -> None:
    http = server_module.http()
    _ok(http.post("/v1/secret/data/commit/kv", json={"data": {"v": OLD}}))

    cut_audit.arm("secret/data/commit/kv")
    _refused(http.post("/v1/secret/data/commit/kv", json={"data": {"v": NEW}, **padding()}), cut_audit)

    read = _ok(http.get("/v1/secret/data/commit/kv"))["data"]
    assert read["data"] == {"v": OLD}
    assert read["metadata"]["version"] == 1
    meta = _ok(http.get("/v1/secret/metadata/commit/kv"))["data"]
    assert meta["current_version"] == 1 and list(meta["versions"]) == ["1"]
    # the discard is on record once the device works again
    discarded = [e for e in cut_audit.events() if e.get("type") == "request-discarded"]
    assert [e["path"] for e in discarded] == ["secret/data/commit/kv"] and discarded[0]["changes"] >= 1
    # the refused write took no version number: the next accepted write is version 2
    assert _ok(http.post("/v1/secret/data/commit/kv", json={"data": {"v": "later"}}))["data"]["version"] == 2


def test_kv_new_key_and_its_listing_do_not_appear(server_module, cut_audit: CutAudit) -> None:
    http = server_module.http()
    cut_audit.arm("secret/data/commit/fresh/key")
    _refused(http.post("/v1/secret/data/commit/fresh/key", json={"data": {"v": NEW}, **padding()}), cut_audit)

    assert http.get("/v1/secret/data/commit/fresh/key").status_code == 404
    listing = http.request("LIST", "/v1/secret/metadata/commit/")
    keys = listing.json()["data"]["keys"] if listing.status_code == 200 else []
    assert "fresh/" not in keys


def test_kv_metadata_change_is_not_stored(server_module, cut_audit: CutAudit) -> None:
    http = server_module.http()
    _ok(http.post("/v1/secret/data/commit/meta", json={"data": {"v": OLD}}))
    _ok(http.post("/v1/secret/metadata/commit/meta", json={"max_versions": 3, "custom_metadata": {"team": "a"}}), 204)

    cut_audit.arm("secret/metadata/commit/meta")
    body = {"max_versions": 9, "custom_metadata": {"team": "b"}, **padding()}
    _refused(http.post("/v1/secret/metadata/commit/meta", json=body), cut_audit)

    meta = _ok(http.get("/v1/secret/metadata/commit/meta"))["data"]
    assert meta["max_versions"] == 3
    assert meta["custom_metadata"] == {"team": "a"}


def test_policy_write_is_not_stored_and_not_enforced(server_module, cut_audit: CutAudit) -> None:
    http = server_module.http()
    allow = 'path "secret/data/commit/pol/*" { capabilities = ["read"] }'
    _ok(http.put("/v1/sys/policies/acl/commit-reader", json={"policy": allow}), 204)
    _ok(http.post("/v1/secret/data/commit/pol/a", json={"data": {"v": OLD}}))
    token = _ok(http.post("/v1/auth/token/create", json={"policies": ["commit-reader"]}))["auth"]["client_token"]
    reader = server_module.http(token)
    assert reader.get("/v1/secret/data/commit/pol/a").status_code == 200  # the policy is cached now

    cut_audit.arm("sys/policies/acl/commit-reader")
    deny = 'path "secret/data/commit/pol/*" { capabilities = ["deny"] }'
    _refused(http.put("/v1/sys/policies/acl/commit-reader", json={"policy": deny, **padding()}), cut_audit)

    assert _ok(http.get("/v1/sys/policies/acl/commit-reader"))["data"]["policy"] == allow
    # neither the stored policy nor the server's policy cache took the refused change
    assert reader.get("/v1/secret/data/commit/pol/a").status_code == 200


def test_mount_enable_is_not_stored_or_routed(server_module, cut_audit: CutAudit) -> None:
    http = server_module.http()
    cut_audit.arm("sys/mounts/commit-kv")
    body = {"type": "kv", "options": {"version": "2"}, **padding()}
    _refused(http.post("/v1/sys/mounts/commit-kv", json=body), cut_audit)

    assert "commit-kv/" not in _ok(http.get("/v1/sys/mounts"))["data"]
    assert http.post("/v1/commit-kv/data/x", json={"data": {"v": NEW}}).status_code == 404
    # nothing half-registered is left in the router either: enabling it now works
    _ok(http.post("/v1/sys/mounts/commit-kv", json={"type": "kv", "options": {"version": "2"}}), 204)
    assert _ok(http.post("/v1/commit-kv/data/x", json={"data": {"v": OLD}}))["data"]["version"] == 1


def test_token_create_is_not_stored(server_module, cut_audit: CutAudit) -> None:
    http = server_module.http()
    before = set(_ok(http.request("LIST", "/v1/auth/token/accessors"))["data"]["keys"])

    cut_audit.arm("auth/token/create")
    body = {"policies": ["default"], "display_name": "refused", **padding()}
    _refused(http.post("/v1/auth/token/create", json=body), cut_audit)

    after = set(_ok(http.request("LIST", "/v1/auth/token/accessors"))["data"]["keys"])
    assert after == before


READONLY = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT pg_read_all_data TO "{{name}}";',
]
ROLE = "commitgd"  # in every username this role makes (v_<display>_<role:8>_…)


def _pg_users(node: PostgresNode) -> list[str]:
    with psycopg.connect(node.dsn) as conn:
        rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"%{ROLE}%",)).fetchall()
    return [r[0] for r in rows]


@pytest.mark.postgres
def test_database_credential_is_taken_back_and_recorded(
    server_module, postgres_node: PostgresNode, postgres_admin: tuple[str, str], tmp_path
) -> None:
    http = server_module.http()
    _ok(http.post("/v1/sys/mounts/commit-db", json={"type": "database"}), 204)
    url = f"postgresql://{{{{username}}}}:{{{{password}}}}@{postgres_node.host}:{postgres_node.port}/postgres"
    config = {"plugin_name": "postgresql-database-plugin", "connection_url": url, "username": postgres_admin[0],
              "password": postgres_admin[1], "allowed_roles": [ROLE]}  # fmt: skip
    _ok(http.post("/v1/commit-db/config/pg", json=config), 204)
    _ok(http.post(f"/v1/commit-db/roles/{ROLE}", json={"db_name": "pg", "creation_statements": READONLY}), 204)
    # the engine works: a credential issued while the audit device is healthy is a real PostgreSQL user
    issued = _ok(http.get(f"/v1/commit-db/creds/{ROLE}"))
    assert _pg_users(postgres_node) == [issued["data"]["username"]]

    cut = CutAudit(tmp_path / "cut")
    assert http.put("/v1/sys/audit/cut-db", json={"type": "file", "options": {"file_path": str(cut.path)}}).is_success
    try:
        cut.arm(f"commit-db/creds/{ROLE}")
        _refused(http.get(f"/v1/commit-db/creds/{ROLE}", params=padding()), cut)
    finally:
        cut.close()
    try:
        # the user the database created for the refused request is gone again; the first one is untouched
        assert _pg_users(postgres_node) == [issued["data"]["username"]]
        leases = http.request("LIST", f"/v1/sys/leases/lookup/commit-db/creds/{ROLE}/")
        assert leases.status_code == 200, leases.text
        assert len(leases.json()["data"]["keys"]) == 1
        # the undo is on record, without the credential
        taken_back = [e for e in cut.events() if e.get("type") == "credential-taken-back"]
        assert taken_back == [
            {
                "type": "credential-taken-back",
                "path": f"commit-db/creds/{ROLE}",
                "lease_type": taken_back[0]["lease_type"],
                "outcome": "revoked",
            }
        ]
    finally:
        assert http.delete("/v1/sys/audit/cut-db").status_code == 204
        _ok(http.put(f"/v1/sys/leases/revoke-prefix/commit-db/creds/{ROLE}"), 204)


def test_concurrent_cas_writes_to_one_key_never_reuse_a_version(server_module) -> None:
    """Locks are held until commit: 50 writers racing on one key see each other's committed versions."""
    key = "commit/race"
    with server_module.http() as http:
        _ok(http.post(f"/v1/secret/metadata/{key}", json={"max_versions": 100}), 204)

    def write(writer: int, cas: int, http: httpx.Client) -> httpx.Response:
        return http.post(f"/v1/secret/data/{key}", json={"data": {"writer": writer}, "options": {"cas": cas}})

    def create(writer: int) -> int:
        with server_module.http() as http:
            return write(writer, 0, http).status_code

    def until_written(writer: int) -> int:
        with server_module.http() as http:
            for _ in range(500):
                current = _ok(http.get(f"/v1/secret/metadata/{key}"))["data"]["current_version"]
                resp = write(writer, current, http)
                if resp.status_code == 200:
                    return int(resp.json()["data"]["version"])
                assert resp.status_code == 400 and "check-and-set" in resp.text, resp.text
        raise AssertionError(f"writer {writer} never got its turn")

    with ThreadPoolExecutor(max_workers=50) as pool:
        created = list(pool.map(create, range(50)))
        assert sorted(created) == [200] + [400] * 49  # cas=0: exactly one writer creates the key
        versions = list(pool.map(until_written, range(50)))

    assert sorted(versions) == list(range(2, 52))  # every accepted write got its own version number
    with server_module.http() as http:
        meta = _ok(http.get(f"/v1/secret/metadata/{key}"))["data"]
        assert meta["current_version"] == 51 and len(meta["versions"]) == 51
        for writer, version in enumerate(versions):
            read = _ok(http.get(f"/v1/secret/data/{key}", params={"version": version}))["data"]
            assert read["data"] == {"writer": writer}
