"""Short-lived child tokens, one per staff user, minted with the proxy's own (web-user bounded) token.

Each child token carries the staff user's ID as its display name and in its metadata, so the server's audit trail
names the person behind every request that came through the proxy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

# mint a fresh token when less than this share of the TTL is left, so a request never carries a dying token
_REFRESH_AT = 0.25
_MAX_CACHED = 10_000


class UpstreamRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Child:
    token: str
    expires_at: float
    ttl: int


class ChildTokens:
    def __init__(
        self,
        http: httpx.AsyncClient,
        proxy_token: Callable[[], Awaitable[str]],
        policies: tuple[str, ...],
        ttl: int,
    ) -> None:
        self._http = http
        self._proxy_token = proxy_token
        self.policies = policies
        self.ttl = ttl
        self._cache: dict[str, _Child] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def for_user(self, user_id: str, idp_expires_at: float) -> str:
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            now = time.time()
            cached = self._cache.get(user_id)
            if cached is not None and cached.expires_at - now > cached.ttl * _REFRESH_AT:
                return cached.token
            # never let the child outlive the staff session that asked for it
            ttl = int(min(self.ttl, max(30, idp_expires_at - now)))
            child = await self._mint(user_id, ttl)
            if len(self._cache) >= _MAX_CACHED:
                self._evict(now)
            self._cache[user_id] = child
            return child.token

    def _evict(self, now: float) -> None:
        for user in [u for u, c in self._cache.items() if c.expires_at <= now]:
            self._cache.pop(user, None)
            self._locks.pop(user, None)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()

    def forget(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    async def _mint(self, user_id: str, ttl: int) -> _Child:
        body = {
            "policies": list(self.policies),
            "display_name": user_id,
            "meta": {"staff_user": user_id, "via": "staff-proxy"},
            "ttl": f"{ttl}s",
            "explicit_max_ttl": f"{ttl}s",
            "renewable": False,
            # the default policy lets a token look itself up, renew and revoke itself, and more; a child gets only
            # web-user, which grants the one lookup the proxy needs
            "no_default_policy": True,
        }
        try:
            resp = await self._http.post(
                "auth/token/create", json=body, headers={"X-Vault-Token": await self._proxy_token()}
            )
        except httpx.HTTPError:
            raise UpstreamRefused(502, "the secrets server is unreachable") from None
        if resp.status_code != 200:
            status = 503 if resp.status_code >= 500 else 502
            raise UpstreamRefused(status, f"the secrets server refused a token for this user ({resp.status_code})")
        auth = resp.json().get("auth") or {}
        lease = int(auth.get("lease_duration") or ttl)
        return _Child(token=auth["client_token"], expires_at=time.time() + lease, ttl=lease)
