"""Charts as server-rendered SVG: no script, no CDN, allowed by the UI's strict CSP (inline SVG is markup).

Every chart carries a ``<title>`` and ``role="img"`` with an ``aria-label``, and the numbers are also in a table
beside it, so nothing depends on seeing the picture.
"""

from __future__ import annotations

from collections.abc import Sequence

from strongroom.ui.html import Markup, esc

_W, _BAR_H, _GAP, _LABEL_W = 640, 18, 6, 240


def _fmt(v: float) -> str:
    return f"{v:.0f}" if v >= 100 or v == int(v) else f"{v:.2f}"


def bars(title: str, items: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """A horizontal bar chart of labelled values."""
    items = list(items)
    if not items:
        return Markup(f'<p class="muted">{esc(title)}: no data yet.</p>')
    top = max(v for _, v in items) or 1.0
    height = len(items) * (_BAR_H + _GAP) + _GAP
    span = _W - _LABEL_W - 80
    rows = []
    for i, (label, value) in enumerate(items):
        y = _GAP + i * (_BAR_H + _GAP)
        w = max(1.0, span * value / top)
        rows.append(
            f'<text x="{_LABEL_W - 6}" y="{y + 13}" text-anchor="end">{esc(label[:40])}</text>'
            f'<rect x="{_LABEL_W}" y="{y}" width="{w:.1f}" height="{_BAR_H}" class="bar"/>'
            f'<text x="{_LABEL_W + w + 4:.1f}" y="{y + 13}">{esc(_fmt(value))}{esc(unit)}</text>'
        )
    return Markup(
        f'<figure><svg class="chart" role="img" aria-label="{esc(title)}" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>'
        + "".join(rows) + f"</svg><figcaption>{esc(title)}</figcaption></figure>"
    )


def line(title: str, points: Sequence[tuple[float, float]], unit: str = "") -> Markup:
    """A line over time (x: seconds since the epoch, y: value)."""
    points = list(points)
    if len(points) < 2:
        return Markup(f'<p class="muted">{esc(title)}: not enough samples yet (one is taken per page view, at most '
                      "every 10 seconds).</p>")
    w, h, pad = _W, 160, 30
    x0, x1 = points[0][0], points[-1][0]
    top = max(v for _, v in points) or 1.0
    xs = [pad + (w - 2 * pad) * ((x - x0) / ((x1 - x0) or 1)) for x, _ in points]
    ys = [h - pad - (h - 2 * pad) * (v / top) for _, v in points]
    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(zip(xs, ys, strict=True)))
    return Markup(
        f'<figure><svg class="chart" role="img" aria-label="{esc(title)}" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" class="axis"/>'
        f'<text x="{pad}" y="{pad - 8}">max {esc(_fmt(top))}{esc(unit)}</text>'
        f'<path d="{path}" class="line" fill="none"/></svg><figcaption>{esc(title)}</figcaption></figure>'
    )
