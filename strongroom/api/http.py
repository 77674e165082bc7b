"""Parsing an HTTP request into a logical one, and shaping responses and errors the way Vault does."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from strongroom.core.logical import InvalidRequest, LogicalError, Operation

MAX_BODY = 32 * 1024 * 1024

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class BodyTooLarge(LogicalError):
    status = 413

    def __init__(self) -> None:
        super().__init__("request body too large")


def headers_of(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def client_token(headers: dict[str, str]) -> str:
    token = headers.get("x-vault-token", "")
    if not token:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
    return token


def parse_query(raw: str) -> dict[str, str]:
    if not raw:
        return {}
    try:
        return dict(parse_qsl(raw, keep_blank_values=True, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("invalid query string") from None


def _check_declared_length(headers: dict[str, str], limit: int) -> bool:
    """True when the client declared a length (already checked against the limit)."""
    declared = headers.get("content-length")
    if declared is None:
        return False
    try:
        size = int(declared)
    except ValueError:
        raise InvalidRequest("invalid content-length") from None
    if size > limit:
        raise BodyTooLarge()
    return True


async def read_rsgi_body(protocol: Any, headers: dict[str, str], limit: int = MAX_BODY) -> bytes:
    if _check_declared_length(headers, limit):
        return await protocol()
    chunks: list[bytes] = []
    size = 0
    async for chunk in protocol:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(receive: Receive, headers: dict[str, str], limit: int = MAX_BODY) -> bytes:
    _check_declared_length(headers, limit)
    return await receive_body(receive, limit)


async def receive_body(receive: Receive, limit: int) -> bytes:
    """The ASGI request body, refused as soon as it grows past ``limit`` (a declared length is not trusted)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("failed to parse JSON input: malformed JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("failed to parse JSON input: the body must be a JSON object")
    return value


# control characters, an empty segment, or a "." / ".." segment anywhere (a single trailing "/" is allowed)
_BAD_PATH = re.compile(r"[\x00-\x1f\x7f]|//|^/|(?:^|/)\.{1,2}(?:/|$)")


def validate_path(path: str) -> str:
    """The logical path after ``/v1/``; traversal and empty segments are refused rather than cleaned."""
    if not path or path == "/" or _BAD_PATH.search(path):
        raise InvalidRequest("invalid request path")
    return path


def operation_for(method: str, query: dict[str, str], headers: dict[str, str]) -> Operation:
    if method == "GET":
        if query.get("list", "").lower() in ("true", "1"):
            return Operation.LIST
        return Operation.READ
    if method in ("PUT", "POST"):
        return Operation.UPDATE
    if method == "DELETE":
        return Operation.DELETE
    if method == "LIST":
        return Operation.LIST
    if method == "PATCH":
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/merge-patch+json":
            raise LogicalError("PATCH requires Content-Type application/merge-patch+json", status=415)
        return Operation.PATCH
    raise LogicalError("unsupported operation", status=405)


async def send_reply(send: Send, status: int, body: bytes | None, content_type: str) -> None:
    headers = [(b"cache-control", b"no-store")]
    if body is not None:
        headers += [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body or b""})
