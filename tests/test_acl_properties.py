"""Property tests: the compiled ACL agrees with a naive reference written straight from Vault's documented rules.

The reference enumerates every (merged) rule, keeps those that match using regular expressions, and orders the
non-exact ones with a comparison function that spells out the five documented priority rules one by one. It shares no
code with :mod:`strongroom.core.acl`.

Documented rules the reference encodes (Vault policies docs; acl.go ``AllowOperation``):
- exact rules win; a LIST (always of a folder: ``/`` is added) is also governed by an exact rule on the path without
  its trailing ``/``;
- otherwise the single highest-priority non-exact rule applies; for a LIST ending in ``/`` the candidates are the rules
  matching the path or the path without its ``/`` (so a trailing-slash LIST never skips a more specific deny);
- priority of P1 below P2: first ``+``/``*`` earlier; P1 ends in ``*`` and P2 does not; more ``+`` segments; shorter;
  lexicographically smaller;
- the same pattern in several policies: union of capabilities, or only ``deny`` if any of them denies;
- root-protected paths additionally need ``sudo``;
- a deny rule also matches the path case-insensitively (Vault 2.2.2), with the same priority; exact ties go to deny.
Patterns are generated without a literal ``+`` inside a segment, where the docs' wording and Vault's code diverge.
"""

from __future__ import annotations

import functools
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.core.acl import AliasInfo, IdentityContext, compile_acl
from strongroom.core.logical import Operation
from strongroom.core.policy import parse_policy

OPS = {Operation.READ: "read", Operation.LIST: "list", Operation.UPDATE: "update", Operation.CREATE: "create"}


# --- the reference -------------------------------------------------------------------------------------------------


def kind(pattern: str) -> str:
    if pattern == "+" or "/+" in pattern or pattern.startswith("+/"):
        return "segment"
    return "prefix" if pattern.endswith("*") else "exact"


def matches(pattern: str, path: str) -> bool:
    k = kind(pattern)
    if k == "exact":
        return pattern == path
    if k == "prefix":
        return path.startswith(pattern[:-1])
    glob = pattern.endswith("*")
    body = pattern[:-1] if glob else pattern
    regex = "/".join("[^/]*" if seg == "+" else re.escape(seg) for seg in body.split("/"))
    return re.fullmatch(regex + (".*" if glob else ""), path, re.DOTALL) is not None


def first_wildcard(pattern: str) -> int:
    return min(i for i, ch in enumerate(pattern) if ch == "+" or (ch == "*" and i == len(pattern) - 1))


def compare(p1: str, p2: str, rules: dict[str, set[str]]) -> int:
    """Negative when p1 has lower priority than p2, one documented rule at a time."""
    if first_wildcard(p1) != first_wildcard(p2):
        return -1 if first_wildcard(p1) < first_wildcard(p2) else 1
    if p1.endswith("*") != p2.endswith("*"):
        return -1 if p1.endswith("*") else 1
    plus1, plus2 = p1.split("/").count("+"), p2.split("/").count("+")
    if plus1 != plus2:
        return -1 if plus1 > plus2 else 1
    if len(p1) != len(p2):
        return -1 if len(p1) < len(p2) else 1
    # lexical order, compared case-folded so that a deny matching only case-insensitively wins a tie with the allow
    # it shadows (among rules that all match case-sensitively this is the same order as plain comparison)
    if p1.lower() != p2.lower():
        return -1 if p1.lower() < p2.lower() else 1
    deny1, deny2 = "deny" in rules[p1], "deny" in rules[p2]
    if deny1 != deny2:
        return -1 if deny2 else 1
    if p1 != p2:
        return -1 if p1 < p2 else 1
    return 0


def merged_rules(policies: list[list[tuple[str, set[str]]]]) -> dict[str, set[str]]:
    rules: dict[str, set[str]] = {}
    for policy in policies:
        for pattern, caps in policy:
            pattern = pattern[1:] if pattern.startswith("/") else pattern
            rules[pattern] = rules.get(pattern, set()) | caps
    return {p: ({"deny"} if "deny" in caps else caps) for p, caps in rules.items()}


def rule_matches(rules: dict[str, set[str]], pattern: str, path: str) -> bool:
    # since Vault 2.2.2 a deny rule also matches the path case-insensitively
    return matches(pattern, path) or ("deny" in rules[pattern] and matches(pattern.lower(), path.lower()))


def reference_rule(rules: dict[str, set[str]], path: str, is_list: bool) -> set[str] | None:
    path = path.lstrip("/")
    trimmed = path[:-1] if path.endswith("/") else path
    for form in [path, trimmed] if is_list else [path]:
        exact = [p for p in rules if kind(p) == "exact" and rule_matches(rules, p, form)]
        if exact:
            return {"deny"} if any("deny" in rules[p] for p in exact) else rules[exact[0]]
    forms = [path, trimmed] if is_list and trimmed != path else [path]
    candidates = {p for p in rules if kind(p) != "exact" and any(rule_matches(rules, p, f) for f in forms)}
    if not candidates:
        return None
    order = functools.cmp_to_key(lambda a, b: compare(a, b, rules))
    return rules[sorted(candidates, key=order)[-1]]


def reference_allows(rules: dict[str, set[str]], op: Operation, path: str, root_protected: bool) -> bool:
    if op is Operation.LIST and not path.endswith("/"):
        path += "/"  # Vault lists folders: its HTTP layer adds the slash
    caps = reference_rule(rules, path, op is Operation.LIST)
    if caps is None or "deny" in caps or OPS[op] not in caps:
        return False
    return not root_protected or "sudo" in caps


# --- generators ----------------------------------------------------------------------------------------------------

SEGMENTS = ["a", "b", "ab", "ba", "abc", "A", "aB"]


@st.composite
def patterns(draw: st.DrawFn) -> str:
    segs = draw(st.lists(st.sampled_from([*SEGMENTS, "+", "+"]), min_size=1, max_size=4))
    pattern = "/".join(segs)
    tail = draw(st.sampled_from(["", "", "*", "/*", "/", "a*"]))
    if tail == "*" and pattern.endswith("+"):
        tail = "/*"
    return draw(st.sampled_from(["", "", "", "/"])) + pattern + tail


CAPS = st.sets(st.sampled_from(["read", "list", "update", "create", "sudo", "deny"]), min_size=1, max_size=4)
POLICY = st.lists(st.tuples(patterns(), CAPS), min_size=1, max_size=6)
POLICIES = st.lists(POLICY, min_size=1, max_size=3)


@st.composite
def paths(draw: st.DrawFn) -> str:
    segs = draw(st.lists(st.sampled_from([*SEGMENTS, "abcd", "+", "*", ""]), min_size=1, max_size=5))
    return "/".join(segs) + draw(st.sampled_from(["", "", "/"]))


def policy_text(policy: list[tuple[str, set[str]]]) -> str:
    # JSON keeps these tests fast (the HCL parser costs about a millisecond per stanza); HCL is covered elsewhere
    return json.dumps({"path": [{pattern: {"capabilities": sorted(caps)}} for pattern, caps in policy]})


def compiled(policies: list[list[tuple[str, set[str]]]]):  # noqa: ANN201
    return compile_acl([parse_policy(f"p{i}", policy_text(p)) for i, p in enumerate(policies)])


# --- properties ----------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(POLICIES, st.lists(st.tuples(st.sampled_from(list(OPS)), paths(), st.booleans()), min_size=1, max_size=8))
def test_decisions_match_the_reference(policies, requests) -> None:  # noqa: ANN001
    acl = compiled(policies)
    rules = merged_rules(policies)
    for op, path, root_protected in requests:
        assert acl.allow(op, path, None, root_protected).allowed == reference_allows(rules, op, path, root_protected), (
            op, path, root_protected, rules,
        )


@settings(max_examples=200, deadline=None)
@given(POLICIES, st.lists(paths(), min_size=1, max_size=8))
def test_capabilities_match_the_reference(policies, probe_paths) -> None:  # noqa: ANN001
    acl = compiled(policies)
    rules = merged_rules(policies)
    for path in probe_paths:
        caps = reference_rule(rules, path, True)
        expected = ["deny"] if not caps or "deny" in caps else sorted(caps)
        assert acl.capabilities(path) == expected, (path, rules)


@settings(max_examples=100, deadline=None)
@given(POLICIES, st.randoms(use_true_random=False), st.lists(paths(), min_size=1, max_size=6))
def test_order_of_policies_and_stanzas_does_not_matter(policies, rnd, probe_paths) -> None:  # noqa: ANN001
    shuffled = [list(p) for p in policies]
    rnd.shuffle(shuffled)
    for p in shuffled:
        rnd.shuffle(p)
    a, b = compiled(policies), compiled(shuffled)
    for path in probe_paths:
        assert a.capabilities(path) == b.capabilities(path)


@settings(max_examples=150, deadline=None)
@given(POLICIES, paths())
def test_a_deny_on_the_matching_rule_always_denies(policies, path) -> None:  # noqa: ANN001
    rules = merged_rules(policies)
    caps = reference_rule(rules, path, False)
    if caps is not None and "deny" in caps:
        acl = compiled(policies)
        for op in OPS:
            if op is not Operation.LIST:
                assert not acl.allow(op, path, None, False).allowed


# --- identity templates --------------------------------------------------------------------------------------------

VALUES = st.text(alphabet=["a", "b", "*", "+", "/", ".", "-"], max_size=4)
K8S = "auth_kubernetes_0001"


@settings(max_examples=250, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["secret/{}/*", "secret/+/{}", "secret/{}", "x/{}-*", "{}/a"]),
                       st.sampled_from(["name", "meta", "alias"]), CAPS), min_size=1, max_size=4),
    VALUES, VALUES, VALUES, st.lists(paths(), min_size=1, max_size=6),
)
def test_templated_policies_match_the_reference_with_values_filled_in(  # noqa: ANN001
    stanzas, name, meta, alias, probe_paths,
) -> None:
    ident = IdentityContext(entity_id="e1", entity_name=name, entity_metadata={"ns": meta},
                            aliases={K8S: AliasInfo(id="a1", name=alias)})
    directive = {"name": "identity.entity.name", "meta": "identity.entity.metadata.ns",
                 "alias": f"identity.entity.aliases.{K8S}.name"}
    value = {"name": name, "meta": meta, "alias": alias}
    templated, substituted = [], []
    for shape, source, caps in stanzas:
        templated.append((shape.format("{{" + directive[source] + "}}"), caps))
        v = value[source]
        if v and v not in (".", "..") and not any(c in v for c in "*+/"):
            substituted.append((shape.format(v), caps))
    acl = compile_acl([parse_policy("t", policy_text(templated))], ident)
    rules = merged_rules([substituted])
    for path in probe_paths:
        for op in OPS:
            assert acl.allow(op, path, None, False).allowed == reference_allows(rules, op, path, False)
