"""The few ASGI pieces the proxy needs: read a request, send a response. No framework on purpose."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

import orjson

# the proxy reads bodies exactly as the API does; the app catches BodyTooLarge through this module
from strongroom.api.http import BodyTooLarge, receive_body

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
MAX_BODY = 32 * 1024 * 1024


@dataclass
class Req:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""
    client: str = ""
    # the path exactly as the client sent it (still percent-encoded), for forwarding unchanged
    raw_path: str = ""
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def cookie(self, name: str) -> str | None:
        raw = self.headers.get("cookie")
        if not raw:
            return None
        jar = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value if morsel else None

    def form(self) -> dict[str, str]:
        if not self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return {}
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    def params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.query, keep_blank_values=True).items()}


async def read_request(scope: dict[str, Any], receive: Receive) -> Req:
    raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]
    headers: dict[str, str] = {}
    for k, v in raw:
        headers[k] = f"{headers[k]}, {v}" if k in headers and k != "cookie" else v
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise BodyTooLarge()
    body = await receive_body(receive, MAX_BODY)
    client = scope.get("client") or ("", 0)
    return Req(
        method=scope["method"].upper(),
        path=scope["path"],
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=body,
        client=str(client[0]),
        raw_path=(scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
        raw_headers=raw,
    )


async def send(
    send_: Send, status: int, body: bytes, content_type: str, headers: list[tuple[str, str]] | None = None
) -> None:
    out = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    out += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers or []]
    await send_({"type": "http.response.start", "status": status, "headers": out})
    await send_({"type": "http.response.body", "body": body})


async def send_json(send_: Send, status: int, doc: Any, headers: list[tuple[str, str]] | None = None) -> None:
    await send(send_, status, orjson.dumps(doc), "application/json", [("cache-control", "no-store"), *(headers or [])])


async def send_error(send_: Send, status: int, *messages: str, headers: list[tuple[str, str]] | None = None) -> None:
    await send_json(send_, status, {"errors": list(messages)}, headers)
