"""Usernames for database users, after Vault's ``username_template``: ``v_<display>_<role>_<random>_<unix time>``.

A template is text with placeholders ``{{display_name}}``, ``{{role_name}}``, ``{{random}}`` and ``{{unix_time}}``;
each may carry a truncation, ``{{role_name:15}}``, and ``{{random:N}}`` sets the random part's length. The result is
lower-cased, ``-`` and ``.`` become ``_``, anything else outside ``[a-z0-9_]`` is dropped (so it is a valid, quote-free
Cassandra role or PostgreSQL identifier whatever the caller's display name), and it is cut to the database's limit.
A template whose result would lose part of the random component is refused: uniqueness comes from it.
"""

from __future__ import annotations

import re
import secrets
import string
import time

# the plugins' defaults (DatabasePlugin.default_username_template), repeated here for callers without a plugin
CASSANDRA_DEFAULT = "v_{{display_name:15}}_{{role_name:15}}_{{random:20}}_{{unix_time}}"
POSTGRES_DEFAULT = "v_{{display_name:8}}_{{role_name:8}}_{{random:20}}_{{unix_time}}"

_PLACEHOLDER = re.compile(r"\{\{\s*(display_name|role_name|random|unix_time)\s*(?::\s*(\d+)\s*)?\}\}")
_RANDOM_ALPHABET = string.ascii_lowercase + string.digits
_MIN_RANDOM = 8


class TemplateError(ValueError):
    pass


def _clean(text: str) -> str:
    text = text.lower().replace("-", "_").replace(".", "_")
    return re.sub(r"[^a-z0-9_]", "", text)


def generate(template: str, display_name: str, role_name: str, limit: int, now: float | None = None) -> str:
    random_part = ""

    def fill(m: re.Match[str]) -> str:
        nonlocal random_part
        kind, width = m.group(1), int(m.group(2)) if m.group(2) else None
        if kind == "random":
            random_part = "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(width or 20))
            return random_part
        if kind == "unix_time":
            return str(int(time.time() if now is None else now))
        value = _clean(display_name if kind == "display_name" else role_name)
        return value[:width] if width is not None else value

    rest = _PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise TemplateError("username_template has an unknown placeholder")
    name = _clean(_PLACEHOLDER.sub(fill, template))[:limit]
    if len(random_part) < _MIN_RANDOM or random_part not in name:
        raise TemplateError(
            f"username_template must keep a random part of at least {_MIN_RANDOM} characters within {limit} characters"
        )
    if not name[0].isalpha():
        raise TemplateError("username_template must produce a name that starts with a letter")
    return name


def validate(template: str, limit: int) -> None:
    generate(template, "x" * 64, "y" * 64, limit)
