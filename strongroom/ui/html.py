"""HTML building with escaping by default: every value passes through :func:`esc`; markup is only ours.

No template engine and no JavaScript: pages are plain server-rendered HTML that any browser shows.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import quote


class Markup(str):
    """Text that is already safe HTML (built here from escaped parts)."""

    def __add__(self, other: str) -> Markup:
        # safe + safe stays safe; anything else is escaped on the way in, as markupsafe does
        return Markup(str.__add__(self, esc(other)))


def esc(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def url(*segments: str) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


def link(href: str, text: object) -> Markup:
    return Markup(f'<a href="{esc(href)}">{esc(text)}</a>')


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], cls: str = "") -> Markup:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return Markup(f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def join(parts: Iterable[object]) -> Markup:
    return Markup("".join(esc(p) for p in parts))


NAV = (("Overview", "/ui/"), ("Mounts", "/ui/mounts"), ("Auth methods", "/ui/auth"), ("Policies", "/ui/policies"),
       ("Secrets", "/ui/secrets"), ("Who can / what can", "/ui/access"), ("Search", "/ui/search"),
       ("Operations", "/ui/ops"))  # fmt: skip
# keyboard navigation: Alt+key (Alt+Shift+key in Firefox) jumps to a section
ACCESS_KEYS = {"/ui/": "h", "/ui/secrets": "k", "/ui/access": "a", "/ui/search": "s", "/ui/ops": "o",
               "/ui/policies": "p"}


def _nav_link(href: str, name: str) -> Markup:
    key = ACCESS_KEYS.get(href)
    return Markup(f'<a href="{esc(href)}" accesskey="{key}">{esc(name)}</a>') if key else link(href, name)


def page(title: str, body: Markup, user: str | None = None, csrf: str = "") -> bytes:
    """A whole page; ``csrf`` (a cookie session's token) goes into its forms and a meta tag for same-origin scripts
    that call ``/v1`` with the cookie."""
    nav = join(Markup(f"<li>{_nav_link(href, name)}</li>") for name, href in NAV) if user else Markup("")
    hidden = f'<input type="hidden" name="csrf_token" value="{esc(csrf)}">' if csrf else ""
    meta = f'<meta name="csrf-token" content="{esc(csrf)}">\n' if csrf else ""
    who = (
        Markup(
            f'<form class="logout" method="post" action="/ui/logout">{hidden}<span class="user">{esc(user)}</span> '
            '<button type="submit">Sign out</button></form>'
        )
        if user
        else Markup("")
    )
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · Strongroom</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{meta}<link rel="stylesheet" href="/ui/static/style.css"></head>
<body><a class="skip" href="#main">Skip to content</a><header><a class="brand" href="/ui/">Strongroom</a>
<nav aria-label="Main"><ul>{nav}</ul></nav>{who}</header>
<main id="main" tabindex="-1"><h1>{esc(title)}</h1>{body}</main></body></html>"""
    return doc.encode()


STYLE = b"""
body{font-family:system-ui,sans-serif;margin:0;color:#1d232b;background:#f7f8fa}
header{display:flex;align-items:center;gap:1.5rem;background:#14233c;color:#fff;padding:.6rem 1.2rem}
header a{color:#fff;text-decoration:none}.brand{font-weight:700}
nav ul{display:flex;gap:1rem;list-style:none;margin:0;padding:0}
.logout{margin-left:auto}.user{opacity:.85;margin-right:.5rem}
main{padding:1rem 1.5rem;max-width:72rem}
table{border-collapse:collapse;background:#fff;margin:.5rem 0 1.5rem;min-width:40rem}
th,td{border:1px solid #d9dde3;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f5}pre{background:#fff;border:1px solid #d9dde3;padding:.8rem;overflow:auto}
.value{background:#fff8e1;border-color:#e0b400}.muted{color:#6a7480}.error{color:#a3122a}
form.inline{display:inline}button{cursor:pointer}
"""

from strongroom.ui.theme import INSPECTION_STYLE  # noqa: E402 - appended after the base rules it refines

STYLE += INSPECTION_STYLE
