"""The ``telemetry`` stanzas of the server configuration, as Vault reads them (HCL and JSON)."""

from __future__ import annotations

import pytest

from strongroom.config import ConfigError, parse

BASE = 'storage "sqlite" { path = "x.db" }\n'
LISTENER = 'listener "tcp" {\n  address = "127.0.0.1:8200"\n  tls_disable = true\n'


def hcl(listener_extra: str = "", top: str = "") -> str:
    return BASE + LISTENER + listener_extra + "}\n" + top


def test_without_a_stanza_prometheus_is_off_and_metrics_need_a_token() -> None:
    cfg = parse(hcl())
    assert cfg.telemetry.prometheus_retention_time == 0
    assert cfg.listeners[0].unauthenticated_metrics_access is False


@pytest.mark.parametrize(
    ("stanza", "retention", "no_host"),
    [
        ("telemetry {\n  disable_hostname = true\n}\n", 24 * 3600, True),  # Vault's default retention: 24h
        ('telemetry {\n  prometheus_retention_time = "30s"\n}\n', 30, False),
        ('telemetry {\n  prometheus_retention_time = "0"\n}\n', 0, False),
        ("telemetry {\n  prometheus_retention_time = 3600\n}\n", 3600, False),
    ],
)
def test_telemetry_stanza(stanza: str, retention: int, no_host: bool) -> None:
    cfg = parse(hcl(top=stanza))
    assert cfg.telemetry.prometheus_retention_time == retention
    assert cfg.telemetry.disable_hostname is no_host


def test_listener_allows_unauthenticated_metrics() -> None:
    cfg = parse(hcl("  telemetry {\n    unauthenticated_metrics_access = true\n  }\n"))
    assert cfg.listeners[0].unauthenticated_metrics_access is True


def test_json_configuration() -> None:
    text = (
        '{"storage": {"sqlite": {"path": "x.db"}}, "listener": {"tcp": {"address": "127.0.0.1:8200",'
        ' "tls_disable": true, "telemetry": {"unauthenticated_metrics_access": true}}},'
        ' "telemetry": {"prometheus_retention_time": "1h", "disable_hostname": true}}'
    )
    cfg = parse(text, filename="server.json")
    assert cfg.telemetry.prometheus_retention_time == 3600 and cfg.telemetry.disable_hostname
    assert cfg.listeners[0].unauthenticated_metrics_access is True


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (hcl(top='telemetry {\n  statsd_address = "x:1"\n}\n'), "unknown key(s) in telemetry: statsd_address"),
        (hcl(top='telemetry {\n  prometheus_retention_time = "soon"\n}\n'), "prometheus_retention_time must be"),
        (hcl(top='telemetry {\n  disable_hostname = "perhaps"\n}\n'), "disable_hostname must be true or false"),
        (hcl("  telemetry {\n    open = true\n  }\n"), 'unknown key(s) in listener "tcp" telemetry: open'),
        (hcl(top="telemetry {\n}\ntelemetry {\n}\n"), "only one telemetry"),
    ],
)
def test_bad_telemetry_is_a_clear_error(text: str, expect: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text)
    assert expect in str(err.value)
