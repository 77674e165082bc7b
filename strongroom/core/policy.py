"""ACL policy documents: HCL or JSON text (optionally base64) parsed into a :class:`Policy`.

The grammar is Vault's: ``path "<pattern>" { capabilities = [...] }`` stanzas plus the legacy ``policy = "read"`` form,
with the same set of valid keys. Parsing only validates and normalises; turning patterns into a lookup structure (and
filling in identity templates) is :mod:`strongroom.core.acl`'s job. A policy that cannot be understood is refused
whole — nothing in it is applied — and the error names the stanza at fault.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hcl2
import lark
from hcl2.utils import SerializationOptions, process_escape_sequences

from strongroom.framework.durations import parse_duration

# Capabilities Vault and OpenBao accept in a policy. Only the first eight gate operations here; the rest are parsed
# so that policies written for Vault load unchanged.
CAPABILITIES = frozenset(
    {"create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe", "recover", "scan"}
)

LEGACY_POLICIES: dict[str, tuple[str, ...]] = {
    "deny": ("deny",),
    "read": ("read", "list"),
    "write": ("create", "read", "update", "delete", "list"),
    "sudo": ("create", "read", "update", "delete", "list", "sudo"),
}

_TOP_KEYS = frozenset({"name", "path"})
_PATH_KEYS = frozenset(
    {
        "comment",
        "policy",
        "capabilities",
        "allowed_parameters",
        "denied_parameters",
        "required_parameters",
        "min_wrapping_ttl",
        "max_wrapping_ttl",
        "mfa_methods",
        "control_group",
        "pagination_limit",
        "expiration",
        "list_scan_response_keys_filter_path",
        "subscribe_event_types",
    }
)
# Accepted for compatibility, but Strongroom does not act on them; saying so beats silently pretending.
_UNENFORCED_KEYS = ("mfa_methods", "control_group", "list_scan_response_keys_filter_path", "subscribe_event_types")

_HCL_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=True, preserve_heredocs=False)
MAX_POLICY_BYTES = 256 * 1024


class PolicyError(ValueError):
    """The policy text is invalid; the message is safe to show the client."""


class TemplateError(ValueError):
    pass


def template_directives(pattern: str) -> list[str]:
    """The ``{{ ... }}`` directives in a path pattern, stripped; raises TemplateError when braces are unbalanced.

    Same split rules as Vault's identitytpl: every ``{{`` must be closed by exactly one ``}}`` before the next.
    """
    pieces = pattern.split("{{")
    if "}}" in pieces[0]:
        raise TemplateError("unbalanced templating characters")
    out: list[str] = []
    for piece in pieces[1:]:
        parts = piece.split("}}")
        if len(parts) != 2:
            raise TemplateError("unbalanced templating characters")
        out.append(parts[0].strip())
    return out


_KNOWN_TEMPLATE_ROOTS = ("identity.entity.", "identity.groups.", "time.")


@dataclass(frozen=True, slots=True)
class PathRule:
    """One ``path`` stanza, validated. ``pattern`` may still hold ``{{...}}`` identity templates."""

    pattern: str
    capabilities: frozenset[str]
    allowed_parameters: dict[str, list[Any]] | None = None
    denied_parameters: dict[str, list[Any]] | None = None
    required_parameters: tuple[str, ...] = ()
    min_wrapping_ttl: int = 0
    max_wrapping_ttl: int = 0
    pagination_limit: int = 0
    expiration: float | None = None  # unix time after which the stanza no longer applies
    templated: bool = False
    time_templated: bool = False

    @property
    def is_deny(self) -> bool:
        return "deny" in self.capabilities


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    raw: str
    paths: tuple[PathRule, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def templated(self) -> bool:
        return any(p.templated for p in self.paths)

    @property
    def time_templated(self) -> bool:
        return any(p.time_templated for p in self.paths)


def decode_policy_text(text: str) -> str:
    """Vault accepts the policy base64-encoded: text that decodes as standard base64 (to UTF-8) is replaced by it."""
    candidate = text.strip().replace("\r", "").replace("\n", "")  # Go's decoder skips line breaks (wrapped output)
    if not candidate:
        return text
    try:
        decoded = base64.b64decode(candidate, validate=True)
    except (binascii.Error, ValueError):
        return text
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        return text


def parse_policy(name: str, text: str) -> Policy:
    """Parse policy text (HCL or JSON). Raises :class:`PolicyError` with a message fit for the client."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise PolicyError("failed to parse policy: policy text is too large")
    source = text[1:] if text.startswith("\ufeff") else text  # a byte-order mark from an editor is not syntax
    try:
        doc = _load_json(source) if source.lstrip().startswith("{") else _load_hcl(source)
    except RecursionError:
        raise PolicyError("failed to parse policy: nested too deeply") from None
    for key in doc:
        if key not in _TOP_KEYS:
            raise PolicyError(f'failed to parse policy: invalid key "{key}"')
    if "name" in doc and not isinstance(doc["name"], str):
        raise PolicyError('failed to parse policy: "name" must be a string')
    warnings: list[str] = []
    rules = tuple(_parse_stanza(pattern, body, warnings) for pattern, body in _stanzas(doc.get("path")))
    return Policy(name=name, raw=text, paths=rules, warnings=tuple(dict.fromkeys(warnings)))


# --- loading HCL and JSON into plain values -------------------------------------------------------------------------


class _Dict(dict[str, Any]):
    """A JSON object or HCL object expression (as opposed to an HCL block)."""


class _Block(dict[str, Any]):
    """An HCL block body."""


def _load_json(text: str) -> dict[str, Any]:
    def pairs(items: list[tuple[str, Any]]) -> _Dict:
        out = _Dict()
        for k, v in items:
            # A duplicate key would silently drop one of the stanzas (perhaps a deny): refuse instead.
            if k in out:
                raise PolicyError(f'failed to parse policy: duplicate key "{k}"')
            out[k] = v
        return out

    try:
        doc = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"failed to parse policy: invalid JSON at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise PolicyError("failed to parse policy: does not contain a root object")
    return doc


def _load_hcl(text: str) -> dict[str, Any]:
    try:
        tree = hcl2.parses_to_tree(text if text.endswith("\n") else text + "\n")
    except lark.exceptions.UnexpectedInput as exc:
        raise PolicyError(f"failed to parse policy: syntax error at line {exc.line}, column {exc.column}") from None
    except (lark.exceptions.LarkError, ValueError) as exc:
        raise PolicyError(f"failed to parse policy: {type(exc).__name__}") from None
    _reject_duplicates(tree)
    try:
        raw = hcl2.serialize(hcl2.transform(tree, discard_comments=True), serialization_options=_HCL_OPTIONS)
    except Exception as exc:  # the library raises assorted types for constructs it cannot serialise
        raise PolicyError(f"failed to parse policy: unsupported HCL construct ({type(exc).__name__})") from None
    value = _from_hcl(raw, "policy")
    assert isinstance(value, dict)
    return value


def _token_text(tree: lark.Tree) -> str:
    return "".join(str(t) for t in tree.scan_values(lambda _: True))


def _reject_duplicates(tree: lark.Tree) -> None:
    """HCL2 keeps only the last of repeated attributes; in a policy that could silently drop a ``deny``."""
    for node in tree.iter_subtrees():
        if node.data == "body":
            seen: set[str] = set()
            for child in node.children:
                if isinstance(child, lark.Tree) and child.data == "attribute":
                    key = _token_text(child.children[0])
                    if key in seen:
                        raise PolicyError(f'failed to parse policy: attribute "{key}" is defined more than once')
                    seen.add(key)
        elif node.data == "object":
            seen = set()
            for child in node.children:
                if isinstance(child, lark.Tree) and child.data == "object_elem":
                    key = _token_text(child.children[0]).strip().strip('"')
                    if key in seen:
                        raise PolicyError(f'failed to parse policy: key "{key}" is defined more than once')
                    seen.add(key)


def _hcl_string(value: str, where: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        if "${" in inner or "%{" in inner:
            raise PolicyError(
                f"failed to parse policy: {where}: interpolation and template directives are not supported"
            )
        return process_escape_sequences(inner)
    if value.startswith("${"):
        raise PolicyError(f"failed to parse policy: {where}: expressions are not supported, use a literal value")
    raise PolicyError(f"failed to parse policy: {where}: expected a quoted string, got {value}")


def _from_hcl(value: Any, where: str) -> Any:
    """Turn python-hcl2's serialised form (quoted strings, ``__is_block__`` markers) into plain values."""
    if isinstance(value, str):
        return _hcl_string(value, where)
    if isinstance(value, list):
        return [_from_hcl(v, where) for v in value]
    if isinstance(value, dict):
        is_block = bool(value.get("__is_block__"))
        out: dict[str, Any] = _Block() if is_block else _Dict()
        for k, v in value.items():
            if k == "__is_block__":
                continue
            key = _hcl_string(k, where) if k.startswith('"') else k
            if where == "policy":
                child = key
            elif where == "path":
                child = f'path "{key}"'
            else:
                child = f"{where}, {key}"
            out[key] = _from_hcl(v, child)
        return out
    return value  # int, float, bool, None


def _stanzas(value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (pattern, body) for every path stanza, whichever way the document spelled them."""
    if value is None:
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        # a labelled HCL block arrives as {label: body}; a bare _Block is one written without its path label
        if isinstance(item, _Block):
            raise PolicyError('failed to parse policy: a "path" stanza needs a path, as in path "secret/*" { ... }')
        if not isinstance(item, dict):
            raise PolicyError('failed to parse policy: "path" must be a block, as in path "secret/*" { ... }')
        for pattern, body in item.items():
            bodies = body if isinstance(body, list) else [body]
            for b in bodies:
                if not isinstance(b, dict):
                    raise PolicyError(f'failed to parse policy: path "{pattern}": expected a block')
                yield pattern, b


# --- one stanza ------------------------------------------------------------------------------------------------------


def _parse_stanza(pattern: str, body: dict[str, Any], warnings: list[str]) -> PathRule:
    where = f'path "{pattern}"'

    def fail(msg: str) -> PolicyError:
        return PolicyError(f"failed to parse policy: {where}: {msg}")

    for key in body:
        if key not in _PATH_KEYS:
            raise fail(f'invalid key "{key}"')
    for key in _UNENFORCED_KEYS:
        if key in body:
            warnings.append(f'{where}: "{key}" is accepted for compatibility but not enforced by Strongroom')

    try:
        directives = template_directives(pattern)
    except TemplateError as exc:
        raise PolicyError(f"failed to validate policy templating: {where}: {exc}") from None
    has_template = bool(directives)
    time_templated = any(d.startswith("time.") for d in directives)
    for d in directives:
        if not d.startswith(_KNOWN_TEMPLATE_ROOTS):
            warnings.append(f"{where}: unknown template {{{{{d}}}}} never resolves, so this stanza never applies")

    path = pattern[1:] if pattern.startswith("/") else pattern
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise fail("the path contains a control character")
    if "+*" in path:
        raise fail("invalid use of wildcards ('+*' is forbidden)")

    caps: list[str] = []
    legacy = body.get("policy")
    if legacy is not None:
        if not isinstance(legacy, str) or legacy not in LEGACY_POLICIES:
            raise fail(f'invalid policy "{legacy}" (expected one of deny, read, write, sudo)')
    raw_caps = body.get("capabilities", [])
    if not isinstance(raw_caps, list) or not all(isinstance(c, str) for c in raw_caps):
        raise fail("capabilities must be a list of strings")
    for cap in raw_caps:
        if cap not in CAPABILITIES:
            raise fail(f'invalid capability "{cap}"')
    caps = list(raw_caps)
    if legacy is not None:
        caps = ["deny"] if legacy == "deny" else caps + list(LEGACY_POLICIES[legacy])

    expiration = _expiration(body.get("expiration"), fail)
    if "deny" in caps:
        return PathRule(
            pattern=path, capabilities=frozenset({"deny"}), expiration=expiration,
            templated=has_template, time_templated=time_templated,
        )

    min_ttl = _duration(body, "min_wrapping_ttl", fail)
    max_ttl = _duration(body, "max_wrapping_ttl", fail)
    if min_ttl and max_ttl and max_ttl < min_ttl:
        raise fail("max_wrapping_ttl cannot be less than min_wrapping_ttl")
    required = body.get("required_parameters", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise fail("required_parameters must be a list of strings")
    limit = body.get("pagination_limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise fail("pagination_limit must be a non-negative integer")

    return PathRule(
        pattern=path,
        capabilities=frozenset(caps),
        allowed_parameters=_param_map(body, "allowed_parameters", fail),
        denied_parameters=_param_map(body, "denied_parameters", fail),
        required_parameters=tuple(required),
        min_wrapping_ttl=min_ttl,
        max_wrapping_ttl=max_ttl,
        pagination_limit=limit,
        expiration=expiration,
        templated=has_template,
        time_templated=time_templated,
    )


def _param_map(body: dict[str, Any], key: str, fail: Any) -> dict[str, list[Any]] | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0]  # block form: allowed_parameters { ... }
    if not isinstance(value, dict):
        raise fail(f"{key} must be a map of parameter name to a list of values")
    out: dict[str, list[Any]] = {}
    for name, values in value.items():
        if not isinstance(values, list):
            raise fail(f'{key}: the value of "{name}" must be a list')
        lname = name.lower()
        # two spellings of one name in one stanza: merge the way separate policies would
        if lname in out:
            out[lname] = [] if not values or not out[lname] else out[lname] + values
        else:
            out[lname] = list(values)
    return out


def _duration(body: dict[str, Any], key: str, fail: Any) -> int:
    value = body.get(key)
    if value is None:
        return 0
    try:
        return parse_duration(value)
    except ValueError:
        raise fail(f"error parsing {key}: not a duration") from None


def _expiration(value: Any, fail: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise fail("invalid expiration time")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return float(text)
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise fail("invalid expiration time (use RFC 3339 or unix seconds)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    raise fail("invalid expiration time")
