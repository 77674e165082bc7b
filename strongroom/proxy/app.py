"""The staff proxy: the only way staff reach Strongroom, in the position the reference describes.

Every request must carry a company IdP token (``Authorization: Bearer``, or the UI's cookie) that verifies against
the IdP's JWKS, issuer, audience and expiry; anything else is answered here (401) and never reaches the server. Any
token the client sent for the server is dropped; the request goes upstream with a short-lived child token minted for
that staff user under the ``web-user`` policy, so the audit trail names the person.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from strongroom.proxy import asgi
from strongroom.proxy.child_tokens import ChildTokens, UpstreamRefused
from strongroom.proxy.config import ProxyConfig
from strongroom.proxy.idp import IdpVerifier, NotAuthenticated, StaffUser

log = logging.getLogger("strongroom.proxy")

COOKIE = "strongroom_staff"
# request headers never forwarded: credentials for the server or the proxy, and hop-by-hop headers
_STRIP = {
    "authorization", "x-vault-token", "cookie", "host", "content-length", "connection", "keep-alive", "te",
    "transfer-encoding", "upgrade", "proxy-authorization", "proxy-connection", "trailer", "accept-encoding",
}  # fmt: skip
_PASS_BACK = {"content-type", "cache-control", "retry-after"}


class StaffSession:
    """One verified staff user's view of the server, used by the API forwarder and the UI."""

    def __init__(self, app: ProxyApp, user: StaffUser) -> None:
        self.app = app
        self.user = user

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
        self.children = ChildTokens(self.http, self._proxy_token, cfg.child_policies, cfg.child_ttl)
        self._workload: Any = None
        if cfg.login == "kubernetes":
            from strongroom.secretstore.aio import AsyncClient

            # the proxy's own ServiceAccount, logged in like any workload (settings from the pod's environment)
            role = {"role": cfg.k8s_role} if cfg.k8s_role else {}
            self._workload = AsyncClient(addr=cfg.upstream, ca_cert=cfg.upstream_ca_cert, **role)

    async def _proxy_token(self) -> str:
        if self._workload is not None:
            return await self._workload.token()
        return self.cfg.proxy_token()

    async def authenticate(self, req: asgi.Req) -> StaffSession:
        auth = req.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        token = token or req.cookie(COOKIE)
        if not token:
            raise NotAuthenticated("staff authentication required")
        return StaffSession(self, await self.idp.verify(token))

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
        headers = {k: v for k, v in req.headers.items() if k not in _STRIP}
        upstream_path = req.raw_path if req.raw_path.startswith("/v1/") else req.path
        try:
            resp = await session.request(
                req.method, upstream_path[len("/v1/") :], content=req.body or None, headers=headers, query=req.query
            )
        except UpstreamRefused as exc:
            await asgi.send_error(send, exc.status, str(exc))
            return
        except httpx.HTTPError:
            await asgi.send_error(send, 502, "the secrets server is unreachable")
            return
        back = [(k, v) for k, v in resp.headers.items() if k.lower() in _PASS_BACK]
        await asgi.send(send, resp.status_code, resp.content, resp.headers.get("content-type", "application/json"), [
            (k, v) for k, v in back if k.lower() != "content-type"
        ])  # fmt: skip


def _upstream_url(base: httpx.URL, path: str, query: str) -> httpx.URL:
    """The server URL for an API path. A path that would leave the server (``http://…``, ``//host``, a backslash)
    is refused: the staff member's child token must only ever go to the configured upstream."""
    if "://" in path or path.startswith(("/", "\\")) or "\\" in path or any(ord(c) < 0x20 for c in path):
        raise UpstreamRefused(400, "invalid request path")
    url = base.join(path + (f"?{query}" if query else ""))
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port) or not url.path.startswith(base.path):
        raise UpstreamRefused(400, "invalid request path")
    return url
