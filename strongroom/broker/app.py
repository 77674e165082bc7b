"""The broker's HTTP API as a small raw ASGI app: JSON in, JSON out, errors as ``{"errors": [...]}``.

    GET  /.well-known/openid-configuration, /.well-known/jwks.json    the broker as an OIDC issuer (no auth)
    GET  /v1/health                                                   liveness (no auth)
    GET  /v1/kinds                                                    what the caller may request and approve
    POST /v1/requests                {kind, reason, duration?, params?}
    GET  /v1/requests?reviewable=1&state=pending&mine=1
    GET  /v1/requests/{id}
    POST /v1/requests/{id}/review    {decision: approve|deny, comment}
    POST /v1/requests/{id}/fetch
    POST /v1/requests/{id}/cancel
    POST /v1/requests/{id}/revoke    {comment?}
    POST /v1/break-glass             {kind, reason}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from strongroom.broker.audit_log import AuditWriteError
from strongroom.broker.idp import AuthenticationError
from strongroom.broker.models import STATES, Identity
from strongroom.broker.runtime import BrokerRuntime
from strongroom.broker.service import BrokerError

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            raise _HttpError(413, "request body too large")
        if not message.get("more_body"):
            return body


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _HttpError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _HttpError(400, "request body must be a JSON object")
    return data


async def _respond(send: Send, status: int, payload: Any) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_ID = r"(?P<id>[A-Za-z0-9-]{1,80})"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"/\.well-known/openid-configuration"), "discovery"),
    ("GET", re.compile(r"/\.well-known/jwks\.json"), "jwks"),
    ("GET", re.compile(r"/v1/health"), "health"),
    ("GET", re.compile(r"/v1/kinds"), "kinds"),
    ("POST", re.compile(r"/v1/requests"), "create"),
    ("GET", re.compile(r"/v1/requests"), "list"),
    ("GET", re.compile(rf"/v1/requests/{_ID}"), "show"),
    ("POST", re.compile(rf"/v1/requests/{_ID}/review"), "review"),
    ("POST", re.compile(rf"/v1/requests/{_ID}/fetch"), "fetch"),
    ("POST", re.compile(rf"/v1/requests/{_ID}/cancel"), "cancel"),
    ("POST", re.compile(rf"/v1/requests/{_ID}/revoke"), "revoke"),
    ("POST", re.compile(r"/v1/break-glass"), "break_glass"),
    ("GET", re.compile(r"/v1/audit/head"), "audit_head"),
    ("POST", re.compile(r"/v1/audit/head"), "audit_check"),
]
_PUBLIC = {"discovery", "jwks", "health"}


class BrokerApp:
    def __init__(self, runtime: BrokerRuntime) -> None:
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, payload = await self._handle(scope, receive)
        except _HttpError as exc:
            status, payload = exc.status, {"errors": [exc.message]}
        except BrokerError as exc:
            status, payload = exc.status, {"errors": [exc.message]}
        except AuthenticationError as exc:
            status, payload = 401, {"errors": [str(exc)]}
        except AuditWriteError:
            log.exception("audit log unavailable")
            status, payload = 503, {"errors": ["the audit log cannot be written; nothing was issued"]}
        except Exception:
            log.exception("unexpected error handling %s %s", scope.get("method"), scope.get("path"))
            status, payload = 500, {"errors": ["internal error"]}
        await _respond(send, status, payload)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.runtime.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, Any]:
        path, method = scope["path"], scope["method"]
        name, match, allowed = None, None, False
        for verb, pattern, handler in _ROUTES:
            m = pattern.fullmatch(path)
            if m:
                allowed = True
                if verb == method:
                    name, match = handler, m
                    break
        if name is None or match is None:
            raise _HttpError(405 if allowed else 404, "method not allowed" if allowed else "unsupported path")
        body = _json_object(await _read_body(receive)) if method == "POST" else {}
        if name in _PUBLIC:
            return 200, self._public(name)
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        who = await self.runtime.idp.identify(auth)
        if name == "break_glass" or (name == "review" and body.get("decision") == "approve"):
            self._require_step_up(who, auth, headers)
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        return await self._authenticated(name, who, match.groupdict().get("id"), body, query)

    def _require_step_up(self, who: Identity, authorization: str, headers: dict[bytes, bytes]) -> None:
        """Approving and break-glass need the staff proxy's WebAuthn step-up proof for this very IdP token, when
        configured (see :mod:`strongroom.proxy.webauthn`): a stolen IdP token alone approves nothing."""
        key = self._step_up_key()
        if key is None:
            return
        from strongroom.proxy.webauthn import PROOF_HEADER, check_proof

        proof = headers.get(PROOF_HEADER.encode(), b"").decode("latin-1")
        if not check_proof(key, proof, who.issuer, who.subject, authorization[7:].strip()):
            raise _HttpError(403, "step-up required: verify with your security key in the staff proxy and send its "
                                  f"proof in {PROOF_HEADER}")

    def _step_up_key(self) -> bytes | None:
        path = self.runtime.config.step_up_proof_key_file
        if not path:
            return None
        from strongroom.proxy.webauthn import read_proof_key

        return read_proof_key(path)

    def _public(self, name: str) -> Any:
        issuer = self.runtime.oidc
        if name == "discovery":
            return issuer.discovery()
        if name == "jwks":
            return issuer.jwks()
        return {"ok": True, "measurement": self.runtime.measurement}

    async def _authenticated(self, name: str, who: Identity, rid: str | None, body: dict[str, Any],
                             query: dict[str, str]) -> tuple[int, Any]:
        broker = self.runtime.broker
        if name == "kinds":
            return 200, {"kinds": self.runtime.kinds_for(who)}
        if name == "create":
            req = broker.create(who, body.get("kind"), body.get("reason"), body.get("duration"), body.get("params"))
            cfg = broker.config.kinds[req.kind]
            return 201, {"request": req.to_dict(), "approve_groups": list(cfg.approve_groups)}
        if name == "list":
            state = query.get("state")
            if state is not None and state not in STATES:
                raise _HttpError(400, f"state must be one of {', '.join(STATES)}")
            reqs = broker.list(who, reviewable=query.get("reviewable") in ("1", "true"),
                               states=(state,) if state else None, mine=query.get("mine") in ("1", "true"))
            return 200, {"requests": [r.to_dict() for r in reqs]}
        if name == "show":
            return 200, {"request": broker.show(who, rid).to_dict()}
        if name == "review":
            return 200, {"request": broker.review(who, rid, body.get("decision"), body.get("comment")).to_dict()}
        if name == "fetch":
            return 200, await broker.fetch(who, rid)
        if name == "cancel":
            return 200, {"request": broker.cancel(who, rid).to_dict()}
        if name == "revoke":
            return 200, {"request": (await broker.revoke(who, rid, body.get("comment"))).to_dict()}
        if name == "break_glass":
            return 201, await broker.break_glass(who, body.get("kind"), body.get("reason"))
        if name == "audit_head":
            head = self.runtime.log.head()
            return 200, {"head": {"seq": head.seq, "hash": head.hash}}
        if name == "audit_check":
            line_sha256, mac = body.get("line_sha256"), body.get("mac")
            if not isinstance(line_sha256, str) or not isinstance(mac, str):
                raise _HttpError(400, "line_sha256 and mac are required strings")
            return 200, {"valid": self.runtime.log.vouches_for(line_sha256, mac)}
        raise _HttpError(404, "unsupported path")
