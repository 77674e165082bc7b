"""detect following a real server's file audit device: paging on bulk reads, not on an MPA approval, rule reloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import StrongroomServer, wait_for
from tests.detect.conftest import READ_ALL, module_server, user_token

SERVICES = 200


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> StrongroomServer:
    s = module_server(tmp_path_factory, "detect-file")
    root = s.client()
    s.audit_file = str(s.workdir / "audit.log")  # type: ignore[attr-defined]
    root.sys.enable_audit_device("file", options={"file_path": s.audit_file})
    root.sys.create_or_update_policy("read-all", READ_ALL)
    for i in range(SERVICES):
        root.secrets.kv.v2.create_or_update_secret(f"k8s/default/svc-{i:03d}/db-password", secret={"v": f"p{i}"})
    s.detection_token = root.auth.token.create(policies=["detection"], ttl="1h")["auth"]["client_token"]  # type: ignore[attr-defined]
    yield s
    s.stop()


def _config(srv: StrongroomServer, tmp: Path, webhook, rules: str | None = None) -> dict:  # noqa: ANN001
    # each test's detect starts with empty state at the end of the shared log: it sees only that test's entries
    cfg = {
        "instance": "t",
        "state": str(tmp / "state.db"),
        "server": {"address": srv.addr, "token": srv.detection_token},
        "mac_check_interval": "1s",
        "alerts": {"slack_webhook_url": webhook.url + "/slack", "pagerduty_url": webhook.url + "/pd",
                   "pagerduty_routing_key": "rk-test"},
        "sources": [{"name": "audit-file", "type": "file", "path": srv.audit_file, "device": "file",
                     "start_at": "end"}],
    }
    if rules:
        cfg["rules"] = rules
    return cfg


def test_a_token_reading_200_services_secrets_pages_with_who_it_is(srv, tmp_path, webhook, detect_factory):  # noqa: ANN001
    token, entity_id = user_token(srv, "mallory", ["read-all"], team="payments")
    d = detect_factory(_config(srv, tmp_path, webhook))
    reader = srv.client(token=token)
    for i in range(SERVICES):
        reader.secrets.kv.v2.read_secret_version(f"k8s/default/svc-{i:03d}/db-password", raise_on_deleted_version=True)
    pages = wait_for(lambda: webhook.pd_for("bulk-secret-read"), timeout=20, message="a PagerDuty alert")
    assert len(pages) == 1
    page = pages[0]
    assert page["routing_key"] == "rk-test" and page["event_action"] == "trigger"
    assert page["payload"]["severity"] == "critical"
    who = page["payload"]["custom_details"]["who"]
    assert who["entity_id"] == entity_id and who["login"] == "mallory" and who["team"] == "payments"
    assert "mallory" in page["payload"]["summary"]
    slack = [m for m in webhook.slack() if "mallory" in m["text"]]
    assert slack and "payments" in str(slack[0]["blocks"])
    # the whole chain arrived intact, the server vouched for its MAC, and the figures show it
    assert d.metric("strongroom_detect_chain_breaks_total") == 0
    assert d.metric("strongroom_detect_alerts_total", rule="bulk-secret-read", severity="critical") == 1
    assert d.metric("strongroom_detect_events_total", source="audit-file") >= 2 * SERVICES


def test_a_second_engineers_mpa_approval_does_not_page(srv, tmp_path, webhook, detect_factory):  # noqa: ANN001
    d = detect_factory(_config(srv, tmp_path, webhook))
    root = srv.client()
    request = {"id": "mpa-1", "kind": "prod-db", "requester": "alice@example.com", "state": "pending",
               "reason": "INC-42 <!channel>", "duration": 3600, "approvers": []}
    # what the broker sends the server on an approval: its events, then the short-lived token it mints
    events = [
        {"name": "created", "actor": {"email": "alice@example.com"}, "request": request, "severity": "info"},
        {"name": "reviewed", "actor": {"email": "bob@example.com"}, "request": request, "severity": "info",
         "details": {"decision": "approve"}},
        {"name": "approved", "actor": {"email": "bob@example.com"}, "request": request, "severity": "info"},
    ]
    r = srv.http().post("/v1/sys/audit-events", json={"source": "mpa-broker", "events": events})
    assert r.status_code in (200, 204), r.text
    mpa_token = root.auth.token.create(policies=["read-all"], ttl="1h", meta={"mpa_request": "mpa-1"})["auth"]
    reader = srv.client(token=mpa_token["client_token"])
    for i in range(3):
        reader.secrets.kv.v2.read_secret_version(f"k8s/default/svc-{i:03d}/db-password", raise_on_deleted_version=True)
    # a break-glass afterwards is the positive control: it pages, and nothing before it did
    bg = {"name": "break-glass", "actor": {"email": "carol@example.com"}, "request": {**request, "id": "mpa-2"},
          "severity": "critical"}
    assert srv.http().post("/v1/sys/audit-events", json={"source": "mpa-broker", "events": [bg]}).status_code < 300
    wait_for(lambda: webhook.pd_for("break-glass"), timeout=20, message="the break-glass page")
    assert [p["payload"]["class"] for p in webhook.pd()] == ["break-glass"]
    assert "carol@example.com" in webhook.pd()[0]["payload"]["summary"]
    assert d.metric("strongroom_detect_chain_breaks_total") == 0


def test_rules_reload_without_restart_and_a_bad_file_keeps_the_rules(srv, tmp_path, webhook, detect_factory):  # noqa: ANN001
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {id: nothing, type: event, severity: low, match: {path: nowhere}}\n")
    d = detect_factory(_config(srv, tmp_path, webhook, rules=str(rules)))
    srv.client().secrets.kv.v2.read_secret_version("k8s/default/svc-001/db-password", raise_on_deleted_version=True)
    wait_for(lambda: d.metric("strongroom_detect_events_total", source="audit-file") > 0, message="events read")
    rules.write_text("rules: [this is not a rule\n")
    wait_for(lambda: d.metric("strongroom_detect_rule_reloads_total", outcome="error") >= 1, message="bad reload")
    rules.write_text(
        "rules:\n  - id: canary\n    type: event\n    severity: critical\n"
        "    match: {type: response, path: 'secret/data/k8s/default/svc-007/*'}\n"
    )
    wait_for(lambda: d.metric("strongroom_detect_rule_reloads_total", outcome="ok") >= 1, message="reload")
    srv.client().secrets.kv.v2.read_secret_version("k8s/default/svc-007/db-password", raise_on_deleted_version=True)
    page = wait_for(lambda: webhook.pd_for("canary"), timeout=20, message="the canary page")
    assert page[0]["payload"]["custom_details"]["request"]["path"] == "secret/data/k8s/default/svc-007/db-password"


def test_bad_configuration_exits_with_one_error_line(tmp_path) -> None:  # noqa: ANN001
    import subprocess

    from tests.conftest import STRONGROOM

    cfg = tmp_path / "detect.yaml"
    cfg.write_text("state: x.db\nsources: [{type: carrier-pigeon}]\n")
    done = subprocess.run([STRONGROOM, "detect", "--config", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip() == "Error: sources[0].type: must be file, socket or kafka"


def test_the_detection_policy_reads_identities_and_nothing_else(srv) -> None:  # noqa: ANN001
    import hvac.exceptions

    _, entity_id = user_token(srv, "trudy", [], team="audit")
    detection = srv.client(token=srv.detection_token)
    assert detection.read(f"identity/entity/id/{entity_id}")["data"]["metadata"] == {"team": "audit"}
    with pytest.raises(hvac.exceptions.Forbidden):
        detection.secrets.kv.v2.read_secret_version("k8s/default/svc-001/db-password", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        detection.write(f"identity/entity/id/{entity_id}", metadata={"team": "owned"})
    with pytest.raises(hvac.exceptions.Forbidden):
        detection.sys.disable_audit_device("file")


def test_a_service_probing_other_services_secrets_is_named_by_namespace_and_service_account(  # noqa: ANN201
    srv, tmp_path, webhook, detect_factory  # noqa: ANN001
):
    import hvac.exceptions

    from tests.identity.k8s_tokens import FakeCluster

    cluster = FakeCluster().start()
    try:
        root = srv.client()
        root.auth.kubernetes.configure(kubernetes_host=cluster.url, kubernetes_ca_cert=cluster.ca_pem,
                                       token_reviewer_jwt=cluster.reviewer_token)
        d = detect_factory(_config(srv, tmp_path, webhook))
        sa = cluster.service_account("payments", "s-ledger")
        svc = srv.client(token="")
        auth = svc.auth.kubernetes.login("default", cluster.projected_token(sa))["auth"]
        root.write(f"identity/entity/id/{auth['entity_id']}", metadata={"team": "ledger-team"})
        svc.token = auth["client_token"]
        for i in range(25):  # the default denial-rate rule: more than 20 in a minute
            with pytest.raises(hvac.exceptions.Forbidden):
                svc.secrets.kv.v2.read_secret_version(f"k8s/default/svc-{i:03d}/db-password",
                                                      raise_on_deleted_version=True)
        msg = wait_for(lambda: [m for m in webhook.slack() if "Many denied requests" in m["text"]], timeout=20,
                       message="the denial alert")[0]
        assert "service payments/s-ledger" in msg["text"]
        assert "ledger-team" in str(msg["blocks"])
        assert webhook.pd_for("denial-rate") == []  # high, not critical: Slack only
        assert d.metric("strongroom_detect_alerts_total", rule="denial-rate") == 1
    finally:
        cluster.stop()


def test_disabling_an_audit_device_and_generating_a_root_token_page(srv, tmp_path, webhook, detect_factory):  # noqa: ANN001
    d = detect_factory(_config(srv, tmp_path, webhook))
    root = srv.client()
    root.sys.enable_audit_device("file", path="second", options={"file_path": str(tmp_path / "second.log")})
    root.sys.disable_audit_device("second")
    nonce = root.sys.start_root_token_generation(otp="A" * 28)["nonce"]
    assert root.sys.generate_root(key=srv.unseal_key, nonce=nonce)["complete"] is True
    pages = wait_for(lambda: len(webhook.pd()) >= 2 and webhook.pd(), timeout=20, message="two pages")
    assert sorted(p["payload"]["class"] for p in pages) == ["audit-device-disabled", "root-token-generation"]
    disabled = webhook.pd_for("audit-device-disabled")[0]["payload"]["custom_details"]["request"]
    assert disabled["path"] == "sys/audit/second" and disabled["operation"] == "delete"
    assert d.metric("strongroom_detect_chain_breaks_total") == 0
