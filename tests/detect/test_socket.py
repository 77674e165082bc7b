"""detect as the receiver of a socket audit device in acknowledged mode."""

from __future__ import annotations

from tests.conftest import free_port, wait_for
from tests.detect.conftest import READ_ALL, user_token


def test_socket_source_acknowledges_and_alerts(server_factory, tmp_path, webhook, detect_factory):  # noqa: ANN001
    srv = server_factory()
    root = srv.client()
    port = free_port()
    d = detect_factory({
        "instance": "t",
        "state": str(tmp_path / "state.db"),
        "server": {"address": srv.addr, "token": srv.root_token},
        "mac_check_interval": "1s",
        "alerts": {"pagerduty_url": webhook.url + "/pd", "pagerduty_routing_key": "rk"},
        "sources": [{"name": "siem", "type": "socket", "address": f"127.0.0.1:{port}", "device": "siem"}],
    })
    # max_unacked 8: had detect not acknowledged what it stored, the ninth audited request would be refused
    root.sys.enable_audit_device("socket", path="siem", options={
        "address": f"127.0.0.1:{port}", "ack": "true", "max_unacked": "8", "write_timeout": "2s"})
    root.sys.create_or_update_policy("read-all", READ_ALL)
    for i in range(60):
        root.secrets.kv.v2.create_or_update_secret(f"k8s/prod/svc-{i:03d}/token", secret={"v": str(i)})
    token, entity_id = user_token(srv, "eve", ["read-all"], team="growth")
    reader = srv.client(token=token)
    for i in range(60):
        reader.secrets.kv.v2.read_secret_version(f"k8s/prod/svc-{i:03d}/token", raise_on_deleted_version=True)
    page = wait_for(lambda: webhook.pd_for("bulk-secret-read"), timeout=20, message="the page")
    who = page[0]["payload"]["custom_details"]["who"]
    assert who["entity_id"] == entity_id and who["team"] == "growth" and who["login"] == "eve"
    assert d.metric("strongroom_detect_events_total", source="siem") >= 240
    assert d.metric("strongroom_detect_chain_breaks_total") == 0
    # the device's whole stream was acknowledged
    wait_for(lambda: srv.http().get("/v1/sys/audit-chain/siem").json()["data"]["head"]["seq"] > 0, message="head")
