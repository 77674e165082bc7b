"""The client side: ``secretstore.database.database_credentials`` against a real server and PostgreSQL."""

from __future__ import annotations

import logging

import pytest

from database.helpers import wait_until
from database.test_engine_postgres import _setup
from strongroom.secretstore.database import RENEW_AT, DatabaseCredentials, database_credentials, renew_delay
from strongroom.secretstore.errors import Unavailable

pytestmark = pytest.mark.postgres


def _client(server, **kw) -> DatabaseCredentials:
    kw.setdefault("backoff_initial", 0.2)
    kw.setdefault("backoff_max", 1.0)
    return database_credentials(
        "readonly", role_name="readonly", addr=server.addr, token_provider=lambda: server.root_token, **kw
    )


def test_renews_then_fetches_new_credentials_at_max_ttl(server, postgres_node, postgres_admin):
    _setup(server.http(), postgres_node, postgres_admin, default_ttl="3s", max_ttl="8s")
    changes = []
    creds = _client(server, on_change=changes.append)
    try:
        first = creds.wait(timeout=15)
        assert creds.ready() and postgres_node.can_login(first.username, first.password)
        wait_until(lambda: creds.stats["renewals"] >= 1, timeout=15, message="a renewal")
        assert creds.current().lease_id == first.lease_id  # renewed, not replaced
        # max_ttl 8s: renewals stop extending the lease, so the client fetches new credentials and says so
        wait_until(lambda: creds.stats["fetches"] >= 2, timeout=30, message="a new fetch")
        second = creds.current()
        assert second.lease_id != first.lease_id and second.username != first.username
        assert [c.lease_id for c in changes[:2]] == [first.lease_id, second.lease_id]
        assert postgres_node.can_login(second.username, second.password)
    finally:
        creds.close(revoke=True)
    assert "password" not in repr(second) and second.password not in repr(second)


def test_backs_off_while_the_server_is_down_and_recovers(server, postgres_node, postgres_admin):
    _setup(server.http(), postgres_node, postgres_admin, default_ttl="4s", max_ttl="1h")
    creds = _client(server)
    try:
        creds.wait(timeout=15)
        server.stop()
        wait_until(lambda: creds.stats["failures"] >= 2, timeout=20, message="failed renewals")
        failures = creds.stats["failures"]
        server.start()
        before = creds.stats["renewals"] + creds.stats["fetches"]
        wait_until(lambda: creds.stats["renewals"] + creds.stats["fetches"] > before, timeout=20, message="recovery")
        now = creds.current()
        assert postgres_node.can_login(now.username, now.password)
        assert creds.stats["failures"] >= failures
    finally:
        creds.close(revoke=True)


def test_not_ready_until_credentials_and_fallback_is_loud(caplog):
    nowhere = {"addr": "http://127.0.0.1:9", "token_provider": lambda: "t", "backoff_initial": 0.1, "backoff_max": 0.2}
    creds = database_credentials("rw", role_name="rw", **nowhere)
    try:
        assert not creds.ready()
        with pytest.raises(Unavailable):
            creds.wait(timeout=0.5)
    finally:
        creds.close()

    caplog.set_level(logging.ERROR, logger="strongroom.secretstore.database")
    with database_credentials("rw", role_name="rw", fallback=("legacy", "legacy-pw"), **nowhere) as creds:
        got = creds.wait(timeout=10)
        assert got.fallback and got.username == "legacy" and creds.ready()
        wait_until(lambda: "USING FALLBACK DATABASE CREDENTIALS" in caplog.text, timeout=5, message="loud log")
        assert "legacy-pw" not in caplog.text


def test_renewal_schedule_is_about_eighty_percent_with_jitter():
    delays = [renew_delay(1000) for _ in range(500)]
    assert all(750 <= d <= 850 for d in delays)
    assert len({round(d) for d in delays}) > 20
    assert renew_delay(1000, rng=lambda a, b: (a + b) / 2) == pytest.approx(RENEW_AT * 1000)


def test_pod_role_name_comes_from_the_workload(server, postgres_node, postgres_admin):
    class Pod:
        addr = server.addr
        namespace = "default"
        service_account = "s-ledger"

        def token(self) -> str:
            return server.root_token

    creds = DatabaseCredentials("rw", client=Pod(), backoff_initial=0.1, backoff_max=0.2)
    try:
        assert creds.role_name == "k8s_rw_s-ledger_default"
    finally:
        creds.close()
