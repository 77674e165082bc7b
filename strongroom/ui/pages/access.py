"""The access explorer page: "who can do what on this path?" and "what can this identity do?".

Answers come from ``sys/internal/access/path`` and ``…/identity`` (the server's own ACL code); this module only
lays them out. Forms use GET: asking changes nothing, and an answer can be bookmarked or pasted into a ticket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.ui.html import Markup, esc, link
from strongroom.ui.pages import PageError, fetch

if TYPE_CHECKING:
    from strongroom.proxy.app import StaffSession

KINDS = (("service_account", "Kubernetes ServiceAccount (namespace/name)"), ("user", "Staff user"),
         ("entity", "Identity entity"), ("group", "Identity group"), ("token_role", "Token role"),
         ("auth_role", "Auth role (mount/role)"), ("policies", "Policies (a,b)"))  # fmt: skip
_WRITE = {"create", "update", "patch", "delete"}
_MAX_PATH = 512


def caps(values: list[str]) -> Markup:
    """Capabilities as small labelled badges (text, so screen readers and copy-paste get them too)."""
    if not values or values == ["deny"]:
        return Markup('<span class="cap deny">deny</span>')
    return Markup(" ".join(f'<span class="cap {"w" if c in _WRITE else "r"}">{esc(c)}</span>' for c in values))


def _forms(params: dict[str, str]) -> Markup:
    path, kind, name, check = (params.get(k, "") for k in ("path", "kind", "name", "check"))
    options = "".join(
        f'<option value="{esc(k)}"{" selected" if k == kind else ""}>{esc(label)}</option>' for k, label in KINDS
    )
    return Markup(
        '<div class="explorer">'
        '<form method="get" action="/ui/access" class="card" role="search" aria-labelledby="who-h">'
        '<h2 id="who-h">Who can … on a path?</h2>'
        '<label for="q-path">API path</label>'
        f'<input id="q-path" name="path" value="{esc(path)}" size="48" '
        'placeholder="secret/data/k8s/default/s-ledger/db-password/v1">'
        '<button type="submit">Explain</button></form>'
        '<form method="get" action="/ui/access" class="card" role="search" aria-labelledby="what-h">'
        '<h2 id="what-h">What can … do?</h2>'
        f'<label for="q-kind">Kind</label><select id="q-kind" name="kind">{options}</select>'
        f'<label for="q-name">Name</label><input id="q-name" name="name" value="{esc(name)}" size="28" '
        'placeholder="default/s-emoji">'
        f'<label for="q-check">Check a path (optional)</label><input id="q-check" name="check" value="{esc(check)}" '
        'size="40" placeholder="secret/data/k8s/default/s-emoji/canary/v1">'
        '<button type="submit">Show access</button></form></div>'
    )


async def page(s: StaffSession, params: dict[str, str]) -> tuple[str, Markup]:
    body = _forms(params)
    path = params.get("path", "").strip().lstrip("/")
    kind, name = params.get("kind", "").strip(), params.get("name", "").strip()
    if len(path) > _MAX_PATH or len(name) > _MAX_PATH:
        raise PageError(400, "Bad request", body + Markup('<p class="error">That is too long.</p>'))
    try:
        if path:
            return f"Who can access {path}", body + await _who(s, path)
        if kind and name:
            check = params.get("check", "").strip().lstrip("/")
            return f"What {name} can do", body + await _what(s, kind, name, check)
    except PageError as e:
        raise PageError(e.status, e.title, body + e.body) from None
    intro = Markup('<p>Ask who can read or write a path (every policy, token role, auth role, group and templated '
                   "identity that grants it), or what one service, person or group can do, as a tree. Answers are "
                   "computed by the server with the same policy code that decides real requests.</p>")
    return "Access explorer", body + intro


def _alone(g: dict[str, Any]) -> Markup:
    got = g.get("capabilities") or []
    if got == ["deny"] and g.get("templated_patterns"):
        return Markup('<span class="muted">depends on who holds it (see above)</span>')
    return caps(got)


def _principal_row(p: dict[str, Any]) -> str:
    who = p.get("identity") or p.get("label", "")
    how = p.get("label", "") if p.get("identity") else ""
    kind = {"token_role": "token role", "auth_role": "auth role", "auth_user": "auth user"}.get(p["kind"], p["kind"])
    if p.get("identity"):
        kind += " · templated"
    policies = ", ".join(p.get("policies") or [])
    rule = p.get("rule") or {}
    decided = ""
    if rule:
        decided = f'<br><span class="muted">by rule <code>{esc(rule.get("path", ""))}</code>'
        extra = [f"{k.replace('_', ' ')}: {v}" for k in ("allowed_parameters", "denied_parameters",
                                                         "required_parameters") if (v := rule.get(k))]
        decided += (f"; {esc('; '.join(extra))}" if extra else "") + "</span>"
    return (f"<tr><th scope=\"row\">{esc(who)}</th><td>{esc(kind)}</td><td>{esc(how)}</td><td>{esc(policies)}</td>"
            f"<td>{caps(p.get('capabilities') or [])}{decided}</td></tr>")


async def _who(s: StaffSession, path: str) -> Markup:
    data = await fetch(s, "POST", "sys/internal/access/path", "using the access explorer", {"path": path})
    principals = data.get("principals") or []
    staff = await _staff_row(s, path)
    rows = "".join(_principal_row(p) for p in principals) + staff
    out = Markup(f'<h2 id="answer">Who can access <code>{esc(path)}</code></h2>')
    if rows:
        out += Markup('<table class="answer"><caption>Principals with any capability on this path</caption><thead><tr>'
                      '<th scope="col">who</th><th scope="col">kind</th><th scope="col">through</th>'
                      '<th scope="col">policies</th><th scope="col">capabilities</th></tr></thead>'
                      f"<tbody>{rows}</tbody></table>")  # fmt: skip
    else:
        out += Markup('<p class="muted">Nobody but root tokens: no principal has any capability on this path.</p>')
    granting = data.get("policies") or []
    if granting:
        prow = "".join(
            f'<tr><th scope="row">{link("/ui/policies/" + str(g["policy"]), g["policy"])}</th>'
            f"<td>{_alone(g)}</td>"
            f"<td>{''.join(f'<code class=wrap>{esc(t)}</code>' for t in g.get('templated_patterns') or [])}</td></tr>"
            for g in granting
        )
        out += Markup('<h3>Policies that grant something here on their own</h3><table><thead><tr>'
                      '<th scope="col">policy</th><th scope="col">capabilities alone</th>'
                      '<th scope="col">templated stanzas that can cover it</th></tr></thead>'
                      f"<tbody>{prow}</tbody></table>")  # fmt: skip
    return out


async def _staff_row(s: StaffSession, path: str) -> str:
    """Staff signed in through this proxy hold its child policies: ask the server what exactly they grant here."""
    policies = ",".join(s.app.cfg.child_policies)
    status, body = await s.call("POST", "sys/internal/access/identity",
                                {"kind": "policies", "name": policies, "paths": [path]})  # fmt: skip
    if status != 200:
        return ""
    routes = ((body or {}).get("data") or {}).get("routes") or []
    got = (routes[0].get("capabilities") or {}).get(path) if routes else None
    if not got or got == ["deny"]:
        return ""
    return _principal_row({"kind": "staff", "label": "every staff member signed in through this proxy",
                           "policies": list(s.app.cfg.child_policies), "capabilities": got})


async def _what(s: StaffSession, kind: str, name: str, check: str) -> Markup:
    if kind not in dict(KINDS):
        raise PageError(400, "Bad request", Markup('<p class="error">Choose one of the listed kinds.</p>'))
    req: dict[str, Any] = {"kind": kind, "name": name}
    if check:
        req["paths"] = [check]
    if kind == "user":
        return await _staff_user(s, name, check)
    data = await fetch(s, "POST", "sys/internal/access/identity", "using the access explorer", req)
    out = Markup(f'<h2 id="answer">What {esc(data.get("name", name))} can do</h2>')
    routes = data.get("routes") or []
    if not routes:
        return out + Markup('<p class="muted">No way to get a token was found for it.</p>')
    for route in routes:
        out += _route(route, check)
    return out


async def _staff_user(s: StaffSession, name: str, check: str) -> Markup:
    # people act through this proxy (its child policies) and may also have an identity entity of their own
    out = Markup(f'<h2 id="answer">What {esc(name)} can do</h2>')
    policies = ",".join(s.app.cfg.child_policies)
    req: dict[str, Any] = {"kind": "policies", "name": policies}
    if check:
        req["paths"] = [check]
    data = await fetch(s, "POST", "sys/internal/access/identity", "using the access explorer", req)
    for route in data.get("routes") or []:
        route["via"] = f"signed in through this staff proxy (child policies {policies})"
        out += _route(route, check)
    status, body = await s.call("POST", "sys/internal/access/identity",
                                {"kind": "user", "name": name, **({"paths": [check]} if check else {})})
    if status == 200:
        for route in ((body or {}).get("data") or {}).get("routes") or []:
            out += _route(route, check)
    return out


def _route(route: dict[str, Any], check: str) -> Markup:
    out = Markup(f'<section class="route"><h3>{esc(route.get("via", ""))}</h3>'
                 f'<p>Policies: {esc(", ".join(route.get("policies") or []) or "none")}</p>')
    if check:
        got = (route.get("capabilities") or {}).get(check) or ["deny"]
        out += Markup(f'<p class="check">On <code>{esc(check)}</code>: {caps(got)}</p>')
    if route.get("root"):
        return out + Markup("<p><strong>root</strong>: everything.</p></section>")
    rules = route.get("rules") or []
    readable = [r for r in rules if set(r.get("capabilities") or []) & {"read", "list"}]
    writable = [r for r in rules if set(r.get("capabilities") or []) & _WRITE]
    denied = [r for r in rules if "deny" in (r.get("capabilities") or [])]
    out += Markup(f"<p>{len(readable)} readable, {len(writable)} writable and {len(denied)} denied path patterns."
                  "</p>")
    return out + tree(rules) + Markup("</section>")


def tree(rules: list[dict[str, Any]]) -> Markup:
    """Rules nested by path segment, as ``<details>`` (folds without script) holding the rule's capabilities."""
    root: dict[str, Any] = {}
    for rule in rules:
        node = root
        for seg in str(rule["path"]).split("/"):
            node = node.setdefault(seg, {})
        node["\0rule"] = rule
    return Markup(f'<ul class="tree" role="tree">{_nodes(_compress(root), "")}</ul>')


def _compress(node: dict[str, Any]) -> dict[str, Any]:
    """Fold chains of single folders ("secret" → "data" → "k8s") into one entry ("secret/data/k8s")."""
    out: dict[str, Any] = {}
    for seg, child in node.items():
        if seg == "\0rule":
            out[seg] = child
            continue
        child = _compress(child)
        keys = [k for k in child if k != "\0rule"]
        while "\0rule" not in child and len(keys) == 1:
            seg, child = f"{seg}/{keys[0]}", child[keys[0]]
            keys = [k for k in child if k != "\0rule"]
        out[seg] = child
    return out


def _nodes(node: dict[str, Any], prefix: str) -> str:
    out = []
    for seg in sorted(k for k in node if k != "\0rule"):
        child = node[seg]
        full = prefix + seg
        rule = child.get("\0rule")
        label = f"<code>{esc(seg or '/')}</code>"
        if rule is not None:
            label += " " + caps(sorted(rule.get("capabilities") or []))
            extra = [f"{k.replace('_', ' ')}: {v}" for k in ("allowed_parameters", "denied_parameters",
                                                             "required_parameters") if (v := rule.get(k))]
            if extra:
                label += f' <span class="muted">{esc("; ".join(extra))}</span>'
            label += f' <span class="muted">({esc(", ".join(rule.get("policies") or []))})</span>'
        rest = {k: v for k, v in child.items() if k != "\0rule"}
        if rest:
            out.append(f'<li role="treeitem"><details open><summary>{label}</summary>'
                       f'<ul role="group">{_nodes(rest, full + "/")}</ul></details></li>')
        else:
            out.append(f'<li role="treeitem" title="{esc(full)}">{label}</li>')
    return "".join(out)
