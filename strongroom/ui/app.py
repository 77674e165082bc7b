"""The inspection UI, served by the staff proxy at ``/ui/``: what exists, never a value unless asked for and allowed.

Every page is fetched from the server with the signed-in person's own child token, so the UI can show exactly what
their policies allow and nothing more. Values are only read on an explicit POST ("Reveal") and the page that shows one
is never cached.

Forms carry CSRF tokens: the sign-in form a random one that must match a short-lived cookie set with it (so nobody
can sign a browser in as someone else), and every form of a signed-in page the session's token (see the proxy).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.proxy import asgi
from strongroom.proxy.idp import NotAuthenticated
from strongroom.ui import humane
from strongroom.ui.html import STYLE, Markup, esc, link, page, table, url

if TYPE_CHECKING:
    from strongroom.proxy.app import ProxyApp, StaffSession

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_HEADERS = [
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        # script and connect only for the step-up page's own script (/ui/static/step-up.js) and /webauthn/ calls
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'",
    ),
]
_MAX_LIST = 500
LOGIN_CSRF_COOKIE = "strongroom_login_csrf"
_LOGIN_CSRF_AGE = 900


class _Page(Exception):
    def __init__(self, status: int, title: str, body: Markup) -> None:
        self.status, self.title, self.body = status, title, body


async def _html(send: asgi.Send, status: int, body: bytes, extra: list[tuple[str, str]] | None = None) -> None:
    await asgi.send(send, status, body, "text/html; charset=utf-8", _HEADERS + (extra or []))


async def _redirect(send: asgi.Send, to: str, extra: list[tuple[str, str]] | None = None) -> None:
    await asgi.send(send, 303, b"", "text/plain", [("location", to), *_HEADERS, *(extra or [])])


def _segments(parts: list[str]) -> list[str]:
    if not parts or any(not _SEGMENT.fullmatch(p) for p in parts):
        raise _Page(400, "Bad path", Markup('<p class="error">That is not a valid secret path.</p>'))
    return parts


async def handle(app: ProxyApp, req: asgi.Req, send: asgi.Send) -> None:
    path = req.path
    if path in ("/", "/ui"):
        await _redirect(send, "/ui/")
        return
    if path == "/ui/static/style.css":
        await asgi.send(send, 200, STYLE, "text/css", [("cache-control", "max-age=300")])
        return
    if path == "/ui/static/step-up.js":
        await asgi.send(send, 200, _STEP_UP_JS.encode(), "text/javascript", [("cache-control", "max-age=300")])
        return
    if path == "/ui/login":
        await _login(app, req, send)
        return
    if path == "/ui/logout" and req.method == "POST":
        await _redirect(send, "/ui/login", [("set-cookie", _cookie(app, "", 0))])
        return
    try:
        session = await app.authenticate(req)
    except NotAuthenticated as exc:
        if req.method == "GET":
            await _redirect(send, "/ui/login")
        else:
            await _html(send, 401, page("Sign in required", Markup(f'<p class="error">{esc(exc)}</p>')))
        return
    user = session.user.id
    csrf = session.csrf or ""
    if req.method == "POST" and not session.csrf_ok(req.form().get("csrf_token")):
        body = Markup('<p class="error">This form did not come from this page (missing or stale CSRF token). '
                      "Go back, reload and try again.</p>")  # fmt: skip
        await _html(send, 403, page("Not allowed", body, user, csrf))
        return
    try:
        title, body = await _dispatch(session, req)
        await _html(send, 200, page(title, body, user, csrf))
    except _Page as p:
        await _html(send, p.status, page(p.title, p.body, user, csrf))


def _cookie(app: ProxyApp, value: str, max_age: int) -> str:
    from strongroom.proxy.app import COOKIE

    secure = "; Secure" if app.cfg.cookie_secure else ""
    return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"


def _login_form(nonce: str) -> Markup:
    return Markup(
        "<p>Sign in with your company identity token (normally set for you by the company sign-on).</p>"
        f'<form method="post" action="/ui/login">{csrf_field(nonce)}<label>IdP token<br>'
        '<textarea name="token" rows="4" cols="80" autocomplete="off" required></textarea></label><br>'
        '<button type="submit">Sign in</button></form>'
    )


def csrf_field(token: str | None) -> Markup:
    return Markup(f'<input type="hidden" name="csrf_token" value="{esc(token)}">') if token else Markup("")


def _login_cookie(app: ProxyApp, value: str, max_age: int) -> str:
    secure = "; Secure" if app.cfg.cookie_secure else ""
    return f"{LOGIN_CSRF_COOKIE}={value}; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"


async def _login_page(app: ProxyApp, send: asgi.Send, status: int, before: Markup = Markup("")) -> None:
    nonce = crypto.random_hex(16)
    await _html(send, status, page("Sign in", before + _login_form(nonce)),
                [("set-cookie", _login_cookie(app, nonce, _LOGIN_CSRF_AGE))])  # fmt: skip


async def _login(app: ProxyApp, req: asgi.Req, send: asgi.Send) -> None:
    if req.method != "POST":
        await _login_page(app, send, 200)
        return
    form = req.form()
    expected, presented = req.cookie(LOGIN_CSRF_COOKIE) or "", form.get("csrf_token", "")
    if not expected or not presented or not crypto.constant_time_eq(expected, presented):
        # a sign-in posted from another site (login CSRF) or from a stale form: the person must sign in here
        error = Markup('<p class="error">The sign-in form expired or did not come from this site. Sign in again.</p>')
        await _login_page(app, send, 403, error)
        return
    token = form.get("token", "").strip()
    try:
        user = await app.idp.verify(token)
    except NotAuthenticated as exc:
        await _login_page(app, send, 401, Markup(f'<p class="error">{esc(exc)}</p>'))
        return
    max_age = max(0, int(user.expires_at - time.time()))
    await _redirect(send, "/ui/", [("set-cookie", _cookie(app, token, max_age)),
                                   ("set-cookie", _login_cookie(app, "", 0))])  # fmt: skip


async def _dispatch(s: StaffSession, req: asgi.Req) -> tuple[str, Markup]:
    parts = [p for p in req.path.split("/")[2:] if p]
    if not parts:
        return _overview(s)
    head, rest = parts[0], parts[1:]
    from strongroom.ui import pages  # the inspection pages (explorer, history, search, operations)

    try:
        found = await pages.dispatch(s, req, head, rest)
    except pages.PageError as e:
        raise _Page(e.status, e.title, e.body) from None
    if found is not None:
        return found
    if head == "step-up" and not rest:
        return "Security key", _step_up_page(s)
    if head == "mounts" and not rest:
        return "Secrets engines", await _mounts(s, "sys/mounts")
    if head == "auth" and not rest:
        return "Auth methods", await _mounts(s, "sys/auth")
    if head == "policies":
        if not rest:
            return "Policies", await _policies(s)
        return f"Policy {rest[0]}", await _policy(s, _segments(rest)[0])
    if head == "secrets":
        if not rest:
            return "Secrets by service", await _services(s)
        if len(rest) == 1:
            (ns,) = _segments(rest)
            return f"Secrets in namespace {ns}", await _namespace(s, ns)
        if len(rest) == 2:
            ns, sa = _segments(rest)
            return f"Secrets of {ns}/{sa}", await _service(s, ns, sa)
        if len(rest) >= 4:
            ns, sa, *name, version = _segments(rest)
            return "Secret", await _secret(s, ns, sa, "/".join(name), version, reveal=req.method == "POST")
    raise _Page(404, "Not found", Markup("<p>No such page.</p>"))


def _overview(s: StaffSession) -> tuple[str, Markup]:
    items = "".join(
        f"<li>{link(h, t)} — {esc(d)}</li>"
        for t, h, d in (
            ("Secrets engines", "/ui/mounts", "what is mounted where"),
            ("Auth methods", "/ui/auth", "how people and workloads log in"),
            ("Policies", "/ui/policies", "who may do what"),
            ("Secrets", "/ui/secrets", "which secrets and versions exist per service (values hidden)"),
            ("Who can / what can", "/ui/access", "who can read a path; what a service, person or group can do"),
            ("Search", "/ui/search", "find a service or secret by name, every service page by page"),
            ("Operations", "/ui/ops", "seal and HA, audit devices, leases, database credentials, MPA, request rates"),
        )
    )
    return "Overview", Markup(f"<p>Signed in as <strong>{esc(s.user.id)}</strong>.</p><ul>{items}</ul>")


def _denied(what: str, status: int) -> _Page:
    if status == 403:
        return _Page(
            403, "Not allowed", Markup(f'<p class="error">Your policies do not allow viewing {esc(what)}.</p>')
        )
    if status == 404:
        return _Page(404, "Not found", Markup(f"<p>{esc(what)} does not exist.</p>"))
    return _Page(502, "Server error", Markup(f'<p class="error">The server could not show {esc(what)} ({status}).</p>'))


async def _get(s: StaffSession, method: str, path: str, what: str, empty_ok: bool = False) -> Any:
    status, body = await s.call(method, path)
    if status == 404 and empty_ok:
        return {}
    if status != 200:
        raise _denied(what, status)
    return (body or {}).get("data") or {}


async def _mounts(s: StaffSession, path: str) -> Markup:
    data = await _get(s, "GET", path, path)
    rows = [
        (m, v.get("type", ""), v.get("description", ""), v.get("accessor", ""), _options(v.get("options")))
        for m, v in sorted(data.items())
        if isinstance(v, dict)
    ]
    return table(("path", "type", "description", "accessor", "options"), rows)


def _options(opts: object) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(opts.items())) if isinstance(opts, dict) else ""


async def _policies(s: StaffSession) -> Markup:
    data = await _get(s, "LIST", "sys/policies/acl", "the policy list")
    items = "".join(f"<li>{link(url('ui', 'policies', n), n)}</li>" for n in data.get("keys", []))
    return Markup(f"<ul>{items}</ul>")


async def _policy(s: StaffSession, name: str) -> Markup:
    data = await _get(s, "GET", f"sys/policies/acl/{name}", f"policy {name}")
    text = data.get("policy", "")
    rows = _policy_rows(text)
    summary = table(("path", "capabilities"), rows, "policy") if rows else Markup("")
    return summary + Markup(f"<h2>Source</h2><pre>{esc(text)}</pre>")


def _policy_rows(text: str) -> list[tuple[str, str]]:
    try:
        import hcl2

        doc = hcl2.loads(text)
    except Exception:  # a policy the renderer cannot parse is still shown as source
        return []
    rows = []
    for block in doc.get("path", []):
        for path, body in block.items():
            caps = body.get("capabilities", []) if isinstance(body, dict) else []
            rows.append((str(path).strip('"'), ", ".join(str(c).strip('"') for c in caps)))
    return rows


async def _services(s: StaffSession) -> Markup:
    """Namespaces only: one request, however many services exist."""
    namespaces = (await _get(s, "LIST", "secret/metadata/k8s/", "the secret tree", empty_ok=True)).get("keys", [])
    names = [n.rstrip("/") for n in sorted(namespaces)[:_MAX_LIST] if _SEGMENT.fullmatch(n.rstrip("/"))]
    if not names:
        return Markup('<p class="muted">No service has secrets yet.</p>')
    items = "".join(f"<li>{link(url('ui', 'secrets', ns), ns)}</li>" for ns in names)
    return Markup(f'<p>Namespaces with secrets:</p><ul class="namespaces">{items}</ul>'
                  '<p><a href="/ui/search">Find a service or secret by name, or browse every service page by page</a>'
                  "</p>")


async def _namespace(s: StaffSession, ns: str) -> Markup:
    accounts = (await _get(s, "LIST", f"secret/metadata/k8s/{ns}/", f"namespace {ns}", empty_ok=True)).get("keys", [])
    names = [a.rstrip("/") for a in sorted(accounts)[:_MAX_LIST] if _SEGMENT.fullmatch(a.rstrip("/"))]
    if not names:
        return Markup(f'<p class="muted">No secrets in namespace {esc(ns)}.</p>')
    items = "".join(f"<li>{link(url('ui', 'secrets', ns, a), a)}</li>" for a in names)
    return Markup(f'<p>Service accounts with secrets:</p><ul class="services">{items}</ul>')


async def _walk(s: StaffSession, base: str, prefix: str, depth: int = 0) -> list[tuple[str, list[str]]]:
    if depth > 8:
        return []
    keys = (await _get(s, "LIST", f"{base}/{prefix}", "the secret list", empty_ok=True)).get("keys", [])
    found = []
    leaves = sorted(k for k in keys if not k.endswith("/"))
    if leaves and prefix:
        found.append((prefix.rstrip("/"), leaves))
    for folder in sorted(k for k in keys if k.endswith("/"))[:_MAX_LIST]:
        found += await _walk(s, base, prefix + folder, depth + 1)
    return found


async def _service(s: StaffSession, ns: str, sa: str) -> Markup:
    base = f"secret/metadata/k8s/{ns}/{sa}"
    names = await _walk(s, base, "")
    if not names:
        return Markup(f'<p class="muted">No secrets under secret/k8s/{esc(ns)}/{esc(sa)}.</p>')
    rows = []
    for name, versions in names:
        for version in versions:
            meta = await _get(s, "GET", f"{base}/{name}/{version}", f"{name}/{version}", empty_ok=True)
            created_by = _version_creator(meta) or (meta.get("custom_metadata") or {}).get("created_by") or "—"
            href = url("ui", "secrets", ns, sa, *name.split("/"), version)
            reveal = Markup(
                f'<form class="inline" method="post" action="{esc(href)}">{csrf_field(s.csrf)}'
                f'<button type="submit" name="reveal" value="1">Reveal</button></form>'
            )
            history = link(url("ui", "history", ns, sa, *name.split("/")), name)
            rows.append((history, link(href, version), humane.when(meta.get("created_time")), created_by, reveal))
    head = Markup(f"<p>Path prefix <code>secret/k8s/{esc(ns)}/{esc(sa)}/</code>, key <code>data</code>. "
                  "Values are hidden; <em>Reveal</em> reads one if your policies allow it.</p>")  # fmt: skip
    head += link(f"/ui/access?kind=service_account&name={ns}/{sa}", f"What can {ns}/{sa} read and write?")
    return head + table(("name", "version", "created", "created by", "value"), rows, "secrets")


def _version_creator(meta: dict[str, Any]) -> str:
    versions = meta.get("versions") or {}
    current = versions.get(str(meta.get("current_version"))) or {}
    return str(current.get("created_by") or "")


async def _secret(s: StaffSession, ns: str, sa: str, name: str, version: str, reveal: bool) -> Markup:
    where = f"secret/k8s/{ns}/{sa}/{name}/{version}"
    meta = await _get(s, "GET", f"secret/metadata/k8s/{ns}/{sa}/{name}/{version}", where)
    created_by = _version_creator(meta) or (meta.get("custom_metadata") or {}).get("created_by") or "—"
    info = table(("path", "key", "created", "created by"),
                 [(where, "data", humane.when(meta.get("created_time")), created_by)])
    info += link(url("ui", "history", ns, sa, *name.split("/")), "History: versions, writers and readers")
    href = url("ui", "secrets", ns, sa, *name.split("/"), version)
    if not reveal:
        return info + Markup(
            f'<form method="post" action="{esc(href)}">{csrf_field(s.csrf)}'
            '<button type="submit" name="reveal" value="1">'
            "Reveal value</button></form>"
        )
    step_up = s.app.step_up
    if step_up is not None and step_up.cfg.reveal and not s.stepped_up:
        raise _Page(403, "Step-up required", info + Markup(
            '<p class="error" id="step-up-required">Revealing a value needs a recent security-key check. '
            '<a href="/ui/step-up">Verify with your security key</a>, then reveal again.</p>'))
    status, body = await s.call("GET", f"secret/data/k8s/{ns}/{sa}/{name}/{version}")
    if status == 403:
        raise _Page(
            403, "Not allowed", info + Markup('<p class="error">Your policies do not allow reading this value.</p>')
        )
    if status != 200:
        raise _denied(where, status)
    value = (((body or {}).get("data") or {}).get("data") or {}).get("data")
    return info + Markup(f'<h2>Value</h2><pre class="value">{esc(value)}</pre>')


# The step-up page is the UI's only script: WebAuthn needs the browser's navigator.credentials API. It talks to the
# proxy's /webauthn/* endpoints with the session's CSRF token, and converts base64url fields to and from ArrayBuffers.
_STEP_UP_JS = """
const csrf = document.getElementById("step-up").dataset.csrf;
const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\\+/g, "-").replace(/\\//g, "_")
  .replace(/=+$/, "");
const unb64 = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const post = async (path, body) => {
  const r = await fetch(path, {method: "POST", credentials: "same-origin",
    headers: {"content-type": "application/json", "x-csrf-token": csrf}, body: JSON.stringify(body || {})});
  const doc = await r.json();
  if (!r.ok) throw new Error((doc.errors || ["failed"]).join("; "));
  return doc;
};
const show = (text) => { document.getElementById("step-up-status").textContent = text; };
document.getElementById("register").onclick = async () => {
  try {
    const o = await post("/webauthn/register/options");
    o.challenge = unb64(o.challenge); o.user.id = unb64(o.user.id);
    o.excludeCredentials = (o.excludeCredentials || []).map((c) => ({...c, id: unb64(c.id)}));
    const c = await navigator.credentials.create({publicKey: o});
    await post("/webauthn/register", {id: c.id, rawId: b64(c.rawId), type: c.type, response: {
      clientDataJSON: b64(c.response.clientDataJSON), attestationObject: b64(c.response.attestationObject),
      transports: c.response.getTransports ? c.response.getTransports() : []}});
    show("Security key registered.");
  } catch (e) { show("Registration failed: " + e.message); }
};
document.getElementById("verify").onclick = async () => {
  try {
    const o = await post("/webauthn/assert/options");
    o.challenge = unb64(o.challenge);
    o.allowCredentials = (o.allowCredentials || []).map((c) => ({...c, id: unb64(c.id)}));
    const c = await navigator.credentials.get({publicKey: o});
    await post("/webauthn/assert", {id: c.id, rawId: b64(c.rawId), type: c.type, response: {
      clientDataJSON: b64(c.response.clientDataJSON), authenticatorData: b64(c.response.authenticatorData),
      signature: b64(c.response.signature),
      userHandle: c.response.userHandle ? b64(c.response.userHandle) : null}});
    show("Verified. You may now reveal values for a few minutes.");
  } catch (e) { show("Verification failed: " + e.message); }
};
"""


def _step_up_page(s: StaffSession) -> Markup:
    if s.app.step_up is None:
        raise _Page(404, "Not found", Markup("<p>Step-up is not configured on this proxy.</p>"))
    state = "verified" if s.stepped_up else "not verified"
    return Markup(
        f'<div id="step-up" data-csrf="{esc(s.csrf or "")}"><p>This session is <b id="step-up-state">{state}</b>. '
        "Some actions (revealing a value, configured paths) need a recent check with your security key.</p>"
        '<button id="register" type="button">Register a security key</button> '
        '<button id="verify" type="button">Verify with security key</button>'
        '<p id="step-up-status" role="status"></p></div>'
        '<script src="/ui/static/step-up.js"></script>'
    )
