"""sys/metrics against real servers: Prometheus text and Vault's JSON shape, what the figures count, who may read them,
the telemetry stanza, and the unauthenticated listener option (which also answers while sealed)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import hvac
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import StrongroomServer, wait_for

PROMETHEUS = {"format": "prometheus"}
LEASE_TEST = Path(__file__).parent.parent / "leases"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    srv = StrongroomServer(tmp_path_factory.mktemp("metrics-dev")).start()
    yield srv
    srv.stop()


def scrape(srv: StrongroomServer, token: str | None = None) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of a Prometheus scrape: sample name -> sorted labels -> value."""
    with srv.http(token) as http:
        resp = http.get("/v1/sys/metrics", params=PROMETHEUS)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def config_server(factory, body: str) -> StrongroomServer:  # noqa: ANN001
    text = (
        'storage "sqlite" { path = "{storage}" }\n'
        'listener "tcp" {\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n' + body
    )
    return factory(config_text=text)


def init_unseal(srv: StrongroomServer) -> str:
    init = httpx.put(f"{srv.addr}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1}, timeout=30).json()
    httpx.put(f"{srv.addr}/v1/sys/unseal", json={"key": init["keys_base64"][0]}, timeout=30)
    srv.wait_unsealed()
    srv.unseal_key = init["keys_base64"][0]
    return str(init["root_token"])


def test_prometheus_text_parses_with_vault_names(dev: StrongroomServer) -> None:
    with dev.http() as http:
        resp = http.get("/v1/sys/metrics", params=PROMETHEUS)
    assert resp.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    assert families["vault_core_handle_request"].type == "histogram"
    assert families["vault_barrier_get"].type == "histogram"
    assert families["vault_sqlite_put"].type == "histogram"
    assert families["vault_audit_log_request"].type == "histogram"
    samples = scrape(dev)
    assert value(samples, "vault_core_unsealed") == 1.0
    assert value(samples, "vault_core_active") == 1.0
    # Vault's counter names, no _total suffix, so dashboards built on Vault's output find them
    assert "vault_audit_log_request_failure" in samples and "vault_audit_log_response_failure" in samples
    assert "vault_expire_num_leases" in samples and "vault_token_count" in samples
    assert value(samples, "vault_barrier_get_count") > 0 and value(samples, "vault_sqlite_get_count") > 0
    # the gauge values are measured, not hard-coded: the dev server mounts secret/, sys/, cubbyhole/, identity/
    assert value(samples, "vault_core_mount_table_num_entries", type="logical") >= 4


def test_request_counts_rise_per_mount_and_operation(dev: StrongroomServer) -> None:
    client = dev.client()
    client.sys.enable_secrets_engine("kv", path="counted", options={"version": "2"})
    before = scrape(dev)
    for i in range(3):
        client.secrets.kv.v2.create_or_update_secret(f"k{i}", secret={"v": "x"}, mount_point="counted")
    for _ in range(5):
        client.secrets.kv.v2.read_secret_version("k0", mount_point="counted", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version("missing", mount_point="counted", raise_on_deleted_version=True)
    after = scrape(dev)

    def rise(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert rise("vault_route_create_counted__count") == 3
    assert rise("vault_route_read_counted__count") == 6
    assert rise("vault_route_count", mount="counted/", operation="read") == 6
    assert rise("vault_route_count", mount="counted/", operation="create") == 3
    assert rise("vault_route_bucket", mount="counted/", operation="read", le="+Inf") == 6
    assert rise("vault_route_sum", mount="counted/", operation="read") > 0
    assert rise("vault_core_response_status_code", code="404", type="4xx") == 1
    # every request above plus the first scrape itself
    assert rise("vault_core_handle_request_count") >= 10
    assert rise("vault_route_count", mount="secret/", operation="read") == 0


def test_json_shape_is_vaults(dev: StrongroomServer) -> None:
    client = dev.client()
    client.sys.enable_secrets_engine("kv", path="jsonkv", options={"version": "2"})
    client.secrets.kv.v2.create_or_update_secret("a", secret={"v": "x"}, mount_point="jsonkv")
    for _ in range(2):
        client.secrets.kv.v2.read_secret_version("a", mount_point="jsonkv", raise_on_deleted_version=True)
    doc = client.adapter.get("/v1/sys/metrics")
    assert set(doc) >= {"Timestamp", "Gauges", "Counters", "Samples"}
    assert doc["Timestamp"].endswith("+0000 UTC")
    gauges = {g["Name"]: g for g in doc["Gauges"]}
    assert gauges["vault.core.unsealed"]["Value"] == 1
    samples = {(s["Name"], tuple(sorted(s["Labels"].items()))): s for s in doc["Samples"]}
    read = samples[("vault.route.read.jsonkv-", ())]
    assert read["Count"] == 2
    assert set(read) == {"Name", "Count", "Rate", "Sum", "Min", "Max", "Mean", "Stddev", "Labels"}
    assert 0 < read["Min"] <= read["Mean"] <= read["Max"] and read["Sum"] >= read["Max"]
    counters = {(c["Name"], tuple(sorted(c["Labels"].items()))): c for c in doc["Counters"]}
    assert counters[("vault.core.response_status_code", (("code", "200"), ("type", "2xx")))]["Count"] >= 3


def test_reading_metrics_needs_read_on_sys_metrics(dev: StrongroomServer) -> None:
    client = dev.client()
    client.sys.create_or_update_policy("metrics-reader", 'path "sys/metrics" { capabilities = ["read"] }')
    client.sys.create_or_update_policy("kv-reader", 'path "secret/*" { capabilities = ["read"] }')
    reader = client.auth.token.create(policies=["metrics-reader"], ttl="10m")["auth"]["client_token"]
    other = client.auth.token.create(policies=["kv-reader"], ttl="10m")["auth"]["client_token"]
    with httpx.Client(base_url=dev.addr, timeout=30) as http:
        anonymous = http.get("/v1/sys/metrics", params=PROMETHEUS)
        assert anonymous.status_code == 403 and anonymous.json()["errors"]
        denied = http.get("/v1/sys/metrics", headers={"X-Vault-Token": other})
        assert denied.status_code == 403 and denied.json()["errors"] == ["permission denied"]
    assert value(scrape(dev, reader), "vault_core_unsealed") == 1.0


def test_unknown_format_is_a_clear_400(dev: StrongroomServer) -> None:
    with dev.http() as http:
        resp = http.get("/v1/sys/metrics", params={"format": "xml"})
        assert resp.status_code == 400
        assert resp.json() == {"errors": ['metric response format "xml" unknown']}
        # Vault's Accept-header rule picks the Prometheus format without the query parameter
        resp = http.get("/v1/sys/metrics", headers={"Accept": "application/openmetrics-text"})
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")


def test_audit_device_failures_are_counted(dev: StrongroomServer, tmp_path: Path) -> None:
    client = dev.client()
    folder = tmp_path / "audit"
    folder.mkdir()
    client.sys.enable_audit_device("file", path="metered", options={"file_path": str(folder / "audit.log")})
    try:
        before = scrape(dev)
        shutil.rmtree(folder)
        with dev.http() as http:
            refused = http.post("/v1/secret/data/metered", json={"data": {"v": "x"}})
        assert refused.status_code >= 500 and refused.json()["errors"]
        folder.mkdir()  # the destination is back: scraping (an audited request) works again
        after = scrape(dev)
    finally:
        client.sys.disable_audit_device("metered")
    assert value(after, "vault_audit_log_request_failure") - value(before, "vault_audit_log_request_failure") >= 1
    device = "vault_audit_device_log_failure"
    assert value(after, device, device="metered/") - value(before, device, device="metered/") >= 1
    assert value(after, "vault_audit_log_request_count") > value(before, "vault_audit_log_request_count")
    assert value(after, "vault_core_response_status_code", code="500", type="5xx") >= 1


def test_token_gauges_follow_tokens(dev: StrongroomServer) -> None:
    client = dev.client()
    start = value(scrape(dev), "vault_token_count")
    for _ in range(3):
        client.auth.token.create(policies=["default"], ttl="1h")
    wait_for(lambda: value(scrape(dev), "vault_token_count") >= start + 3, message="the token gauge to count 3 more")
    samples = scrape(dev)
    assert value(samples, "vault_token_count_by_state", state="active") >= start + 3


def test_unauthenticated_listener_serves_metrics_while_sealed(server_factory) -> None:  # noqa: ANN001
    srv = config_server(
        server_factory,
        "  telemetry {\n    unauthenticated_metrics_access = true\n  }\n}\n"
        'telemetry {\n  prometheus_retention_time = "1h"\n  disable_hostname = true\n}\n',
    )
    assert value(scrape(srv, ""), "vault_core_unsealed") == 0.0  # not even initialised yet, and no token
    root = init_unseal(srv)
    samples = scrape(srv, "")
    assert value(samples, "vault_core_unsealed") == 1.0 and value(samples, "vault_core_active") == 1.0
    json_doc = httpx.get(f"{srv.addr}/v1/sys/metrics", timeout=30).json()
    assert {g["Name"]: g["Value"] for g in json_doc["Gauges"]}["vault.core.unsealed"] == 1

    with srv.http(root) as http:
        assert http.put("/v1/sys/seal").status_code == 204
    samples = scrape(srv, "")
    assert value(samples, "vault_core_unsealed") == 0.0 and value(samples, "vault_core_active") == 0.0
    assert httpx.put(f"{srv.addr}/v1/sys/unseal", json={"key": srv.unseal_key}, timeout=30).status_code == 200
    assert value(scrape(srv, ""), "vault_core_unsealed") == 1.0


def test_prometheus_needs_a_retention_time(server_factory) -> None:  # noqa: ANN001
    srv = config_server(server_factory, '}\ntelemetry {\n  prometheus_retention_time = "0s"\n}\n')
    root = init_unseal(srv)
    with srv.http(root) as http:
        resp = http.get("/v1/sys/metrics", params=PROMETHEUS)
        assert resp.status_code == 400 and resp.json() == {"errors": ["prometheus is not enabled"]}
        assert http.get("/v1/sys/metrics").json()["Gauges"]  # the JSON format is always there
        # no unauthenticated access configured: the token rule holds
        assert httpx.get(f"{srv.addr}/v1/sys/metrics", timeout=30).status_code == 403


def test_gauges_carry_the_host_name_unless_disabled(server_factory) -> None:  # noqa: ANN001
    srv = config_server(server_factory, '}\ntelemetry {\n  prometheus_retention_time = "24h"\n}\n')
    root = init_unseal(srv)
    samples = scrape(srv, root)
    prefixed = [name for name in samples if name.startswith("vault_") and name.endswith("_core_unsealed")]
    assert prefixed and prefixed != ["vault_core_unsealed"], prefixed  # Vault: vault_<hostname>_core_unsealed
    assert "vault_core_handle_request_count" in samples  # only gauges take the host name


def test_lease_gauges_count_active_and_irrevocable_leases(server_factory) -> None:  # noqa: ANN001
    # the lease-test engine of tests/leases hands out leases without a database
    parts = (str(LEASE_TEST / "site"), str(LEASE_TEST), os.environ.get("PYTHONPATH", ""))
    path = os.pathsep.join(p for p in parts if p)
    srv = server_factory(env={"PYTHONPATH": path, "STRONGROOM_TEST_FAST_RETRIES": "1"})
    client = srv.client()
    client.sys.enable_secrets_engine("lease-test", path="lt")
    client.write("lt/config", ttl=600, max_ttl=600, fail_revokes=0)
    client.read("lt/creds/kept")
    client.write("lt/config", ttl=600, max_ttl=600, fail_revokes=-1)
    stuck = client.read("lt/creds/stuck")["lease_id"]
    with srv.http() as http:
        assert http.put("/v1/sys/leases/revoke", json={"lease_id": stuck, "sync": False}).status_code == 202

    def settled() -> bool:
        samples = scrape(srv)
        return (
            value(samples, "vault_expire_num_irrevocable_leases") == 1
            and value(samples, "vault_expire_leases_by_state", state="active") == 1
        )

    wait_for(settled, timeout=30, message="one active and one irrevocable lease in the gauges")
    assert value(scrape(srv), "vault_expire_num_leases") == 2


def test_idle_per_mount_series_expire_after_the_retention_time(server_factory) -> None:  # noqa: ANN001
    srv = config_server(server_factory, '}\ntelemetry {\n  prometheus_retention_time = "2s"\n}\n')
    root = init_unseal(srv)
    client = srv.client(root)
    client.sys.enable_secrets_engine("kv", path="brief", options={"version": "2"})
    client.secrets.kv.v2.create_or_update_secret("a", secret={"v": "x"}, mount_point="brief")
    first = scrape(srv, root)
    assert value(first, "vault_route_count", mount="brief/", operation="create") == 1

    def gone() -> dict | None:
        samples = scrape(srv, root)
        return None if "vault_route_create_brief__count" in samples else samples

    later = wait_for(gone, timeout=30, message="the idle brief/ series to expire")
    assert value(later, "vault_route_count", mount="brief/", operation="create") == 0
    # the core-wide request count still includes what the dropped series counted
    assert value(later, "vault_core_handle_request_count") > value(first, "vault_core_handle_request_count")
