"""The database plugins against a real Cassandra 5.0 node and a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from cassandra import Unauthorized

from strongroom.engines.database import password as passwords
from strongroom.engines.database import username as usernames
from strongroom.engines.database.plugins import PluginError, new_plugin
from strongroom.engines.database.plugins.cassandra import CassandraPlugin
from strongroom.engines.database.plugins.postgres import PostgresPlugin

RW_GRANT = "GRANT ALL PERMISSIONS ON KEYSPACE \"ledger\" TO '{{username}}';"
CREATE = "CREATE ROLE '{{username}}' WITH PASSWORD = '{{password}}' AND LOGIN = true;"


def _name(plugin) -> str:
    template = usernames.CASSANDRA_DEFAULT if isinstance(plugin, CassandraPlugin) else usernames.POSTGRES_DEFAULT
    return usernames.generate(template, "token", "test", plugin.username_limit)


async def _cassandra(node, admin) -> CassandraPlugin:
    plugin = new_plugin("cassandra-database-plugin")
    assert isinstance(plugin, CassandraPlugin)
    await plugin.initialize(
        {"hosts": node.host, "port": node.port, "username": admin[0], "password": admin[1], "protocol_version": 4},
        verify=True,
    )
    return plugin


# --- Cassandra -------------------------------------------------------------------------------------------------------


@pytest.mark.cassandra
async def test_cassandra_user_reads_and_writes_its_keyspace_only(cassandra_node, cassandra_keyspaces, cassandra_admin):
    plugin = await _cassandra(cassandra_node, cassandra_admin)
    user, pw = _name(plugin), passwords.generate()
    try:
        await plugin.new_user([CREATE, RW_GRANT], user, pw, None)
        s = cassandra_node.session(user, pw)
        try:
            s.execute("INSERT INTO ledger.events (id, body) VALUES ('a', 'b')")
            assert s.execute("SELECT body FROM ledger.events WHERE id = 'a'").one().body == "b"
            with pytest.raises(Unauthorized):
                s.execute("SELECT * FROM emoji.events")
            with pytest.raises(Unauthorized):
                s.execute("INSERT INTO emoji.events (id, body) VALUES ('a', 'b')")
        finally:
            s.cluster.shutdown()
    finally:
        await plugin.delete_user([], user)
        await plugin.close()
    assert not cassandra_node.can_login(user, pw)


@pytest.mark.cassandra
async def test_cassandra_revocation_is_idempotent(cassandra_node, cassandra_admin):
    plugin = await _cassandra(cassandra_node, cassandra_admin)
    user, pw = _name(plugin), passwords.generate()
    await plugin.new_user([], user, pw, None)
    assert cassandra_node.can_login(user, pw)
    await plugin.delete_user([], user)
    await plugin.delete_user([], user)  # a retried revocation must not fail because the role is gone
    assert not cassandra_node.can_login(user, pw)
    await plugin.close()


@pytest.mark.cassandra
async def test_cassandra_failed_creation_is_rolled_back(cassandra_node, cassandra_admin):
    plugin = await _cassandra(cassandra_node, cassandra_admin)
    user, pw = _name(plugin), passwords.generate()
    bad_grant = "GRANT SELECT ON KEYSPACE \"no_such_keyspace\" TO '{{username}}';"
    with pytest.raises(PluginError) as err:
        await plugin.new_user([CREATE, bad_grant], user, pw, None)
    assert pw not in str(err.value)
    assert not cassandra_node.can_login(user, pw)
    s = cassandra_node.session()
    try:
        assert s.execute("SELECT role FROM system_auth.roles WHERE role = %s", (user,)).one() is None
    finally:
        s.cluster.shutdown()
    await plugin.close()


@pytest.mark.cassandra
async def test_cassandra_error_never_echoes_the_password(cassandra_node, cassandra_admin):
    plugin = await _cassandra(cassandra_node, cassandra_admin)
    pw = passwords.generate()
    with pytest.raises(PluginError) as err:
        await plugin.new_user(["CREATE ROLE WITH PASSWORD = '{{password}}' garbage"], _name(plugin), pw, None)
    assert pw not in str(err.value)
    await plugin.close()


@pytest.mark.cassandra
async def test_cassandra_rotate_root(cassandra_node, cassandra_admin):
    plugin = await _cassandra(cassandra_node, cassandra_admin)
    new = passwords.generate()
    fragment = await plugin.rotate_root([], new)
    assert fragment == {"password": new}
    assert not cassandra_node.can_login(*cassandra_admin)
    assert cassandra_node.can_login(cassandra_admin[0], new)
    user, pw = _name(plugin), passwords.generate()
    await plugin.new_user([], user, pw, None)  # the plugin reconnects with the new password
    await plugin.delete_user([], user)
    await plugin.close()


@pytest.mark.cassandra
async def test_cassandra_wrong_password_is_a_clear_error(cassandra_node):
    plugin = CassandraPlugin()
    with pytest.raises(PluginError, match="connecting to Cassandra failed") as err:
        await plugin.initialize(
            {"hosts": cassandra_node.host, "port": cassandra_node.port, "username": "cassandra", "password": "nope-x1"},
            verify=True,
        )
    assert "nope-x1" not in str(err.value)


async def test_cassandra_config_validation():
    plugin = CassandraPlugin()
    with pytest.raises(PluginError, match="protocol_version"):
        await plugin.initialize({"hosts": "h", "username": "u", "password": "p", "protocol_version": 2}, verify=False)
    with pytest.raises(PluginError, match="consistency"):
        await plugin.initialize({"hosts": "h", "username": "u", "password": "p", "consistency": "MOST"}, verify=False)
    cfg = await plugin.initialize(
        {"hosts": "a, b", "username": "u", "password": "p", "consistency": "local_quorum", "insecure_tls": True},
        verify=False,
    )
    assert cfg["hosts"] == "a,b" and cfg["consistency"] == "LOCAL_QUORUM" and cfg["tls"] is True


# --- PostgreSQL ------------------------------------------------------------------------------------------------------


async def _postgres(node, admin) -> PostgresPlugin:
    plugin = new_plugin("postgresql-database-plugin")
    assert isinstance(plugin, PostgresPlugin)
    url = f"postgresql://{{{{username}}}}:{{{{password}}}}@{node.host}:{node.port}/postgres"
    await plugin.initialize({"connection_url": url, "username": admin[0], "password": admin[1]}, verify=True)
    return plugin


def _valid_until(node, user: str) -> dt.datetime | None:
    with psycopg.connect(node.dsn) as conn:
        row = conn.execute("SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
    return None if row is None else row[0]


@pytest.mark.postgres
async def test_postgres_user_lifecycle(postgres_node, postgres_admin):
    plugin = await _postgres(postgres_node, postgres_admin)
    user, pw = _name(plugin), passwords.generate()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    await plugin.new_user([], user, pw, expires)
    assert postgres_node.can_login(user, pw)
    assert abs((_valid_until(postgres_node, user) - expires).total_seconds()) < 2
    later = expires + dt.timedelta(hours=5)
    await plugin.renew_user([], user, later)
    assert abs((_valid_until(postgres_node, user) - later).total_seconds()) < 2
    await plugin.delete_user([], user)
    await plugin.delete_user([], user)
    assert not postgres_node.can_login(user, pw)
    await plugin.close()


@pytest.mark.postgres
async def test_postgres_revocation_drops_owned_objects(postgres_node, postgres_admin):
    plugin = await _postgres(postgres_node, postgres_admin)
    user, pw = _name(plugin), passwords.generate()
    create = [
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        'GRANT CREATE ON SCHEMA public TO "{{name}}";',
    ]
    await plugin.new_user(create, user, pw, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    with psycopg.connect(postgres_node.dsn_for(user, pw), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE t_{user} (id int)")
    await plugin.delete_user([], user)
    assert _valid_until(postgres_node, user) is None
    with psycopg.connect(postgres_node.dsn) as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = %s", (f"t_{user}",)).fetchone()
        conn.execute(f"DROP TABLE IF EXISTS t_{user}")
    assert owner == (postgres_admin[0],)
    await plugin.close()


@pytest.mark.postgres
async def test_postgres_failed_creation_is_rolled_back(postgres_node, postgres_admin):
    plugin = await _postgres(postgres_node, postgres_admin)
    user, pw = _name(plugin), passwords.generate()
    create = [
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';",
        'GRANT SELECT ON TABLE no_such_table TO "{{name}}";',
    ]
    with pytest.raises(PluginError) as err:
        await plugin.new_user(create, user, pw, None)
    assert pw not in str(err.value)
    with psycopg.connect(postgres_node.dsn) as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is None
    await plugin.close()


@pytest.mark.postgres
async def test_postgres_rotate_root(postgres_node, postgres_admin):
    plugin = await _postgres(postgres_node, postgres_admin)
    new = passwords.generate()
    await plugin.rotate_root([], new)
    assert not postgres_node.can_login(*postgres_admin)
    assert postgres_node.can_login(postgres_admin[0], new)
    user, pw = _name(plugin), passwords.generate()
    await plugin.new_user([], user, pw, None)
    await plugin.delete_user([], user)
    await plugin.close()


# --- passwords and usernames -----------------------------------------------------------------------------------------


def test_passwords_are_strong_and_quote_safe():
    seen = set()
    for _ in range(200):
        pw = passwords.generate()
        assert not set(pw) & set("'\"\\;$%` ")
        assert any(c.isupper() for c in pw) and any(c.islower() for c in pw) and any(c.isdigit() for c in pw)
        seen.add(pw)
    assert len(seen) == 200
    assert passwords.entropy_bits(passwords.policy_length("default")) >= 95
    with pytest.raises(ValueError):
        passwords.generate("nonexistent")


def test_usernames_follow_the_vault_template():
    name = usernames.generate(
        usernames.CASSANDRA_DEFAULT, "token-User.0000 X'", "k8s_ro_short_service", 100, now=1575908901
    )
    prefix, _, tail = name.rpartition("_")
    assert tail == "1575908901"
    assert name.startswith("v_token_user_0000_k8s_ro_short_se_")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")
    pg = usernames.generate(usernames.POSTGRES_DEFAULT, "kubernetes-default-s-ledger", "k8s_rw_s-ledger_default", 63)
    assert len(pg) <= 63
    with pytest.raises(usernames.TemplateError):
        usernames.validate("v_{{display_name}}_{{role_name}}_{{random:20}}", 20)
    with pytest.raises(usernames.TemplateError):
        usernames.validate("v_{{nope}}_{{random}}", 100)
