"""Removed or forged audit lines raise an alert; killing detect mid-stream neither loses nor repeats an alert."""

from __future__ import annotations

import hashlib
import threading

import orjson
import pytest

from strongroom.detect.state import open_state
from tests.conftest import wait_for
from tests.detect.conftest import READ_ALL, user_token


def _file_server(server_factory, n_secrets: int = 0):  # noqa: ANN001, ANN202
    srv = server_factory()
    root = srv.client()
    audit = srv.workdir / "audit.log"
    root.sys.enable_audit_device("file", options={"file_path": str(audit)})
    root.sys.create_or_update_policy("read-all", READ_ALL)
    for i in range(n_secrets):
        root.secrets.kv.v2.create_or_update_secret(f"k8s/prod/svc-{i:03d}/api-key", secret={"v": f"k{i}"})
    return srv, audit


def _config(srv, tmp_path, webhook, audit, **extra) -> dict:  # noqa: ANN001, ANN003
    return {
        "instance": "t",
        "state": str(tmp_path / "state.db"),
        "server": {"address": srv.addr, "token": srv.root_token},
        "mac_check_interval": "1s",
        "alerts": {"pagerduty_url": webhook.url + "/pd", "pagerduty_routing_key": "rk"},
        "sources": [{"name": "audit-file", "type": "file", "path": str(audit), "device": "file"}],
        **extra,
    }


def test_deleting_a_line_from_the_audit_file_raises_a_chain_alert(server_factory, tmp_path, webhook, detect_factory):  # noqa: ANN001
    srv, audit = _file_server(server_factory, n_secrets=5)
    lines = audit.read_bytes().splitlines(keepends=True)
    victim = orjson.loads(lines[6])["seq"]
    # edited in place, as someone covering their tracks would: the server keeps appending to the same file
    with open(audit, "r+b") as f:
        f.write(b"".join(lines[:6] + lines[7:]))
        f.truncate()
    d = detect_factory(_config(srv, tmp_path, webhook, audit))
    page = wait_for(lambda: webhook.pd_for("audit-chain"), timeout=20, message="the chain alert")
    details = page[0]["payload"]["custom_details"]["details"]
    assert f"entries seq {victim} are missing before seq {victim + 1}" in details["problem"]
    assert page[0]["payload"]["severity"] == "critical"
    assert d.metric("strongroom_detect_chain_breaks_total", source="audit-file") == 1
    # the server's later entries chain on normally: one removal, one alert
    srv.client().sys.read_health_status(method="GET")
    srv.client().secrets.kv.v2.read_secret_version("k8s/prod/svc-001/api-key", raise_on_deleted_version=True)
    wait_for(lambda: d.metric("strongroom_detect_events_total", source="audit-file") >= len(lines) + 1,
             message="later entries")
    assert len(webhook.pd_for("audit-chain")) == 1


def test_a_forged_line_with_a_recomputed_chain_fails_the_servers_mac_check(  # noqa: ANN201
    server_factory, tmp_path, webhook, detect_factory  # noqa: ANN001
):
    srv, audit = _file_server(server_factory)
    srv.client().sys.list_mounted_secrets_engines()
    last = audit.read_bytes().splitlines()[-1]
    doc = orjson.loads(last)
    # SHA-256 needs no key: anyone can append a line that chains on; only its MAC gives it away
    forged = {**doc, "seq": doc["seq"] + 1, "prev_hash": hashlib.sha256(last).hexdigest(),
              "mac": "hmac-sha256:" + "ab" * 32}
    with open(audit, "ab") as f:
        f.write(orjson.dumps(forged) + b"\n")
    d = detect_factory(_config(srv, tmp_path, webhook, audit))
    wait_for(
        lambda: [p for p in webhook.pd_for("audit-chain") if "bad MAC" in p["payload"]["custom_details"]["details"]
                 ["problem"]],
        timeout=20,
        message="the bad MAC alert",
    )
    # the server's next real line then collides with the forged seq: reported as well
    assert d.metric("strongroom_detect_chain_breaks_total", source="audit-file") >= 1


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_killing_detect_mid_stream_neither_loses_nor_repeats_an_alert(  # noqa: ANN201
    store, server_factory, tmp_path, webhook, detect_factory, request  # noqa: ANN001
):
    srv, audit = _file_server(server_factory, n_secrets=40)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {id: bulk, type: threshold, severity: critical, count: 20, window: 10m, dedupe: 1h,\n"
        "     match: {type: response, operation: read, path: 'secret/data/*', error: false}}\n"
    )
    readers = {name: user_token(srv, name, ["read-all"])[1] for name in ("ann", "ben", "cat")}
    tokens = {name: user_token(srv, name, ["read-all"])[0] for name in readers}
    cfg = _config(srv, tmp_path, webhook, audit, rules=str(rules))
    if store == "postgresql":
        cfg["state"] = request.getfixturevalue("fresh_database")
    webhook.fail_next = 10_000  # PagerDuty is down: alerts wait in the outbox
    d = detect_factory(cfg)

    def read_all(name: str) -> None:
        c = srv.client(token=tokens[name])
        for i in range(40):
            c.secrets.kv.v2.read_secret_version(f"k8s/prod/svc-{i:03d}/api-key", raise_on_deleted_version=True)

    read_all("ann")
    wait_for(lambda: d.metric("strongroom_detect_alerts_total", rule="bulk") >= 1, message="ann's alert queued")
    # ben reads while detect dies: some of his entries are read before the kill, the rest after the restart
    ben = threading.Thread(target=read_all, args=("ben",))
    ben.start()
    wait_for(lambda: d.metric("strongroom_detect_events_total", source="audit-file") > 0, message="reading")
    d.stop(kill=True)
    ben.join()
    read_all("cat")
    read_all("ann")  # ann again, inside the same dedupe window: not a second alert
    assert webhook.pd() == []
    webhook.fail_next = 0
    d2 = detect_factory(cfg)
    wait_for(lambda: len(webhook.pd()) >= 3, timeout=30, message="three pages")
    state = open_state(cfg["state"])
    wait_for(lambda: state.pending() == 0, message="outbox drained")
    state.close()
    wait_for(lambda: d2.metric("strongroom_detect_backlog", source="audit-file") == 0, message="caught up")
    pages = webhook.pd_for("bulk")
    who = sorted(p["payload"]["custom_details"]["who"]["entity_id"] for p in pages)
    assert who == sorted(readers.values())
    assert len({p["dedup_key"] for p in pages}) == 3


def test_the_file_source_follows_the_log_across_rotation(server_factory, tmp_path, webhook, detect_factory):  # noqa: ANN001
    srv, audit = _file_server(server_factory, n_secrets=3)
    d = detect_factory(_config(srv, tmp_path, webhook, audit))
    rotated = audit.with_name("audit.log.1")
    audit.rename(rotated)  # logrotate's default: move the file away, the server opens a new one at the path
    for i in range(3):
        srv.client().secrets.kv.v2.read_secret_version(f"k8s/prod/svc-{i:03d}/api-key", raise_on_deleted_version=True)
    wait_for(audit.exists, message="the new file")

    def total() -> int:
        return sum(len(p.read_bytes().splitlines()) for p in (rotated, audit))

    wait_for(lambda: d.metric("strongroom_detect_events_total", source="audit-file") == total(), timeout=20,
             message="both files read")
    assert len(audit.read_bytes().splitlines()) >= 6
    assert d.metric("strongroom_detect_chain_breaks_total") == 0
