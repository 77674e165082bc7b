"""ServiceAccount sources: the Kubernetes watcher (against the API stand-in), the persisted cache, manifests.

The Kubernetes API here is ``kube_standin.KubeAPI``, the one stand-in the project allows (no API server can run on
these machines); it answers list and watch of /api/v1/serviceaccounts in the real wire format.
"""

from __future__ import annotations

import pytest

from database.helpers import check, setup_cassandra, wait_until
from database.kube_standin import KubeAPI, service_account
from strongroom.engines.database.serviceaccounts import read_manifests

pytestmark = pytest.mark.cassandra


@pytest.fixture
def kube():
    api = KubeAPI().start()
    yield api
    api.stop()


def _status(http) -> dict:
    return check(http.get("/v1/database/serviceaccounts/status"))["data"]


def _configure(http, kube: KubeAPI) -> None:
    check(
        http.post(
            "/v1/database/serviceaccounts/config",
            json={"kubernetes_host": kube.url, "token": kube.token, "annotation_prefix": "strongroom.io"},
        ),
        204,
    )


def test_watcher_lists_then_follows_changes(server, kube, cassandra_node, cassandra_keyspaces, cassandra_admin):
    kube.put(service_account("s-ledger", annotations={"strongroom.io/keyspace": "ledger"}))
    kube.put(service_account("s-unrelated", "payments"))
    http = server.http()
    setup_cassandra(http, cassandra_node, cassandra_admin)
    _configure(http, kube)
    wait_until(lambda: "kubernetes" in _status(http)["synced_sources"], message="first list")
    assert any(p.startswith("/api/v1/serviceaccounts") for p in kube.requests)

    body = check(http.get("/v1/database/creds/k8s_rw_s-ledger_default"))
    assert cassandra_node.can_login(body["data"]["username"], body["data"]["password"])

    config = check(http.get("/v1/database/serviceaccounts/config"))["data"]
    assert config["token_set"] is True and "token" not in config and kube.token not in str(config)

    # a ServiceAccount created after the first list arrives through the watch
    assert http.get("/v1/database/creds/k8s_rw_s-emoji_default").status_code == 400
    kube.put(service_account("s-emoji", annotations={"strongroom.io/keyspace": "emoji"}))
    wait_until(lambda: http.get("/v1/database/creds/k8s_rw_s-emoji_default").status_code == 200, message="watch ADDED")

    # losing the annotation takes effect too
    kube.put(service_account("s-emoji"))
    wait_until(
        lambda: (
            "no strongroom.io/keyspace annotation" in str(http.get("/v1/database/creds/k8s_rw_s-emoji_default").json())
        ),
        message="watch MODIFIED",
    )
    kube.delete("s-ledger")
    wait_until(lambda: http.get("/v1/database/creds/k8s_rw_s-ledger_default").status_code == 400, message="DELETED")


def test_persisted_cache_serves_after_restart_without_the_api(
    server, kube, cassandra_node, cassandra_keyspaces, cassandra_admin
):
    kube.put(service_account("s-ledger", annotations={"strongroom.io/keyspace": "ledger"}))
    http = server.http()
    setup_cassandra(http, cassandra_node, cassandra_admin)
    _configure(http, kube)
    wait_until(lambda: "kubernetes" in _status(http)["synced_sources"], message="first list")
    http.close()

    kube.stop()  # the Kubernetes API is now unreachable
    server.restart()
    http = server.http()
    body = check(http.get("/v1/database/creds/k8s_rw_s-ledger_default"))
    assert cassandra_node.can_login(body["data"]["username"], body["data"]["password"])
    # served from the persisted copy: the watcher has not synced (it keeps retrying in the background)
    assert "kubernetes" not in _status(http)["synced_sources"]


def test_empty_first_sync_never_wipes_the_persisted_copy(
    server, kube, cassandra_node, cassandra_keyspaces, cassandra_admin
):
    kube.put(service_account("s-ledger", annotations={"strongroom.io/keyspace": "ledger"}))
    http = server.http()
    setup_cassandra(http, cassandra_node, cassandra_admin)
    _configure(http, kube)
    wait_until(lambda: "kubernetes" in _status(http)["synced_sources"], message="first list")
    http.close()

    kube.serve_empty = True  # e.g. a half-started API server, or RBAC that suddenly hides everything
    server.restart()
    http = server.http()
    wait_until(lambda: "kubernetes" in _status(http)["synced_sources"], message="empty list")
    # the live (empty) list does not know s-ledger, so the persisted copy still answers
    check(http.get("/v1/database/creds/k8s_rw_s-ledger_default"))


def test_wrong_token_is_reported_not_leaked(server, kube, cassandra_node, cassandra_admin):
    http = server.http()
    setup_cassandra(http, cassandra_node, cassandra_admin)
    check(
        http.post(
            "/v1/database/serviceaccounts/config", json={"kubernetes_host": kube.url, "token": "wrong-token-xyz"}
        ),
        204,
    )
    status = wait_until(lambda: _status(http)["last_error"] and _status(http), message="watch error")
    assert "wrong-token-xyz" not in str(status)
    assert "kubernetes" not in status["synced_sources"]


def test_read_manifests_handles_lists_and_multi_documents(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: s-one\n"
        "  annotations:\n    strongroom.io/keyspace: one\n"
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: s-one\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text(
        '{"kind": "List", "items": [{"kind": "ServiceAccount", "metadata": {"name": "s-two", "namespace": "pay"}}]}'
    )
    (tmp_path / "broken.yaml").write_text("kind: [unclosed")
    found = {(sa["namespace"], sa["name"]): sa for sa in read_manifests(tmp_path)}
    assert set(found) == {("default", "s-one"), ("pay", "s-two")}
    assert found[("default", "s-one")]["annotations"] == {"strongroom.io/keyspace": "one"}
