"""Telemetry: what ``sys/metrics`` reports, under Vault's metric names, kept cheaply in memory by the core.

Cost on the hot path: a measured operation is two ``perf_counter()`` calls and a few integer and float additions on a
:class:`Timer`; a request is observed once, on the timer of its mount and operation (looked up from a dict), and the
core-wide request timers are summed from those on scrape. Nothing allocates per request.
prometheus-client's own Counter and Histogram take a lock per update (about four times the cost), and they keep no
minimum, maximum or variance, which Vault's JSON shape (go-metrics' in-memory sink) reports; so this module keeps its
own accumulators and hands them to prometheus-client as metric families on each scrape, through a per-server
``CollectorRegistry`` (never the process-global one, so two servers in one process never mix their figures).

Gauges are computed on scrape from what the core holds in memory (seal and HA state, the mount table, the expiration
manager's schedule); the lease and token counts are cached for a few seconds, and nothing here reads storage.

Names follow Vault: timers in milliseconds (``vault_core_handle_request``, ``vault_route_<op>_<mount>``,
``vault_barrier_get``, ``vault_<storage>_get``, ``vault_audit_log_request``), exposed as histograms; counters keep
Vault's names without a ``_total`` suffix (``vault_audit_log_request_failure``), so they are exposed untyped, the only
way prometheus-client writes a sample name exactly as given.
"""

from __future__ import annotations

import builtins
import functools
import math
import re
import socket
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.exposition import generate_latest

from strongroom.config import Telemetry
from strongroom.core.logical import InvalidRequest

if TYPE_CHECKING:
    from strongroom.core.core import Core
    from strongroom.core.logical import Operation

# Upper bounds in milliseconds: from a cached barrier read (microseconds) to a slow revocation (seconds).
BUCKETS_MS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 1e4)
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_MIME = "application/openmetrics-text"
PROMETHEUS_SCHEMA_MIME = "prometheus/telemetry"
_GAUGE_CACHE_SECONDS = 5.0
_STORAGE_OPS = ("get", "put", "delete", "list", "transaction")
_STORAGE_NAMES = {"postgresql": "postgres"}  # Vault's PostgreSQL backend reports as vault.postgres.*
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


class Timer:
    """Durations of one operation, in milliseconds: histogram buckets plus count, sum, sum of squares, min and max."""

    __slots__ = ("count", "total", "squares", "low", "high", "buckets", "seen", "seen_at")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.squares = 0.0
        self.low = math.inf
        self.high = 0.0
        self.buckets = [0] * (len(BUCKETS_MS) + 1)
        self.seen = -1  # the count at the last scrape, and when it last changed (for retention)
        self.seen_at = 0.0

    def since(self, started: float) -> None:
        """Record the time elapsed since ``started`` (a ``perf_counter()`` reading)."""
        self.observe((perf_counter() - started) * 1000.0)

    def merge(self, other: Timer) -> None:
        self.count += other.count
        self.total += other.total
        self.squares += other.squares
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]

    def observe(self, ms: float) -> None:
        self.buckets[bisect_left(BUCKETS_MS, ms)] += 1
        self.count += 1
        self.total += ms
        self.squares += ms * ms
        if ms < self.low:
            self.low = ms
        if ms > self.high:
            self.high = ms


class Tally:
    """A counter."""

    __slots__ = ("count", "seen", "seen_at")

    def __init__(self) -> None:
        self.count = 0
        self.seen = -1
        self.seen_at = 0.0

    def add(self) -> None:
        self.count += 1


_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def barrier_timed(op: str) -> Callable[[_F], _F]:
    """Time a Barrier method as ``vault.barrier.<op>`` in the barrier's ``metrics``."""

    def wrap(fn: _F) -> _F:
        @functools.wraps(fn)
        async def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = perf_counter()
            try:
                return await fn(self, *args, **kwargs)
            finally:
                self.metrics.barrier[op].since(started)

        return timed  # type: ignore[return-value]

    return wrap


class MeteredStorage:
    """The storage the barrier writes through, timing each physical operation as ``vault.<storage>.<op>``."""

    def __init__(self, inner: Any, timers: dict[str, Timer]) -> None:
        self._inner = inner
        self._get, self._put, self._delete, self._list, self._txn = (timers[op] for op in _STORAGE_OPS)

    async def get(self, key: str) -> bytes | None:
        started = perf_counter()
        try:
            return await self._inner.get(key)  # type: ignore[no-any-return]
        finally:
            self._get.since(started)

    async def put(self, key: str, value: bytes) -> None:
        started = perf_counter()
        try:
            await self._inner.put(key, value)
        finally:
            self._put.since(started)

    async def delete(self, key: str) -> None:
        started = perf_counter()
        try:
            await self._inner.delete(key)
        finally:
            self._delete.since(started)

    async def list(self, prefix: str, after: str = "", limit: int = 0) -> builtins.list[str]:
        started = perf_counter()
        try:
            return await self._inner.list(prefix, after, limit)  # type: ignore[no-any-return]
        finally:
            self._list.since(started)

    async def transaction(self, ops: builtins.list[Any]) -> None:
        started = perf_counter()
        try:
            await self._inner.transaction(ops)
        finally:
            self._txn.since(started)

    async def close(self) -> None:
        await self._inner.close()

    def __getattr__(self, name: str) -> Any:
        # anything else a storage offers (change feeds, claims, ...) is the inner storage's, untimed
        return getattr(self._inner, name)


class Metrics:
    """One server's metrics. The core holds one for its whole life; sealing and unsealing keep the figures."""

    def __init__(self, storage_type: str = "sqlite", core: Core | None = None) -> None:
        self.core = core  # gauges read its seal, HA and schedule state on scrape
        self.telemetry = Telemetry()
        self.started = time.time()
        # One timer per request: by (operation, mount, login) once routed, else _unrouted. The core-wide timers
        # (handle_request, handle_login_request) are sums made on scrape, so a request is observed only once.
        self._unrouted = Timer()
        self._retired_logins = Timer()  # login timers dropped by retention, still part of handle_login_request
        self._routes: dict[tuple[Operation, str, bool], Timer] = {}
        self.in_flight = 0
        self._statuses: dict[int, Tally] = {}
        self.barrier = {op: Timer() for op in _STORAGE_OPS}
        self.storage_name = _STORAGE_NAMES.get(storage_type, storage_type)
        self.storage = {op: Timer() for op in _STORAGE_OPS}
        self.audit_log_request = Timer()
        self.audit_log_response = Timer()
        self.audit_log_request_failure = Tally()
        self.audit_log_response_failure = Tally()
        self._audit_device_failures: dict[str, Tally] = {}
        self._gauges: builtins.list[tuple[str, dict[str, str], float]] = []
        self._gauges_at = -math.inf
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)

    def configure(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    @property
    def prometheus_enabled(self) -> bool:
        return self.telemetry.prometheus_retention_time > 0

    def meter_storage(self, storage: Any) -> MeteredStorage:
        return MeteredStorage(storage, self.storage)

    # --- requests (the pipeline) --------------------------------------------------------------------------------

    def route(self, op: Operation, mount: str, login: bool) -> Timer:
        """The timer of requests of ``op`` on ``mount`` (Vault: ``vault.route.<op>.<mount with / as ->``)."""
        key = (op, mount, login)
        timer = self._routes.get(key)
        if timer is None:
            timer = self._routes[key] = Timer()
        return timer

    def request_started(self) -> float:
        self.in_flight += 1
        return perf_counter()

    def request_done(self, started: float, route: Timer | None, status: int) -> None:
        self.in_flight -= 1
        (route or self._unrouted).since(started)
        tally = self._statuses.get(status)
        if tally is None:
            tally = self._statuses[status] = Tally()
        tally.count += 1

    # --- audit (the broker) -------------------------------------------------------------------------------------

    def audit_logged(self, response: bool, started: float, recorded: bool) -> None:
        (self.audit_log_response if response else self.audit_log_request).since(started)
        if not recorded:
            (self.audit_log_response_failure if response else self.audit_log_request_failure).add()

    def audit_device_failed(self, path: str) -> None:
        tally = self._audit_device_failures.get(path)
        if tally is None:
            tally = self._audit_device_failures[path] = Tally()
        tally.add()

    # --- output -------------------------------------------------------------------------------------------------

    def render(self, fmt: str) -> tuple[bytes, str]:
        """The body and content type of ``sys/metrics`` for ``format`` ("" is Vault's JSON)."""
        if fmt == "prometheus":
            if not self.prometheus_enabled:
                raise InvalidRequest("prometheus is not enabled")
            return generate_latest(self.registry), PROMETHEUS_CONTENT_TYPE
        if fmt:
            raise InvalidRequest(f'metric response format "{fmt}" unknown')
        return orjson.dumps(self.summary()), "application/json"

    def summary(self) -> dict[str, Any]:
        """go-metrics' in-memory sink shape. Values are cumulative since the server started (Vault's cover the last
        10-second interval), so a scraper sees counts only rise."""
        now = time.time()
        elapsed = max(now - self.started, 1.0)
        gauges = [
            {"Name": self._gauge_name(name, "."), "Value": value, "Labels": labels}
            for name, labels, value in self._gauge_values()
        ]
        counters = [
            _sampled(name, labels, t.count, float(t.count), 1.0, 1.0, float(t.count), elapsed)
            for name, labels, t in self._tallies()
        ]
        samples = [
            _sampled(name, labels, t.count, t.total, t.low, t.high, t.squares, elapsed)
            for name, labels, t in self._timers()
            if t.count
        ]
        return {
            "Timestamp": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(now - now % 10)),
            "Gauges": gauges,
            "Points": [],
            "Counters": counters,
            "Samples": samples,
        }

    def _gauge_name(self, name: str, sep: str) -> str:
        # Vault prefixes gauges with the host name unless disable_hostname (only when a Prometheus sink is on)
        if self.prometheus_enabled and not self.telemetry.disable_hostname:
            host = socket.gethostname()
            return sep.join(("vault", host if sep == "." else _UNSAFE.sub("_", host), name))
        return "vault" + sep + name

    def _timers(self) -> Iterator[tuple[str, dict[str, str], Timer]]:
        handle, login = Timer(), Timer()
        handle.merge(self._unrouted)
        login.merge(self._retired_logins)
        for (_op, _mount, is_login), timer in list(self._routes.items()):
            (login if is_login else handle).merge(timer)
        yield "vault.core.handle_request", {}, handle
        yield "vault.core.handle_login_request", {}, login
        for (op, mount), timer in self.route_timers().items():
            yield f"vault.route.{op}.{mount.replace('/', '-')}", {}, timer
        for op in _STORAGE_OPS:
            yield "vault.barrier." + op, {}, self.barrier[op]
        for op in _STORAGE_OPS:
            yield f"vault.{self.storage_name}.{op}", {}, self.storage[op]
        yield "vault.audit.log_request", {}, self.audit_log_request
        yield "vault.audit.log_response", {}, self.audit_log_response

    def _tallies(self) -> Iterator[tuple[str, dict[str, str], Tally]]:
        yield "vault.audit.log_request_failure", {}, self.audit_log_request_failure
        yield "vault.audit.log_response_failure", {}, self.audit_log_response_failure
        for path, tally in sorted(self._audit_device_failures.items()):
            yield "vault.audit.device_log_failure", {"device": path}, tally
        for code, tally in sorted(self._statuses.items()):
            yield "vault.core.response_status_code", {"code": str(code), "type": f"{code // 100}xx"}, tally

    def expire_idle(self, now: float) -> None:
        """Forget per-mount, per-status and per-device series not updated for ``prometheus_retention_time``
        (go-metrics' Prometheus sink does the same), so removed mounts do not linger. Runs on scrape only."""
        retention = self.telemetry.prometheus_retention_time
        if retention <= 0:
            return
        for key, timer in list(self._routes.items()):
            if _idle(timer, now, retention):
                # the core-wide request timers keep counting what the dropped series counted
                (self._retired_logins if key[2] else self._unrouted).merge(timer)
                del self._routes[key]
        tally_maps: tuple[dict[Any, Any], ...] = (self._statuses, self._audit_device_failures)
        for tallies in tally_maps:
            for key, tally in list(tallies.items()):
                if _idle(tally, now, retention):
                    del tallies[key]

    def route_timers(self) -> dict[tuple[str, str], Timer]:
        """Requests by (operation, mount), logins and other requests together."""
        out: dict[tuple[str, str], Timer] = {}
        for (op, mount, _login), timer in list(self._routes.items()):
            merged = out.get((op.value, mount))
            if merged is None:
                merged = out[(op.value, mount)] = Timer()
            merged.merge(timer)
        return out

    # --- gauges -------------------------------------------------------------------------------------------------

    def _gauge_values(self) -> builtins.list[tuple[str, dict[str, str], float]]:
        core = self.core
        out: builtins.list[tuple[str, dict[str, str], float]] = [("core.in_flight_requests", {}, float(self.in_flight))]
        if core is None:
            return out
        unsealed = not core.sealed
        out.append(("core.unsealed", {}, 1.0 if unsealed else 0.0))
        out.append(("core.active", {}, 1.0 if unsealed and core.serving else 0.0))
        if not unsealed:
            return out
        out.append(("core.mount_table.num_entries", {"type": "logical"}, float(len(core.router.entries(False)))))
        out.append(("core.mount_table.num_entries", {"type": "auth"}, float(len(core.router.entries(True)))))
        now = time.monotonic()
        if now - self._gauges_at >= _GAUGE_CACHE_SECONDS:
            self._gauges = self._schedule_gauges(core)
            self._gauges_at = now
        out.extend(self._gauges)
        if core.auto_snapshots is not None:  # Vault's vault.autosnapshots.last.success.time, per configuration
            out.extend(core.auto_snapshots.gauges())
        return out

    @staticmethod
    def _schedule_gauges(core: Core) -> builtins.list[tuple[str, dict[str, str], float]]:
        expiration = core.expiration
        if expiration is None:
            return []
        c = expiration.state_counts()
        leases = c["lease_active"] + c["lease_expired"] + c["lease_irrevocable"]
        tokens = c["token_active"] + c["token_expired"]
        return [
            ("expire.num_leases", {}, float(leases)),
            ("expire.num_irrevocable_leases", {}, float(c["lease_irrevocable"])),
            ("expire.leases.by_state", {"state": "active"}, float(c["lease_active"])),
            ("expire.leases.by_state", {"state": "expired"}, float(c["lease_expired"])),
            ("expire.leases.by_state", {"state": "irrevocable"}, float(c["lease_irrevocable"])),
            ("token.count", {}, float(tokens)),
            ("token.count.by_state", {"state": "active"}, float(c["token_active"])),
            ("token.count.by_state", {"state": "expired"}, float(c["token_expired"])),
        ]


class _Collector:
    """Hands the accumulators to prometheus-client as metric families, under Prometheus spellings of Vault's names."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> builtins.list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        m.expire_idle(time.monotonic())
        families: dict[str, Metric] = {}

        def family(name: str, kind: type[Metric], help_text: str, label_names: builtins.list[str]) -> Any:
            fam = families.get(name)
            if fam is None:
                fam = families[name] = kind(name, help_text, labels=label_names)  # type: ignore[call-arg]
            return fam

        for name, labels, value in m._gauge_values():
            pname = m._gauge_name(name, "_").replace(".", "_")
            family(pname, GaugeMetricFamily, pname, sorted(labels)).add_metric(
                [labels[k] for k in sorted(labels)], value
            )
        for name, _labels, timer in m._timers():
            pname = _prom_name(name)
            family(pname, HistogramMetricFamily, pname + " (milliseconds)", []).add_metric(
                [], _buckets(timer), timer.total
            )
        # the per-mount timers once more under one name with labels, for PromQL's sum by (mount)
        route = HistogramMetricFamily("vault_route", "Requests by mount and operation (milliseconds)",
                                      labels=["mount", "operation"])
        for (op, mount), timer in m.route_timers().items():
            route.add_metric([mount, op], _buckets(timer), timer.total)
        families["vault_route"] = route
        for name, labels, tally in m._tallies():
            pname = _prom_name(name)
            family(pname, UnknownMetricFamily, pname, sorted(labels)).add_metric(
                [labels[k] for k in sorted(labels)], float(tally.count)
            )
        return list(families.values())


def _idle(item: Timer | Tally, now: float, retention: int) -> bool:
    if item.count != item.seen:
        item.seen, item.seen_at = item.count, now
        return False
    return now - item.seen_at > retention


def _prom_name(name: str) -> str:
    return _UNSAFE.sub("_", name.replace(".", "_"))


def _buckets(timer: Timer) -> builtins.list[tuple[str, float]]:
    out: builtins.list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(BUCKETS_MS, timer.buckets, strict=False):
        running += n
        out.append((repr(bound), float(running)))
    out.append(("+Inf", float(timer.count)))
    return out


def _sampled(
    name: str, labels: dict[str, str], count: int, total: float, low: float, high: float, squares: float,
    elapsed: float,
) -> dict[str, Any]:
    mean = total / count if count else 0.0
    variance = (squares - count * mean * mean) / (count - 1) if count > 1 else 0.0
    return {
        "Name": name,
        "Count": count,
        "Rate": total / elapsed,
        "Sum": total,
        "Min": low if count else 0.0,
        "Max": high if count else 0.0,
        "Mean": mean,
        "Stddev": math.sqrt(max(variance, 0.0)),
        "Labels": labels,
    }


def format_from_headers(headers: dict[str, str]) -> str:
    """Vault's rule: an OpenMetrics or ``prometheus/telemetry`` Accept header asks for the Prometheus format."""
    accept = headers.get("accept", "")
    if accept.startswith(OPENMETRICS_MIME) or PROMETHEUS_SCHEMA_MIME in accept:
        return "prometheus"
    return ""


DETACHED = Metrics()
"""Metrics nobody reads: the default for stores built outside a core (unit tests)."""
