"""The token store: tokens exist only as salted hashes behind the barrier.

A token's secret ID (``hvs.`` + 24 base62 characters) is shown to its holder once and never stored: entries live at
``id/<HMAC-SHA256(salt, token)>``, accessors at ``accessor/<HMAC(salt, accessor)>``, children at
``parent/<parent hash>/<child hash>``. Looking a token up is one keyed read; the stored hash is then compared in
constant time.

Batch tokens (``hvb.`` + base64url) are the exception that proves the rule: they are never stored. The token *is* its
entry, sealed with AES-256-GCM under a key that lives behind the barrier (``batch-key``, made once like the salt), so
nothing about them can be forged, read or changed without the unsealed server. That makes them cheap — no write per
login — and unrevocable: they die only with their embedded TTL or, when they have one, their parent.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson

from strongroom import crypto
from strongroom.core import request_txn
from strongroom.core.barrier import BarrierView
from strongroom.core.logical import InvalidRequest, PermissionDenied

SERVICE_PREFIX = "hvs."
BATCH_PREFIX = "hvb."
# a batch token's entry hash: never a storage key that exists, and recognisable where only the hash travels
BATCH_HASH_PREFIX = "batch."
WRAPPING_POLICY = "response-wrapping"
_BATCH_AAD = b"strongroom batch token v1"
_MAX_BATCH_TOKEN = 8192
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
    def is_batch(self) -> bool:
        return self.type == "batch"

    @property
    def is_wrapping(self) -> bool:
        """A response-wrapping token: made only by :meth:`TokenStore.create_wrapping`, never by a policy name."""
        return self.policies == [WRAPPING_POLICY] and bool(self.internal_data.get("wrapping"))

    @property
    def lease_holder(self) -> str:
        """Whose revocation takes this token's leases along: a batch token has no storage, so its parent (if any)."""
        return self.parent_hash if self.is_batch else self.hash

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
        self._batch_key: bytes = b""
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
        batch_key = await self.view.get("batch-key")
        if batch_key is None:
            batch_key = crypto.new_key()
            await self.view.put("batch-key", batch_key)
        self._batch_key = batch_key

    async def stop(self) -> None:
        self._cache.clear()
        self._salt = b""
        self._hmac = None
        self._batch_key = b""

    def hash_token(self, token: str) -> str:
        assert self._hmac is not None
        return self._hmac.hexdigest(b"token:" + token.encode())

    def _hash_accessor(self, accessor: str) -> str:
        assert self._hmac is not None
        return self._hmac.hexdigest(b"accessor:" + accessor.encode())

    # --- read ---------------------------------------------------------------------------------------------------

    async def _entry(self, token_hash: str) -> TokenEntry | None:
        # the cache holds committed entries only: this request's own uncommitted change is read from its write set
        pending = self.view.has_pending(f"id/{token_hash}")
        cached = None if pending else self._cache.get(token_hash)
        if cached is not None:
            return cached
        raw = await self.view.get_json(f"id/{token_hash}")
        if raw is None:
            return None
        entry = TokenEntry(**raw)
        if pending:
            return entry
        self._cache[token_hash] = entry
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return entry

    async def lookup(self, token: str) -> TokenEntry | None:
        """The live entry for a token's secret ID, or None (unknown, malformed or expired)."""
        if token.startswith(BATCH_PREFIX):
            return await self._lookup_batch(token)
        if not token or len(token) > 256 or not token.isascii():
            return None
        token_hash = self.hash_token(token)
        entry = await self._entry(token_hash)
        if entry is None or not crypto.constant_time_eq(entry.hash, token_hash):
            return None
        if entry.expire_time and entry.expire_time <= time.time():
            return None
        return entry

    async def _lookup_batch(self, token: str) -> TokenEntry | None:
        """Open a batch token; expired, tampered, foreign or orphaned-by-revocation tokens are None (Vault's rules)."""
        if len(token) > _MAX_BATCH_TOKEN or not token.isascii() or not self._batch_key:
            return None
        raw = token[len(BATCH_PREFIX) :]
        try:
            blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            doc = orjson.loads(crypto.open_sealed(self._batch_key, blob, _BATCH_AAD))
            entry = _batch_entry(doc, self._batch_hash(token))
        except (ValueError, TypeError, KeyError, crypto.DecryptionError, orjson.JSONDecodeError):
            return None
        if entry.expire_time <= time.time():
            return None
        if doc.get("pa"):
            parent = await self.lookup_accessor(doc["pa"])
            if parent is None:
                return None  # a child dies with its parent, even one that was never stored
            entry.parent_hash = parent.hash
        self._remember(entry)
        return entry

    def _batch_hash(self, token: str) -> str:
        return BATCH_HASH_PREFIX + self.hash_token(token)

    def _remember(self, entry: TokenEntry) -> None:
        self._cache[entry.hash] = entry
        self._cache.move_to_end(entry.hash)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

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
        token_type: str = "service",  # noqa: S107 - a token kind, not a secret
    ) -> tuple[str, TokenEntry]:
        if token_type == "batch":  # noqa: S105 - a token kind, not a secret
            return self._create_batch(
                policies=policies, parent=parent, ttl=ttl, meta=meta, display_name=display_name, path=path,
                entity_id=entity_id, role_name=role_name, mount_accessor=mount_accessor, default_ttl=default_ttl,
                max_ttl=max_ttl, bound_cidrs=bound_cidrs,
            )
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
        request_txn.after_commit(lambda: self._remember(entry))
        if entry.expire_time and self.on_expiry_changed is not None:
            await self.on_expiry_changed(token_hash, entry.expire_time)
        return token, entry

    def _create_batch(
        self, *, policies: list[str], parent: TokenEntry | None, ttl: int, meta: dict[str, str] | None,
        display_name: str, path: str, entity_id: str, role_name: str, mount_accessor: str, default_ttl: int,
        max_ttl: int, bound_cidrs: list[str] | None,
    ) -> tuple[str, TokenEntry]:
        """Seal the entry into the token itself: nothing is written, so there is nothing to revoke or renew."""
        if "root" in policies:
            raise InvalidRequest("batch tokens cannot be root tokens")
        now = time.time()
        effective = min(ttl or default_ttl, max_ttl or SYSTEM_MAX_TTL, SYSTEM_MAX_TTL)
        entry = TokenEntry(
            hash="",
            accessor="",
            policies=sorted(set(policies)),
            parent_hash=parent.hash if parent else "",
            meta=dict(meta or {}),
            display_name=display_name,
            creation_time=now,
            issue_time=now,
            ttl=effective,
            path=path,
            entity_id=entity_id,
            type="batch",
            renewable=False,
            expire_time=now + effective,
            role_name=role_name,
            mount_accessor=mount_accessor,
            bound_cidrs=list(bound_cidrs or []),
            max_ttl=effective,
        )
        doc = _batch_doc(entry, parent.accessor if parent else "")
        blob = crypto.seal(self._batch_key, orjson.dumps(doc), _BATCH_AAD)
        token = BATCH_PREFIX + base64.urlsafe_b64encode(blob).decode().rstrip("=")
        entry.hash = self._batch_hash(token)
        self._remember(entry)
        return token, entry

    async def create_wrapping(self, ttl: int, path: str) -> tuple[str, TokenEntry]:
        """A single-use orphan token whose only power is to unwrap what its cubbyhole holds (Vault's wrapping token)."""
        return await self.create(
            policies=[WRAPPING_POLICY],
            parent=None,
            ttl=ttl,
            explicit_max_ttl=ttl,
            num_uses=1,
            display_name="",
            path=path,
            renewable=False,
            internal_data={"wrapping": True},
            default_ttl=ttl,
            max_ttl=ttl,
        )

    async def _save(self, entry: TokenEntry) -> None:
        """Store a changed entry. Callers pass a copy (``replace``), never the cached object: a request that is
        discarded must leave the cache as it was."""
        await self.view.put_json(f"id/{entry.hash}", asdict(entry))
        request_txn.after_commit(lambda: self._remember(entry))

    async def use(self, entry: TokenEntry) -> bool:
        """Count one use of a limited-use token; True when that was its last use (the caller revokes it after)."""
        if entry.num_uses == 0:
            return False
        # held until this request commits or is discarded: the next user of the token counts from the outcome
        async with self.view.lock(f"id/{entry.hash}"):
            # from storage, and checked again at commit: another worker of the node may be counting the same token
            raw = await self.view.get_guarded_json(f"id/{entry.hash}")
            current = None if raw is None else TokenEntry(**raw)
            if current is None or current.num_uses < 0:
                raise PermissionDenied()  # another request spent the last use while this one was on its way
            left = current.num_uses - 1
            # -1: spent, refuse any further use even before revocation completes
            updated = replace(current, num_uses=left if left > 0 else -1)
            await self._save(updated)
        return updated.num_uses == -1

    # --- renew --------------------------------------------------------------------------------------------------

    async def renew(self, entry: TokenEntry, increment: int, max_ttl: int = SYSTEM_MAX_TTL) -> TokenEntry:
        if entry.is_batch:
            raise InvalidRequest("batch tokens cannot be renewed")
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
        entry = replace(entry, expire_time=expire)
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
                await self._save(replace(entry, parent_hash=""))
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
        request_txn.after_commit(lambda: self._cache.pop(token_hash, None))

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


# A batch token's plaintext: short keys, empty values left out, the parent by accessor (shorter than its hash and
# still checked on every use), so tokens stay a few hundred characters like Vault's.
_BATCH_KEYS = {
    "pol": "policies", "m": "meta", "dn": "display_name", "path": "path", "e": "entity_id", "r": "role_name",
    "ma": "mount_accessor", "c": "bound_cidrs",
}


def _batch_doc(entry: TokenEntry, parent_accessor: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"ct": round(entry.creation_time, 3), "ttl": entry.ttl}
    if parent_accessor:
        doc["pa"] = parent_accessor
    for short, name in _BATCH_KEYS.items():
        value = getattr(entry, name)
        if value:
            doc[short] = value
    return doc


def _batch_entry(doc: dict[str, Any], token_hash: str) -> TokenEntry:
    created, ttl = float(doc["ct"]), int(doc["ttl"])
    fields = {name: doc[short] for short, name in _BATCH_KEYS.items() if short in doc}
    return TokenEntry(
        hash=token_hash, accessor="", type="batch", renewable=False, creation_time=created, issue_time=created,
        ttl=ttl, max_ttl=ttl, expire_time=created + ttl, **{"policies": [], **fields},
    )
