"""History of a secret: its versions and who wrote each, who read it and when, and multi-party requests about it.

A secret ``secret/k8s/<ns>/<sa>/<name>/<version>`` keeps each version at its own path (write-once), so the versions
are the leaves under ``secret/metadata/k8s/<ns>/<sa>/<name>/``. Reads come from ``sys/internal/access/history`` (the
audit trail). Values are never fetched here; the secret page's Reveal does that, under policy.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from strongroom.ui import humane
from strongroom.ui.html import Markup, esc, link, url
from strongroom.ui.pages import PageError, fetch

if TYPE_CHECKING:
    from strongroom.proxy import asgi
    from strongroom.proxy.app import StaffSession

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_MAX_VERSIONS = 50
PERIODS = (("1", "last 24 hours"), ("7", "last 7 days"), ("30", "last 30 days"), ("", "everything in the audit log"))


def who(created_by: str) -> str:
    """A version's author as a person would say it: the staff user or the service, without token ids."""
    text = created_by.split(" (", 1)[0].strip()
    if text.startswith("token-"):
        text = text[len("token-"):]
    if text.startswith("kubernetes-"):
        return f"service {text[len('kubernetes-'):]}"
    return text or "—"


async def page(s: StaffSession, rest: list[str], req: asgi.Req) -> tuple[str, Markup]:
    params = req.params()
    if len(rest) < 3 or any(not _SEGMENT.fullmatch(p) for p in rest):
        raise PageError(400, "Bad path", Markup('<p class="error">That is not a valid secret path.</p>'))
    ns, sa, *name = rest
    base = f"secret/metadata/k8s/{ns}/{sa}/{'/'.join(name)}"
    listed = await fetch(s, "LIST", base + "/", f"listing {base}", empty_ok=True)
    versions = sorted(k for k in listed.get("keys", []) if not k.endswith("/"))
    if not versions and len(name) > 1:
        # the last segment was a version: show the history of the secret it belongs to
        versions, name = [name[-1]], name[:-1]
        base = f"secret/metadata/k8s/{ns}/{sa}/{'/'.join(name)}"
        all_listed = await fetch(s, "LIST", base + "/", f"listing {base}", empty_ok=True)
        versions = sorted(k for k in all_listed.get("keys", []) if not k.endswith("/")) or versions
    if not versions:
        raise PageError(404, "Not found", Markup(f"<p>No secret at <code>secret/k8s/{esc(ns)}/{esc(sa)}/"
                                                 f"{esc('/'.join(name))}</code>.</p>"))
    secret = f"secret/k8s/{ns}/{sa}/{'/'.join(name)}"
    service = link(url("ui", "secrets", ns, sa), f"{ns}/{sa}")
    who_can = link("/ui/access?path=" + quote(f"secret/data/k8s/{ns}/{sa}/{'/'.join(name)}/{versions[-1]}"),
                   "Who can read it?")
    body = Markup(f"<p>Secret <code>{esc(secret)}/&lt;version&gt;</code> of service {service}. Values are not "
                  f"shown here. {who_can}</p>")
    body += await _versions(s, ns, sa, name, versions)
    body += await _reads(s, secret, versions, params.get("days", "7"))
    body += await _mpa(s, req, secret)
    return f"History of {'/'.join(name)}", body


async def _versions(s: StaffSession, ns: str, sa: str, name: list[str], versions: list[str]) -> Markup:
    rows = []
    for version in versions[-_MAX_VERSIONS:]:
        meta = await fetch(s, "GET", f"secret/metadata/k8s/{ns}/{sa}/{'/'.join(name)}/{version}", "version metadata",
                           empty_ok=True)  # fmt: skip
        vs = meta.get("versions") or {}
        current = vs.get(str(meta.get("current_version"))) or {}
        author = who(str(current.get("created_by") or (meta.get("custom_metadata") or {}).get("created_by") or ""))
        state = "destroyed" if current.get("destroyed") else ("deleted" if current.get("deletion_time") else "live")
        href = url("ui", "secrets", ns, sa, *name, version)
        rows.append(f'<tr><th scope="row">{link(href, version)}</th><td>{humane.when(meta.get("created_time"))}</td>'
                    f"<td>{esc(author)}</td><td>{esc(state)}</td></tr>")
    return Markup('<h2>Versions</h2><table class="versions"><thead><tr><th scope="col">version</th>'
                  '<th scope="col">written</th><th scope="col">written by</th><th scope="col">state</th></tr></thead>'
                  f"<tbody>{''.join(reversed(rows))}</tbody></table>")  # fmt: skip


async def _reads(s: StaffSession, secret: str, versions: list[str], days: str) -> Markup:
    choices = "".join(f'<option value="{esc(v)}"{" selected" if v == days else ""}>{esc(label)}</option>'
                      for v, label in PERIODS)  # fmt: skip
    form = Markup('<form method="get" class="inline-form"><label for="days">Show</label> '
                  f'<select id="days" name="days">{choices}</select> <button type="submit">Update</button></form>')
    since = time.time() - int(days) * 86400 if days.isdigit() else 0.0
    events: list[dict[str, Any]] = []
    # one question for every version: the audit trail is read once, not once per version
    status, body = await s.call("POST", "sys/internal/access/history",
                                {"path": secret, "prefix": True, "limit": 1000})  # fmt: skip
    if status == 403:
        return Markup('<h2>Access</h2><p class="error">Your policies do not allow reading the access history '
                      "(<code>sys/internal/access/history</code>).</p>")
    if status != 200:
        return Markup(f'<h2>Access</h2><p class="error">The server could not read the history ({status}).</p>')
    known = set(versions)
    # only this secret's own versions (secret "a/b" lives beside, not inside, the versions of "a")
    parents = {f"secret/{kind}/{secret[len('secret/'):]}" for kind in ("data", "metadata", "delete", "undelete",
                                                                         "destroy")}  # fmt: skip
    for e in ((body or {}).get("data") or {}).get("events") or []:
        ts = humane.parse(e.get("time"))
        parent, _, last = str(e.get("path", "")).rpartition("/")
        version = last if parent in parents and last in known else ""
        if ts is not None and ts >= since and version:
            events.append({**e, "version": version, "ts": ts})
    events.sort(key=lambda e: e["ts"], reverse=True)
    # a read of the value is a read of the data path; metadata reads (listing versions, this page) only see names
    readers = sorted({e["who"] for e in events if e["operation"] == "read" and e["outcome"] == "ok"
                      and e["path"].startswith("secret/data/")})  # fmt: skip
    summary = (f"Value read by {len(readers)} caller{'s' if len(readers) != 1 else ''}: {', '.join(readers)}."
               if readers else "Nobody read the value in this period.")
    rows = "".join(
        f'<tr><td>{humane.when(e["ts"])}</td><th scope="row">{esc(who(e["who"]))}</th><td>{esc(_action(e))}</td>'
        f'<td>{esc(e["version"])}</td><td><code>{esc(e["path"])}</code></td><td>{esc(e["outcome"])}</td></tr>'
        for e in events[:500]
    )
    table = Markup('<table class="reads"><thead><tr><th scope="col">when</th><th scope="col">who</th>'
                   '<th scope="col">action</th><th scope="col">version</th><th scope="col">API path</th>'
                   f'<th scope="col">outcome</th></tr></thead><tbody>{rows}</tbody></table>') if rows else Markup("")
    return (Markup("<h2>Access</h2>") + form + Markup(f'<p class="summary">{esc(summary)}</p>') + table
            + Markup('<p class="muted">From the audit trail (file devices), newest first.</p>'))


def _action(e: dict[str, Any]) -> str:
    kind = "value" if "/data/" in e["path"] else "metadata" if "/metadata/" in e["path"] else "state"
    verb = {"read": "read", "create": "wrote", "update": "wrote", "delete": "deleted", "list": "listed"}.get(
        e["operation"], e["operation"])
    return f"{verb} {kind}"


async def _mpa(s: StaffSession, req: asgi.Req, secret: str) -> Markup:
    from strongroom.ui.pages.ops import broker_requests, mpa_table

    head = Markup("<h2>Multi-party requests</h2>")
    found = await broker_requests(s, req)
    if isinstance(found, Markup):
        return head + found
    # a request touches this secret when its parameters or its reason name it
    short = secret[len("secret/"):]
    touching = [r for r in found if short in json.dumps(r.get("params") or {}) + str(r.get("reason") or "")]
    if not touching:
        return head + Markup('<p class="muted">No MPA request names this secret.</p>')
    return head + mpa_table(s, touching, reviewable=False)
