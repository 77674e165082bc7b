"""The ASGI application: thin on purpose. It parses, hands the request to the pipeline, and shapes the answer."""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.api import http
from strongroom.api.sys_special import SPECIAL
from strongroom.core.logical import LogicalError, Operation
from strongroom.core.pipeline import Incoming

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


class StrongroomApp:
    def __init__(self, core: Core, *, max_body: int = http.MAX_BODY) -> None:
        self.core = core
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: http.Receive, send: http.Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            await self._serve(scope, receive, send)
        except LogicalError as exc:
            await http.send_error(send, exc.status, exc.messages)
        except Exception as exc:  # never show a client a stack trace; keep the trace (not the message) in the log
            log.error("internal error %s\n%s", type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
            await http.send_error(send, 500, ["internal error"])

    async def _serve(self, scope: dict[str, Any], receive: http.Receive, send: http.Send) -> None:
        raw_path: str = scope["path"]
        if not raw_path.startswith("/v1/"):
            if raw_path in ("/", "/v1"):
                await http.send_error(send, 404, ["not found; the API is under /v1/"])
                return
            await http.send_error(send, 404, [])
            return
        path = http.validate_path(raw_path[4:])
        method: str = scope["method"].upper()
        headers = http.headers_of(scope)
        query = http.query_of(scope)
        body = await http.read_body(receive, headers, self.max_body)

        special = SPECIAL.get(path.rstrip("/"))
        if special is not None:
            key = path.rstrip("/")
            if method not in _SPECIAL_METHODS[key]:
                raise LogicalError("unsupported operation", status=405)
            data = http.parse_json_object(body) if method in ("PUT", "POST") else {}
            status, payload = await special(self.core, method, data, query)
            if method == "HEAD":
                await http.send_empty(send, status)
            elif payload is None:
                await http.send_empty(send, status)
            else:
                await http.send_json(send, status, payload)
            return

        op = http.operation_for(method, query, headers)
        if op is Operation.LIST and not path.endswith("/"):
            path += "/"
        data: dict[str, Any]
        if op in (Operation.UPDATE, Operation.PATCH):
            data = http.parse_json_object(body)
        else:
            data = {k: v for k, v in query.items() if k != "list"}
            if op is Operation.DELETE and body.strip():
                data.update(http.parse_json_object(body))
        client = scope.get("client") or ("", 0)
        inc = Incoming(
            operation=op,
            path=path,
            data=data,
            token=http.client_token(headers),
            remote_addr=client[0],
            request_id=crypto.new_uuid(),
            headers=headers,
            query=query,
        )
        outcome = await self.core.pipeline.handle(inc)
        if outcome.body is None:
            await http.send_empty(send, outcome.status)
        elif isinstance(outcome.body, bytes):
            await http.send_raw(send, outcome.status, outcome.body, outcome.content_type)
        else:
            await http.send_json(send, outcome.status, outcome.body)
        if path.rstrip("/") in _AFTER and outcome.status < 400:
            await self.core.seal()


async def _lifespan(receive: http.Receive, send: http.Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
