"""Rule semantics and the stream chain check, on their own (the end-to-end tests drive them from a real server)."""

from __future__ import annotations

import orjson
import pytest

from strongroom.audit.device import Chain
from strongroom.detect.chain import ChainCheck
from strongroom.detect.events import Event
from strongroom.detect.rules import DEFAULT_RULES, RuleBook, RuleError, parse_rules


def _read(subject: str, path: str, t: float, **kw) -> Event:  # noqa: ANN003
    return Event(kind="response", time=t, operation="read", path=path, entity_id=subject, **kw)


def test_threshold_counts_distinct_paths_in_the_window_and_dedupes() -> None:
    (rule,) = parse_rules("rules: [{id: bulk, type: threshold, count: 3, window: 60s, dedupe: 1h}]")
    assert [rule.observe(_read("e1", f"secret/data/{p}", t)) for t, p in enumerate("abc")] == [None] * 3
    assert rule.observe(_read("e1", "secret/data/a", 3)) is None  # the same path again is not a new one
    first = rule.observe(_read("e1", "secret/data/d", 4))
    assert first is not None and first.details["distinct"] == 4 and first.subject == "e1"
    assert rule.observe(_read("e1", "secret/data/e", 5)) is None  # same dedupe window
    assert rule.observe(_read("e2", "secret/data/x", 5)) is None  # per subject
    # paths older than the window no longer count
    assert all(rule.observe(_read("e3", f"p{i}", i * 100)) is None for i in range(10))


def test_suppression_silences_a_known_actor_until_its_end() -> None:
    (rule,) = parse_rules(
        "rules: [{id: ev, type: event, match: {path: 'sys/rekey/*'}, dedupe: 1s,"
        " suppress: [{display_name: 'ops-*', until: '1970-01-01T00:01:40Z'}]}]"
    )
    assert rule.observe(_read("e1", "sys/rekey/init", 10, display_name="ops-alice")) is None
    assert rule.observe(_read("e1", "sys/rekey/init", 200, display_name="ops-alice")) is not None
    assert rule.observe(_read("e2", "sys/rekey/init", 10, display_name="mallory")) is not None


def test_denials_source_and_first_seen() -> None:
    rules = {r.id: r for r in parse_rules("""
rules:
  - {id: den, type: denials, count: 2, window: 10s}
  - {id: src, type: source, allowed_cidrs: [10.0.0.0/8]}
  - {id: new, type: first_seen, depth: 3, days: 1, learning: 100s}
""")}
    denied = [rules["den"].observe(_read("e", "x", t, error="permission denied")) for t in (0, 1, 2)]
    assert denied[:2] == [None, None] and denied[2] is not None
    assert rules["src"].observe(_read("e", "x", 0, remote_address="10.2.3.4")) is None
    assert rules["src"].observe(_read("e", "x", 0, remote_address="203.0.113.9")) is not None
    new = rules["new"]
    assert new.observe(_read("e", "secret/data/team-a/x", 0)) is None  # learning
    assert new.observe(_read("e", "secret/data/team-a/y", 500)) is None  # known prefix
    hit = new.observe(_read("e", "secret/data/team-b/z", 600))
    assert hit is not None and hit.details["prefix"] == "secret/data/team-b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [{id: a, type: nope}]", "type: must be one of"),
        ("rules: [{id: a, type: event, severity: loud}]", "severity"),
        ("rules: [{id: a, type: event}, {id: a, type: event}]", "duplicate rule id"),
        ("rules: [{id: a, type: event, match: {colour: red}}]", "unknown condition"),
        ("rules: [{id: a, type: source, allowed_cidrs: [not-a-net]}]", "allowed_cidrs"),
        ("[unclosed", "not valid YAML"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rules(text)


def test_the_default_rule_set_loads() -> None:
    ids = {r.id for r in RuleBook(str(DEFAULT_RULES)).rules}
    assert {"bulk-secret-read", "root-token-generation", "audit-device-disabled", "break-glass", "denial-rate",
            "outside-source", "first-seen-prefix", "write-once-refusal", "mpa-self-approval"} <= ids


def _lines(n: int) -> list[bytes]:
    chain, out = Chain(), []
    for i in range(n):
        line = chain.line({"type": "request", "i": i})
        chain.advance(line)
        out.append(line)
    return out


def _run(check: ChainCheck, lines: list[bytes]) -> list[str]:
    return [b.problem for raw in lines if (b := check.check(raw, orjson.loads(raw))[1]) is not None]


def test_chain_check_reports_gaps_reorders_and_edits_once_each() -> None:
    lines = _lines(8)
    assert _run(ChainCheck(), lines) == []
    assert _run(ChainCheck(), lines[:3] + lines[5:]) == ["entries seq 4..5 are missing before seq 6: audit lines "
                                                        "were removed or reordered"]
    swapped = _run(ChainCheck(), lines[:3] + [lines[4], lines[3]] + lines[5:])
    assert len(swapped) == 3 and "seq 4 arrived after seq 5" in swapped[1]
    edited = orjson.loads(lines[3])
    edited["i"] = 99
    problems = _run(ChainCheck(), lines[:3] + [orjson.dumps(edited)] + lines[4:])
    assert problems == ["seq 4 was edited or replaced: the prev_hash of seq 5 does not match it"]
    # an exact re-send is no problem; with redelivery (socket, Kafka) older lines are dropped too
    assert _run(ChainCheck(), lines[:4] + [lines[3]] + lines[4:]) == []
    assert _run(ChainCheck(redelivered=True), lines[:6] + lines[2:]) == []
