"""The detect process: configuration, the hot path (``process``), checkpoints, MAC checks and the alert sender.

Configuration (YAML)::

    instance: detect-1                 # names this process's rule state in a shared state database
    state: /var/lib/strongroom-detect/state.db      # or postgresql://… for detect processes on several hosts
    rules: /etc/strongroom/detect-rules.yaml      # default: the shipped rule set (strongroom/detect/default_rules.yaml)
    metrics_address: 127.0.0.1:9464
    server: {address: https://strongroom.internal:8200, token_file: /run/secrets/detect-token}
    enrichment_ttl: 5m
    mac_check_interval: 10s
    alerts: {slack_webhook_url: …, slack_min_severity: medium, pagerduty_url: …, pagerduty_routing_key: …}
    sources:
      - {name: audit-file, type: file, path: /var/log/strongroom/audit.log, device: file, start_at: beginning}
      - {name: audit-socket, type: socket, address: 127.0.0.1:9090, device: siem}
      - {name: audit-kafka, type: kafka, brokers: kafka:9092, topic: strongroom-audit, group: detect}
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from strongroom.detect.alerts import Channels, alert_document, drain_forever
from strongroom.detect.chain import ChainCheck
from strongroom.detect.enrich import Enricher
from strongroom.detect.events import Event, normalise, parse_time
from strongroom.detect.metrics import Metrics
from strongroom.detect.rules import Finding, RuleBook
from strongroom.detect.sources import FileSource, KafkaSource, SocketSource, Source
from strongroom.detect.state import open_state
from strongroom.framework.durations import parse_duration

log = logging.getLogger(__name__)

CHAIN_RULE = "audit-chain"
_CHECKPOINT_EVERY = 0.1
_CHECKPOINT_MAX = 5.0
_RELOAD_EVERY = 1.0


class ConfigError(ValueError):
    pass


def _duration(value: Any, name: str, default: float) -> float:
    if value is None:
        return default
    try:
        return float(parse_duration(str(value)))
    except ValueError:
        raise ConfigError(f"{name}: expected a duration") from None


def load_config(path: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping")
    sources = doc.get("sources")
    if not isinstance(sources, list) or not sources:
        raise ConfigError("sources: at least one source is required")
    names: set[str] = set()
    for i, s in enumerate(sources):
        if not isinstance(s, dict) or s.get("type") not in ("file", "socket", "kafka"):
            raise ConfigError(f"sources[{i}].type: must be file, socket or kafka")
        s.setdefault("name", f"{s['type']}{i}")
        if s["name"] in names:
            raise ConfigError(f"sources[{i}]: duplicate name {s['name']!r}")
        names.add(s["name"])
        need = {"file": ("path",), "socket": ("address",), "kafka": ("brokers", "topic")}[s["type"]]
        for key in need:
            if not s.get(key):
                raise ConfigError(f"sources[{i}].{key} is required")
    if not doc.get("state"):
        raise ConfigError("state: a SQLite file or a postgresql:// DSN for detect's state is required")
    return doc


class Detector:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.instance = str(cfg.get("instance", "detect"))
        self.state = open_state(str(cfg["state"]))
        self.rules = RuleBook(cfg.get("rules"))
        self.rules.restore(self.state.rule_state(self.instance))
        self.metrics = Metrics()
        self.channels = Channels(cfg.get("alerts") or {})
        server = cfg.get("server") or {}
        self._api: httpx.AsyncClient | None = None
        if server.get("address"):
            token = str(server.get("token") or os.environ.get("STRONGROOM_DETECT_TOKEN", ""))
            if server.get("token_file"):
                token = Path(server["token_file"]).read_text().strip()
            self._api = httpx.AsyncClient(base_url=str(server["address"]).rstrip("/"),
                                          headers={"X-Vault-Token": token}, timeout=10.0,
                                          verify=server.get("ca_cert") or True)
        self.enricher = Enricher(self._api, _duration(cfg.get("enrichment_ttl"), "enrichment_ttl", 300.0))
        self.mac_every = _duration(cfg.get("mac_check_interval"), "mac_check_interval", 10.0)
        self.sources: list[Source] = []
        self._devices: dict[str, str] = {}
        self._last_raw: dict[str, bytes] = {}
        self._last_time: dict[str, float] = {}
        self._counters: dict[str, tuple[str, Any]] = {}
        self._pending: list[tuple[str, Finding]] = []
        self._dirty = False
        self._stop = asyncio.Event()
        for spec in cfg["sources"]:
            self._add_source(spec)

    def _add_source(self, spec: dict[str, Any]) -> None:
        name = spec["name"]
        if spec.get("device"):
            self._devices[name] = str(spec["device"]).strip("/")
        if spec["type"] == "file":
            self.sources.append(FileSource(name, str(spec["path"]), self.state.position(name), self._file_break,
                                           start_at_end=spec.get("start_at") == "end"))
        elif spec["type"] == "socket":
            self.sources.append(SocketSource(name, str(spec["address"]), str(spec.get("socket_type", "tcp")),
                                             self.state.position(name)))
        else:
            self.sources.append(KafkaSource(name, spec, self.state.position))

    # --- the hot path ------------------------------------------------------------------------------------------

    def process(self, chain_name: str, raw: bytes, chain: ChainCheck) -> None:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            doc = None
        new, brk = chain.check(raw, doc)
        self._dirty = True
        if brk is not None:
            when = parse_time(str(doc.get("time", ""))) if doc else time.time()
            self._chain_break(chain_name, brk.seq, brk.problem, when)
        if not new or doc is None:
            return
        counter = self._counters.get(chain_name)
        if counter is None:
            source = chain_name.split(":", 1)[0]
            counter = self._counters[chain_name] = (source, self.metrics.events.labels(source))
        source = counter[0]
        self._last_raw[source] = raw
        counter[1].inc()
        ev = normalise(doc)
        self._last_time[source] = ev.time
        for finding in self.rules.observe(ev):
            self._pending.append((source, finding))

    def _chain_break(self, chain_name: str, seq: int, problem: str, when: float) -> None:
        source = chain_name.split(":", 1)[0]
        self.metrics.chain_breaks.labels(source).inc()
        log.error("audit chain broken in %s: %s", chain_name, problem)
        digest = hashlib.sha256(problem.encode()).hexdigest()[:16]
        ev = Event(kind="chain", time=when or time.time(), display_name=f"audit source {source}")
        self._pending.append((source, Finding(CHAIN_RULE, "critical", "Audit chain broken: audit lines were removed,"
                                              " edited or reordered", chain_name, ev.time,
                                              f"{CHAIN_RULE}|{chain_name}|{seq}|{digest}", ev,
                                              {"problem": problem, "seq": seq, "source": chain_name})))

    def _file_break(self, name: str, problem: str) -> None:
        self._chain_break(name, 0, problem, time.time())

    # --- background work ---------------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Queue pending findings. Never waits on the server: its answer is audited, and with a socket source in
        acknowledged mode that audit entry waits for this process's acknowledgement (enrichment happens at send)."""
        batch, self._pending = self._pending, []
        for source, f in batch:
            doc = alert_document(f, {"summary": f.subject} if f.rule == CHAIN_RULE else {}, source)
            if self.state.enqueue(f.key, self.channels.for_severity(f.severity) or ["log"], f.rule, f.severity, doc):
                self.metrics.alerts.labels(f.rule, f.severity).inc()
                log.warning("alert %s (%s): %s, subject %s", f.rule, f.severity, f.title, f.subject)

    async def checkpoint(self) -> None:
        # no await from here on: the positions and rule state saved are those right after the queued findings
        self._flush()
        positions: dict[str, dict[str, Any]] = {}
        for s in self.sources:
            positions.update(s.positions())
        self.state.checkpoint(self.instance, self.rules.dump(), positions)
        self._dirty = False
        for s in self.sources:
            s.committed()

    async def _checkpoint_forever(self) -> None:
        last_reload = 0.0
        cost = 0.0
        while not self._stop.is_set():
            # a checkpoint writes all rule state: with a large state, checkpoint less often, so saving never takes
            # more than a tenth of the time (a socket device's max_unacked must allow for the longer interval)
            await asyncio.sleep(min(_CHECKPOINT_MAX, max(_CHECKPOINT_EVERY, 9 * cost)))
            if self._dirty or self._pending:
                began = time.perf_counter()
                await self.checkpoint()
                cost = time.perf_counter() - began
            now = time.monotonic()
            if now - last_reload >= _RELOAD_EVERY:
                last_reload = now
                before = self.rules.reload_errors
                if self.rules.maybe_reload():
                    self.metrics.rule_reloads.labels("ok").inc()
                elif self.rules.reload_errors != before:
                    self.metrics.rule_reloads.labels("error").inc()
            wall = time.time()
            for s in self.sources:
                if s.name in self._last_time:
                    self.metrics.lag.labels(s.name).set(max(0.0, wall - self._last_time[s.name]))
                self.metrics.backlog.labels(s.name).set(s.backlog())

    async def _mac_forever(self) -> None:
        """Ask the server whether the newest line of each source with a ``device`` carries a MAC it wrote."""
        from strongroom.audit.device import unsigned

        checked: dict[str, bytes] = {}
        while not self._stop.is_set():
            await asyncio.sleep(self.mac_every)
            for source, device in self._devices.items():
                raw = self._last_raw.get(source)
                if raw is None or checked.get(source) == raw or self._api is None:
                    continue
                split = unsigned(raw)
                seq = (orjson.loads(raw) or {}).get("seq", 0)
                if split is None:
                    self._chain_break(source, seq, f"seq {seq} carries no mac: it was not written by the server", 0)
                    checked[source] = raw
                    continue
                body = {"line_sha256": hashlib.sha256(split[0]).hexdigest(), "mac": split[1]}
                try:
                    r = await self._api.post(f"/v1/sys/audit-chain/{device}", json=body)
                    r.raise_for_status()
                    valid = bool((r.json().get("data") or {}).get("valid"))
                except (httpx.HTTPError, ValueError) as e:
                    log.warning("MAC check for %s with the server failed: %s", source, e)
                    continue
                checked[source] = raw
                if not valid:
                    self._chain_break(source, seq, f"seq {seq}: bad MAC, the server did not write this line: the "
                                      "log was forged or rewritten", 0)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self._stop.set)
        address = str(self.cfg.get("metrics_address", "127.0.0.1:9464"))
        port = self.metrics.serve(address)
        log.info("metrics at http://%s:%d/metrics", address.rpartition(":")[0] or "127.0.0.1", port)
        tasks = [asyncio.create_task(s.run(self.process), name=f"source {s.name}") for s in self.sources]
        tasks.append(asyncio.create_task(self._checkpoint_forever()))
        tasks.append(asyncio.create_task(drain_forever(self.state, self.channels, self.metrics, self._stop,
                                                   self.enricher.who_for_alert)))
        if self._devices and self._api is not None:
            tasks.append(asyncio.create_task(self._mac_forever()))
        print(f"strongroom detect started: {len(self.sources)} source(s), {len(self.rules.rules)} rules", flush=True)
        stopper = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not stopper and t.exception() is not None:
                log.error("%s failed: %s", t.get_name(), t.exception())
        self._stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.checkpoint()
        for s in self.sources:
            await s.close()
        if self._api is not None:
            await self._api.aclose()
        self.state.close()
