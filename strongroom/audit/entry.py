"""Vault-shaped audit entries, with every sensitive string replaced by ``hmac-sha256:<hex>`` under a device's key.

The shape follows Vault's ``audit/types.go`` (request, response and auth objects, ``time`` first). What is HMAC'd
follows Vault's ``HashRequest``/``HashResponse``: the client token always, token accessors unless the device sets
``hmac_accessor=false``, and every string inside request and response ``data``, recursively (keys are kept). Unlike
Vault's ``log_raw``, there is no way to turn this off.

Numbers inside ``data`` are HMAC'd too (as their JSON text): Vault decodes JSON numbers as ``json.Number``, a string
kind, so its walker hashes them; a PIN stored as ``1234`` must not reach the log in clear either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from strongroom import crypto

HMAC_PREFIX = "hmac-sha256:"

Hasher = Callable[[str], str]


_MEMO_LIMIT = 4096
_MEMO_MAX_LEN = 256


def hmac_hasher(key: bytes) -> Hasher:
    hexdigest = crypto.HmacKey(key).hexdigest
    # Tokens, accessors, paths and policy names repeat on every request; remembering their HMACs (only while the
    # server is unsealed, beside the barrier's own plaintext cache) saves most of the hashing.
    memo: dict[str, str] = {}

    def h(value: str) -> str:
        out = memo.get(value)
        if out is None:
            out = HMAC_PREFIX + hexdigest(value.encode())
            if len(value) <= _MEMO_MAX_LEN:
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                memo[value] = out
        return out

    return h


# formatted seconds: "now" and the issue times of the tokens in use repeat constantly
_seconds: dict[int, str] = {}


def rfc3339_nano(ns: int | None = None) -> str:
    """UTC time with nanoseconds, as Go's ``time.RFC3339Nano`` prints it (trailing zeros dropped)."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    base = _seconds.get(secs)
    if base is None:
        if len(_seconds) > 4096:
            _seconds.clear()
        base = _seconds[secs] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


@dataclass(slots=True)
class AuditContext:
    """Everything the pipeline knows about one request, in clear; entries are built from it per device.

    ``client_token`` is the caller's token (HMAC'd in every entry); ``response_client_token`` / ``response_accessor``
    are a token minted by this request (login, token create), HMAC'd in the response entry.
    """

    request_id: str
    operation: str
    path: str
    mount_point: str = ""
    mount_type: str = ""
    mount_accessor: str = ""
    remote_addr: str = ""
    remote_port: int = 0
    data: dict[str, Any] | None = None
    client_token: str = ""
    accessor: str = ""
    display_name: str = ""
    policies: list[str] = field(default_factory=list)
    token_policies: list[str] = field(default_factory=list)
    identity_policies: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    entity_id: str = ""
    token_type: str = ""
    ttl: int = 0
    issue_time: str | float = ""  # RFC 3339 text, or a Unix timestamp
    response_client_token: str = ""
    response_accessor: str = ""
    # per device: the HMAC'd auth and request objects, built once and shared by the request and response entries
    memo: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict, repr=False)


def hash_structure(value: Any, h: Hasher, ignored: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with every string (and number) leaf HMAC'd; map keys kept, ``ignored`` keys' values kept."""
    return _hash(value, h, frozenset(ignored))


def _hash(value: Any, h: Hasher, ignored: frozenset[str]) -> Any:
    t = type(value)
    if t is str:
        # an empty string reveals nothing; keeping it empty keeps "no value" readable
        return h(value) if value else value
    if t is dict:
        if ignored:
            return {k: (v if k in ignored else _hash(v, h, ignored)) for k, v in value.items()}
        return {k: _hash(v, h, ignored) for k, v in value.items()}
    if t is list or t is tuple:
        return [_hash(v, h, ignored) for v in value]
    if value is None or t is bool:
        return value
    if t is int or t is float:
        return h(_number_text(value))
    if isinstance(value, str):
        return h(str(value))
    if isinstance(value, dict):
        return _hash(dict(value), h, ignored)
    if isinstance(value, bytes):
        return h(crypto.b64encode(value))
    # anything else (a stray object): never risk writing it in clear
    return h(str(value))


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _auth(ctx: AuditContext, token: str, accessor: str) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "client_token": token,
        "accessor": accessor,
        "display_name": ctx.display_name,
        "policies": list(ctx.policies),
        "token_policies": list(ctx.token_policies),
        "identity_policies": list(ctx.identity_policies),
        "metadata": dict(ctx.metadata),
        "entity_id": ctx.entity_id,
        "token_type": ctx.token_type,
        "token_ttl": ctx.ttl,
    }
    if isinstance(ctx.issue_time, str):
        if ctx.issue_time:
            auth["token_issue_time"] = ctx.issue_time
    elif ctx.issue_time > 0:
        auth["token_issue_time"] = rfc3339_nano(int(ctx.issue_time * 1_000_000_000))
    return auth


def _request(ctx: AuditContext, h: Hasher, token: str, accessor: str) -> dict[str, Any]:
    req: dict[str, Any] = {
        "id": ctx.request_id,
        "operation": ctx.operation,
        "mount_point": ctx.mount_point,
        "mount_type": ctx.mount_type,
        "mount_accessor": ctx.mount_accessor,
        "client_token": token,
        "client_token_accessor": accessor,
        "namespace": {"id": "root"},
        "path": ctx.path,
        "remote_address": ctx.remote_addr,
    }
    if ctx.remote_port:
        req["remote_port"] = ctx.remote_port
    if ctx.data:
        req["data"] = hash_structure(ctx.data, h)
    return req


def _common(ctx: AuditContext, h: Hasher, hmac_accessor: bool, memo_key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    cached = ctx.memo.get(memo_key) if memo_key else None
    if cached is None:
        token = h(ctx.client_token) if ctx.client_token else ""
        accessor = (h(ctx.accessor) if hmac_accessor else ctx.accessor) if ctx.accessor else ""
        cached = (_auth(ctx, token, accessor), _request(ctx, h, token, accessor))
        if memo_key:
            ctx.memo[memo_key] = cached
    return cached


def request_entry(
    ctx: AuditContext, h: Hasher, hmac_accessor: bool = True, now: str | None = None, memo_key: str = ""
) -> dict[str, Any]:
    """``memo_key`` (a device's identity) lets the response entry reuse this entry's HMAC'd auth and request."""
    auth, request = _common(ctx, h, hmac_accessor, memo_key)
    return {"time": now or rfc3339_nano(), "type": "request", "auth": auth, "request": request, "error": ""}


def _response_auth(auth: dict[str, Any], ctx: AuditContext, h: Hasher, hmac_accessor: bool) -> dict[str, Any]:
    out = dict(auth)
    token = ctx.response_client_token or out.get("client_token") or ""
    accessor = ctx.response_accessor or out.get("accessor") or ""
    out["client_token"] = h(token) if token else ""
    out["accessor"] = (h(accessor) if hmac_accessor else accessor) if accessor else ""
    if "metadata" in out and out["metadata"] is not None:
        out["metadata"] = dict(out["metadata"])
    return out


def _wrap_info(info: dict[str, Any], h: Hasher, hmac_accessor: bool) -> dict[str, Any]:
    out = dict(info)
    if out.get("token"):
        out["token"] = h(out["token"])
    for name in ("accessor", "wrapped_accessor"):
        if hmac_accessor and out.get(name):
            out[name] = h(out[name])
    return out


def _response(response: dict[str, Any], ctx: AuditContext, h: Hasher, hmac_accessor: bool) -> dict[str, Any]:
    """``response`` is the envelope the client gets (data, auth, lease_id, wrap_info, warnings) or a bare object."""
    out: dict[str, Any] = {"mount_type": ctx.mount_type, "mount_accessor": ctx.mount_accessor}
    envelope = any(k in response for k in ("data", "auth", "lease_id", "wrap_info", "warnings", "secret"))
    data = response.get("data") if envelope else response
    if data is not None:
        out["data"] = hash_structure(data, h)
    if envelope:
        secret = response.get("secret")
        lease_id = (secret or {}).get("lease_id") if isinstance(secret, dict) else response.get("lease_id")
        if lease_id:
            out["secret"] = {"lease_id": lease_id}
        if isinstance(response.get("auth"), dict):
            out["auth"] = _response_auth(response["auth"], ctx, h, hmac_accessor)
        if isinstance(response.get("wrap_info"), dict):
            out["wrap_info"] = _wrap_info(response["wrap_info"], h, hmac_accessor)
        if response.get("warnings"):
            out["warnings"] = list(response["warnings"])
    if "auth" not in out and ctx.response_client_token:
        out["auth"] = _response_auth({}, ctx, h, hmac_accessor)
    return out


def response_entry(
    ctx: AuditContext,
    response: dict[str, Any] | None,
    error: str | None,
    h: Hasher,
    hmac_accessor: bool = True,
    now: str | None = None,
    memo_key: str = "",
) -> dict[str, Any]:
    auth, request = _common(ctx, h, hmac_accessor, memo_key)
    return {
        "time": now or rfc3339_nano(),
        "type": "response",
        "auth": auth,
        "request": request,
        "response": _response(response or {}, ctx, h, hmac_accessor),
        "error": error or "",
    }


def event_entry(source: str, event: dict[str, Any], request_id: str = "", now: str | None = None) -> dict[str, Any]:
    """An event reported by another Strongroom service (the MPA broker); such events carry no secrets by contract."""
    entry: dict[str, Any] = {"time": now or rfc3339_nano(), "type": "event", "source": source, "event": event}
    if request_id:
        entry["request_id"] = request_id
    return entry
