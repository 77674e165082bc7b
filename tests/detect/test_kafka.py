"""The kafka audit device (fail closed) and two detect consumers sharing one Kafka consumer group."""

from __future__ import annotations

import re
import secrets
import zlib

import hvac.exceptions
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import free_port, wait_for
from tests.detect.conftest import READ_ALL, _script, user_token


def _topic(brokers: str, partitions: int = 2) -> str:
    name = "audit-" + secrets.token_hex(4)
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    return name


def _assigned(d) -> list[int] | None:  # noqa: ANN001
    found = re.findall(r"assigned partitions \[([0-9, ]*)\]", d.log_path.read_text(errors="replace"))
    return [int(p) for p in found[-1].split(",") if p.strip()] if found else None


def test_two_detect_consumers_on_one_group_split_the_work_and_alert_once(  # noqa: ANN201
    kafka, server_factory, tmp_path, webhook, detect_factory  # noqa: ANN001
):
    topic = _topic(kafka)
    srv = server_factory()
    root = srv.client()
    root.sys.enable_audit_device("kafka", options={"brokers": kafka, "topic": topic, "write_timeout": "5s"})
    root.sys.create_or_update_policy("read-all", READ_ALL)
    for i in range(60):
        root.secrets.kv.v2.create_or_update_secret(f"k8s/prod/svc-{i:03d}/key", secret={"v": str(i)})
    # one reader per partition: the device keys entries by entity, so each reader's entries stay in one partition
    readers: dict[int, tuple[str, str]] = {}
    n = 0
    while len(readers) < 2:
        n += 1
        token, entity_id = user_token(srv, f"reader{n}", ["read-all"])
        readers.setdefault(zlib.crc32(entity_id.encode()) % 2, (token, entity_id))
    common = {
        "state": str(tmp_path / "shared-state.db"),
        "server": {"address": srv.addr, "token": srv.root_token},
        "alerts": {"pagerduty_url": webhook.url + "/pd", "pagerduty_routing_key": "rk"},
        "sources": [{"name": "audit-kafka", "type": "kafka", "brokers": kafka, "topic": topic, "group": "detect-" +
                     topic}],
    }
    d1 = detect_factory({**common, "instance": "d1"})
    d2 = detect_factory({**common, "instance": "d2"})
    wait_for(lambda: _assigned(d1) and _assigned(d2) and sorted(_assigned(d1) + _assigned(d2)) == [0, 1],
             timeout=60, message="one partition each")
    for token, _ in readers.values():
        c = srv.client(token=token)
        for i in range(60):
            c.secrets.kv.v2.read_secret_version(f"k8s/prod/svc-{i:03d}/key", raise_on_deleted_version=True)
    wait_for(lambda: len(webhook.pd_for("bulk-secret-read")) >= 2, timeout=30, message="two pages")
    wait_for(lambda: min(d1.metric("strongroom_detect_events_total"), d2.metric("strongroom_detect_events_total")) > 0,
             message="both consumers read")
    pages = webhook.pd_for("bulk-secret-read")
    assert sorted(p["payload"]["custom_details"]["who"]["entity_id"] for p in pages) == sorted(
        e for _, e in readers.values())
    # every partition's chain checked out, in whichever consumer read it
    breaks = "strongroom_detect_chain_breaks_total"
    assert d1.metric(breaks) + d2.metric(breaks) == 0
    alerts = "strongroom_detect_alerts_total"
    assert d1.metric(alerts, rule="bulk-secret-read") + d2.metric(alerts, rule="bulk-secret-read") == 2
    # the setup's policy change was seen and queued once; it is not critical, so it did not page
    assert d1.metric(alerts, rule="policy-change") + d2.metric(alerts, rule="policy-change") == 1
    assert webhook.pd_for("policy-change") == []


def test_kafka_device_fails_closed_when_kafka_does_not_acknowledge(kafka, server_factory, tmp_path):  # noqa: ANN001
    srv = server_factory()
    root = srv.client()
    nowhere = f"127.0.0.1:{free_port()}"
    with pytest.raises(hvac.exceptions.InvalidRequest, match="audit device could not be enabled"):
        root.sys.enable_audit_device("kafka", options={"brokers": nowhere, "topic": "t", "write_timeout": "2s"})
    with pytest.raises(hvac.exceptions.InvalidRequest, match="topic is required"):
        root.sys.enable_audit_device("kafka", options={"brokers": kafka})
    assert "kafka/" not in root.sys.list_enabled_audit_devices()["data"]
    # a broker of its own, stopped under the device: requests are refused rather than going unaudited
    directory = tmp_path / "own-kafka"
    own = _script("kafka-node", "start", str(directory)).splitlines()[-1]
    try:
        topic = _topic(own, partitions=1)
        # a generous bound: enabling reads the end of every partition, slow on a busy machine
        root.sys.enable_audit_device("kafka", options={"brokers": own, "topic": topic, "write_timeout": "8s"})
        root.secrets.kv.v2.create_or_update_secret("k8s/prod/a/b", secret={"v": "1"})
    finally:
        _script("kafka-node", "stop", str(directory))
    with pytest.raises(hvac.exceptions.InternalServerError, match="audit"):
        root.secrets.kv.v2.read_secret_version("k8s/prod/a/b", raise_on_deleted_version=True)


def test_a_restarted_server_continues_every_partition_chain(kafka, server_factory, tmp_path, detect_factory):  # noqa: ANN001
    topic = _topic(kafka)
    srv = server_factory()
    srv.client().sys.enable_audit_device("kafka", options={"brokers": kafka, "topic": topic})
    for i in range(5):
        srv.client().secrets.kv.v2.create_or_update_secret(f"k8s/a/b/{i}", secret={"v": "1"})
    srv.restart()
    for i in range(5):
        srv.client().secrets.kv.v2.read_secret_version(f"k8s/a/b/{i}", raise_on_deleted_version=True)
    d = detect_factory({
        "instance": "t", "state": str(tmp_path / "state.db"),
        "sources": [{"name": "k", "type": "kafka", "brokers": kafka, "topic": topic, "group": "g-" + topic}],
    })
    # 10 requests and 10 responses at least, across the restart, on both partitions' chains without a break
    wait_for(lambda: d.metric("strongroom_detect_events_total", source="k") >= 20, timeout=30, message="entries")
    wait_for(lambda: d.metric("strongroom_detect_backlog", source="k") == 0, message="caught up")
    assert d.metric("strongroom_detect_chain_breaks_total") == 0
