"""The token store: tokens exist only as salted hashes behind the barrier.

A token's secret ID (``hvs.`` + 24 base62 characters) is shown to its holder once and never stored: entries live at
``id/<HMAC-SHA256(salt, token)>``, accessors at ``accessor/<HMAC(salt, accessor)>``, children at
``parent/<parent hash>/<child hash>``. Looking a token up is one keyed read; the stored hash is then compared in
constant time.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from strongroom import crypto
from strongroom.core.barrier import BarrierView
from strongroom.core.logical import InvalidRequest, PermissionDenied

SERVICE_PREFIX = "hvs."
TOKEN_LENGTH = 24
SYSTEM_MAX_TTL = 32 * 24 * 3600  # Vault's default max lease TTL
_CACHE_SIZE = 50_000


@dataclass
class TokenEntry:
    hash: str
    accessor: str
    policies: list[str]
    parent_hash: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    display_name: str = "token"
    num_uses: int = 0
    creation_time: float = 0.0
    ttl: int = 0  # the TTL the token was created or last renewed with
    explicit_max_ttl: int = 0
    period: int = 0
    path: str = "auth/token/create"
    entity_id: str = ""
    type: str = "service"
    renewable: bool = True
    expire_time: float = 0.0  # 0: never
    issue_time: float = 0.0
    role_name: str = ""
    mount_accessor: str = ""
    internal_data: dict[str, Any] = field(default_factory=dict)
    no_identity_policies: bool = False
    bound_cidrs: list[str] = field(default_factory=list)
    max_ttl: int = 0  # the role's or mount's max TTL at creation: renewals never go past issue_time + max_ttl

    @property
    def orphan(self) -> bool:
        return not self.parent_hash

    @property
    def is_root(self) -> bool:
        return "root" in self.policies

    def ttl_remaining(self, now: float | None = None) -> int:
        if not self.expire_time:
            return 0
        return max(0, int(round(self.expire_time - (now or time.time()))))

    def max_expire_time(self) -> float:
        caps = []
        if self.explicit_max_ttl:
            caps.append(self.issue_time + self.explicit_max_ttl)
        if self.max_ttl and not self.period:
            caps.append(self.issue_time + self.max_ttl)
        if not self.period and not self.is_root:
            caps.append(self.issue_time + SYSTEM_MAX_TTL)
        return min(caps) if caps else 0.0


class TokenStore:
    def __init__(self, view: BarrierView) -> None:
        self.view = view
        self._salt: bytes = b""
        self._hmac: crypto.HmacKey | None = None
        self._cache: OrderedDict[str, TokenEntry] = OrderedDict()
        # set by the core: revoke a token's leases, schedule/cancel its expiry
        self.on_revoke: Callable[[str], Awaitable[None]] | None = None
        self.on_expiry_changed: Callable[[str, float], Awaitable[None]] | None = None

    async def load(self) -> None:
        salt = await self.view.get("salt")
        if salt is None:
            salt = crypto.new_key()
            await self.view.put("salt", salt)
        self._salt = salt
        self._hmac = crypto.HmacKey(salt)

    async def stop(self) -> None:
        self._cache.clear()
        self._salt = b""
        self._hmac = None

    def hash_token(self, token: str) -> str:
        assert self._hmac is not None
        return self._hmac.hexdigest(b"token:" + token.encode())

    def _hash_accessor(self, accessor: str) -> str:
        assert self._hmac is not None
        return self._hmac.hexdigest(b"accessor:" + accessor.encode())

    # --- read ---------------------------------------------------------------------------------------------------

    async def _entry(self, token_hash: str) -> TokenEntry | None:
        cached = self._cache.get(token_hash)
        if cached is not None:
            return cached
        raw = await self.view.get_json(f"id/{token_hash}")
        if raw is None:
            return None
        entry = TokenEntry(**raw)
        self._cache[token_hash] = entry
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return entry

    async def lookup(self, token: str) -> TokenEntry | None:
        """The live entry for a token's secret ID, or None (unknown, malformed or expired)."""
        if not token or len(token) > 256 or not token.isascii():
            return None
        token_hash = self.hash_token(token)
        entry = await self._entry(token_hash)
        if entry is None or not crypto.constant_time_eq(entry.hash, token_hash):
            return None
        if entry.expire_time and entry.expire_time <= time.time():
            return None
        return entry

    async def lookup_hash(self, token_hash: str) -> TokenEntry | None:
        entry = await self._entry(token_hash)
        if entry is None or (entry.expire_time and entry.expire_time <= time.time()):
            return None
        return entry

    async def lookup_accessor(self, accessor: str) -> TokenEntry | None:
        if not accessor or len(accessor) > 128:
            return None
        ref = await self.view.get_json(f"accessor/{self._hash_accessor(accessor)}")
        if ref is None:
            return None
        entry = await self.lookup_hash(ref["hash"])
        if entry is None or not crypto.constant_time_eq(entry.accessor, accessor):
            return None
        return entry

    async def list_accessors(self, after: str = "", limit: int = 0) -> list[str]:
        out = []
        for key in await self.view.list("accessor/", after, limit):
            ref = await self.view.get_json(f"accessor/{key}")
            if ref is not None:
                out.append(ref["accessor"])
        return out

    # --- create -------------------------------------------------------------------------------------------------

    async def create(
        self,
        *,
        policies: list[str],
        parent: TokenEntry | None,
        ttl: int = 0,
        explicit_max_ttl: int = 0,
        period: int = 0,
        num_uses: int = 0,
        meta: dict[str, str] | None = None,
        display_name: str = "token",
        path: str = "auth/token/create",
        entity_id: str = "",
        renewable: bool = True,
        role_name: str = "",
        mount_accessor: str = "",
        internal_data: dict[str, Any] | None = None,
        token_id: str = "",
        default_ttl: int = SYSTEM_MAX_TTL,
        max_ttl: int = SYSTEM_MAX_TTL,
        bound_cidrs: list[str] | None = None,
    ) -> tuple[str, TokenEntry]:
        token = token_id or SERVICE_PREFIX + crypto.random_base62(TOKEN_LENGTH)
        token_hash = self.hash_token(token)
        if token_id and await self.view.get(f"id/{token_hash}") is not None:
            raise InvalidRequest("cannot create a token with a duplicate ID")
        accessor = crypto.random_base62(TOKEN_LENGTH)
        now = time.time()
        is_root = "root" in policies
        if period:
            effective = period
        elif is_root and not ttl and not explicit_max_ttl:
            effective = 0
        else:
            effective = ttl or default_ttl
            effective = min(effective, max_ttl or SYSTEM_MAX_TTL)
        if explicit_max_ttl and (effective == 0 or effective > explicit_max_ttl):
            effective = explicit_max_ttl
        entry = TokenEntry(
            hash=token_hash,
            accessor=accessor,
            policies=sorted(set(policies)),
            parent_hash=parent.hash if parent else "",
            meta=dict(meta or {}),
            display_name=display_name,
            num_uses=num_uses,
            creation_time=now,
            issue_time=now,
            ttl=effective,
            explicit_max_ttl=explicit_max_ttl,
            period=period,
            path=path,
            entity_id=entity_id,
            renewable=renewable and effective > 0,
            expire_time=now + effective if effective else 0.0,
            role_name=role_name,
            mount_accessor=mount_accessor,
            internal_data=dict(internal_data or {}),
            bound_cidrs=list(bound_cidrs or []),
            max_ttl=0 if is_root and not ttl else min(max_ttl or SYSTEM_MAX_TTL, SYSTEM_MAX_TTL),
        )
        puts: dict[str, Any] = {
            f"id/{token_hash}": asdict(entry),
            f"accessor/{self._hash_accessor(accessor)}": {"hash": token_hash, "accessor": accessor},
        }
        if parent is not None:
            puts[f"parent/{parent.hash}/{token_hash}"] = {}
        await self.view.transaction(puts)
        self._cache[token_hash] = entry
        if entry.expire_time and self.on_expiry_changed is not None:
            await self.on_expiry_changed(token_hash, entry.expire_time)
        return token, entry

    async def _save(self, entry: TokenEntry) -> None:
        await self.view.put_json(f"id/{entry.hash}", asdict(entry))
        self._cache[entry.hash] = entry

    async def use(self, entry: TokenEntry) -> bool:
        """Count one use of a limited-use token; True when that was its last use (the caller revokes it after)."""
        if entry.num_uses == 0:
            return False
        async with self.view.lock(f"id/{entry.hash}"):
            if entry.num_uses < 0:
                raise PermissionDenied()  # another request spent the last use while this one was on its way
            entry.num_uses -= 1
            if entry.num_uses == 0:
                entry.num_uses = -1  # spent: refuse any further use even before revocation completes
            await self._save(entry)
        return entry.num_uses == -1

    # --- renew --------------------------------------------------------------------------------------------------

    async def renew(self, entry: TokenEntry, increment: int, max_ttl: int = SYSTEM_MAX_TTL) -> TokenEntry:
        if not entry.expire_time:
            return entry  # root and other non-expiring tokens have nothing to renew
        if not entry.renewable:
            raise InvalidRequest("lease is not renewable")
        now = time.time()
        if entry.period:
            new_ttl = entry.period
        else:
            new_ttl = increment or entry.ttl
            new_ttl = min(new_ttl, max_ttl or SYSTEM_MAX_TTL)
        expire = now + new_ttl
        cap = entry.max_expire_time()
        if cap and expire > cap:
            expire = cap
        entry.expire_time = expire
        await self._save(entry)
        if self.on_expiry_changed is not None:
            await self.on_expiry_changed(entry.hash, entry.expire_time)
        return entry

    # --- revoke -------------------------------------------------------------------------------------------------

    async def revoke_tree(self, token_hash: str) -> None:
        """Revoke a token, all its descendants and all their leases (children first, like Vault)."""
        stack = [token_hash]
        order: list[str] = []
        while stack:
            h = stack.pop()
            order.append(h)
            stack.extend(c for c in await self.view.list_all(f"parent/{h}/") if not c.endswith("/"))
        for h in reversed(order):
            await self._revoke_one(h)

    async def revoke_orphan(self, token_hash: str) -> None:
        """Revoke only this token; its children live on as orphans."""
        for child in await self.view.list_all(f"parent/{token_hash}/"):
            entry = await self._entry(child)
            if entry is not None:
                entry.parent_hash = ""
                await self._save(entry)
        await self._revoke_one(token_hash)

    async def _revoke_one(self, token_hash: str) -> None:
        entry = await self._entry(token_hash)
        if self.on_revoke is not None:
            await self.on_revoke(token_hash)
        puts: dict[str, Any] = {f"id/{token_hash}": None}
        for child in await self.view.list_all(f"parent/{token_hash}/"):
            puts[f"parent/{token_hash}/{child}"] = None
        if entry is not None:
            puts[f"accessor/{self._hash_accessor(entry.accessor)}"] = None
            if entry.parent_hash:
                puts[f"parent/{entry.parent_hash}/{token_hash}"] = None
        await self.view.transaction(puts)
        self._cache.pop(token_hash, None)

    async def tidy(self) -> int:
        """Remove accessor and parent index records that point at tokens that no longer exist."""
        removed = 0
        for key in await self.view.list_all("accessor/"):
            ref = await self.view.get_json(f"accessor/{key}")
            if ref is not None and await self.view.get(f"id/{ref['hash']}") is None:
                await self.view.delete(f"accessor/{key}")
                removed += 1
        await asyncio.sleep(0)
        return removed
