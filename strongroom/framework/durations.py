"""Vault's duration format: integer seconds or Go-style strings such as ``1h30m``, ``768h``, ``7d``."""

from __future__ import annotations

import re

_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")


def parse_duration(value: object) -> int:
    """Seconds as an int; raises ValueError for anything that is not a duration."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative duration")
        return value
    if isinstance(value, float):
        if value < 0 or value != value:
            raise ValueError("negative duration")
        return int(value)
    if not isinstance(value, str):
        raise ValueError("not a duration")
    text = value.strip()
    if text.isdigit():
        return int(text)
    pos, total = 0, 0.0
    if not text:
        return 0
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m:
            raise ValueError(f"invalid duration {value!r}")
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return int(total)


def format_duration(seconds: int) -> str:
    """Go's ``time.Duration.String()`` for whole seconds: ``0s``, ``1m30s``, ``768h0m0s``."""
    if seconds == 0:
        return "0s"
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"
