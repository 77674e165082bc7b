"""Response wrapping (Vault's ``X-Vault-Wrap-TTL``): a response handed out as a single-use token instead of in clear.

The guarantee: a wrapped response exists in exactly one place, the cubbyhole of its wrapping token, behind the barrier.
The token has the fixed ``response-wrapping`` ACL (unwrap, nothing else), one use, a TTL equal to the wrap TTL and no
renewal; unwrapping spends it, and its expiry revokes it, which destroys the cubbyhole. What the client and the audit
trail see instead of the response is ``wrap_info`` (token, accessor, ttl, creation_time, creation_path,
wrapped_accessor), whose token and accessors the audit devices HMAC.

The pipeline calls in three places: :func:`requested_ttl` on the way in (the header is parsed before anything else, so
policies with ``min_wrapping_ttl``/``max_wrapping_ttl`` can see it), :func:`check_wrapping_token` for the
``sys/wrapping/{lookup,unwrap,rewrap}`` paths (a bad wrapping token is a 400 before anything else happens), and
:func:`wrap_envelope` after the handler, before the response is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import orjson

from strongroom.core.acl import ACL, compile_acl
from strongroom.core.logical import InvalidRequest, LogicalError, PermissionDenied, Response
from strongroom.core.policy import parse_policy
from strongroom.core.tokens import WRAPPING_POLICY, TokenEntry
from strongroom.framework.durations import parse_duration

if TYPE_CHECKING:
    from strongroom.core.core import Core
    from strongroom.engines.cubbyhole import CubbyholeBackend

WRAP_TTL_HEADER = "x-vault-wrap-ttl"
INVALID_TOKEN = "wrapping token is not valid or does not exist"  # noqa: S105 - Vault's error text
# the paths whose token (header or body) must be a live wrapping token before the request goes any further
TOKEN_PATHS = frozenset({"sys/wrapping/lookup", "sys/wrapping/unwrap", "sys/wrapping/rewrap"})
REWRAP_PATH = "sys/wrapping/rewrap"

# Vault's built-in policy: fixed, and not a stored policy anyone could edit to widen what a wrapping token can do.
_POLICY_TEXT = """
path "cubbyhole/response" { capabilities = ["create", "read"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
"""
WRAPPING_ACL: ACL = compile_acl([parse_policy(WRAPPING_POLICY, _POLICY_TEXT)])


def requested_ttl(headers: dict[str, str]) -> int:
    """The wrap TTL the client asked for (a duration string or seconds), 0 when it asked for none."""
    raw = headers.get(WRAP_TTL_HEADER, "").strip()
    if not raw:
        return 0
    if raw.startswith("-"):
        raise InvalidRequest("requested wrap ttl cannot be negative")
    try:
        ttl = parse_duration(raw)
    except ValueError:
        raise InvalidRequest(f"error parsing wrap ttl: invalid duration {raw!r}") from None
    if ttl <= 0:
        raise InvalidRequest("requested wrap ttl must be at least one second")
    return ttl


def acl_for(entry: TokenEntry) -> ACL | None:
    """The fixed ACL of a wrapping token; None for every other token."""
    return WRAPPING_ACL if entry.is_wrapping else None


def _cubbyhole(core: Core) -> CubbyholeBackend:
    route = core.router.get("cubbyhole/")
    if route is None:
        raise LogicalError("no cubbyhole mount to hold wrapped responses")
    return route.backend  # type: ignore[return-value]


def presented_token(data: dict[str, Any], header_token: str) -> tuple[str, bool]:
    """The wrapping token of an unwrap/lookup/rewrap and whether a third party presented it (in the body)."""
    if "token" in data and data["token"] is not None:
        token = data["token"]
        if not isinstance(token, str):
            raise InvalidRequest("error validating wrapping token: could not decode token in request body")
        if not token:
            raise InvalidRequest("error validating wrapping token: empty token in request body")
        return token, True
    return header_token, False


async def wrapping_entry(core: Core, token: str) -> TokenEntry | None:
    """The live wrapping token for ``token``, or None. A spent token (its one use taken) counts as gone."""
    entry = await core.tokens.lookup(token) if token else None
    if entry is None or not entry.is_wrapping:
        return None
    return entry


async def check_wrapping_token(core: Core, path: str, data: dict[str, Any], header_token: str) -> None:
    """Vault's wrapping-token validation for the three token paths: 400 unless the token is a live wrapping token."""
    if path not in TOKEN_PATHS:
        return
    token, _ = presented_token(data, header_token)
    entry = await wrapping_entry(core, token)
    if entry is None or entry.num_uses < 0:
        raise InvalidRequest(INVALID_TOKEN)


def _rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def wrap_envelope(
    core: Core, body: dict[str, Any], *, path: str, ttl: int, resp: Response | None
) -> dict[str, Any]:
    """Store ``body`` (the response the client would have had) in a new wrapping token's cubbyhole; return what the
    client gets instead. A rewrap stores the original response again, under its original TTL and creation path."""
    creation_path = path
    if path == REWRAP_PATH and resp is not None and resp.data is not None:
        stored = str(resp.data["response"])
        ttl = int(resp.data["creation_ttl"])
        creation_path = str(resp.data["creation_path"])
    else:
        stored = orjson.dumps(body).decode()
    token, entry = await core.tokens.create_wrapping(ttl, creation_path)
    now = entry.creation_time
    try:
        cubby = _cubbyhole(core)
        await cubby.put_for_token(entry.hash, "response", {"response": stored})
        await cubby.put_for_token(
            entry.hash, "wrapinfo",
            {"creation_ttl": ttl, "creation_time": _rfc3339(now), "creation_path": creation_path},
        )
    except BaseException:
        await core.tokens.revoke_tree(entry.hash)  # never leave a wrapping token that unwraps to nothing
        raise
    wrapped_accessor = ""
    if resp is not None and resp.auth is not None:
        wrapped_accessor = resp.auth.accessor
    return {
        "request_id": body.get("request_id", ""),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": None,
        "wrap_info": {
            "token": token,
            "accessor": entry.accessor,
            "ttl": ttl,
            "creation_time": _rfc3339(now),
            "creation_path": creation_path,
            "wrapped_accessor": wrapped_accessor,
        },
        "warnings": None,
        "auth": None,
        "mount_type": body.get("mount_type", ""),
    }


def wants_wrapping(path: str, ttl: int) -> bool:
    return bool(ttl) or path == REWRAP_PATH


# --- what the sys/wrapping handlers need ---------------------------------------------------------------------------


async def _spend(core: Core, entry: TokenEntry, third_party: bool) -> None:
    """A third party's unwrap or rewrap spends the wrapping token here; the holder's own use was counted (and the
    token is revoked) by the pipeline."""
    if not third_party:
        return
    try:
        await core.tokens.use(entry)
    except PermissionDenied:
        raise InvalidRequest(INVALID_TOKEN) from None


async def unwrap(core: Core, token: str, third_party: bool) -> str:
    """The stored response (JSON text) of a wrapping token; the token is spent and, for a third party, revoked."""
    entry = await wrapping_entry(core, token)
    if entry is None:
        raise InvalidRequest(INVALID_TOKEN)
    await _spend(core, entry, third_party)
    try:
        stored = await _cubbyhole(core).get_for_token(entry.hash, "response")
    finally:
        if third_party:
            await core.tokens.revoke_tree(entry.hash)
    if stored is None or not isinstance(stored.get("response"), str):
        raise LogicalError("no information found; wrapping token may be from a previous Vault version")
    return str(stored["response"])


async def lookup(core: Core, token: str) -> dict[str, Any]:
    entry = await wrapping_entry(core, token)
    if entry is None:
        raise InvalidRequest(INVALID_TOKEN)
    info = await _cubbyhole(core).get_for_token(entry.hash, "wrapinfo")
    if info is None:
        raise InvalidRequest("no information found; wrapping token may be from a previous Vault version")
    return {k: info[k] for k in ("creation_ttl", "creation_time", "creation_path") if k in info}


async def rewrap(core: Core, token: str, third_party: bool) -> dict[str, Any]:
    """What the pipeline's wrap step needs to wrap the same response again under a new token."""
    entry = await wrapping_entry(core, token)
    if entry is None:
        raise InvalidRequest(INVALID_TOKEN)
    await _spend(core, entry, third_party)
    try:
        cubby = _cubbyhole(core)
        info = await cubby.get_for_token(entry.hash, "wrapinfo")
        stored = await cubby.get_for_token(entry.hash, "response")
    finally:
        if third_party:
            await core.tokens.revoke_tree(entry.hash)
    if info is None or stored is None:
        raise LogicalError("no information found; wrapping token may be from a previous Vault version")
    return {
        "response": stored["response"],
        "creation_ttl": info["creation_ttl"],
        "creation_path": info.get("creation_path", ""),
    }

