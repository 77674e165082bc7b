"""The policy store: named ACL policies in the barrier, and compiled ACLs cached for the request path.

A request's cost depends only on its token's own policies. Compiled ACLs are cached in two halves: the part that does
not depend on identity, keyed by the sorted policy names (shared by every token with those policies), and — only for
policies with ``{{identity…}}`` templates — a small per-identity overlay keyed by (policy names, entity id) and checked
against the identity it was built for. Nothing scans the store: policies load on first use, and any policy change
drops the compiled caches.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from strongroom.core import request_txn
from strongroom.core.acl import (
    ACL,
    DENY_ALL_ACL,
    ROOT_ACL,
    BaseAcl,
    IdentityContext,
    compile_base,
    compile_for_identity,
)
from strongroom.core.policy import Policy, PolicyError, parse_policy

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView

IdentityResolver = Callable[[str], Awaitable[IdentityContext | None]]

_POLICY_CACHE = 4096
_BASE_CACHE = 4096
_IDENTITY_CACHE = 16384  # a few KB each; a miss costs one overlay compile (tens of µs)

DEFAULT_POLICY = """\
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own entity by id or name
path "identity/entity/id/{{identity.entity.id}}" {
  capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
  capabilities = ["read"]
}

# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body; old path for
# old clients, new path for newer
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}

# Allow checking the status of a Control Group request if the user has the
# accessor
path "sys/control-group/request" {
    capabilities = ["update"]
}

# Allow a token to make requests to the Authorization Endpoint for OIDC providers.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
"""

ROOT_POLICY = Policy(name="root", raw="")


def normalize_name(name: str) -> str:
    """Vault lower-cases policy names. Surrounding whitespace is refused rather than trimmed: the ACL authorised the
    name as sent, so a trimmed name could reach a policy that a deny rule on its exact path protects."""
    if name != name.strip():
        raise PolicyError("policy names cannot begin or end with whitespace")
    return name.lower()


def validate_name(name: str) -> None:
    if not name:
        raise PolicyError("policy name must be provided in the URL")
    if len(name) > 512:
        raise PolicyError("policy name is too long")
    if (any(ord(c) < 0x20 or c == "\x7f" for c in name) or ".." in name.split("/") or name.startswith("/")
            or name.endswith("/")):
        raise PolicyError("invalid policy name")


def _key(name: str) -> str:
    # one flat storage key per policy, even for names with "/" in them
    return quote(name, safe="")


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def hit(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class PolicyStore:
    def __init__(self, view: BarrierView) -> None:
        self._view = view
        self.identity_resolver: IdentityResolver | None = None
        self._policies = _Lru(_POLICY_CACHE)  # name -> Policy, or False for "not stored"
        self._bases = _Lru(_BASE_CACHE)  # sorted names -> BaseAcl
        self._acls = _Lru(_IDENTITY_CACHE)  # (sorted names, entity id) -> (identity, ACL)
        self._names = _Lru(_BASE_CACHE)  # policy names as tokens carry them -> sorted, normalised
        self._generation = 0

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Install the built-in ``default`` policy on first start; everything else loads on demand."""
        if await self._view.get(_key("default")) is None:
            await self._write("default", DEFAULT_POLICY)

    async def stop(self) -> None:
        self.invalidate()

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached policies and compiled ACLs (all, or those of one changed policy's name)."""
        self._generation += 1
        if name is None:
            self._policies.clear()
        else:
            self._policies.pop(name.strip().lower(), None)
        self._bases.clear()
        self._acls.clear()

    # --- CRUD ---------------------------------------------------------------------------------------------------

    async def get(self, name: str) -> Policy | None:
        name = name.strip().lower()
        if name == "root":
            return ROOT_POLICY
        cached = self._policies.hit(name)
        if cached is not None:
            return cached or None
        try:
            validate_name(name)
        except PolicyError:
            return None
        generation = self._generation
        doc = await self._view.get_json(_key(name))
        policy: Policy | None = None
        if doc is not None:
            try:
                policy = await asyncio.to_thread(parse_policy, name, doc["policy"])
            except PolicyError:
                policy = None  # stored before a stricter parser; it grants nothing rather than failing requests
        if generation == self._generation:
            self._policies.put(name, policy or False)
        return policy

    async def set(self, name: str, text: str) -> Policy:
        """Validate and store a policy; raises PolicyError (a 400) for bad text or a forbidden name."""
        name = normalize_name(name)
        validate_name(name)
        if name == "root":
            raise PolicyError('cannot update "root" policy')
        # parsing is pure CPU (about a millisecond per stanza); keep it off the event loop
        policy = await asyncio.to_thread(parse_policy, name, text)
        await self._write(name, text)
        return policy

    async def _write(self, name: str, text: str) -> None:
        await self._view.put_json(_key(name), {"name": name, "policy": text, "modified": time.time()})
        request_txn.after_commit(lambda: self.invalidate(name))

    async def delete(self, name: str) -> None:
        name = normalize_name(name)
        if name == "root":
            raise PolicyError('cannot delete "root" policy')
        if name == "default":
            raise PolicyError('cannot delete "default" policy')
        validate_name(name)
        await self._view.delete(_key(name))
        request_txn.after_commit(lambda: self.invalidate(name))

    async def list_names(self, after: str = "", limit: int = 0) -> list[str]:
        """Stored policy names in order (``root`` is not stored; callers add it where Vault shows it)."""
        keys = await self._view.list("", _key(normalize_name(after)) if after else "", limit)
        return [unquote(k) for k in keys if not k.endswith("/")]

    # --- ACLs ---------------------------------------------------------------------------------------------------

    async def acl_for(self, policies: Iterable[str], entity_id: str = "") -> ACL:
        given = tuple(policies)
        names = self._names.get(given)
        if names is None:
            names = tuple(sorted({p.strip().lower() for p in given}))
            self._names.put(given, names)
        if "root" in names:
            return ROOT_ACL if len(names) == 1 else DENY_ALL_ACL
        now = time.time()
        base: BaseAcl | None = self._bases.hit(names)
        if base is None or _expired(base.acl, now):
            base = await self._compile_base(names, now)
        if not base.templated:
            return base.acl
        ident = await self.identity_resolver(entity_id) if entity_id and self.identity_resolver else None
        key = (names, entity_id)
        cached = self._acls.hit(key)
        if cached is not None:
            seen, acl = cached
            if (seen is ident or seen == ident) and not _expired(acl, now):
                return acl
        generation = self._generation
        acl = compile_for_identity(base, ident, now)
        if not acl.volatile and generation == self._generation:
            self._acls.put(key, (ident, acl))
        return acl

    async def _compile_base(self, names: tuple[str, ...], now: float) -> BaseAcl:
        generation = self._generation
        policies = [p for p in [await self.get(n) for n in names] if p is not None]
        base = compile_base(policies, now)
        if generation == self._generation:
            self._bases.put(names, base)
        return base


def _expired(acl: ACL, now: float) -> bool:
    return acl.expires_at is not None and acl.expires_at <= now
