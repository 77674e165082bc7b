"""Search across services (``namespace/service-account``) and secret names, a page of results at a time.

Services are found from two levels of LIST (namespaces, then their ServiceAccounts); secret names are looked for
inside the matching services, or every service while a bounded number of LISTs allows, and the page says when the
search stopped early. An empty query lists every service, paginated, however many there are.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from strongroom.ui.html import Markup, esc, link, url
from strongroom.ui.pages import fetch

if TYPE_CHECKING:
    from strongroom.proxy.app import StaffSession

PAGE_SIZE = 50
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_LIST_BUDGET = 300  # LIST calls one search may make for secret names
_MAX_Q = 200


async def _keys(s: StaffSession, path: str) -> list[str]:
    data = await fetch(s, "LIST", path, "listing secrets", empty_ok=True)
    return [k for k in data.get("keys", []) if _SEGMENT.fullmatch(k.rstrip("/"))]


async def services(s: StaffSession) -> list[tuple[str, str]]:
    out = []
    for ns in sorted(await _keys(s, "secret/metadata/k8s/")):
        for sa in sorted(await _keys(s, f"secret/metadata/k8s/{ns}")):
            if sa.endswith("/"):
                out.append((ns.rstrip("/"), sa.rstrip("/")))
    return out


async def _secret_names(s: StaffSession, ns: str, sa: str, budget: list[int], prefix: str = "") -> list[str]:
    if budget[0] <= 0:
        return []
    budget[0] -= 1
    found = []
    keys = await _keys(s, f"secret/metadata/k8s/{ns}/{sa}/{prefix}")
    folders = [k for k in keys if k.endswith("/")]
    if prefix and any(not k.endswith("/") for k in keys):
        found.append(prefix.rstrip("/"))
    for folder in sorted(folders):
        found += await _secret_names(s, ns, sa, budget, prefix + folder)
    return found


def _pager(q: str, page: int, total: int) -> Markup:
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    parts = [f'<span aria-current="page">Page {page} of {pages}</span>']
    if page > 1:
        parts.insert(0, link("/ui/search?" + urlencode({"q": q, "page": page - 1}), "← Previous")
                     .replace("<a ", '<a rel="prev" accesskey="," ', 1))
    if page < pages:
        parts.append(link("/ui/search?" + urlencode({"q": q, "page": page + 1}), "Next →")
                     .replace("<a ", '<a rel="next" accesskey="." ', 1))
    return Markup(f'<nav class="pager" aria-label="Pages">{" ".join(parts)}</nav>')


async def page(s: StaffSession, params: dict[str, str]) -> tuple[str, Markup]:
    q = params.get("q", "").strip()[:_MAX_Q]
    try:
        page_no = max(1, int(params.get("page", "1")))
    except ValueError:
        page_no = 1
    form = Markup('<form method="get" action="/ui/search" role="search"><label for="q">Service or secret name</label> '
                  f'<input id="q" name="q" value="{esc(q)}" size="40" placeholder="s-emoji, db-password">'
                  ' <button type="submit">Search</button></form>')  # fmt: skip
    needle = q.lower()
    all_services = await services(s)
    matching = [(ns, sa) for ns, sa in all_services if needle in f"{ns}/{sa}".lower()]
    results: list[tuple[str, str, str]] = [(ns, sa, "") for ns, sa in matching]
    truncated = False
    if needle:
        budget = [_LIST_BUDGET]
        # secret names: in matching services first (cheap and likely), then the rest while the budget lasts
        ordered = matching + [x for x in all_services if x not in matching]
        for ns, sa in ordered:
            if budget[0] <= 0:
                truncated = True
                break
            for name in await _secret_names(s, ns, sa, budget):
                if needle in name.lower():
                    results.append((ns, sa, name))
    total = len(results)
    start = (page_no - 1) * PAGE_SIZE
    rows = []
    for ns, sa, name in results[start : start + PAGE_SIZE]:
        if name:
            history = link(url("ui", "history", ns, sa, *name.split("/")), name)
            service = link(url("ui", "secrets", ns, sa), f"{ns}/{sa}")
            rows.append(f'<tr><td>secret</td><th scope="row">{history}</th><td>{service}</td></tr>')
        else:
            what_href = "/ui/access?" + urlencode({"kind": "service_account", "name": f"{ns}/{sa}"})
            service = link(url("ui", "secrets", ns, sa), f"{ns}/{sa}")
            rows.append(f'<tr><td>service</td><th scope="row">{service}</th>'
                        f"<td>{link(what_href, 'what can it read?')}</td></tr>")
    what = f"{total} result{'s' if total != 1 else ''}" + (f" for “{q}”" if q else " (every service)")
    body = form + Markup(f'<p role="status">{esc(what)}.</p>')
    if truncated:
        body += Markup('<p class="muted">Secret names were searched in part of the services only; narrow the query '
                       "(a namespace or service name) to search all of its secrets.</p>")
    if rows:
        body += Markup('<table class="results"><thead><tr><th scope="col">kind</th><th scope="col">name</th>'
                       f'<th scope="col">service</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
        body += _pager(q, page_no, total)
    return "Search", body
