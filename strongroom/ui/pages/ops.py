"""Operational pages: seal and HA state, audit devices, leases, database credentials, MPA requests, request metrics.

All read with the person's own child token; a page their policies do not allow says so and shows the rest.
"""

from __future__ import annotations

import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from strongroom.ui import charts, humane
from strongroom.ui.html import Markup, esc, link
from strongroom.ui.pages import PageError, fetch

if TYPE_CHECKING:
    from strongroom.proxy import asgi
    from strongroom.proxy.app import StaffSession

SECTIONS = (("seal", "Seal and HA"), ("audit", "Audit devices"), ("leases", "Leases"),
            ("database", "Database credentials"), ("mpa", "MPA requests"),
            ("metrics", "Requests and latency"))  # fmt: skip
_DB_ROLE = re.compile(r"creds/k8s_(rw|ro)_(?P<sa>.+)_(?P<ns>[a-z0-9-]+)$")
_MPA_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# request-rate samples this proxy took from sys/metrics (one per metrics page view, at most every 10 s)
_SAMPLES: deque[tuple[float, float, float]] = deque(maxlen=360)
_SAMPLE_EVERY = 10.0


def _sub_nav(current: str) -> Markup:
    items = "".join(
        f"<li>{link('/ui/ops/' + k, label)}</li>" if k != current
        else f'<li><strong aria-current="page">{esc(label)}</strong></li>'
        for k, label in SECTIONS
    )
    return Markup(f'<nav class="subnav" aria-label="Operations"><ul>{items}</ul></nav>')


async def page(s: StaffSession, rest: list[str], req: asgi.Req) -> tuple[str, Markup]:
    section = rest[0] if rest else ""
    if section == "mpa" and len(rest) == 3 and rest[2] == "review" and req.method == "POST":
        return await _mpa_review(s, rest[1], req)
    if len(rest) > 1 or (section and section not in dict(SECTIONS)):
        raise PageError(404, "Not found", Markup("<p>No such page.</p>"))
    if not section:
        cards = "".join(f"<li>{link('/ui/ops/' + k, label)}</li>" for k, label in SECTIONS)
        body = Markup(f'<ul class="cards">{cards}</ul>') + await _seal(s)
        return "Operations", body
    handler = {"seal": _seal, "audit": _audit, "leases": _leases, "database": _database, "metrics": _metrics,
               "mpa": _seal}[section]
    try:
        body = await (_mpa(s, req) if section == "mpa" else handler(s))
    except PageError as e:
        raise PageError(e.status, e.title, _sub_nav(section) + e.body) from None
    return dict(SECTIONS)[section], _sub_nav(section) + body


def _dl(items: list[tuple[str, object]]) -> Markup:
    return Markup("<dl class=\"facts\">" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>")


async def _seal(s: StaffSession) -> Markup:
    status, seal = await s.call("GET", "sys/seal-status")
    if status != 200 or not isinstance(seal, dict):
        return Markup(f'<p class="error">Seal status unavailable ({status}).</p>')
    state = "sealed" if seal.get("sealed") else "unsealed"
    out = Markup(f'<h2>Seal</h2><p class="state {state}">The server is <strong>{state}</strong>.</p>') + _dl([
        ("seal type", seal.get("type", "")), ("threshold / shares", f"{seal.get('t')} of {seal.get('n')}"),
        ("version", seal.get("version", "")), ("cluster", seal.get("cluster_name", "")),
        ("storage", seal.get("storage_type", ""))])
    status, ha = await s.call("GET", "sys/ha-status")
    if status == 200 and isinstance(ha, dict):
        nodes = (ha.get("data") or ha).get("nodes") or []
        rows = "".join(
            f"<tr><th scope=\"row\">{esc(n.get('hostname', ''))}</th><td>{esc(n.get('api_address', ''))}</td>"
            f"<td>{'active' if n.get('active_node') else 'standby'}</td>"
            f"<td>{humane.when(n.get('last_echo'))}</td></tr>"
            for n in nodes
        )
        out += Markup('<h2>High availability</h2><table><thead><tr><th scope="col">node</th><th scope="col">address'
                      '</th><th scope="col">role</th><th scope="col">last heard</th></tr></thead>'
                      f"<tbody>{rows}</tbody></table>")  # fmt: skip
    else:
        out += Markup(f'<h2>High availability</h2><p class="muted">Not visible to you ({status}).</p>')
    return out


async def _audit(s: StaffSession) -> Markup:
    devices = await fetch(s, "GET", "sys/audit", "listing audit devices (sudo on sys/audit)")
    if not devices:
        return Markup('<p class="error">No audit device is enabled: requests are not being recorded.</p>')
    rows = []
    for path, dev in sorted(devices.items()):
        if not isinstance(dev, dict):
            continue
        status, body = await s.call("GET", f"sys/audit-chain/{quote(path.rstrip('/'), safe='')}")
        head = (((body or {}).get("data") or {}).get("head") or {}) if status == 200 else {}
        healthy = status == 200 and head.get("seq") is not None
        health = Markup('<span class="ok">writing</span>') if healthy else Markup(
            f'<span class="error">head unavailable ({status})</span>')
        opts = dev.get("options") or {}
        rows.append(f'<tr><th scope="row">{esc(path)}</th><td>{esc(dev.get("type", ""))}</td>'
                    f'<td>{esc(opts.get("file_path") or opts.get("address") or "")}</td>'
                    f'<td>{esc(head.get("seq", "—"))}</td><td><code>{esc(str(head.get("hash", ""))[:16])}</code></td>'
                    f"<td>{health}</td></tr>")
    return Markup('<table class="audit"><thead><tr><th scope="col">device</th><th scope="col">type</th>'
                  '<th scope="col">destination</th><th scope="col">chain length</th><th scope="col">chain head</th>'
                  f'<th scope="col">health</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
                  '<p class="muted">The chain head is the hash of the last line written; <code>strongroom audit '
                  "verify</code> checks a log against it.</p>")


async def _lease_groups(s: StaffSession) -> dict[str, Any]:
    return await fetch(s, "GET", "sys/internal/access/leases", "reading the lease summary (sys/internal/access/leases)")


async def _leases(s: StaffSession) -> Markup:
    data = await _lease_groups(s)
    groups = data.get("groups") or []
    if not groups:
        return Markup('<p class="muted">No leases are outstanding.</p>')
    labels = data.get("buckets") or []
    totals = {label: sum(g["buckets"].get(label, 0) for g in groups) for label in labels}
    chart = charts.bars("Leases by time left until expiry", [(label, float(totals[label])) for label in labels])
    head = "".join(f'<th scope="col">{esc(label)}</th>' for label in labels)
    rows = "".join(
        f'<tr><th scope="row">{esc(g["mount"])}</th><td>{esc(g["role"])}</td><td>{g["count"]}</td>'
        + "".join(f"<td>{g['buckets'].get(label, 0)}</td>" for label in labels)
        + f"<td>{humane.when(g.get('next_expiry'))}</td><td>{g['irrevocable']}</td></tr>"
        for g in groups
    )
    note = Markup('<p class="muted">Counted up to a limit; more leases exist.</p>') if data.get("truncated") else ""
    return Markup(f"<p>{data.get('total', 0)} leases.</p>") + chart + Markup(
        '<table class="leases"><thead><tr><th scope="col">engine</th><th scope="col">role</th><th scope="col">leases'
        f'</th>{head}<th scope="col">next expiry</th><th scope="col">irrevocable</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>") + note  # fmt: skip


async def _database(s: StaffSession) -> Markup:
    data = await _lease_groups(s)
    rows = []
    for g in data.get("groups") or []:
        m = _DB_ROLE.search(g["role"])
        if not m:
            continue
        access = "read-write" if m.group(1) == "rw" else "read-only"
        service = f"{m.group('ns')}/{m.group('sa')}"
        rows.append(f'<tr><th scope="row">{link("/ui/secrets/" + m.group("ns") + "/" + m.group("sa"), service)}</th>'
                    f'<td>{esc(g["mount"])}{esc(g["role"])}</td><td>{esc(access)}</td><td>{g["count"]}</td>'
                    f"<td>{humane.when(g.get('next_expiry'))}</td></tr>")
    if not rows:
        return Markup('<p class="muted">No service holds database credentials right now.</p>')
    return Markup('<table class="db"><thead><tr><th scope="col">service</th><th scope="col">role</th>'
                  '<th scope="col">access</th><th scope="col">live credentials</th><th scope="col">next expiry</th>'
                  f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


async def _metrics(s: StaffSession) -> Markup:
    status, body = await s.call("GET", "sys/metrics")
    if status != 200 or not isinstance(body, dict):
        raise PageError(status if status in (403, 404) else 502, "Metrics",
                        Markup(f'<p class="error">Metrics are not available to you ({status}).</p>'))
    samples = {x.get("Name"): x for x in body.get("Samples") or []}
    handle = samples.get("vault.core.handle_request") or {}
    now = time.time()
    if not _SAMPLES or now - _SAMPLES[-1][0] >= _SAMPLE_EVERY:
        _SAMPLES.append((now, float(handle.get("Count") or 0), float(handle.get("Mean") or 0.0)))
    rate = []
    for (t0, c0, _), (t1, c1, _m) in zip(list(_SAMPLES), list(_SAMPLES)[1:], strict=False):
        if t1 > t0 and c1 >= c0:
            rate.append((t1, (c1 - c0) / (t1 - t0)))
    routes = sorted(((str(n)[len("vault.route."):].rstrip("-"), x) for n, x in samples.items()
                     if str(n).startswith("vault.route.")), key=lambda r: -float(r[1].get("Count") or 0))[:15]
    out = _dl([("requests since start", int(handle.get("Count") or 0)),
               ("mean latency", f"{float(handle.get('Mean') or 0):.2f} ms"),
               ("slowest", f"{float(handle.get('Max') or 0):.2f} ms")])
    out += charts.line("Requests per second (sampled by this proxy)", rate, "/s")
    out += charts.bars("Requests by operation and mount", [(n, float(x.get("Count") or 0)) for n, x in routes])
    out += charts.bars("Mean latency by operation and mount", [(n, float(x.get("Mean") or 0)) for n, x in routes],
                       " ms")
    codes = [(f"{c.get('Labels', {}).get('code')}", float(c.get("Count") or 0)) for c in body.get("Counters") or []
             if c.get("Name") == "vault.core.response_status_code"]
    return out + charts.bars("Responses by status code", codes)


def _broker(s: StaffSession) -> str | None:
    return getattr(s.app.cfg, "mpa_broker", None)


def _idp_token(req: asgi.Req) -> str:
    """The person's own IdP token (cookie or bearer): the broker identifies reviewers itself, never via the proxy."""
    from strongroom.proxy.app import COOKIE

    auth = req.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:]
    return req.cookie(COOKIE) or ""


async def broker_requests(s: StaffSession, req: asgi.Req) -> list[dict[str, Any]] | Markup:
    """The MPA requests this person may see, from the broker with their own IdP token; a message when there are
    none to get (no broker configured, unreachable, refused)."""
    base = _broker(s)
    if not base:
        return Markup('<p class="muted">No MPA broker is configured for this proxy (<code>mpa_broker</code> in its '
                      "configuration).</p>")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.get(f"{base}/v1/requests", headers={"authorization": f"Bearer {_idp_token(req)}"})
    except httpx.HTTPError:
        return Markup('<p class="error">The MPA broker is unreachable.</p>')
    if resp.status_code != 200:
        return Markup(f'<p class="error">The MPA broker refused the list ({resp.status_code}).</p>')
    return list(resp.json().get("requests") or [])


def mpa_table(s: StaffSession, reqs: list[dict[str, Any]], reviewable: bool) -> Markup:
    rows = "".join(_mpa_row(s, r, reviewable) for r in reqs)
    return Markup(
        '<table class="mpa"><thead><tr><th scope="col">request</th><th scope="col">kind</th><th scope="col">requester'
        '</th><th scope="col">reason</th><th scope="col">state</th><th scope="col">created</th>'
        f'<th scope="col">review</th></tr></thead><tbody>{rows}</tbody></table>')


async def _mpa(s: StaffSession, req: asgi.Req) -> Markup:
    reqs = await broker_requests(s, req)
    if isinstance(reqs, Markup):
        return reqs
    out = Markup("")
    open_states = ("pending", "approved", "fetched")
    sections = (
        ("Pending", [r for r in reqs if r.get("state") == "pending" and not r.get("break_glass")]),
        ("Approved", [r for r in reqs if r.get("state") in ("approved", "fetched") and not r.get("break_glass")]),
        ("Break-glass open", [r for r in reqs if r.get("break_glass") and r.get("state") in open_states]),
    )
    for title, chosen in sections:
        out += Markup(f"<h2>{esc(title)}</h2>")
        out += mpa_table(s, chosen, title == "Pending") if chosen else Markup('<p class="muted">None.</p>')
    return out


def _mpa_row(s: StaffSession, r: dict[str, Any], reviewable: bool) -> str:
    from strongroom.ui.app import csrf_field

    rid = str(r.get("id", ""))
    review = ""
    if reviewable and _MPA_ID.fullmatch(rid):
        review = (f'<form class="inline" method="post" action="/ui/ops/mpa/{esc(rid)}/review">{csrf_field(s.csrf)}'
                  f'<label class="sr-only" for="c-{esc(rid)}">Comment</label>'
                  f'<input id="c-{esc(rid)}" name="comment" size="14" placeholder="comment">'
                  '<button name="decision" value="approve">Approve</button> '
                  '<button name="decision" value="deny">Deny</button></form>')
    return (f'<tr><th scope="row"><code>{esc(rid[:12])}</code></th><td>{esc(r.get("kind", ""))}</td>'
            f'<td>{esc(_person(r.get("requester")))}</td><td>{esc(r.get("reason", ""))}</td>'
            f'<td>{esc(r.get("state", ""))}{" (break-glass)" if r.get("break_glass") else ""}</td>'
            f'<td>{humane.when(r.get("created_at"))}</td><td>{review}</td></tr>')


def _person(ref: object) -> str:
    if isinstance(ref, dict):
        return str(ref.get("email") or ref.get("name") or ref.get("subject") or "")
    return str(ref or "")


async def _mpa_review(s: StaffSession, rid: str, req: asgi.Req) -> tuple[str, Markup]:
    base = _broker(s)
    form = req.form()
    decision = form.get("decision", "")
    if not base or not _MPA_ID.fullmatch(rid) or decision not in ("approve", "deny"):
        raise PageError(400, "Bad request", Markup('<p class="error">That review is not valid.</p>'))
    body = {"decision": decision, "comment": form.get("comment", "")[:500]}
    headers = {"authorization": f"Bearer {_idp_token(req)}"}
    step_up = s.app.step_up
    if decision == "approve" and step_up is not None and step_up.proof_key is not None and s.stepped_up:
        # the broker wants proof of a recent security-key check for this very IdP token (see proxy/webauthn.py)
        from strongroom.proxy.webauthn import PROOF_HEADER, make_proof

        claims = s.user.claims
        headers[PROOF_HEADER] = make_proof(step_up.proof_key, str(claims.get("iss", "")), str(claims.get("sub", "")),
                                           s.session_key, step_up.cfg.ttl)[0]
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.post(f"{base}/v1/requests/{rid}/review", json=body, headers=headers)
    except httpx.HTTPError:
        raise PageError(502, "MPA broker", Markup('<p class="error">The MPA broker is unreachable.</p>')) from None
    if resp.status_code != 200:
        errors = "; ".join((resp.json() if resp.content else {}).get("errors") or []) or str(resp.status_code)
        hint = Markup(' <a href="/ui/step-up">Verify with your security key</a>, then review again.') \
            if "step-up" in errors else Markup("")
        raise PageError(resp.status_code if resp.status_code < 500 else 502, "Review refused",
                        Markup(f'<p class="error">The broker refused the review: {esc(errors)}{hint}</p>'))
    listing = await _mpa(s, req)
    return "MPA requests", _sub_nav("mpa") + Markup(f'<p role="status">Recorded: {esc(decision)}.</p>') + listing
