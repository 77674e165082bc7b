"""Humane times: "3 hours ago" in the page, the exact UTC time on hover (``title``) and for machines (``datetime``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from strongroom.ui.html import Markup, esc

_UNITS = ((86400 * 365, "year"), (86400 * 30, "month"), (86400 * 7, "week"), (86400, "day"), (3600, "hour"),
          (60, "minute"), (1, "second"))  # fmt: skip


def parse(value: object) -> float | None:
    """Seconds since the epoch from a float/int, or an RFC 3339 string (nanoseconds allowed); None if neither."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.startswith("0001-01-01"):
        return None  # Go's zero time: "never"
    try:
        head, _, rest = text.partition(".")
        frac = ""
        tz = rest
        if rest:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            frac, tz = rest[:digits], rest[digits:]
        else:
            head, tz = text[:19], text[19:]
        base = datetime.fromisoformat(head[:19] + (tz.replace("Z", "+00:00") or "+00:00"))
        return base.timestamp() + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return None


def relative(ts: float, now: float | None = None) -> str:
    delta = (time.time() if now is None else now) - ts
    future = delta < 0
    delta = abs(delta)
    if delta < 10:
        return "just now"
    for size, unit in _UNITS:
        if delta >= size:
            n = int(delta // size)
            words = f"{n} {unit}{'s' if n != 1 else ''}"
            return f"in {words}" if future else f"{words} ago"
    return "just now"


def exact(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when(value: object, now: float | None = None) -> Markup:
    """A ``<time>`` element: relative text, exact time in ``title`` and ``datetime``; "—" when unknown."""
    ts = parse(value)
    if ts is None:
        return Markup('<span class="muted">—</span>')
    iso = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # the exact time is also in the text for screen readers and copy-paste (visually hidden; the tooltip shows it)
    return Markup(f'<time datetime="{esc(iso)}" title="{esc(exact(ts))}">{esc(relative(ts, now))}'
                  f'<span class="sr-only"> ({esc(iso)})</span></time>')
