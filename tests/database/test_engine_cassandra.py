"""The database engine over HTTP against a real Cassandra 5.0 node: per-pod users scoped to their own keyspace."""

from __future__ import annotations

import hvac.exceptions
import pytest
from cassandra import Unauthorized

from database.helpers import check, setup_cassandra, wait_until, write_manifests

pytestmark = pytest.mark.cassandra

LEDGER_SA = {"name": "s-ledger", "annotations": {"strongroom.io/keyspace": "ledger"}}
EVIL = 'ledger" TO x; DROP KEYSPACE ledger; --'
EMOJI_SA = {"name": "s-emoji", "annotations": {"strongroom.io/keyspace": "emoji"}}


@pytest.fixture
def engine(server, cassandra_node, cassandra_keyspaces, cassandra_admin, tmp_path):
    """A server with the database engine at database/, ServiceAccounts read from a manifest directory."""
    http = server.http()
    setup_cassandra(http, cassandra_node, cassandra_admin)
    manifests = tmp_path / "manifests"
    write_manifests(
        manifests,
        [
            LEDGER_SA,
            EMOJI_SA,
            {"name": "s-plain"},
            {"name": "s-evil", "annotations": {"strongroom.io/keyspace": EVIL}},
            {
                "name": "s-other-cluster",
                "annotations": {"strongroom.io/keyspace": "ledger", "strongroom.io/cluster": "c2"},
            },
        ],
    )
    check(http.post("/v1/database/serviceaccounts/config", json={"manifests_dir": str(manifests)}), 204)
    wait_until(
        lambda: "manifests" in check(http.get("/v1/database/serviceaccounts/status"))["data"]["synced_sources"],
        message="manifest sync",
    )
    return http


def _creds(http, role: str) -> dict:
    body = check(http.get(f"/v1/database/creds/{role}"))
    assert body["lease_id"].startswith(f"database/creds/{role}/")
    assert body["renewable"] is True
    return body


def test_pod_credentials_read_and_write_own_keyspace_only(engine, cassandra_node):
    body = _creds(engine, "k8s_rw_s-ledger_default")
    user, pw = body["data"]["username"], body["data"]["password"]
    assert body["lease_duration"] == 7 * 24 * 3600
    assert user.startswith("v_root_k8s_rw_s_ledger_")
    s = cassandra_node.session(user, pw)
    try:
        s.execute("INSERT INTO ledger.events (id, body) VALUES ('pod', 'hello')")
        assert s.execute("SELECT body FROM ledger.events WHERE id = 'pod'").one().body == "hello"
        with pytest.raises(Unauthorized):
            s.execute("SELECT * FROM emoji.events")
        with pytest.raises(Unauthorized):
            s.execute("INSERT INTO emoji.events (id, body) VALUES ('x', 'y')")
    finally:
        s.cluster.shutdown()


def test_ro_credentials_cannot_write(engine, cassandra_node):
    body = _creds(engine, "k8s_ro_s-ledger_default")
    s = cassandra_node.session(body["data"]["username"], body["data"]["password"])
    try:
        s.execute("SELECT * FROM ledger.events LIMIT 1")
        with pytest.raises(Unauthorized):
            s.execute("INSERT INTO ledger.events (id, body) VALUES ('ro', 'nope')")
    finally:
        s.cluster.shutdown()


def test_hvac_generate_credentials(server, engine, cassandra_node):
    creds = server.client().secrets.database.generate_credentials("k8s_rw_s-emoji_default", mount_point="database")
    assert cassandra_node.can_login(creds["data"]["username"], creds["data"]["password"])


def test_revoke_and_expiry_make_login_fail(engine, cassandra_node):
    body = _creds(engine, "k8s_rw_s-ledger_default")
    user, pw = body["data"]["username"], body["data"]["password"]
    assert cassandra_node.can_login(user, pw)
    check(engine.put("/v1/sys/leases/revoke", json={"lease_id": body["lease_id"]}), 204)
    wait_until(lambda: not cassandra_node.can_login(user, pw), message="revoked user to be dropped")

    check(
        engine.post("/v1/database/roles/short", json={"db_name": "cassandra", "default_ttl": "2s", "max_ttl": "5s"}),
        204,
    )
    check(engine.post("/v1/database/config/cassandra", json={"allowed_roles": "k8s_*,rw,ro,short"}), 204)
    body = _creds(engine, "short")
    assert body["lease_duration"] == 2
    user, pw = body["data"]["username"], body["data"]["password"]
    assert cassandra_node.can_login(user, pw)
    wait_until(lambda: not cassandra_node.can_login(user, pw), timeout=30, message="expired user to be dropped")


def test_renew_extends_up_to_max_ttl(engine):
    check(engine.post("/v1/database/roles/rw", json={"default_ttl": "1h", "max_ttl": "2h"}), 204)
    body = _creds(engine, "k8s_rw_s-ledger_default")
    assert body["lease_duration"] == 3600
    renewed = check(engine.put("/v1/sys/leases/renew", json={"lease_id": body["lease_id"], "increment": 5400}))
    assert renewed["lease_duration"] == 5400
    capped = check(engine.put("/v1/sys/leases/renew", json={"lease_id": body["lease_id"], "increment": 86400}))
    assert 7000 < capped["lease_duration"] <= 7200
    assert capped["warnings"]


def test_stored_role_overrides_dynamic_role(engine, cassandra_node):
    stored = (
        "CREATE ROLE '{{username}}' WITH PASSWORD = '{{password}}' AND LOGIN = true;"
        "GRANT SELECT ON KEYSPACE \"emoji\" TO '{{username}}';"
    )
    name = "k8s_rw_s-ledger_default"
    check(engine.post(f"/v1/database/roles/{name}", json={"db_name": "cassandra", "creation_statements": stored}), 204)
    body = _creds(engine, name)
    s = cassandra_node.session(body["data"]["username"], body["data"]["password"])
    try:
        s.execute("SELECT * FROM emoji.events LIMIT 1")
        with pytest.raises(Unauthorized):
            s.execute("SELECT * FROM ledger.events LIMIT 1")
    finally:
        s.cluster.shutdown()


def test_dynamic_role_errors_are_clear(engine):
    resp = engine.get("/v1/database/creds/k8s_rw_s-plain_default")
    assert resp.status_code == 400
    assert "has no strongroom.io/keyspace annotation" in resp.json()["errors"][0]

    resp = engine.get("/v1/database/creds/k8s_rw_s-evil_default")
    assert resp.status_code == 400
    assert "invalid strongroom.io/keyspace annotation" in resp.json()["errors"][0]

    resp = engine.get("/v1/database/creds/k8s_rw_s-nobody_default")
    assert resp.status_code == 400
    assert "is not known" in resp.json()["errors"][0]

    resp = engine.get("/v1/database/creds/k8s_rw_s-ledger")
    assert resp.status_code == 400 and "malformed" in resp.json()["errors"][0]

    resp = engine.get("/v1/database/creds/k8s_admin_s-ledger_default")
    assert resp.status_code == 400 and "no base role" in resp.json()["errors"][0]

    # the cluster annotation names the connection; c2 does not exist
    resp = engine.get("/v1/database/creds/k8s_rw_s-other-cluster_default")
    assert resp.status_code == 400 and "'c2'" in resp.json()["errors"][0]


def test_base_role_without_keyspace_is_not_usable_dynamically(engine):
    check(engine.post("/v1/database/roles/plain", json={"db_name": "cassandra"}), 204)
    resp = engine.get("/v1/database/creds/k8s_plain_s-ledger_default")
    assert resp.status_code == 400 and "{{keyspace}}" in resp.json()["errors"][0]


def test_allowed_roles_are_enforced(engine):
    check(engine.post("/v1/database/config/cassandra", json={"allowed_roles": "k8s_ro_*"}), 204)
    resp = engine.get("/v1/database/creds/k8s_rw_s-ledger_default")
    assert resp.status_code == 400 and "not an allowed role" in resp.json()["errors"][0]
    _creds(engine, "k8s_ro_s-ledger_default")


def test_virtual_role_reads_interpolated(engine):
    data = check(engine.get("/v1/database/roles/k8s_ro_s-ledger_default"))["data"]
    assert data["db_name"] == "cassandra"
    assert 'GRANT SELECT ON KEYSPACE "ledger"' in data["creation_statements"][0]
    assert check(engine.get("/v1/database/roles", params={"list": "true"}))["data"]["keys"] == ["ro", "rw"]


def test_config_read_hides_password_and_rotate_root(engine, cassandra_node, cassandra_admin):
    data = check(engine.get("/v1/database/config/cassandra"))["data"]
    assert data["plugin_name"] == "cassandra-database-plugin"
    assert data["connection_details"]["username"] == cassandra_admin[0]
    assert "password" not in data["connection_details"]
    assert cassandra_admin[1] not in str(data)

    check(engine.post("/v1/database/rotate-root/cassandra"), 204)
    assert not cassandra_node.can_login(*cassandra_admin)
    assert cassandra_admin[1] not in str(check(engine.get("/v1/database/config/cassandra")))
    body = _creds(engine, "k8s_rw_s-ledger_default")  # the engine still works with the password only it knows
    assert cassandra_node.can_login(body["data"]["username"], body["data"]["password"])
    check(engine.post("/v1/database/reset/cassandra"), 204)
    _creds(engine, "k8s_ro_s-ledger_default")


def test_bad_config_is_refused_without_change(engine):
    resp = engine.post("/v1/database/config/other", json={"plugin_name": "mysql-database-plugin"})
    assert resp.status_code == 400
    resp = engine.post(
        "/v1/database/config/other",
        json={"plugin_name": "cassandra-database-plugin", "hosts": "127.0.0.1", "port": 1, "username": "u",
              "password": "secret-pw-1", "connect_timeout": "1s"},
    )  # fmt: skip
    assert resp.status_code == 400 and "secret-pw-1" not in resp.text
    assert engine.get("/v1/database/config/other").status_code == 404
    assert check(engine.get("/v1/database/config", params={"list": "true"}))["data"]["keys"] == ["cassandra"]


def test_revoking_the_pods_token_revokes_its_credentials(server, engine, cassandra_node):
    check(
        engine.put(
            "/v1/sys/policies/acl/ledger-db",
            json={"policy": 'path "database/creds/k8s_rw_s-ledger_default" { capabilities = ["read"] }'},
        ),
        204,
    )
    token = check(engine.post("/v1/auth/token/create", json={"policies": ["ledger-db"]}))["auth"]["client_token"]
    pod = server.http(token)
    body = _creds(pod, "k8s_rw_s-ledger_default")
    assert pod.get("/v1/database/creds/k8s_rw_s-emoji_default").status_code == 403
    user, pw = body["data"]["username"], body["data"]["password"]
    assert cassandra_node.can_login(user, pw)
    check(engine.post("/v1/auth/token/revoke", json={"token": token}), 204)
    wait_until(lambda: not cassandra_node.can_login(user, pw), message="the pod's user to be dropped")


def test_cluster_annotation_selects_the_connection(engine, cassandra_node, cassandra_admin):
    # s-other-cluster declares strongroom.io/cluster: c2; once c2 exists its credentials come from there
    c2 = {
        "plugin_name": "cassandra-database-plugin",
        "hosts": cassandra_node.host,
        "port": cassandra_node.port,
        "username": cassandra_admin[0],
        "password": cassandra_admin[1],
        "allowed_roles": "k8s_*",
        "username_template": "c2_{{role_name:20}}_{{random:20}}",
    }
    check(engine.post("/v1/database/config/c2", json=c2), 204)
    body = _creds(engine, "k8s_rw_s-other-cluster_default")
    assert body["data"]["username"].startswith("c2_k8s_rw_s_other_clus")
    assert cassandra_node.can_login(body["data"]["username"], body["data"]["password"])
    assert _creds(engine, "k8s_rw_s-ledger_default")["data"]["username"].startswith("v_")


def test_hvac_drives_the_whole_engine(server, cassandra_node, cassandra_keyspaces, cassandra_admin):
    client = server.client()
    client.sys.enable_secrets_engine("database", path="database")
    db = client.secrets.database
    db.configure(
        name="cassandra",
        plugin_name="cassandra-database-plugin",
        allowed_roles=["ledger-rw"],
        mount_point="database",
        hosts=cassandra_node.host,
        port=cassandra_node.port,
        username=cassandra_admin[0],
        password=cassandra_admin[1],
        protocol_version=4,
    )
    assert db.read_connection("cassandra", mount_point="database")["data"]["allowed_roles"] == ["ledger-rw"]
    assert db.list_connections(mount_point="database")["data"]["keys"] == ["cassandra"]
    statements = [
        "CREATE ROLE '{{username}}' WITH PASSWORD = '{{password}}' AND LOGIN = true;",
        "GRANT SELECT ON KEYSPACE \"ledger\" TO '{{username}}';",
    ]
    db.create_role("ledger-rw", db_name="cassandra", creation_statements=statements, default_ttl="1h", max_ttl="24h",
                   mount_point="database")  # fmt: skip
    role = db.read_role("ledger-rw", mount_point="database")["data"]
    assert role["creation_statements"] == statements and role["default_ttl"] == 3600
    assert db.list_roles(mount_point="database")["data"]["keys"] == ["ledger-rw"]
    creds = db.generate_credentials("ledger-rw", mount_point="database")
    assert creds["lease_duration"] == 3600
    db.rotate_root_credentials("cassandra", mount_point="database")
    assert not cassandra_node.can_login(*cassandra_admin)
    client.sys.revoke_lease(creds["lease_id"])
    wait_until(lambda: not cassandra_node.can_login(creds["data"]["username"], creds["data"]["password"]))
    db.delete_role("ledger-rw", mount_point="database")
    db.delete_connection("cassandra", mount_point="database")
    with pytest.raises(hvac.exceptions.InvalidPath):  # Vault answers an empty list with 404
        db.list_roles(mount_point="database")
