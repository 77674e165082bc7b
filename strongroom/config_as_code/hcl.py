"""Reading and writing the configuration directory's HCL, and the ``env("NAME")`` / ``file("path")`` secret references.

A value written as ``env("DB_ROOT_PASSWORD")`` or ``file("secrets/reviewer.jwt")`` is never a literal in the files: it
is a :class:`SecretRef`, resolved only when ``apply`` sends it, shown as ``(sensitive)`` everywhere else.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions, process_escape_sequences

_REF = re.compile(r'^\$\{\s*(env|file)\(\s*"((?:[^"\\]|\\.)*)"\s*\)\s*\}$')
# comments dropped, heredocs as ordinary strings (the same options strongroom/core/policy.py parses with)
_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=True, preserve_heredocs=False)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class ConfigError(Exception):
    """A configuration directory that cannot be read, or a reference that cannot be resolved."""


@dataclass(frozen=True)
class SecretRef:
    source: str  # "env" or "file"
    name: str
    base: str = ""  # the configuration directory, for relative file() paths

    def resolve(self) -> str:
        if self.source == "env":
            value = os.environ.get(self.name)
            if value is None:
                raise ConfigError(f'env("{self.name}") is not set')
            return value
        path = Path(self.name) if os.path.isabs(self.name) else Path(self.base) / self.name
        try:
            return path.read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise ConfigError(f'file("{self.name}") cannot be read: {exc.strerror or type(exc).__name__}') from None

    def hcl(self) -> str:
        return f"{self.source}({json.dumps(self.name)})"


def _string(raw: str, base: str, where: str) -> Any:
    ref = _REF.match(raw)
    if ref:
        return SecretRef(ref.group(1), process_escape_sequences(ref.group(2)), base)
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        inner = raw[1:-1]
        if "${" in inner.replace("$${", "") or "%{" in inner.replace("%%{", ""):
            raise ConfigError(f"{where}: interpolation is not supported (use env(\"NAME\") or file(\"path\"))")
        return process_escape_sequences(inner).replace("$${", "${").replace("%%{", "%{")
    if raw.startswith("${"):
        raise ConfigError(f"{where}: only literal values, env(\"NAME\") and file(\"path\") are supported")
    return raw


def _plain(value: Any, base: str, where: str) -> Any:
    if isinstance(value, str):
        return _string(value, base, where)
    if isinstance(value, list):
        return [_plain(v, base, where) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "__is_block__":
                continue
            key = k[1:-1] if len(k) >= 2 and k[0] == k[-1] == '"' else k
            out[key] = _plain(v, base, f"{where}.{key}")
        return out
    return value


@dataclass
class Block:
    kind: str
    labels: tuple[str, ...]
    body: dict[str, Any]
    source: str


def _unwrap(kind: str, item: Any, labels: tuple[str, ...], source: str, out: list[Block]) -> None:
    if isinstance(item, dict) and item.get("__is_block__"):
        out.append(Block(kind, labels, item, source))
        return
    if not isinstance(item, dict) or len(item) != 1:
        raise ConfigError(f"{source}: {kind} {' '.join(labels)}: expected a labelled block")
    ((label, body),) = item.items()
    label = label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label
    _unwrap(kind, body, (*labels, label), source, out)


def load_dir(directory: str) -> list[Block]:
    """Every block of every ``*.hcl`` file directly inside ``directory`` (subfolders hold referenced files)."""
    base = Path(directory)
    if not base.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    blocks: list[Block] = []
    for path in sorted(base.glob("*.hcl")):
        text = path.read_text(encoding="utf-8")
        try:
            doc = hcl2.loads(text if text.endswith("\n") else text + "\n", serialization_options=_OPTIONS)
        except Exception as exc:  # noqa: BLE001 - the parser raises several unrelated types
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"{path.name}: cannot parse: {first}") from None
        for kind, items in doc.items():
            for item in items if isinstance(items, list) else [items]:
                raw: list[Block] = []
                _unwrap(kind, item, (), path.name, raw)
                for b in raw:
                    where = f"{path.name}: {kind} {' '.join(b.labels)}"
                    blocks.append(Block(kind, b.labels, _plain(b.body, str(base), where), path.name))
    return blocks


# --- writing ---------------------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    escaped = json.dumps(text, ensure_ascii=False)[1:-1]
    return '"' + escaped.replace("${", "$${").replace("%{", "%%{") + '"'


def value_hcl(value: Any, indent: int = 1) -> str:
    pad = "  " * indent
    if isinstance(value, SecretRef):
        return value.hcl()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(value_hcl(v, indent + 1) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = "\n".join(f"{pad}  {_key(k)} = {value_hcl(v, indent + 1)}" for k, v in sorted(value.items()))
        return "{\n" + inner + "\n" + pad + "}"
    raise TypeError(f"cannot write {type(value).__name__} as HCL")


def _key(key: str) -> str:
    return key if _IDENT.match(key) else _quote(key)


def block_hcl(kind: str, labels: tuple[str, ...], body: dict[str, Any]) -> str:
    head = " ".join([kind, *(_quote(label) for label in labels)])
    lines = [f"  {_key(k)} = {value_hcl(v)}" for k, v in body.items()]
    return head + " {\n" + "\n".join(lines) + ("\n" if lines else "") + "}\n"
