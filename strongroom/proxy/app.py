"""The staff proxy: the only way staff reach Strongroom, in the position the reference describes.

Every request must carry a company IdP token (``Authorization: Bearer``, or the UI's cookie) that verifies against
the IdP's JWKS, issuer, audience and expiry; anything else is answered here (401) and never reaches the server. Any
token the client sent for the server is dropped; the request goes upstream with a short-lived child token minted for
that staff user under the ``web-user`` policy, so the audit trail names the person.

No token ever goes back to the browser: every answer relayed from the server loses its ``auth.client_token``,
``wrap_info.token``, the ``id`` of token lookups, and any other copy of the child token. A request
authenticated by the UI's cookie (rather than a bearer token a script had to hold) must also carry the session's
CSRF token in ``X-CSRF-Token``: a cookie is sent by the browser on its own, a custom header is not.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import unquote

import httpx
import orjson

from strongroom import crypto
from strongroom.proxy import asgi, webauthn
from strongroom.proxy.child_tokens import ChildTokens, UpstreamRefused
from strongroom.proxy.config import ProxyConfig
from strongroom.proxy.idp import IdpVerifier, NotAuthenticated, StaffUser

log = logging.getLogger("strongroom.proxy")

COOKIE = "strongroom_staff"
CSRF_HEADER = "x-csrf-token"
# request headers never forwarded: credentials for the server or the proxy, and hop-by-hop headers
_STRIP = {
    "authorization", "x-vault-token", "cookie", "host", "content-length", "connection", "keep-alive", "te",
    "transfer-encoding", "upgrade", "proxy-authorization", "proxy-connection", "trailer", "accept-encoding",
    CSRF_HEADER,
}  # fmt: skip
_PASS_BACK = {"content-type", "cache-control", "retry-after"}


class StaffSession:
    """One verified staff user's view of the server, used by the API forwarder and the UI."""

    def __init__(self, app: ProxyApp, user: StaffUser, csrf: str | None = None, session_key: str = "") -> None:
        self.app = app
        self.user = user
        # set when the session came from the UI's cookie: the token every state-changing request must echo
        self.csrf = csrf
        # what a WebAuthn step-up is bound to (a hash of the IdP credential), and whether this request carries one
        self.session_key = session_key
        self.stepped_up = False

    def csrf_ok(self, presented: str | None) -> bool:
        """True for a bearer-authenticated session, or when ``presented`` is this cookie session's CSRF token."""
        if self.csrf is None:
            return True
        return bool(presented) and crypto.constant_time_eq(presented or "", self.csrf)

    async def token(self) -> str:
        return await self.app.children.for_user(self.user.id, self.user.expires_at)

    async def request(
        self, method: str, path: str, *, content: bytes | None = None, json: Any = None,
        headers: dict[str, str] | None = None, query: str = "",
    ) -> httpx.Response:  # fmt: skip
        url = _upstream_url(self.app.http.base_url, path, query)
        hdrs = {**(headers or {}), "X-Vault-Token": await self.token()}
        resp = await self.app.http.request(method, url, content=content, json=json, headers=hdrs)
        if resp.status_code == 403 and not await self._token_alive(hdrs["X-Vault-Token"]):
            # the child token was revoked or expired server-side: mint a new one once
            self.app.children.forget(self.user.id)
            hdrs["X-Vault-Token"] = await self.token()
            resp = await self.app.http.request(method, url, content=content, json=json, headers=hdrs)
        return resp

    async def _token_alive(self, token: str) -> bool:
        resp = await self.app.http.get("auth/token/lookup-self", headers={"X-Vault-Token": token})
        return resp.status_code == 200

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        query = ""
        if method == "LIST":
            # GET ?list=true rather than the LIST verb: some HTTP stacks in between refuse unknown verbs
            method, query = "GET", "list=true"
        try:
            resp = await self.request(method, path, json=json, query=query)
        except UpstreamRefused as exc:
            return exc.status, {"errors": [str(exc)]}
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = None
        return resp.status_code, body


class ProxyApp:
    def __init__(self, cfg: ProxyConfig, *, http: httpx.AsyncClient | None = None) -> None:
        self.cfg = cfg
        self.http = http or httpx.AsyncClient(
            base_url=f"{cfg.upstream}/v1/", verify=cfg.upstream_ca_cert or True, timeout=30.0
        )
        self.idp = IdpVerifier(cfg.idp)
        # CSRF tokens are an HMAC of the session cookie: stateless, so any replica sharing the key accepts them
        self._csrf_key = cfg.csrf_key() or secrets.token_bytes(32)
        self.children = ChildTokens(self.http, self._proxy_token, cfg.child_policies, cfg.child_ttl)
        self.step_up = webauthn.StepUp(cfg.step_up, self._csrf_key) if cfg.step_up is not None else None
        self._workload: Any = None
        if cfg.login == "kubernetes":
            from strongroom.secretstore.aio import AsyncClient

            # the proxy's own ServiceAccount, logged in like any workload (settings from the pod's environment)
            role: dict[str, Any] = {"role": cfg.k8s_role} if cfg.k8s_role else {}
            self._workload = AsyncClient(addr=cfg.upstream, ca_cert=cfg.upstream_ca_cert, **role)

    async def _proxy_token(self) -> str:
        if self._workload is not None:
            return await self._workload.token()
        return self.cfg.proxy_token()

    def csrf_token(self, cookie: str) -> str:
        return crypto.hmac_sha256_hex(self._csrf_key, b"strongroom-csrf\x00" + cookie.encode())

    async def authenticate(self, req: asgi.Req) -> StaffSession:
        auth = req.headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if bearer:
            session = StaffSession(self, await self.idp.verify(bearer), session_key=webauthn.session_hash(bearer))
        else:
            cookie = req.cookie(COOKIE)
            if not cookie:
                raise NotAuthenticated("staff authentication required")
            session = StaffSession(
                self, await self.idp.verify(cookie), csrf=self.csrf_token(cookie),
                session_key=webauthn.session_hash(cookie),
            )  # fmt: skip
        session.stepped_up = webauthn.stepped_up(self, req, session)
        return session

    async def __call__(self, scope: dict[str, Any], receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await self.http.aclose()
                    await self.idp.aclose()
                    if self._workload is not None:
                        await self._workload.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        try:
            req = await asgi.read_request(scope, receive)
        except asgi.BodyTooLarge:
            await asgi.send_error(send, 413, "request body too large")
            return
        try:
            await self._route(req, send)
        except Exception as exc:  # never a stack trace to the client; the type only in the log
            log.error("proxy error %s", type(exc).__name__)
            await asgi.send_error(send, 500, "internal proxy error")

    async def _route(self, req: asgi.Req, send: asgi.Send) -> None:
        if req.path == "/healthz":
            await asgi.send(send, 200, b"ok\n", "text/plain")
        elif req.path.startswith("/v1/"):
            await self._api(req, send)
        elif req.path.startswith("/webauthn/"):
            await webauthn.handle(self, req, send)
        elif req.path in ("/", "/ui") or req.path.startswith("/ui/"):
            from strongroom.ui.app import handle

            await handle(self, req, send)
        else:
            await asgi.send_error(send, 404, "not found")

    async def _api(self, req: asgi.Req, send: asgi.Send) -> None:
        try:
            session = await self.authenticate(req)
        except NotAuthenticated as exc:
            await asgi.send_error(send, 401, str(exc), headers=[("www-authenticate", 'Bearer realm="strongroom"')])
            return
        if not session.csrf_ok(req.headers.get(CSRF_HEADER)):
            await asgi.send_error(send, 403, "missing or invalid CSRF token (X-CSRF-Token) for a cookie session")
            return
        headers = {k: v for k, v in req.headers.items() if k not in _STRIP}
        upstream_path = req.raw_path if req.raw_path.startswith("/v1/") else req.path
        api_path = upstream_path[len("/v1/") :]
        if self.step_up is not None and not session.stepped_up and self.step_up.required_for_path(unquote(api_path)):
            await asgi.send_error(send, 403, "step-up authentication required: verify with your security key first")
            return
        try:
            resp = await session.request(
                req.method, api_path, content=req.body or None, headers=headers, query=req.query
            )
        except UpstreamRefused as exc:
            await asgi.send_error(send, exc.status, str(exc))
            return
        except httpx.HTTPError:
            await asgi.send_error(send, 502, "the secrets server is unreachable")
            return
        back = [(k, v) for k, v in resp.headers.items() if k.lower() in _PASS_BACK]
        child = resp.request.headers.get("x-vault-token", "")
        body = without_tokens(resp.content, api_path, child)
        await asgi.send(send, resp.status_code, body, resp.headers.get("content-type", "application/json"), [
            (k, v) for k, v in back if k.lower() != "content-type"
        ])  # fmt: skip


# accessors stay: an accessor cannot authenticate a request, and it is what ties an answer to the audit trail
_TOKEN_KEYS = {"auth": ("client_token",), "wrap_info": ("token",)}


def without_tokens(content: bytes, api_path: str, child_token: str) -> bytes:
    """A server answer fit for the browser: no token of any kind, and no copy of the child token anywhere.

    The token endpoints' ``data.id`` is the token itself; ``auth.client_token`` and ``wrap_info.token`` are newly
    minted ones. Whatever else might echo the child token (it is known exactly) is blanked,
    and a body that is not JSON loses it byte for byte.
    """
    if not content:
        return content
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.replace(child_token.encode(), b"") if child_token else content
    if not isinstance(doc, dict):
        return content
    for section, keys in _TOKEN_KEYS.items():
        part = doc.get(section)
        if isinstance(part, dict):
            for key in keys:
                part.pop(key, None)
    data = doc.get("data")
    if isinstance(data, dict) and unquote(api_path).lstrip("/").startswith("auth/token/"):
        data.pop("id", None)
    if child_token:
        doc = _blank(doc, child_token)
    return orjson.dumps(doc)


def _blank(value: Any, token: str) -> Any:
    # recursion is safe here: this walks the server's own answer, never the client's input
    if isinstance(value, dict):
        return {k: _blank(v, token) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank(v, token) for v in value]
    if isinstance(value, str) and token in value:
        return value.replace(token, "")
    return value


def _upstream_url(base: httpx.URL, path: str, query: str) -> httpx.URL:
    """The server URL for an API path. A path that would leave the server (``http://…``, ``//host``, a backslash)
    is refused: the staff member's child token must only ever go to the configured upstream."""
    if "://" in path or path.startswith(("/", "\\")) or "\\" in path or any(ord(c) < 0x20 for c in path):
        raise UpstreamRefused(400, "invalid request path")
    url = base.join(path + (f"?{query}" if query else ""))
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port) or not url.path.startswith(base.path):
        raise UpstreamRefused(400, "invalid request path")
    return url
