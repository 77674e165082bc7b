"""Request storage on SQLite and on a real PostgreSQL server: durable, and compare-and-save lets one writer win."""

from __future__ import annotations

import time

import pytest

from strongroom.broker.models import APPROVED, PENDING, MpaRequest
from strongroom.broker.store import open_store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    import psycopg

    dsn = request.getfixturevalue("postgres_dsn")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS mpa_requests")
    return dsn


def _req(rid: str) -> MpaRequest:
    now = time.time()
    return MpaRequest(id=rid, kind="k8s-admin", requester={"issuer": "i", "subject": "s", "name": "", "email": ""},
                      reason="Rotate the etcd key INC-1", duration=600, state=PENDING, created_at=now,
                      request_expires_at=now + 3600, approvals_needed=1)


def test_insert_get_list_and_reopen(store_url):
    store = open_store(store_url)
    store.insert(_req("mpa-a"))
    store.insert(_req("mpa-b"))
    got = store.get("mpa-a")
    got.state = APPROVED
    assert store.compare_and_save(got)
    store.close()
    again = open_store(store_url)
    assert again.get("mpa-a").state == APPROVED
    assert [r.id for r in again.list((PENDING,))] == ["mpa-b"]
    assert again.get("missing") is None
    again.close()


def test_compare_and_save_lets_one_writer_win(store_url):
    store = open_store(store_url)
    store.insert(_req("mpa-c"))
    first, second = store.get("mpa-c"), store.get("mpa-c")
    first.state = APPROVED
    second.state = "denied"
    assert store.compare_and_save(first)
    assert not store.compare_and_save(second)
    assert store.get("mpa-c").state == APPROVED
    store.close()


@pytest.mark.postgres
def test_broker_flow_on_postgres(make_broker, postgres_dsn, tmp_path, idp, receiver):
    import psycopg

    from broker.conftest import RunningBroker, base_config

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS mpa_requests")
    raw = base_config(tmp_path, idp, receiver)
    raw["broker"]["storage"] = postgres_dsn
    broker = RunningBroker(tmp_path, idp, raw, strongroom_token=None)
    try:
        req = broker.request("alice")
        assert broker.review("bob", req["id"]).json()["request"]["state"] == "approved"
        assert broker.fetch("alice", req["id"]).status_code == 200
        assert broker.fetch("alice", req["id"]).status_code == 410
    finally:
        broker.stop()
