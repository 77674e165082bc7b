"""Database plugin errors never carry a connection string or a password (issue 18 item 7).

A malformed PostgreSQL URL used to be echoed by libpq into the 400 and into the audit entry's ``error`` in clear. Every
case here checks both the answer and the audit file. PostgreSQL is the real server from ``tests/database``; the
Cassandra cases fail before any connection is attempted, so no Cassandra node is needed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.database.conftest import PostgresNode, postgres_node  # noqa: F401 - the session fixture, reused

from .conftest import Audited

PG = "postgresql-database-plugin"
CQL = "cassandra-database-plugin"


@pytest.fixture(scope="module")
def mounted(audited: Audited) -> Iterator[Audited]:
    with audited.server.http() as http:
        assert http.post("/v1/sys/mounts/database", json={"type": "database"}).status_code == 204
    yield audited


def _password() -> str:
    # characters that need quoting in a URL and in a DSN, so every spelling of it gets checked
    return f"Pw-{secrets.token_hex(8)}/:@%'"


def _spellings(password: str) -> list[str]:
    core = password.split("/")[0]  # the part no encoding changes
    return [password, quote(password, safe=""), core]


def _refused(audited: Audited, name: str, config: dict, *secrets_: str) -> str:
    with audited.server.http() as http:
        r = http.post(f"/v1/database/config/{name}", json=config)
        assert r.status_code == 400, r.text
        assert http.get(f"/v1/database/config/{name}").status_code == 404  # nothing stored
    error = r.json()["errors"][0]
    assert error.startswith("error creating database object")
    audit = audited.audit_text()
    assert f"database/config/{name}" in audit
    for s in secrets_:
        assert s not in r.text, (s, r.text)
        assert s not in audit, s
    return error


def _postgres_cases(node: PostgresNode, pw: str) -> dict[str, dict]:
    enc = quote(pw, safe="")
    host, port = node.host, node.port
    return {
        "url-bad-port": {"connection_url": f"postgresql://admin:{enc}@{host}:notaport/postgres"},
        "url-bad-percent": {"connection_url": f"postgresql://admin:{pw[:10]}%zz{pw[10:]}@{host}:{port}/postgres"},
        "url-bad-param": {"connection_url": f"postgresql://admin:{enc}@{host}:{port}/postgres?bogus={enc}"},
        "url-space-host": {"connection_url": f"postgresql://admin:{enc}@no such host:{port}/postgres"},
        "url-wrong-password": {"connection_url": f"postgresql://postgres:{enc}@{host}:{port}/postgres"},
        "url-unknown-db": {
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{port}/nosuchdb_{enc}",
            "username": "nobody", "password": pw,
        },  # fmt: skip
        "dsn-missing-equals": {"connection_url": f"host={host} port={port} password={pw.replace(chr(39), '')} dbname"},
        "dsn-unterminated": {"connection_url": f"host={host} password='{pw.replace(chr(39), '')} dbname=postgres"},
        "dsn-bad-key": {"connection_url": f"host={host} passwrd={pw.replace(chr(39), '')}"},
        "dsn-templated-bad-host": {
            "connection_url": "host='[not a host' user={{username}} password={{password}} dbname=postgres",
            "username": "nobody", "password": pw,
        },  # fmt: skip
        "field-password-bad-host": {
            "connection_url": f"postgresql://{host}:1/postgres", "username": "nobody", "password": pw,
        },  # fmt: skip
    }


@pytest.mark.postgres
def test_postgres_errors_carry_no_password(mounted: Audited, postgres_node: PostgresNode) -> None:  # noqa: F811
    pw = _password()
    errors = {}
    for case, details in _postgres_cases(postgres_node, pw).items():
        config = {"plugin_name": PG, "connect_timeout": "3s", **details}
        errors[case] = _refused(mounted, f"pg-{case}", config, *_spellings(pw), *_spellings(pw.replace("'", "")))
    # the errors still say what is wrong
    assert "port" in errors["url-bad-port"]
    assert "percent-encoded" in errors["url-bad-percent"]
    assert "bogus" in errors["url-bad-param"]
    assert "password authentication failed" in errors["url-wrong-password"]
    assert 'missing "="' in errors["dsn-missing-equals"]


def test_cassandra_malformed_hosts_are_400s_without_secrets(mounted: Audited) -> None:
    pw = _password()
    base = {"plugin_name": CQL, "username": "cassandra", "password": pw, "connect_timeout": "2s"}
    cases = {
        "userinfo": f"cassandra:{pw}@127.0.0.1",
        "url": f"cassandra://cassandra:{quote(pw, safe='')}@127.0.0.1:9042",
        "space": "no such host",
        "port-zero": "127.0.0.1:0",
        "port-huge": "127.0.0.1:99999",
        "port-text": "127.0.0.1:cql",
        "bad-v6": "[::1:9042",
        "unresolvable": "host-that-does-not-resolve.invalid",
    }
    for case, hosts in cases.items():
        error = _refused(mounted, f"cql-{case}", {**base, "hosts": hosts}, *_spellings(pw))
        assert "hosts entry 1" in error or "connecting to Cassandra failed" in error, error


def test_cassandra_host_with_port_is_accepted(mounted: Audited) -> None:
    base = {"plugin_name": CQL, "username": "cassandra", "password": "not-checked", "verify_connection": False}
    with mounted.server.http() as http:
        cases = (("127.0.0.1:9042", "127.0.0.1:9042"), (" db1:9043 , [::1]:9044,db2", "db1:9043,[::1]:9044,db2"))
        for hosts, expected in cases:
            r = http.post("/v1/database/config/cql-port", json={**base, "hosts": hosts})
            assert r.status_code == 204, r.text
            details = http.get("/v1/database/config/cql-port").json()["data"]["connection_details"]
            assert details["hosts"] == expected
        # with verification, the port in the host is the one dialled: nothing listens there, so a clean 400
        r = http.post("/v1/database/config/cql-dial", json={**base, "hosts": "127.0.0.1:1", "verify_connection": True})
        assert r.status_code == 400 and "connecting to Cassandra failed" in r.json()["errors"][0], r.text
