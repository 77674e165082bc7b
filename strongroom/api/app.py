"""The ASGI application: thin on purpose. It parses, hands the request to the pipeline, and shapes the answer."""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from strongroom import crypto
from strongroom.api import http
from strongroom.api.sys_special import SPECIAL
from strongroom.core.logical import LogicalError, Operation
from strongroom.core.pipeline import Incoming
from strongroom.core.system.path_metrics import serve_unauthenticated as serve_unauthenticated_metrics

if TYPE_CHECKING:
    from strongroom.core.core import Core

log = logging.getLogger("strongroom.api")

_SPECIAL_METHODS = {
    "sys/init": {"GET", "PUT", "POST"},
    "sys/seal-status": {"GET"},
    "sys/unseal": {"PUT", "POST"},
    "sys/health": {"GET", "HEAD"},
    "sys/leader": {"GET"},
    "sys/generate-root/attempt": {"GET", "PUT", "POST", "DELETE"},
    "sys/generate-root/update": {"PUT", "POST"},
    "sys/rekey/init": {"GET", "PUT", "POST", "DELETE"},
    "sys/rekey/update": {"PUT", "POST"},
}
_AFTER = {"sys/seal", "sys/step-down"}
# a snapshot to restore is a binary archive, not JSON (Vault's CLI and hvac post it as is)
_RAW_BODY = {f"sys/storage/{p}snapshot{f}" for p in ("", "raft/") for f in ("", "-force")}


Reply = tuple[int, bytes | None, str]  # status, body (None: empty), content type


class StrongroomApp:
    """Serves both ASGI (tests, embedding) and RSGI (Granian's native interface, used by the server for speed)."""

    def __init__(self, core: Core, *, max_body: int = http.MAX_BODY, unauthenticated_metrics: bool = False) -> None:
        self.core = core
        self.max_body = max_body
        self.unauthenticated_metrics = unauthenticated_metrics  # the listener's telemetry stanza allows it
        # added to every RSGI answer: a node's worker in dev mode names itself (X-Strongroom-Worker)
        self.extra_headers: list[tuple[str, str]] = []
        self._forwarder: Any = None  # an httpx client to the active node, on an HA standby

    async def _forward(self, method: str, raw_path: str, query_string: str, headers: dict[str, str],
                       body: bytes) -> Reply:
        return await _forward_to_active(self, method, raw_path, query_string, headers, body)

    # --- adapters -----------------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: http.Receive, send: http.Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = http.headers_of(scope)
        client = scope.get("client") or ("", 0)

        async def body() -> bytes:
            return await http.read_body(receive, headers, self.max_body)

        qs = scope.get("query_string", b"")
        status, payload, ctype = await self.respond(
            scope["method"], scope["path"], headers, qs.decode("latin-1") if isinstance(qs, bytes) else qs, client[0],
            body,
        )
        await http.send_reply(send, status, payload, ctype)

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        headers = http.rsgi_headers(scope.headers)

        async def body() -> bytes:
            return await http.read_rsgi_body(protocol, headers, self.max_body)

        status, payload, ctype = await self.respond(
            scope.method, scope.path, headers, scope.query_string, scope.client.rpartition(":")[0], body
        )
        if payload is None:
            protocol.response_empty(status, [("cache-control", "no-store"), *self.extra_headers])
        else:
            protocol.response_bytes(
                status, [("content-type", ctype), ("cache-control", "no-store"), *self.extra_headers], payload
            )

    # --- the request --------------------------------------------------------------------------------------------

    async def respond(self, method: str, raw_path: str, headers: dict[str, str], query_string: str, client: str,
                      body: Callable[[], Awaitable[bytes]]) -> Reply:
        try:
            return await self._serve(method.upper(), raw_path, headers, query_string, client, body)
        except LogicalError as exc:
            return exc.status, orjson.dumps({"errors": exc.messages}), "application/json"
        except Exception as exc:  # never show a client a stack trace; keep the trace (not the message) in the log
            log.error("internal error %s\n%s", type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
            return 500, orjson.dumps({"errors": ["internal error"]}), "application/json"

    async def _serve(self, method: str, raw_path: str, headers: dict[str, str], query_string: str, client: str,
                     read_body: Callable[[], Awaitable[bytes]]) -> Reply:
        if not raw_path.startswith("/v1/"):
            messages = ["not found; the API is under /v1/"] if raw_path in ("/", "/v1") else []
            return 404, orjson.dumps({"errors": messages}), "application/json"
        path = http.validate_path(raw_path[4:])
        query = http.parse_query(query_string)
        body = await read_body()

        key = path.rstrip("/")
        if key == "sys/metrics" and self.unauthenticated_metrics:
            return serve_unauthenticated_metrics(self.core, method, query, headers)
        special = SPECIAL.get(key)
        if special is not None:
            if method not in _SPECIAL_METHODS[key]:
                raise LogicalError("unsupported operation", status=405)
            special_data = http.parse_json_object(body) if method in ("PUT", "POST") else {}
            status, payload = await special(self.core, method, special_data, query)
            if method == "HEAD" or payload is None:
                return status, None, ""
            return status, orjson.dumps(payload), "application/json"

        core = self.core
        if core.ha is not None and not core.serving and not core.sealed:
            # an HA standby forwards to the active node (as Vault's request forwarding does) instead of refusing
            return await self._forward(method, raw_path, query_string, headers, body)

        op = http.operation_for(method, query, headers)
        if op is Operation.READ and query.get("help", "").lower() in ("1", "true"):
            op = Operation.HELP  # Vault's path help: GET <path>?help=1
        if op is Operation.LIST:
            if not path.endswith("/"):
                path += "/"
        elif path.endswith("/"):
            # one spelling per resource: the ACL must see the same path the handler acts on ("sys/mounts/x/" is x)
            path = path[:-1]
        data: dict[str, Any]
        if op is Operation.UPDATE and (
            headers.get("content-type", "").startswith("application/ocsp-request") or key in _RAW_BODY
        ):
            # an OCSP request is DER, not JSON (RFC 6960 §A.1): passed on untouched, as Vault passes the raw body
            data = {"http_raw_body": base64.b64encode(body).decode()}
        elif op in (Operation.UPDATE, Operation.PATCH):
            data = http.parse_json_object(body)
        else:
            data = {k: v for k, v in query.items() if k != "list"}
            if op is Operation.DELETE and body.strip():
                data.update(http.parse_json_object(body))
        inc = Incoming(
            operation=op, path=path, data=data, token=http.client_token(headers), remote_addr=client,
            request_id=crypto.new_uuid(), headers=headers, query=query,
        )
        outcome = await self.core.pipeline.handle(inc)
        if key in _AFTER and outcome.status < 400:
            # the request is authorised and audited by now; sealing drops the audit broker with everything else
            if key == "sys/step-down" and self.core.ha is not None:
                await self.core.ha.step_down()  # stays unsealed as a standby; another node takes over
            else:
                await self.core.seal(node_wide=True)
        if outcome.body is None:
            return outcome.status, None, ""
        if isinstance(outcome.body, bytes):
            return outcome.status, outcome.body, outcome.content_type
        return outcome.status, orjson.dumps(outcome.body), "application/json"


_HOP_BY_HOP = frozenset({"host", "connection", "content-length", "transfer-encoding", "keep-alive", "upgrade"})
_FORWARDED = "x-strongroom-forwarded"


async def _forward_to_active(app: StrongroomApp, method: str, raw_path: str, query_string: str,
                             headers: dict[str, str], body: bytes) -> Reply:
    """Send the request as received to the active node's advertised address; answer with its reply. A request that
    was already forwarded once is refused rather than sent on (two standbys must never bounce it between them)."""
    import httpx

    leader = app.core.ha.leader_address if app.core.ha is not None else ""
    if not leader or _FORWARDED in headers:
        raise LogicalError("this node is a standby and cannot serve requests", status=503)
    if app._forwarder is None:
        app._forwarder = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))
    sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
    sent[_FORWARDED] = "1"
    url = leader.rstrip("/") + raw_path + (f"?{query_string}" if query_string else "")
    try:
        resp = await app._forwarder.request(method, url, headers=sent, content=body)
    except httpx.HTTPError:
        raise LogicalError("this node is a standby and the active node could not be reached", status=503) from None
    if not resp.content:
        return resp.status_code, None, ""
    return resp.status_code, resp.content, resp.headers.get("content-type", "application/json")


async def _lifespan(receive: http.Receive, send: http.Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
