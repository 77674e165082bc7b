"""Detect's Prometheus metrics, on a registry of its own, served at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("strongroom_detect_events", "Audit entries read, by source.", ["source"], registry=r)
        self.lag = Gauge("strongroom_detect_lag_seconds", "Now minus the newest entry's time, by source.", ["source"],
                         registry=r)
        self.backlog = Gauge("strongroom_detect_backlog", "Entries (Kafka) or bytes (file) not yet read, by source.",
                             ["source"], registry=r)
        self.alerts = Counter("strongroom_detect_alerts", "Alerts raised, by rule and severity.", ["rule", "severity"],
                              registry=r)
        self.chain_breaks = Counter("strongroom_detect_chain_breaks", "Hash-chain breaks, by source.", ["source"],
                                    registry=r)
        self.deliveries = Counter("strongroom_detect_deliveries", "Webhook posts, by channel and outcome.",
                                  ["channel", "outcome"], registry=r)
        self.rule_reloads = Counter("strongroom_detect_rule_reloads", "Rules file reloads, by outcome.", ["outcome"],
                                    registry=r)

    def serve(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)
        return int(server.server_address[1])

    def delivery(self, channel: str, outcome: str) -> None:
        self.deliveries.labels(channel, outcome).inc()
