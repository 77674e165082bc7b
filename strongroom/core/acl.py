"""Compiled ACLs: Vault's matching rules over a token's policies, with identity templates filled in.

Rules are kept the way Vault keeps them: exact patterns in a dict, trailing-``*`` prefix patterns in a dict keyed by
prefix (looked up longest-first by the few distinct prefix lengths), and ``+`` segment-wildcard patterns in a list.
The same pattern in several policies is merged into one rule (union of capabilities; ``deny`` absorbs everything).
Exactly one rule decides a request: an exact match, else the highest-priority non-exact match by Vault's five
ordering rules. A broad ``deny`` does not override a more specific allow, and a specific ``deny`` beats a broader allow.
As in Vault 2.2.2, a ``deny`` rule also matches the path case-insensitively (still subject to that priority).

Identity templates (``{{identity.entity.name}}`` …) are resolved per identity. A directive that cannot be resolved,
or whose value is empty or contains ``*``, ``+``, ``/`` (or is ``.``/``..``), drops its whole stanza: template data
can come from outside (a ServiceAccount name, an IdP claim) and must never widen access.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from strongroom.core.logical import Operation
from strongroom.core.policy import PathRule, Policy
from strongroom.framework.durations import parse_duration

# --- identity ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AliasInfo:
    id: str
    name: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    custom_metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupInfo:
    id: str
    name: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IdentityContext:
    """What templates may refer to: the token's entity, its aliases by mount accessor, and its groups."""

    entity_id: str
    entity_name: str = ""
    entity_metadata: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, AliasInfo] = field(default_factory=dict)
    groups: Sequence[GroupInfo] = ()


_FORBIDDEN_IN_VALUES = ("*", "+", "/")


def render_pattern(pattern: str, ident: IdentityContext | None, now: float | None = None) -> str | None:
    """Fill in a path pattern's templates; None means the stanza must be dropped (fail closed)."""
    pieces = pattern.split("{{")
    if len(pieces) == 1:
        return pattern
    out = [pieces[0]]
    for piece in pieces[1:]:
        parts = piece.split("}}")
        if len(parts) != 2:
            return None
        value = _resolve(parts[0].strip(), ident, now)
        if not value or value in (".", "..") or any(c in value for c in _FORBIDDEN_IN_VALUES):
            return None
        out.append(value)
        out.append(parts[1])
    return "".join(out)


def _lookup(mapping: Mapping[str, str], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) else None


def _resolve(directive: str, ident: IdentityContext | None, now: float | None) -> str | None:
    if directive.startswith("identity.entity."):
        if ident is None or not ident.entity_id:
            return None
        sel = directive[len("identity.entity.") :]
        if sel == "id":
            return ident.entity_id
        if sel == "name":
            return ident.entity_name
        if sel.startswith("metadata."):
            return _lookup(ident.entity_metadata, sel[len("metadata.") :])
        if sel.startswith("aliases."):
            accessor, _, rest = sel[len("aliases.") :].partition(".")
            alias = ident.aliases.get(accessor)
            if alias is None or not rest:
                return None
            if rest == "id":
                return alias.id
            if rest == "name":
                return alias.name
            if rest.startswith("metadata."):
                return _lookup(alias.metadata, rest[len("metadata.") :])
            if rest.startswith("custom_metadata."):
                return _lookup(alias.custom_metadata, rest[len("custom_metadata.") :])
        return None
    if directive.startswith("identity.groups."):
        if ident is None or not ident.groups:
            return None
        kind, _, rest = directive[len("identity.groups.") :].partition(".")
        key, _, attr = rest.partition(".")
        if kind not in ("ids", "names") or not attr:
            return None
        group = next((g for g in ident.groups if (g.id if kind == "ids" else g.name) == key), None)
        if group is None:
            return None
        if attr == "id":
            return group.id
        if attr == "name":
            return group.name
        if attr.startswith("metadata."):
            return _lookup(group.metadata, attr[len("metadata.") :])
        return None
    if directive.startswith("time."):
        parts = directive[len("time.") :].split(".", 2)
        when = time.time() if now is None else now
        if parts[0] != "now" or len(parts) == 2:
            return None
        if len(parts) == 3:
            try:
                delta = parse_duration(parts[2])
            except ValueError:
                return None
            if parts[1] == "plus":
                when += delta
            elif parts[1] == "minus":
                when -= delta
            else:
                return None
        return str(int(when))
    return None


# --- permissions and their merge -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Permissions:
    """The merged grant of every stanza with one pattern. When denied, ``caps`` is exactly ``{"deny"}``."""

    caps: frozenset[str]
    allowed: dict[str, list[Any]] | None = None
    denied: dict[str, list[Any]] | None = None
    required: tuple[str, ...] = ()
    min_wrapping_ttl: int = 0
    max_wrapping_ttl: int = 0
    pagination_limit: int = 0
    granting: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def is_deny(self) -> bool:
        return "deny" in self.caps


def _merge_params(old: dict[str, list[Any]] | None, new: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
    if not new:
        return old
    if old is None:
        return {k: list(v) for k, v in new.items()}
    out = {k: list(v) for k, v in old.items()}
    for key, values in new.items():
        # an empty list means "any value" and wins over any list of specific values
        if not values or (key in out and not out[key]):
            out[key] = []
        else:
            out[key] = list(values) + out.get(key, [])
    return out


def _min_nonzero(a: int, b: int) -> int:
    if a and b:
        return min(a, b)
    return a or b


def merge(existing: Permissions | None, rule: PathRule, policy: str) -> Permissions:
    """Fold one stanza into the permissions already held for its pattern (never mutates ``existing``)."""
    if existing is not None and existing.is_deny:
        return existing
    if rule.is_deny:
        return Permissions(caps=frozenset({"deny"}), granting={"deny": (policy,)})
    if existing is None:
        return Permissions(
            caps=rule.capabilities,
            allowed=_merge_params(None, rule.allowed_parameters) if rule.allowed_parameters is not None else None,
            denied=_merge_params(None, rule.denied_parameters) if rule.denied_parameters is not None else None,
            required=rule.required_parameters,
            min_wrapping_ttl=rule.min_wrapping_ttl,
            max_wrapping_ttl=rule.max_wrapping_ttl,
            pagination_limit=rule.pagination_limit,
            granting={c: (policy,) for c in rule.capabilities},
        )
    granting = dict(existing.granting)
    for c in rule.capabilities:
        granting[c] = granting.get(c, ()) + (policy,)
    return Permissions(
        caps=existing.caps | rule.capabilities,
        allowed=_merge_params(existing.allowed, rule.allowed_parameters),
        denied=_merge_params(existing.denied, rule.denied_parameters),
        required=existing.required + tuple(p for p in rule.required_parameters if p not in existing.required),
        min_wrapping_ttl=_min_nonzero(existing.min_wrapping_ttl, rule.min_wrapping_ttl),
        max_wrapping_ttl=_min_nonzero(existing.max_wrapping_ttl, rule.max_wrapping_ttl),
        pagination_limit=_min_nonzero(existing.pagination_limit, rule.pagination_limit),
        granting=granting,
    )


# --- pattern classification and priority ---------------------------------------------------------------------------


def has_segment_wildcards(pattern: str) -> bool:
    return pattern == "+" or "/+" in pattern or pattern.startswith("+/")


Key = tuple[int, int, int, int, str, int, str]


@dataclass(slots=True)
class _SegmentRule:
    pattern: str
    parts: list[str]
    is_prefix: bool
    key: Key  # priority: larger is preferred

    def matches(self, parts: list[str]) -> bool:
        n = len(self.parts)
        if len(parts) < n or (not self.is_prefix and len(parts) != n):
            return False
        last = n - 1
        for i, want in enumerate(self.parts):
            got = parts[i]
            if want == "+" or want == got:
                continue
            if self.is_prefix and i == last and got.startswith(want):
                continue
            return False
        return True


def _key(first_wildcard: int, is_prefix: bool, wildcards: int, body: str, deny: bool) -> Key:
    # Vault's order: later first wildcard, then non-glob over glob, fewer "+", longer, then lexically larger.
    # Case-folded lexical order changes nothing between rules that match one path case-sensitively; it lets a
    # deny that matches only case-insensitively win a tie against the allow it shadows (the tie goes to deny).
    return (first_wildcard, 0 if is_prefix else 1, -wildcards, len(body), body.lower(), 1 if deny else 0, body)


def segment_rule(pattern: str, deny: bool, fold: bool = False) -> _SegmentRule:
    is_prefix = pattern.endswith("*")
    body = pattern[:-1] if is_prefix else pattern
    parts = (body.lower() if fold else body).split("/")
    wildcards = sum(1 for p in parts if p == "+")
    return _SegmentRule(pattern, parts, is_prefix, _key(pattern.index("+"), is_prefix, wildcards, body, deny))


def prefix_key(prefix: str, deny: bool) -> Key:
    return _key(len(prefix), True, 0, prefix, deny)


class _Index:
    """Prefix and segment rules indexed for lookup: prefixes by the few distinct lengths, segment rules by head."""

    __slots__ = ("prefix", "lengths", "by_head", "any_head")

    def __init__(self) -> None:
        self.prefix: dict[str, tuple[str, Permissions]] = {}
        self.lengths: list[int] = []
        # segment rules by their first segment (which must equal the path's), and those starting with "+"
        self.by_head: dict[str, list[tuple[_SegmentRule, Permissions]]] = {}
        self.any_head: list[tuple[_SegmentRule, Permissions]] = []

    def add_segment(self, rule: _SegmentRule, perms: Permissions) -> None:
        # a first segment is compared literally unless it is "+" (a glob only ever ends the last segment, and a
        # one-segment segment rule is "+" itself)
        if rule.parts[0] == "+":
            self.any_head.append((rule, perms))
        else:
            self.by_head.setdefault(rule.parts[0], []).append((rule, perms))

    def finish(self) -> None:
        self.lengths = sorted({len(p) for p in self.prefix}, reverse=True)

    def longest_prefix(self, path: str) -> tuple[str, Permissions] | None:
        n = len(path)
        for length in self.lengths:
            if length <= n:
                hit = self.prefix.get(path[:length])
                if hit is not None:
                    return hit
        return None

    def segment_matches(
        self, parts: list[str], shadow: Mapping[str, Any]
    ) -> Iterable[tuple[_SegmentRule, Permissions]]:
        for bucket in (self.by_head.get(parts[0], ()), self.any_head):
            for rule, perms in bucket:
                if rule.pattern not in shadow and rule.matches(parts):
                    yield rule, perms


class RuleSet:
    """The rules of some set of policies, merged per pattern and indexed for lookup.

    Besides the rules themselves it keeps the ``deny`` rules case-folded: since Vault 2.2.2 an explicit deny also
    matches the requested path case-insensitively (a deny on ``secret/data/example`` covers ``secret/data/EXAMPLE``),
    still subject to the usual priority.
    """

    __slots__ = ("exact", "prefix", "segment", "_index", "_folded_exact", "_folded")

    def __init__(self) -> None:
        self.exact: dict[str, Permissions] = {}
        self.prefix: dict[str, Permissions] = {}
        self.segment: dict[str, Permissions] = {}
        self._index = _Index()
        self._folded_exact: dict[str, tuple[str, Permissions]] = {}
        self._folded = _Index()

    def table_for(self, pattern: str) -> tuple[dict[str, Permissions], str]:
        if has_segment_wildcards(pattern):
            return self.segment, pattern
        if pattern.endswith("*"):
            return self.prefix, pattern[:-1]
        return self.exact, pattern

    def add(self, pattern: str, rule: PathRule, policy: str, under: RuleSet | None = None) -> None:
        """Merge a stanza in; ``under`` is a lower layer whose rule for the same pattern this one must include."""
        table, key = self.table_for(pattern)
        existing = table.get(key)
        if existing is None and under is not None:
            existing = under.table_for(pattern)[0].get(key)
        table[key] = merge(existing, rule, policy)

    def freeze(self) -> RuleSet:
        for pattern, perms in self.exact.items():
            if perms.is_deny:
                self._folded_exact[pattern.lower()] = (pattern, perms)
        for prefix, perms in self.prefix.items():
            self._index.prefix[prefix] = (prefix, perms)
            if perms.is_deny:
                self._folded.prefix[prefix.lower()] = (prefix, perms)
        for pattern, perms in self.segment.items():
            self._index.add_segment(segment_rule(pattern, perms.is_deny), perms)
            if perms.is_deny:
                self._folded.add_segment(segment_rule(pattern, True, fold=True), perms)
        self._index.finish()
        self._folded.finish()
        return self

    def folded_exact(self, lowered: str) -> tuple[str, Permissions] | None:
        return self._folded_exact.get(lowered) if self._folded_exact else None

    @property
    def has_segments(self) -> bool:
        return bool(self.segment)

    def candidates(
        self, path: str, lowered: str, parts: list[str] | None, lowered_parts: list[str] | None,
        shadow: Mapping[str, Any],
    ) -> Iterable[tuple[Key, str, Permissions]]:
        """Every non-exact rule of this layer that could govern ``path``: the longest prefix, the longest
        case-folded deny prefix, and the matching segment rules (plain and case-folded denies)."""
        hit = self._index.longest_prefix(path)
        if hit is not None:
            yield prefix_key(hit[0], hit[1].is_deny), hit[0] + "*", hit[1]
        if self._folded.lengths:
            hit = self._folded.longest_prefix(lowered)
            if hit is not None:
                yield prefix_key(hit[0], True), hit[0] + "*", hit[1]
        if parts is not None and self.segment:
            for rule, perms in self._index.segment_matches(parts, shadow):
                yield rule.key, rule.pattern, perms
            if lowered_parts is not None:
                for rule, perms in self._folded.segment_matches(lowered_parts, shadow):
                    yield rule.key, rule.pattern, perms


# --- the ACL -------------------------------------------------------------------------------------------------------

_OP_CAP = {
    Operation.READ: "read",
    Operation.LIST: "list",
    Operation.UPDATE: "update",
    Operation.DELETE: "delete",
    Operation.CREATE: "create",
    Operation.PATCH: "patch",
    Operation.RENEW: "update",
    Operation.REVOKE: "update",
    Operation.ROLLBACK: "update",
}
_PARAM_OPS = frozenset({Operation.READ, Operation.UPDATE, Operation.CREATE, Operation.PATCH})
_GRANTABLE = ("create", "delete", "list", "patch", "read", "recover", "scan", "subscribe", "sudo", "update")


@dataclass(frozen=True, slots=True)
class AclDecision:
    allowed: bool
    capabilities: tuple[str, ...] = ()
    reason: str = ""
    root_privs: bool = False
    is_root: bool = False
    granting_policies: tuple[str, ...] = ()
    matched: str | None = None  # the pattern that decided, for audit and debugging
    pagination_limit: int = 0


_EMPTY: Mapping[str, Any] = {}


class ACL:
    """A token's compiled policies. ``layers`` shadow each other in order (the identity overlay sits on top)."""

    __slots__ = ("layers", "root", "expires_at", "volatile")

    def __init__(
        self, layers: Sequence[RuleSet] = (), *, root: bool = False, expires_at: float | None = None,
        volatile: bool = False,
    ) -> None:
        self.layers = tuple(layers)
        self.root = root
        self.expires_at = expires_at  # the earliest expiration of a stanza in it: recompile after this
        self.volatile = volatile  # uses time templates: never reuse

    # lookup -------------------------------------------------------------------------------------------------------

    def _exact(self, path: str) -> tuple[str, Permissions] | None:
        lowered = path.lower()
        for layer in self.layers:  # a case-folded deny is as exact as the exact rule it shadows, and deny wins
            hit = layer.folded_exact(lowered)
            if hit is not None:
                return hit
        for layer in self.layers:
            perms = layer.exact.get(path)
            if perms is not None:
                return path, perms
        return None

    def _best_non_exact(self, path: str) -> tuple[Key, str, Permissions] | None:
        best: tuple[Key, str, Permissions] | None = None
        lowered = path.lower()
        parts = lowered_parts = None
        if any(layer.has_segments for layer in self.layers):
            parts = path.split("/")
            lowered_parts = lowered.split("/") if lowered != path else parts
        # at most two layers (overlay, base): the base's segment rule for a pattern the overlay merged is shadowed;
        # for prefixes the overlay's merged rule wins the tie on equal keys because it is seen first
        shadow: Mapping[str, Any] = _EMPTY
        for layer in self.layers:
            for candidate in layer.candidates(path, lowered, parts, lowered_parts, shadow):
                if best is None or candidate[0] > best[0]:
                    best = candidate
            shadow = layer.segment
        return best

    def match(self, path: str, is_list: bool) -> tuple[str, Permissions] | None:
        """The one rule that governs ``path`` (pattern as written, permissions), or None."""
        while path.startswith("/"):
            path = path[1:]
        hit = self._exact(path)
        if hit is not None:
            return hit
        trimmed = path[:-1] if path.endswith("/") else path
        if is_list and trimmed != path:
            hit = self._exact(trimmed)
            if hit is not None:
                return hit
        best = self._best_non_exact(path)
        if is_list and trimmed != path:
            # A LIST of "foo/" is also governed by rules for "foo". Take the most specific rule over both forms, so
            # that neither a rule only the trimmed path matches nor one only the full path matches (such as a
            # "foo/*" deny) can be skipped in favour of a broader grant.
            other = self._best_non_exact(trimmed)
            if other is not None and (best is None or other[0] > best[0]):
                best = other
        if best is None:
            return None
        return best[1], best[2]

    # decisions ----------------------------------------------------------------------------------------------------

    def capabilities(self, path: str) -> list[str]:
        """What ``sys/capabilities`` reports for ``path``: sorted capabilities, ``["root"]`` or ``["deny"]``."""
        if self.root:
            return ["root"]
        hit = self.match(path, is_list=True)
        if hit is None or hit[1].is_deny:
            return ["deny"]
        caps = sorted(c for c in hit[1].caps if c in _GRANTABLE)
        return caps or ["deny"]

    def allow(
        self, op: Operation, path: str, data: Mapping[str, Any] | None = None, root_protected: bool = False,
        *, wrap_ttl: int | None = None,
    ) -> AclDecision:
        if self.root:
            return AclDecision(
                True, ("root",), "root token", root_privs=True, is_root=True, granting_policies=("root",)
            )
        if op is Operation.HELP:
            return AclDecision(True, reason="help is always allowed")
        is_list = op is Operation.LIST
        if is_list and not path.endswith("/"):
            path += "/"  # a LIST is always of a folder (the HTTP layer does this too; defence in depth)
        hit = self.match(path, is_list)
        if hit is None:
            return AclDecision(False, reason="no policy grants access to this path")
        pattern, perms = hit
        caps = tuple(sorted(perms.caps))
        if perms.is_deny:
            return AclDecision(False, caps, f'denied by policy path "{pattern}"', matched=pattern)
        need = _OP_CAP.get(op)
        if need is None or need not in perms.caps:
            return AclDecision(False, caps, f'"{need or op.value}" is not granted on "{pattern}"', matched=pattern)
        denied = self._check_conditions(op, perms, data, wrap_ttl)
        if denied:
            return AclDecision(False, caps, denied, matched=pattern)
        sudo = "sudo" in perms.caps
        if root_protected and not sudo:
            return AclDecision(False, caps, f'path is root-protected and "sudo" is not granted on "{pattern}"',
                               matched=pattern)
        return AclDecision(True, caps, "allowed", root_privs=sudo, granting_policies=perms.granting.get(need, ()),
                           matched=pattern, pagination_limit=perms.pagination_limit)

    @staticmethod
    def _check_conditions(
        op: Operation, perms: Permissions, data: Mapping[str, Any] | None, wrap_ttl: int | None
    ) -> str:
        if perms.max_wrapping_ttl and (wrap_ttl is None or wrap_ttl > perms.max_wrapping_ttl):
            return "response wrapping with a shorter TTL is required"
        if perms.min_wrapping_ttl and (wrap_ttl is None or wrap_ttl < perms.min_wrapping_ttl):
            return "response wrapping with a longer TTL is required"
        if perms.min_wrapping_ttl and perms.max_wrapping_ttl and perms.max_wrapping_ttl < perms.min_wrapping_ttl:
            return "conflicting wrapping TTL limits"
        data = data or _EMPTY
        if op in _PARAM_OPS:
            for name in perms.required:
                if name.lower() not in data:
                    return f'required parameter "{name}" is missing'
            if not data:
                return ""
            if perms.denied:
                if "*" in perms.denied:
                    return "all parameters are denied"
                for name, value in data.items():
                    values = perms.denied.get(name.lower())
                    if values is not None and _value_denied(value, values):
                        return f'parameter "{name}" has a denied value'
            if perms.allowed:
                allow_all = "*" in perms.allowed
                if allow_all and len(perms.allowed) == 1:
                    return ""
                for name, value in data.items():
                    values = perms.allowed.get(name.lower())
                    if values is None:
                        if not allow_all:
                            return f'parameter "{name}" is not allowed'
                    elif not _value_allowed(value, values):
                        return f'parameter "{name}" has a value that is not allowed'
        elif op is Operation.LIST and perms.pagination_limit:
            limit = data.get("limit")
            if limit is not None and limit != "max":
                try:
                    if int(limit) > perms.pagination_limit:
                        return "limit exceeds the pagination limit"
                except (TypeError, ValueError):
                    return "limit is not a number"
        return ""


# --- parameter values ----------------------------------------------------------------------------------------------


def glob_match(pattern: str, value: str) -> bool:
    """Vault's GlobbedStringsMatch: a leading and/or trailing ``*`` (on patterns of 2+ characters)."""
    if len(pattern) < 2:
        return value == pattern
    star_start, star_end = pattern.startswith("*"), pattern.endswith("*")
    if star_start and star_end:
        return pattern[1:-1] in value
    if star_start:
        return value.endswith(pattern[1:])
    if star_end:
        return value.startswith(pattern[:-1])
    return value == pattern


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python, but not in a policy: true must not match 1
    return type(a) is type(b) and a == b


def _in_list(value: Any, values: list[Any]) -> bool:
    for el in values:
        if el is None or value is None:
            if el is value:
                return True
        elif isinstance(el, str):
            # handlers trim and lower-case names (policies, roles); compare the way they will be used, so
            # "ADMIN" or " admin" cannot slip past a rule written for "admin"
            if isinstance(value, str) and glob_match(el.strip().casefold(), value.strip().casefold()):
                return True
        elif _same(el, value):
            return True
    return False


def _items(value: Any) -> list[Any] | None:
    """A list value's elements, or a comma-separated string's parts (Vault treats such fields as lists).

    Unlike Vault, an empty string is one value rather than an empty list, so it is allowed only when listed.
    """
    if isinstance(value, list):
        parts = [p for v in value for p in (v.split(",") if isinstance(v, str) else [v])]
        return [p.strip() if isinstance(p, str) else p for p in parts]
    if isinstance(value, str) and "," in value:
        return [p.strip() for p in value.split(",")]
    return None


def _value_allowed(value: Any, values: list[Any]) -> bool:
    if not values or _in_list(value, values):
        return True
    items = _items(value)
    return items is not None and all(_in_list(v, values) for v in items)


def _value_denied(value: Any, values: list[Any]) -> bool:
    if not values or _in_list(value, values):
        return True
    items = _items(value)
    return items is not None and any(_in_list(v, values) for v in items)


# --- compilation ---------------------------------------------------------------------------------------------------

ROOT_ACL = ACL(root=True)
# Vault refuses to build an ACL from "root" plus other policies ("other policies present along with root"), so such a
# request fails. Here it grants nothing: "root" arriving next to other policies (say, through an identity group) must
# not turn a token into a root token.
DENY_ALL_ACL = ACL()


def _live(rule: PathRule, now: float) -> bool:
    return rule.expiration is None or rule.expiration > now


def _earliest(current: float | None, rule: PathRule) -> float | None:
    if rule.expiration is None:
        return current
    return rule.expiration if current is None else min(current, rule.expiration)


@dataclass(slots=True)
class BaseAcl:
    """The identity-independent part of a set of policies, compiled once and shared by every token that has them."""

    acl: ACL
    templated: list[tuple[str, PathRule]]
    time_templated: bool


def compile_base(policies: Iterable[Policy], now: float | None = None) -> BaseAcl:
    now = time.time() if now is None else now
    rules = RuleSet()
    templated: list[tuple[str, PathRule]] = []
    expires: float | None = None
    time_templated = False
    policies = list(policies)
    if any(p.name == "root" for p in policies):
        return BaseAcl(ROOT_ACL if len(policies) == 1 else DENY_ALL_ACL, [], False)
    for policy in policies:
        for rule in policy.paths:
            if not _live(rule, now):
                continue
            if rule.templated:
                templated.append((policy.name, rule))
                time_templated = time_templated or rule.time_templated
                continue
            rules.add(rule.pattern, rule, policy.name)
            expires = _earliest(expires, rule)
    return BaseAcl(ACL([rules.freeze()], expires_at=expires), templated, time_templated)


def compile_for_identity(base: BaseAcl, ident: IdentityContext | None, now: float | None = None) -> ACL:
    """Add the templated stanzas, rendered for ``ident``, on top of the shared base."""
    if base.acl.root or not base.templated:
        return base.acl
    now = time.time() if now is None else now
    below = base.acl.layers[0] if base.acl.layers else None
    overlay = RuleSet()
    expires = base.acl.expires_at
    for policy_name, rule in base.templated:
        pattern = render_pattern(rule.pattern, ident, now)
        if pattern is None:
            continue  # missing or unsafe value: the stanza does not exist for this identity
        overlay.add(pattern, rule, policy_name, under=below)
        expires = _earliest(expires, rule)
    if not (overlay.exact or overlay.prefix or overlay.segment):
        return base.acl
    return ACL([overlay.freeze(), *base.acl.layers], expires_at=expires, volatile=base.time_templated)


def compile_acl(policies: Iterable[Policy], ident: IdentityContext | None = None, now: float | None = None) -> ACL:
    """One-shot compilation (tests, tools); the policy store caches the two halves separately."""
    return compile_for_identity(compile_base(policies, now), ident, now)
