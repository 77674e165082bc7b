"""The plan: what the files say, what the server has, and the changes between them, each with its risk.

Only the fields a file names are compared, so an object can be declared with the few settings that matter to it.
Sensitive values (``env()``/``file()`` references) cannot be read back from the server: they are sent when the object
is created (auth method configuration: whenever it is written) and are otherwise never compared, shown or hashed.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.config_as_code.hcl import Block, ConfigError, SecretRef, load_dir
from strongroom.config_as_code.kinds import BY_NAME, KINDS, Fields, Key, Kind, Live
from strongroom.framework.durations import parse_duration

WIDENS = "widens access"
DESTROYS = "destroys data"
SENSITIVE = "(sensitive)"
_EMPTY: tuple[Any, ...] = (None, "", [], {})


@dataclass
class FieldChange:
    name: str
    old: Any
    new: Any
    sensitive: bool = False


@dataclass
class Change:
    action: str  # create | update | replace | delete
    kind: Kind
    key: Key
    fields: list[FieldChange]
    desired: Fields = field(default_factory=dict)
    live: Fields = field(default_factory=dict)
    risks: set[str] = field(default_factory=set)
    needs_destroy: bool = False  # only with --allow-destroy

    @property
    def address(self) -> str:
        return self.kind.address(self.key)

    def summary(self) -> dict[str, Any]:
        """What the plan hash covers: no sensitive value, only that one is set."""
        return {
            "action": self.action, "address": self.address,
            "fields": [[f.name, None if f.sensitive else f.old, SENSITIVE if f.sensitive else f.new]
                       for f in self.fields],
        }


@dataclass
class Plan:
    changes: list[Change]

    @property
    def hash(self) -> str:
        text = json.dumps([c.summary() for c in self.changes], sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# --- the files ----------------------------------------------------------------------------------------------------


def _normalise_mount(body: Fields) -> Fields:
    out = dict(body)
    if out.get("type") in ("kv-v1", "kv-v2"):
        out["options"] = {**(out.get("options") or {}), "version": str(out["type"])[-1]}
        out["type"] = "kv"
    if isinstance(out.get("options"), dict):
        out["options"] = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in out["options"].items()}
    for ttl in ("default_lease_ttl", "max_lease_ttl"):
        if out.get(ttl) == "system":
            out[ttl] = 0
    return out


def _policy_body(block: Block, base: Path) -> Fields:
    keys = set(block.body)
    if keys not in ({"policy"}, {"file"}):
        raise ConfigError(f'{block.source}: policy "{block.labels[0]}": give exactly one of policy = "..." or file = '
                          '"path.hcl"')
    if "policy" in block.body:
        text = block.body["policy"]
    else:
        path = base / str(block.body["file"])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f'{block.source}: policy "{block.labels[0]}": cannot read {block.body["file"]}: '
                              f"{exc.strerror or type(exc).__name__}") from None
    if not isinstance(text, str):
        raise ConfigError(f'{block.source}: policy "{block.labels[0]}": the policy must be text')
    return {"policy": text}


def load_desired(directory: str) -> dict[tuple[str, Key], Fields]:
    base = Path(directory)
    out: dict[tuple[str, Key], Fields] = {}
    for block in load_dir(directory):
        kind = BY_NAME.get(block.kind)
        where = f"{block.source}: {block.kind} {' '.join(repr(x) for x in block.labels)}"
        if kind is None:
            raise ConfigError(f"{block.source}: unknown block {block.kind!r} (known: {', '.join(sorted(BY_NAME))})")
        if len(block.labels) != len(kind.labels):
            raise ConfigError(f"{where}: takes {len(kind.labels)} label(s): {' '.join(kind.labels)}")
        if any(not label.strip("/") or ".." in label.split("/") for label in block.labels):
            raise ConfigError(f"{where}: invalid name")
        key = tuple(label.strip("/") for label in block.labels)
        if (kind.name, key) in out:
            raise ConfigError(f"{where}: declared twice")
        body = block.body
        if kind.name == "policy":
            body = _policy_body(block, base)
        elif kind.name in ("secrets_engine", "auth_method"):
            body = _normalise_mount(body)
            if not body.get("type"):
                raise ConfigError(f"{where}: type is required")
        elif kind.name == "identity_group_alias" and not isinstance(body.get("group"), str):
            raise ConfigError(f'{where}: group = "<identity group name>" is required')
        elif kind.name == "audit" and not body.get("type"):
            raise ConfigError(f"{where}: type is required")
        for name in kind.sensitive:
            if name in body and not isinstance(body[name], SecretRef):
                raise ConfigError(f'{where}: {name} is a secret: write {name} = env("NAME") or file("path")')
        for name, value in body.items():
            if name.startswith("_"):
                raise ConfigError(f"{where}: unknown field {name!r}")
            if isinstance(value, list | dict) and _has_ref(value):
                raise ConfigError(f"{where}: {name}: env()/file() may only be a whole value")
        out[(kind.name, key)] = body
    return out


def _has_ref(value: Any) -> bool:
    if isinstance(value, SecretRef):
        return True
    if isinstance(value, list):
        return any(_has_ref(v) for v in value)
    if isinstance(value, dict):
        return any(_has_ref(v) for v in value.values())
    return False


# --- comparing ----------------------------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def same(name: str, desired: Any, live: Any) -> bool:
    if desired in _EMPTY and live in _EMPTY:
        return True
    if isinstance(desired, dict) and isinstance(live, dict):
        # mount options are merged by tune (and the server adds its own, e.g. the KV version): only named ones count
        keys = set(desired) if name == "options" else set(desired) | set(live)
        return all(same(k, desired.get(k), live.get(k)) for k in keys)
    if isinstance(desired, list) and isinstance(live, list):
        if len(desired) != len(live):
            return False
        if "statements" in name:
            return all(same(name, d, lv) for d, lv in zip(desired, live, strict=True))
        return sorted(map(_scalar, desired)) == sorted(map(_scalar, live))
    if isinstance(live, int) and not isinstance(live, bool) and isinstance(desired, str):
        try:
            return parse_duration(desired) == live
        except ValueError:
            return False
    if isinstance(desired, list | dict) or isinstance(live, list | dict):
        return False
    if name == "policy" and isinstance(desired, str) and isinstance(live, str):
        return _policy_lines(desired) == _policy_lines(live)
    return _scalar(desired) == _scalar(live)


def _policy_lines(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.replace("\r\n", "\n").strip("\n").split("\n")]


def _seconds(value: Any) -> int | None:
    try:
        return parse_duration(value)
    except ValueError:
        return None


def _caps(text: str) -> dict[str, set[str]] | None:
    from strongroom.core.policy import PolicyError, parse_policy

    try:
        policy = parse_policy("plan", text)
    except (PolicyError, ValueError):
        return None
    out: dict[str, set[str]] = {}
    for rule in policy.paths:
        out.setdefault(rule.pattern, set()).update(rule.capabilities)
    return out


def _field_risks(kind: Kind, name: str, old: Any, new: Any, creating: bool) -> set[str]:
    risks: set[str] = set()
    new_list = [_scalar(v) for v in new] if isinstance(new, list) else None
    old_list = [_scalar(v) for v in old] if isinstance(old, list) else []
    if creating:
        if name.startswith("bound_") and (new == "*" or (new_list and "*" in new_list)):
            risks.add(WIDENS)
        return risks
    if name == "policy" and kind.name == "policy":
        old_caps, new_caps = _caps(str(old or "")), _caps(str(new or ""))
        if old_caps is not None and new_caps is not None:
            for pattern, caps in new_caps.items():
                had = old_caps.get(pattern, set())
                if (caps - had - {"deny"}) or ("deny" in had and "deny" not in caps):
                    risks.add(WIDENS)
    elif "polic" in name and not name.startswith("disallowed"):
        if new_list is not None and set(new_list) - set(old_list):
            risks.add(WIDENS)
    elif name.startswith(("bound_", "allowed_")):
        if new_list is not None:
            if set(new_list) - set(old_list) or (old_list and not new_list):
                risks.add(WIDENS)
        elif isinstance(new, str) and ((old and not new) or "*" in new):
            risks.add(WIDENS)
    elif name.startswith("allow") and _scalar(new) == "true" and _scalar(old) != "true":
        risks.add(WIDENS)
    elif "ttl" in name or name.endswith("period"):
        before, after = _seconds(old), _seconds(new)
        if before is not None and after is not None and (after > before or (after == 0 and before > 0)):
            risks.add(WIDENS)
    elif name == "options" and isinstance(new, dict) and isinstance(old, dict):
        if _scalar(new.get("write_once", "false")) != _scalar(old.get("write_once", "false")) or (
            old.get("version") and not same("version", new.get("version", old.get("version")), old.get("version"))
        ):
            risks.add(DESTROYS)
    elif name == "min_decryption_version":
        before, after = _seconds(old), _seconds(new)
        if before is not None and after is not None and after > before:
            risks.add(DESTROYS)
    return risks


def _write_once(fields: Fields) -> bool:
    return _scalar((fields.get("options") or {}).get("write_once", "false")) == "true"


def read_live(live: Live) -> dict[tuple[str, Key], Fields]:
    live.load_mounts()
    out: dict[tuple[str, Key], Fields] = {}
    for kind in KINDS:
        for key, fields in kind.read(live).items():
            out[(kind.name, key)] = fields
    return out


def compute(desired: dict[tuple[str, Key], Fields], current: dict[tuple[str, Key], Fields],
            resend_secrets: tuple[str, ...] = ()) -> Plan:
    """``resend_secrets`` (globs over ``kind/label/label``, e.g. ``auth_user/userpass/*``) turns each matching existing
    object with an env()/file() value into an update that sends it again: the way to roll a database root password
    or a reviewer JWT, since the server never returns them."""
    changes: list[Change] = []
    desired_mounts = {(k, key[0]) for (k, key) in desired if k in ("secrets_engine", "auth_method")}
    renewed: set[tuple[str, str]] = set()  # mounts created or replaced: nothing under them exists afterwards
    for kind in KINDS:
        for (kname, key), want in sorted(((k, v) for k, v in desired.items() if k[0] == kind.name), key=_order):
            if kind.parent and (kind.parent, key[0]) not in desired_mounts:
                raise ConfigError(f"{kind.address(key)}: no {kind.parent} \"{key[0]}\" is declared in the files")
            have = None if kind.parent and (kind.parent, key[0]) in renewed else current.get((kname, key))
            if have is None:
                fields = [FieldChange(n, None, v, isinstance(v, SecretRef) or n in kind.sensitive)
                          for n, v in want.items()]
                risks = set().union(*(_field_risks(kind, f.name, None, f.new, True) for f in fields))
                changes.append(Change("create", kind, key, fields, want, {}, risks))
                if kind.name in ("secrets_engine", "auth_method"):
                    renewed.add((kind.name, key[0]))
                continue
            diff = [FieldChange(n, have.get(n), v) for n, v in want.items()
                    if not isinstance(v, SecretRef) and n not in kind.sensitive and not same(n, v, have.get(n))]
            secrets = [FieldChange(n, None, SENSITIVE, True) for n, v in want.items() if isinstance(v, SecretRef)]
            resend = any(fnmatch.fnmatchcase("/".join((kind.name, *key)), pat) for pat in resend_secrets)
            if not diff and not (resend and secrets):
                continue
            action = "replace" if any(f.name in kind.immutable for f in diff) else "update"
            if action == "replace" or resend:
                diff += secrets
            risks = set().union(*(_field_risks(kind, f.name, f.old, f.new, False) for f in diff if not f.sensitive))
            change = Change(action, kind, key, diff, want, have, risks)
            if action == "replace" and kind.destroys:
                change.risks.add(DESTROYS)
                change.needs_destroy = kind.name in ("audit", "transit_key") or _write_once(have)
                if kind.name in ("secrets_engine", "auth_method"):
                    renewed.add((kind.name, key[0]))
            if any(f.name == "options" for f in diff) and DESTROYS in change.risks:
                change.needs_destroy = True
            changes.append(change)
        if kind.delete is None:
            continue
        for (kname, key), have in sorted(((k, v) for k, v in current.items() if k[0] == kind.name), key=_order):
            if (kname, key) in desired or (kind.name == "policy" and key[0] == "default"):
                continue
            if kind.parent and ((kind.parent, key[0]) not in desired_mounts or (kind.parent, key[0]) in renewed):
                continue  # it goes with its mount, which is deleted or replaced
            fields = [FieldChange(n, v, None) for n, v in have.items() if not n.startswith("_")]
            change = Change("delete", kind, key, fields, {}, have, {DESTROYS} if kind.destroys else set())
            change.needs_destroy = kind.name in ("audit", "transit_key") or _write_once(have)
            changes.append(change)
    return Plan(changes)


def _order(item: tuple[tuple[str, Key], Fields]) -> Key:
    return item[0][1]


# --- showing ------------------------------------------------------------------------------------------------------

_SIGN = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}


def _show(value: Any) -> str:
    if isinstance(value, SecretRef):
        return SENSITIVE
    return json.dumps(value, sort_keys=True, default=str)


def render(plan: Plan) -> str:
    lines: list[str] = []
    for c in plan.changes:
        marks = "".join(f"  [!{r}]" for r in sorted(c.risks))
        lines.append(f"{_SIGN[c.action]} {c.action} {c.address}{marks}")
        for f in c.fields:
            if f.name.startswith("_"):
                continue
            if f.sensitive:
                lines.append(f"      {f.name} = {SENSITIVE}")
            elif c.action == "create":
                lines.append(f"      {f.name} = {_show(f.new)}")
            elif c.action == "delete":
                lines.append(f"      {f.name} = {_show(f.old)}")
            elif f.name == "policy" and isinstance(f.old, str) and isinstance(f.new, str):
                lines.append("      policy:")
                for ln in difflib.unified_diff(_policy_lines(f.old), _policy_lines(f.new), lineterm="", n=1):
                    if not ln.startswith(("---", "+++")):
                        lines.append(f"        {ln}")
            else:
                lines.append(f"      {f.name}: {_show(f.old)} -> {_show(f.new)}")
    counts = {a: sum(1 for c in plan.changes if c.action == a) for a in _SIGN}
    if plan.changes:
        lines.append("")
        lines.append(f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['replace']} to "
                     f"replace, {counts['delete']} to delete.")
        lines.append(f"Plan hash: {plan.hash}")
    else:
        lines.append("No changes: the server matches the configuration.")
    return "\n".join(lines)
