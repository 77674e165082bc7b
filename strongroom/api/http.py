"""Parsing an HTTP request into a logical one, and shaping responses and errors the way Vault does."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
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


# Vault's listener limits (max_json_depth, max_json_string_value_length, max_json_array_element_count,
# max_json_object_entry_count): a body beyond them is refused before it reaches the pipeline, so no audit device,
# encoder or handler ever has to cope with a pathological document. The depth is 200 rather than Vault's 300: the
# JSON encoder behind the audit devices and storage stops at 254 levels, and an audit entry nests the body a few levels
# deeper (entry, request or response, data), so anything accepted here must stay well below that.
MAX_JSON_DEPTH = 200
MAX_JSON_STRING_LENGTH = 1024 * 1024
MAX_JSON_ARRAY_ELEMENTS = 10_000
MAX_JSON_OBJECT_ENTRIES = 10_000

# headers that must appear at most once: two of them make it ambiguous which credential the request carries
_SINGLE = ("x-vault-token", "authorization")
_REPEATED = "\x00"  # joins repeated single-use headers; no real header value can contain it


def collect_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased headers; a repeated header is joined (HTTP list semantics), a repeated credential is marked."""
    headers: dict[str, str] = {}
    for key, value in pairs:
        k = key.lower()
        if k in headers:
            headers[k] = headers[k] + (_REPEATED if k in _SINGLE else ", ") + value
        else:
            headers[k] = value
    return headers


def headers_of(scope: dict[str, Any]) -> dict[str, str]:
    return collect_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])


def rsgi_headers(raw: Any) -> dict[str, str]:
    """Granian's RSGI headers; ``items()`` lists a repeated header once per value, ``get_all`` where it exists."""
    headers = collect_headers(raw.items())
    get_all = getattr(raw, "get_all", None)
    if callable(get_all):
        for name in _SINGLE:
            values = get_all(name) or []
            if len(values) > 1:
                headers[name] = _REPEATED.join(values)
    return headers


def client_token(headers: dict[str, str]) -> str:
    """The request's token. Two token headers, or a token header and a different bearer token, are refused: which
    one the server used would be a guess, and a proxy in between may have checked the other one."""
    token = headers.get("x-vault-token", "")
    auth = headers.get("authorization", "")
    if _REPEATED in token or _REPEATED in auth:
        raise InvalidRequest("more than one X-Vault-Token or Authorization header")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if token and bearer and bearer != token:
        raise InvalidRequest("X-Vault-Token and Authorization: Bearer name different tokens")
    return token or bearer


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
        # orjson itself stops at 1024 levels, without recursing in Python; the stricter limits are checked below
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc).lower():
            raise InvalidRequest(_too_deep()) from None
        raise InvalidRequest("failed to parse JSON input: malformed JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("failed to parse JSON input: the body must be a JSON object")
    check_json_limits(value)
    return value


def _too_deep() -> str:
    return f"failed to parse JSON input: JSON input exceeds the maximum nesting depth of {MAX_JSON_DEPTH}"


def check_json_limits(value: Any) -> None:
    """Refuse a parsed document beyond Vault's listener limits; iterative, so depth costs no Python stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(_too_deep())
            if len(item) > MAX_JSON_OBJECT_ENTRIES:
                raise InvalidRequest(
                    f"failed to parse JSON input: an object has more than {MAX_JSON_OBJECT_ENTRIES} entries"
                )
            for key, child in item.items():
                if len(key) > MAX_JSON_STRING_LENGTH:
                    raise InvalidRequest(_too_long())
                if isinstance(child, dict | list | str):
                    stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(_too_deep())
            if len(item) > MAX_JSON_ARRAY_ELEMENTS:
                raise InvalidRequest(
                    f"failed to parse JSON input: an array has more than {MAX_JSON_ARRAY_ELEMENTS} elements"
                )
            stack.extend((child, depth + 1) for child in item if isinstance(child, dict | list | str))
        elif len(item) > MAX_JSON_STRING_LENGTH:
            raise InvalidRequest(_too_long())


def _too_long() -> str:
    return f"failed to parse JSON input: a string is longer than {MAX_JSON_STRING_LENGTH} characters"


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
