"""Detection rules from a YAML file: threshold, first seen, event, rate of denials, source address.

Every rule has an ``id``, a ``severity`` (info, low, medium, high, critical), a ``match`` filter, a ``dedupe`` window
(one alert per rule, subject and window of event time) and ``suppress`` entries (subject, display name or path
globs, optionally ``until`` an RFC 3339 time) that silence it for known-good actors. Windows are measured on the
entries' own ``time``, never the wall clock, so re-reading a stretch of log after a restart reaches the same
decisions and the same alert keys.

The file is re-read when it changes (``RuleBook.maybe_reload``); a file that does not parse leaves the rules in
force and is reported, so a typo never switches detection off. Rules whose definition did not change keep their state.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import os
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from strongroom.detect.events import Event, parse_time
from strongroom.framework.durations import parse_duration

log = logging.getLogger(__name__)

SEVERITIES = ("info", "low", "medium", "high", "critical")
DEFAULT_RULES = Path(__file__).with_name("default_rules.yaml")


class RuleError(ValueError):
    """A rules file that cannot be used."""


@dataclass(slots=True)
class Finding:
    rule: str
    severity: str
    title: str
    subject: str
    time: float
    key: str
    event: Event
    details: dict[str, Any] = field(default_factory=dict)


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(parse_duration(str(value)))
    except ValueError:
        raise RuleError(f"{name}: expected a duration such as 5m") from None


def _globs(value: Any, name: str) -> re.Pattern[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise RuleError(f"{name}: expected a glob or a list of globs")
    return re.compile("|".join(f"(?:{fnmatch.translate(i)})" for i in items)) if items else None


def _strings(value: Any, name: str) -> frozenset[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise RuleError(f"{name}: expected a string or a list of strings")
    return frozenset(str(i) for i in items)


class Match:
    """A conjunction of conditions on an :class:`Event`; an absent condition always holds."""

    _KEYS = frozenset({"type", "operation", "path", "path_not", "mount_type", "denied", "error", "source", "name",
                       "error_contains", "policy", "display_name"})

    def __init__(self, spec: Any, where: str) -> None:
        spec = spec or {}
        if not isinstance(spec, dict):
            raise RuleError(f"{where}.match: expected a mapping")
        unknown = set(spec) - self._KEYS
        if unknown:
            raise RuleError(f"{where}.match: unknown condition(s) {', '.join(sorted(unknown))}")
        self.kinds = _strings(spec.get("type"), f"{where}.match.type")
        self.operations = _strings(spec.get("operation"), f"{where}.match.operation")
        self.path = _globs(spec.get("path"), f"{where}.match.path")
        self.path_not = _globs(spec.get("path_not"), f"{where}.match.path_not")
        self.mount_types = _strings(spec.get("mount_type"), f"{where}.match.mount_type")
        self.sources = _strings(spec.get("source"), f"{where}.match.source")
        self.names = _strings(spec.get("name"), f"{where}.match.name")
        self.policies = _strings(spec.get("policy"), f"{where}.match.policy")
        self.display_name = _globs(spec.get("display_name"), f"{where}.match.display_name")
        self.error_contains = _strings(spec.get("error_contains"), f"{where}.match.error_contains")
        self.denied = spec.get("denied")
        self.error = spec.get("error")

    def __call__(self, ev: Event) -> bool:
        if self.kinds is not None and ev.kind not in self.kinds:
            return False
        if self.operations is not None and ev.operation not in self.operations:
            return False
        if self.path is not None and not self.path.match(ev.path):
            return False
        if self.path_not is not None and self.path_not.match(ev.path):
            return False
        if self.mount_types is not None and ev.mount_type not in self.mount_types:
            return False
        if self.sources is not None and ev.source not in self.sources:
            return False
        if self.names is not None and ev.name not in self.names:
            return False
        if self.denied is not None and ev.denied != bool(self.denied):
            return False
        if self.error is not None and bool(ev.error) != bool(self.error):
            return False
        if self.error_contains is not None and not any(s in ev.error for s in self.error_contains):
            return False
        if self.policies is not None and not self.policies.intersection(ev.policies):
            return False
        return self.display_name is None or bool(self.display_name.match(ev.display_name))


@dataclass(slots=True)
class Suppression:
    subject: re.Pattern[str] | None
    display_name: re.Pattern[str] | None
    path: re.Pattern[str] | None
    until: float | None

    def covers(self, ev: Event) -> bool:
        if self.until is not None and ev.time >= self.until:
            return False
        if self.subject is not None and not self.subject.match(ev.subject):
            return False
        if self.display_name is not None and not self.display_name.match(ev.display_name):
            return False
        return self.path is None or bool(self.path.match(ev.path))


def _suppressions(spec: Any, where: str) -> list[Suppression]:
    if spec is None:
        return []
    if not isinstance(spec, list):
        raise RuleError(f"{where}.suppress: expected a list")
    out = []
    for i, s in enumerate(spec):
        if not isinstance(s, dict):
            raise RuleError(f"{where}.suppress[{i}]: expected a mapping")
        until = s.get("until")
        out.append(Suppression(
            _globs(s.get("subject"), f"{where}.suppress[{i}].subject"),
            _globs(s.get("display_name"), f"{where}.suppress[{i}].display_name"),
            _globs(s.get("path"), f"{where}.suppress[{i}].path"),
            parse_time(str(until)) if until else None,
        ))
    return out


class Rule:
    kind = ""
    _OPTIONS: frozenset[str] = frozenset()
    _COMMON = frozenset({"id", "type", "severity", "match", "dedupe", "suppress", "title", "description"})

    def __init__(self, spec: dict[str, Any], where: str) -> None:
        unknown = set(spec) - self._COMMON - self._OPTIONS
        if unknown:
            raise RuleError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
        self.id = str(spec["id"])
        self.severity = str(spec.get("severity", "medium"))
        if self.severity not in SEVERITIES:
            raise RuleError(f"{where}.severity: must be one of {', '.join(SEVERITIES)}")
        self.title = str(spec.get("title") or self.id)
        self.match = Match(spec.get("match"), where)
        self.dedupe = _seconds(spec.get("dedupe", "1h"), f"{where}.dedupe")
        if self.dedupe <= 0:
            raise RuleError(f"{where}.dedupe: must be positive")
        self.suppress = _suppressions(spec.get("suppress"), where)
        self.fingerprint = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
        self._fired: set[str] = set()

    def observe(self, ev: Event) -> Finding | None:
        if not self.match(ev):
            return None
        return self.step(ev)

    def step(self, ev: Event) -> Finding | None:
        raise NotImplementedError

    def finding(self, ev: Event, subject: str, details: dict[str, Any], title: str = "") -> Finding | None:
        for s in self.suppress:
            if s.covers(ev):
                return None
        key = f"{self.id}|{subject}|{int(ev.time // self.dedupe)}"
        if key in self._fired:
            return None
        if len(self._fired) > 100_000:
            self._fired.clear()  # the outbox still refuses a repeated key; this only saves it the question
        self._fired.add(key)
        return Finding(self.id, self.severity, title or self.title, subject, ev.time, key, ev, details)

    # state kept across restarts (see ``__init__``): JSON-able, small
    def dump(self) -> Any:
        return None

    def restore(self, state: Any) -> None:
        return None


class EventRule(Rule):
    kind = "event"

    def step(self, ev: Event) -> Finding | None:
        return self.finding(ev, ev.subject or ev.name, {"path": ev.path, "operation": ev.operation,
                                                        "event": ev.name, "error": ev.error[:200]})


class ThresholdRule(Rule):
    """More than ``count`` distinct ``distinct`` values (paths) for one subject within ``window``."""

    kind = "threshold"
    _OPTIONS = frozenset({"count", "window", "distinct"})

    def __init__(self, spec: dict[str, Any], where: str) -> None:
        super().__init__(spec, where)
        self.count = int(spec.get("count", 50))
        self.window = _seconds(spec.get("window", "5m"), f"{where}.window")
        self.distinct = str(spec.get("distinct", "path"))
        if self.distinct not in ("path", "mount_type", "operation"):
            raise RuleError(f"{where}.distinct: must be path, mount_type or operation")
        self._seen: dict[str, OrderedDict[str, float]] = {}

    def step(self, ev: Event) -> Finding | None:
        subject = ev.subject
        seen = self._seen.get(subject)
        if seen is None:
            seen = self._seen[subject] = OrderedDict()
        value = getattr(ev, self.distinct)
        seen[value] = ev.time
        seen.move_to_end(value)
        horizon = ev.time - self.window
        while seen and next(iter(seen.values())) < horizon:
            seen.popitem(last=False)
        if len(seen) <= self.count:
            return None
        sample = list(seen)[-5:]
        return self.finding(ev, subject, {"distinct": len(seen), "window_seconds": self.window, "sample": sample},
                            f"{self.title}: {len(seen)} distinct {self.distinct}s in {int(self.window)}s")

    def dump(self) -> Any:
        return {s: list(v.items()) for s, v in self._seen.items()}

    def restore(self, state: Any) -> None:
        self._seen = {s: OrderedDict((k, t) for k, t in v) for s, v in (state or {}).items()}


class DenialRateRule(Rule):
    """More than ``count`` denied requests from one subject within ``window``."""

    kind = "denials"
    _OPTIONS = frozenset({"count", "window"})

    def __init__(self, spec: dict[str, Any], where: str) -> None:
        super().__init__(spec, where)
        self.count = int(spec.get("count", 20))
        self.window = _seconds(spec.get("window", "1m"), f"{where}.window")
        self._times: dict[str, deque[float]] = {}

    def step(self, ev: Event) -> Finding | None:
        if not ev.denied:
            return None
        times = self._times.setdefault(ev.subject, deque())
        times.append(ev.time)
        while times and times[0] < ev.time - self.window:
            times.popleft()
        if len(times) <= self.count:
            return None
        return self.finding(ev, ev.subject, {"denials": len(times), "window_seconds": self.window, "path": ev.path})

    def dump(self) -> Any:
        return {s: list(t) for s, t in self._times.items()}

    def restore(self, state: Any) -> None:
        self._times = {s: deque(t) for s, t in (state or {}).items()}


class FirstSeenRule(Rule):
    """A subject reads under a path prefix (``depth`` segments) it has not read in the last ``days``.

    A subject's first ``learning`` period (from its first event) only learns, so a new service's first reads are
    not each an alert.
    """

    kind = "first_seen"
    _OPTIONS = frozenset({"depth", "days", "learning"})

    def __init__(self, spec: dict[str, Any], where: str) -> None:
        super().__init__(spec, where)
        self.depth = int(spec.get("depth", 4))
        try:
            self.horizon = float(spec.get("days", 30)) * 86400
        except (TypeError, ValueError):
            raise RuleError(f"{where}.days: expected a number of days") from None
        self.learning = _seconds(spec.get("learning", "1d"), f"{where}.learning")
        self._known: dict[str, dict[str, float]] = {}
        self._since: dict[str, float] = {}

    def step(self, ev: Event) -> Finding | None:
        prefix = "/".join(ev.path.split("/")[: self.depth])
        since = self._since.setdefault(ev.subject, ev.time)
        known = self._known.setdefault(ev.subject, {})
        last = known.get(prefix)
        known[prefix] = ev.time
        if last is not None and ev.time - last <= self.horizon:
            return None
        if ev.time - since < self.learning:
            return None
        return self.finding(ev, f"{ev.subject}|{prefix}", {"prefix": prefix, "path": ev.path})

    def dump(self) -> Any:
        return {"known": self._known, "since": self._since}

    def restore(self, state: Any) -> None:
        state = state or {}
        self._known, self._since = dict(state.get("known", {})), dict(state.get("since", {}))


class SourceRule(Rule):
    """A request from an address outside ``allowed_cidrs``."""

    kind = "source"
    _OPTIONS = frozenset({"allowed_cidrs"})

    def __init__(self, spec: dict[str, Any], where: str) -> None:
        super().__init__(spec, where)
        try:
            self.allowed = [ipaddress.ip_network(str(c), strict=False) for c in spec.get("allowed_cidrs") or []]
        except ValueError as e:
            raise RuleError(f"{where}.allowed_cidrs: {e}") from None
        self._verdicts: dict[str, bool] = {}

    def step(self, ev: Event) -> Finding | None:
        addr = ev.remote_address
        if not addr:
            return None
        inside = self._verdicts.get(addr)
        if inside is None:
            try:
                ip = ipaddress.ip_address(addr)
                inside = any(ip in net for net in self.allowed)
            except ValueError:
                inside = False
            if len(self._verdicts) > 65536:
                self._verdicts.clear()
            self._verdicts[addr] = inside
        if inside:
            return None
        return self.finding(ev, f"{ev.subject}|{addr}", {"remote_address": addr, "path": ev.path})


_KINDS: dict[str, type[Rule]] = {r.kind: r for r in (EventRule, ThresholdRule, DenialRateRule, FirstSeenRule,
                                                     SourceRule)}


def parse_rules(text: str) -> list[Rule]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RuleError(f"not valid YAML: {e}") from None
    specs = doc.get("rules") if isinstance(doc, dict) else None
    if not isinstance(specs, list):
        raise RuleError("expected a mapping with a list 'rules'")
    rules: list[Rule] = []
    ids: set[str] = set()
    for i, spec in enumerate(specs):
        where = f"rules[{i}]"
        if not isinstance(spec, dict) or not spec.get("id"):
            raise RuleError(f"{where}: each rule needs an id")
        if spec["id"] in ids:
            raise RuleError(f"{where}: duplicate rule id {spec['id']!r}")
        ids.add(spec["id"])
        cls = _KINDS.get(str(spec.get("type", "")))
        if cls is None:
            raise RuleError(f"{where}.type: must be one of {', '.join(_KINDS)}")
        rules.append(cls(spec, f"{where} ({spec['id']})"))
    return rules


class RuleBook:
    """The rules in force, re-read from their file when it changes."""

    def __init__(self, path: str | None) -> None:
        self.path = path or str(DEFAULT_RULES)
        self._stamp: tuple[int, int] | None = None
        self.rules: list[Rule] = []
        self._index: dict[tuple[str, str], list[Rule]] = {}
        self.reloads = 0
        self.reload_errors = 0
        self.maybe_reload(strict=True)

    def maybe_reload(self, strict: bool = False) -> bool:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return False
            text = Path(self.path).read_text()
            rules = parse_rules(text)
        except (OSError, RuleError) as e:
            if strict:
                raise RuleError(f"rules file {self.path}: {e}") from None
            self.reload_errors += 1
            log.error("rules file %s not reloaded, keeping the rules in force: %s", self.path, e)
            self._stamp = None if isinstance(e, OSError) else stamp
            return False
        old = {r.id: r for r in self.rules}
        for i, rule in enumerate(rules):
            prev = old.get(rule.id)
            if prev is not None and prev.fingerprint == rule.fingerprint:
                rules[i] = prev  # unchanged: keep what it has learned
        self.rules, self._stamp = rules, stamp
        self._index = {}
        self.reloads += 1
        if not strict:
            log.info("rules reloaded from %s: %d rules", self.path, len(rules))
        return True

    def observe(self, ev: Event) -> list[Finding]:
        # most rules name the entry type and operation they look at: index on both, so an entry meets only those
        key = (ev.kind, ev.operation)
        rules = self._index.get(key)
        if rules is None:
            rules = self._index[key] = [
                r for r in self.rules
                if (r.match.kinds is None or ev.kind in r.match.kinds)
                and (r.match.operations is None or ev.operation in r.match.operations)
            ]
        out = []
        for rule in rules:
            f = rule.observe(ev)
            if f is not None:
                out.append(f)
        return out

    def dump(self) -> dict[str, Any]:
        return {r.id: {"fp": r.fingerprint.decode(), "state": r.dump()} for r in self.rules}

    def restore(self, saved: dict[str, Any]) -> None:
        for rule in self.rules:
            entry = saved.get(rule.id)
            if isinstance(entry, dict) and entry.get("fp") == rule.fingerprint.decode():
                rule.restore(entry.get("state"))
