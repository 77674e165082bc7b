"""The expiration (lease) manager: every lease and token expiry, stored behind the barrier and revoked on time.

Storage layout (all under the manager's own view, ``sys/expire/``):

- ``id/<lease id>``: the lease entry. Lease ids are ``<request path>/<random>``, so the tree mirrors the request
  paths and LIST / revoke-prefix walk one branch, never everything.
- ``token/<token hash>/<sha256(lease id)>``: index from a token to its leases, so revoking a token touches only its own.
- ``irrevocable/<sha256(lease id)>``: leases whose revocation keeps failing; listed, retried, never dropped.
- ``token-exp/<token hash>``: when a token expires; the token store registers it and is called back on expiry.

Scheduling is one min-heap of ``(due time, seq, key)`` shared by leases and tokens, plus one task that sleeps until the
earliest due time and is woken early when a nearer entry arrives. Registering costs O(log n); a renewal pushes a new
heap item and the old one is skipped when popped (``_scheduled`` holds the one valid time per key). A due item is only a
reminder: the job re-reads storage under the lease's lock and revokes, reschedules or does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import heapq
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from strongroom import backoff, crypto
from strongroom.core import request_txn
from strongroom.core.barrier import BarrierView
from strongroom.core.logical import (
    InvalidRequest,
    LogicalError,
    Response,
    Secret,
    UnsupportedOperation,
    UnsupportedPath,
)
from strongroom.framework.durations import format_duration

log = logging.getLogger(__name__)

_LEASES = "id/"
_TOKEN_INDEX = "token/"  # noqa: S105 - a storage prefix, not a credential
_TOKEN_EXPIRY = "token-exp/"  # noqa: S105
_IRREVOCABLE = "irrevocable/"
_PAGE = 500
_MAX_ERROR_LEN = 240  # Vault's maxIrrevocableErrorLength
DEFAULT_MAX_TTL = 768 * 3600  # Vault's system default max lease TTL (32 days)
TOKEN_LENGTH = 24  # length of the random part of a lease id, as Vault's


@dataclass
class Backoff:
    """Retry timing for failed revocations: ``base`` doubling per attempt up to ``cap``, with +-``jitter`` spread.

    After ``max_attempts`` failures a lease is marked irrevocable (listed for operators) and is still retried, the
    delay doubling on up to ``cap``.
    """

    base: float = 1.0
    cap: float = 300.0
    jitter: float = 0.1
    max_attempts: int = 6

    def delay(self, attempts: int) -> float:
        return backoff.delay(attempts - 1, base=self.base, cap=self.cap, jitter=(1 - self.jitter, 1 + self.jitter))


DEFAULT_BACKOFF = Backoff()


@dataclass(slots=True)
class LeaseEntry:
    """One lease as stored.

    ``secret`` is the backend's Secret as a dict (``lease_type``, ``ttl``, ``max_ttl``, ``renewable``,
    ``internal_data``): what its renew/revoke callbacks need. ``internal_data`` is never shown to clients.
    """

    lease_id: str
    path: str  # the full request path that created it, e.g. ``database/creds/ro``
    mount_path: str  # ``database/``
    token_hash: str
    secret: dict[str, Any]
    issue_time: float
    expire_time: float
    max_expire_time: float
    last_renewal_time: float | None = None
    revoke_attempts: int = 0
    last_error: str = ""
    last_attempt_time: float | None = None
    irrevocable: bool = False

    @property
    def lease_type(self) -> str:
        return str(self.secret.get("lease_type", ""))

    @property
    def ttl(self) -> int:
        """The TTL as issued: the default increment of a renewal."""
        return int(self.secret.get("ttl", 0))

    @property
    def max_ttl(self) -> int:
        return int(self.secret.get("max_ttl", 0))

    @property
    def renewable(self) -> bool:
        return bool(self.secret.get("renewable", True))

    @property
    def internal_data(self) -> dict[str, Any]:
        return dict(self.secret.get("internal_data") or {})

    @property
    def relative_path(self) -> str:
        """The path inside the mount, for routing the revoke/renew request to the owning backend."""
        return self.path[len(self.mount_path) :] if self.path.startswith(self.mount_path) else self.path

    def to_secret(self) -> Secret:
        return Secret(
            lease_type=self.lease_type,
            ttl=self.ttl,
            max_ttl=self.max_ttl,
            renewable=self.renewable,
            internal_data=self.internal_data,
            lease_id=self.lease_id,
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LeaseEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})


RevokeFn = Callable[[LeaseEntry], Awaitable[None]]
RenewFn = Callable[[LeaseEntry, int], Awaitable[Response | None]]
TokenExpiredFn = Callable[[str], Awaitable[None]]
TokenExistsFn = Callable[[str], Awaitable[bool]]


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _valid_id(value: str) -> bool:
    """A lease id or prefix that maps to exactly one storage key (no traversal, no empty segments)."""
    return bool(value) and not value.startswith("/") and "//" not in value and ".." not in value.split("/")


def _describe(err: BaseException, timeout: float) -> str:
    """An error's text for the lease record and the operator; LogicalError messages are safe by contract."""
    if isinstance(err, LogicalError):
        text = "; ".join(err.messages) or type(err).__name__
    elif isinstance(err, TimeoutError):
        text = f"revocation timed out after {timeout:g}s"
    else:
        text = f"{type(err).__name__}: {err}"
    return text[:_MAX_ERROR_LEN]


class _KeyedLocks:
    """One asyncio.Lock per key that exists only while someone holds or waits for it (bounded memory)."""

    def __init__(self) -> None:
        self._slots: dict[str, list[Any]] = {}

    @contextlib.asynccontextmanager
    async def __call__(self, key: str) -> AsyncIterator[None]:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = [asyncio.Lock(), 0]
        slot[1] += 1
        try:
            async with slot[0]:
                yield
        finally:
            slot[1] -= 1
            if slot[1] == 0:
                del self._slots[key]


def _lease_key(lease_id: str) -> str:
    return "l:" + lease_id


def _token_key(token_hash: str) -> str:
    return "t:" + token_hash


class ExpirationManager:
    def __init__(
        self,
        view: BarrierView,
        revoke_fn: RevokeFn,
        renew_fn: RenewFn,
        now: Callable[[], float] = time.time,
        *,
        token_expired_fn: TokenExpiredFn | None = None,
        token_exists_fn: TokenExistsFn | None = None,
        backoff: Backoff | None = None,
        workers: int = 32,
        revoke_timeout: float = 60.0,
        default_max_ttl: int = DEFAULT_MAX_TTL,
        resync_interval: float = 300.0,
    ) -> None:
        self.view = view
        self.revoke_fn = revoke_fn
        self.renew_fn = renew_fn
        self.token_expired_fn = token_expired_fn
        self.token_exists_fn = token_exists_fn
        self.backoff = backoff or DEFAULT_BACKOFF
        self.revoke_timeout = revoke_timeout
        self.default_max_ttl = default_max_ttl
        # Due times are wall-clock (they survive restarts); re-checking at least this often bounds the effect of a
        # wall-clock jump on the sleep computed from them.
        self.resync_interval = resync_interval
        self._now = now
        self._workers = workers
        self._heap: list[tuple[float, int, str]] = []
        self._scheduled: dict[str, float] = {}
        self._running: set[str] = set()
        self._redo: set[str] = set()
        self._failing: dict[str, bool] = {}  # lease id -> irrevocable, for leases whose revocation failed (telemetry)
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._locks = _KeyedLocks()
        self._sem = asyncio.Semaphore(workers)
        self._runner: asyncio.Task[None] | None = None
        self._restorer: asyncio.Task[None] | None = None
        # of a node's workers only the elected one expires anything; the others keep no schedule they act on
        # (strongroom/scaleout/worker.py). It learns of other workers' leases from the change log (stored_change).
        self.elected = True
        self._jobs: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.restored = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Start expiring. Existing leases are restored in the background, a page at a time, so unseal is not held
        up by the lease count; leases that expired while the server was down are revoked as soon as they are read."""
        if self._runner is not None:
            return
        self.restored.clear()
        self._stopping = False
        self._sem = asyncio.Semaphore(self._workers)
        self._runner = asyncio.create_task(self._run(), name="expiration-runner")
        self._restorer = asyncio.create_task(self._restore(), name="expiration-restore")

    async def stop(self) -> None:
        """Stop on seal. Jobs in flight are cancelled; their leases stay stored and are picked up after unseal."""
        self._stopping = True
        tasks = [t for t in (self._runner, self._restorer, *self._jobs) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = self._restorer = None
        self._jobs.clear()
        self._heap.clear()
        self._scheduled.clear()
        self._running.clear()
        self._redo.clear()
        self._failing.clear()

    def wake(self) -> None:
        """Make the scheduler look at the clock now (when a nearer entry arrives; tests with a fake clock call it)."""
        self._wake.set()

    @property
    def scheduled_count(self) -> int:
        return len(self._scheduled) + len(self._running)

    def state_counts(self) -> dict[str, int]:
        """Scheduled leases and token expiries by state, from memory alone (telemetry, on scrape): ``active`` (not
        due yet), ``expired`` (due, or being revoked or retried) and, for leases, ``irrevocable``."""
        now = self._now()
        out = dict.fromkeys(("lease_active", "lease_expired", "lease_irrevocable", "token_active", "token_expired"), 0)
        for key in self._scheduled.keys() | self._running:
            kind = "lease_" if key.startswith("l:") else "token_"
            failing = self._failing.get(key[2:]) if kind == "lease_" else None
            if failing:
                out["lease_irrevocable"] += 1
            elif failing is not None or key in self._running or self._scheduled.get(key, now) <= now:
                out[kind + "expired"] += 1
            else:
                out[kind + "active"] += 1
        return out

    # --- register, lookup ---------------------------------------------------------------------------------------

    async def register(self, path: str, mount_path: str, secret: Secret, token_hash: str) -> str:
        """Store a new lease for ``secret`` and schedule its expiry; returns the lease id.

        ``secret.ttl`` and ``secret.lease_id`` are updated to the effective values for the response envelope.
        """
        path = path.strip("/")
        if not _valid_id(path):
            raise InvalidRequest("invalid request path for a lease")
        now = self._now()
        max_ttl = secret.max_ttl if secret.max_ttl > 0 else self.default_max_ttl
        ttl = min(secret.ttl if secret.ttl > 0 else max_ttl, max_ttl)
        lease_id = f"{path}/{crypto.random_base62(TOKEN_LENGTH)}"
        entry = LeaseEntry(
            lease_id=lease_id,
            path=path,
            mount_path=mount_path,
            token_hash=token_hash,
            secret={
                "lease_type": secret.lease_type,
                "ttl": ttl,
                "max_ttl": max_ttl,
                "renewable": secret.renewable,
                "internal_data": dict(secret.internal_data),
            },
            issue_time=now,
            expire_time=now + ttl,
            max_expire_time=now + max_ttl,
        )
        writes: dict[str, Any] = {_LEASES + lease_id: entry.to_json()}
        if token_hash:
            writes[self._index_key(token_hash, lease_id)] = lease_id.encode()
        await self.view.transaction(writes)
        self._schedule(_lease_key(lease_id), entry.expire_time)
        secret.ttl = ttl
        secret.max_ttl = max_ttl
        secret.lease_id = lease_id
        return lease_id

    async def get(self, lease_id: str) -> LeaseEntry | None:
        if not _valid_id(lease_id):
            return None
        doc = await self.view.get_json(_LEASES + lease_id)
        return None if doc is None else LeaseEntry.from_json(doc)

    async def lookup(self, lease_id: str) -> dict[str, Any]:
        """Vault's ``sys/leases/lookup`` data."""
        entry = await self.get(lease_id)
        if entry is None:
            raise InvalidRequest("invalid lease")
        now = self._now()
        return {
            "id": entry.lease_id,
            "issue_time": rfc3339(entry.issue_time),
            "expire_time": rfc3339(entry.expire_time),
            "last_renewal": rfc3339(entry.last_renewal_time),
            "renewable": self._not_renewable_reason(entry, now) is None,
            "ttl": max(0, round(entry.expire_time - now)),
        }

    async def list_prefix(self, prefix: str, after: str = "", limit: int = 0) -> list[str]:
        """Immediate children of ``prefix`` (folders end in ``/``), as Vault's LIST ``sys/leases/lookup/<prefix>``."""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if prefix and not _valid_id(prefix.rstrip("/")):
            raise InvalidRequest("invalid prefix")
        return await self.view.list(_LEASES + prefix, after, limit)

    # --- renew --------------------------------------------------------------------------------------------------

    @staticmethod
    def _not_renewable_reason(entry: LeaseEntry, now: float) -> str | None:
        if entry.irrevocable:
            return "lease is expired and has failed previous revocation attempts"
        if entry.expire_time <= now:
            return "lease expired"
        if not entry.renewable:
            return "lease is not renewable"
        return None

    async def renew(self, lease_id: str, increment: int) -> Response:
        """Extend a lease to ``now + increment`` (or its original TTL), never past its max TTL.

        The backend's ``renew_fn`` runs first and may refuse (raise) or return a Secret with its own ttl/max_ttl.
        """
        async with self._locks(_lease_key(lease_id)):
            entry = await self.get(lease_id)
            if entry is None:
                raise InvalidRequest("lease not found")
            reason = self._not_renewable_reason(entry, self._now())
            if reason is not None:
                raise InvalidRequest(reason)
            if entry.max_expire_time - self._now() <= 0:
                raise InvalidRequest("past the max TTL, cannot renew")
            resp = await self.renew_fn(entry, increment)
            now = self._now()
            backend = resp.secret if resp is not None else None
            max_expire = entry.max_expire_time
            if backend is not None and backend.max_ttl > 0:
                max_expire = min(max_expire, entry.issue_time + backend.max_ttl)
            ttl = increment if increment > 0 else backend.ttl if backend is not None and backend.ttl > 0 else entry.ttl
            remaining = int(max_expire - now)
            if remaining <= 0:
                raise InvalidRequest("past the max TTL, cannot renew")
            warnings = list(resp.warnings) if resp is not None else []
            if ttl > remaining:
                warnings.append(
                    f'TTL of "{format_duration(ttl)}" exceeded the effective max_ttl of '
                    f'"{format_duration(remaining)}"; TTL value is capped accordingly'
                )
                ttl = remaining
            entry.expire_time = now + ttl
            entry.max_expire_time = max_expire
            entry.last_renewal_time = now
            if backend is not None and backend.internal_data:
                entry.secret["internal_data"] = dict(backend.internal_data)
            await self.view.put_json(_LEASES + lease_id, entry.to_json())
            self._schedule(_lease_key(lease_id), entry.expire_time)
        secret = Secret(lease_type=entry.lease_type, ttl=ttl, max_ttl=entry.max_ttl, renewable=True, lease_id=lease_id)
        return Response(data=resp.data if resp is not None else None, secret=secret, warnings=warnings)

    # --- revoke -------------------------------------------------------------------------------------------------

    async def revoke(self, lease_id: str, sync: bool = True) -> None:
        """Revoke one lease. ``sync``: call the backend now and raise if it fails (the lease is then retried in the
        background); otherwise mark it expired and let the scheduler revoke it. An unknown lease is not an error."""
        await self._revoke_one(lease_id, sync=sync, force=False)

    async def revoke_prefix(self, prefix: str, sync: bool = True) -> None:
        """Revoke every lease under ``prefix``; a prefix without ``/`` that is a lease id revokes just that lease."""
        await self._revoke_prefix(prefix, sync=sync, force=False)

    async def revoke_force(self, prefix: str) -> None:
        """Like revoke_prefix, but the entries are deleted even when the backend's revocation fails."""
        await self._revoke_prefix(prefix, sync=True, force=True)

    async def rename_prefix(self, old: str, new: str) -> int:
        """A mount moved from ``old`` to ``new`` (sys/remount): its leases follow it. A lease id begins with its request
        path, so each lease is re-keyed with the new mount path in front, keeping its random part, expiry, token link
        and irrevocable mark; the old id stops existing. Returns how many leases moved."""
        ids = [lease_id async for lease_id in self._walk(_LEASES + old)]
        for lease_id in ids:
            new_id = new + lease_id[len(old) :]
            async with self._locks(_lease_key(lease_id)):
                entry = await self.get(lease_id)
                if entry is None:
                    continue
                path = new + entry.path[len(old) :] if entry.path.startswith(old) else entry.path
                moved = dataclasses.replace(entry, lease_id=new_id, path=path, mount_path=new)
                writes: dict[str, Any] = {_LEASES + lease_id: None, _LEASES + new_id: moved.to_json()}
                if entry.token_hash:
                    writes[self._index_key(entry.token_hash, lease_id)] = None
                    writes[self._index_key(entry.token_hash, new_id)] = new_id.encode()
                if entry.irrevocable:
                    writes[_IRREVOCABLE + crypto.sha256_hex(lease_id.encode())] = None
                    writes[_IRREVOCABLE + crypto.sha256_hex(new_id.encode())] = new_id.encode()
                await self.view.transaction(writes)
                request_txn.after_commit(functools.partial(self._reschedule, lease_id, new_id, entry.expire_time))
        return len(ids)

    def _reschedule(self, old_id: str, new_id: str, due: float) -> None:
        self._scheduled.pop(_lease_key(old_id), None)
        self._push(_lease_key(new_id), due)

    async def revoke_by_token(self, token_hash: str) -> None:
        """Revoke (lazily) every lease the token created, found through the token index, and forget its expiry."""
        if not token_hash or "/" in token_hash:
            return
        prefix = f"{_TOKEN_INDEX}{token_hash}/"
        after = ""
        while True:
            keys = await self.view.list(prefix, after, _PAGE)
            for k in keys:
                raw = await self.view.get(prefix + k)
                if raw is None:
                    continue
                lease_id = raw.decode()
                if await self.get(lease_id) is None:
                    await self.view.delete(prefix + k)  # dangling index entry
                    continue
                await self._lazy_revoke(lease_id)
            if len(keys) < _PAGE:
                break
            after = keys[-1]
        await self.unregister_token(token_hash)

    async def _revoke_prefix(self, prefix: str, *, sync: bool, force: bool) -> None:
        prefix = prefix.lstrip("/")
        if not _valid_id(prefix.rstrip("/")):
            raise InvalidRequest("invalid prefix")
        if not prefix.endswith("/"):
            if await self.get(prefix) is not None:
                await self._revoke_one(prefix, sync=sync, force=force)
                return
            prefix += "/"
        async for lease_id in self._walk(_LEASES + prefix):
            await self._revoke_one(lease_id, sync=sync, force=force)

    async def _revoke_one(self, lease_id: str, *, sync: bool, force: bool) -> None:
        if not sync:
            await self._lazy_revoke(lease_id)
            return
        async with self._locks(_lease_key(lease_id)):
            entry = await self.get(lease_id)
            if entry is None:
                return
            error = await self._revoke_locked(entry, force=force)
        if error is not None:
            raise LogicalError(f"failed to revoke entry {lease_id}: {error}", status=500)

    async def _lazy_revoke(self, lease_id: str) -> None:
        async with self._locks(_lease_key(lease_id)):
            entry = await self.get(lease_id)
            if entry is None:
                return
            now = self._now()
            if entry.expire_time > now:
                entry.expire_time = now
                await self.view.put_json(_LEASES + lease_id, entry.to_json())
            self._schedule(_lease_key(lease_id), min(entry.expire_time, now))

    async def _revoke_locked(self, entry: LeaseEntry, *, force: bool) -> str | None:
        """Call the backend and delete the entry; on failure record it and schedule a retry. Caller holds the lock.

        Returns the error text, or None when the lease is gone."""
        try:
            async with asyncio.timeout(self.revoke_timeout):
                await self.revoke_fn(entry)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # any backend failure must leave the lease in place, recorded and retried
            error = _describe(err, self.revoke_timeout)
            if not force:
                await self._record_failure(entry, err, error)
                return error
            log.warning("lease %s force-revoked after backend error: %s", entry.lease_id, error)
        await self._delete_entry(entry)
        return None

    async def _record_failure(self, entry: LeaseEntry, err: Exception, error: str) -> None:
        now = self._now()
        entry.revoke_attempts += 1
        entry.last_error = error
        entry.last_attempt_time = now
        # the lease is being revoked: it is no longer valid, whatever its TTL said
        entry.expire_time = min(entry.expire_time, now)
        # no backend will ever take this revocation (mount gone, path unknown): irrevocable at once, still retried
        hopeless = isinstance(err, UnsupportedPath | UnsupportedOperation)
        writes: dict[str, Any] = {}
        if not entry.irrevocable and (hopeless or entry.revoke_attempts >= self.backoff.max_attempts):
            entry.irrevocable = True
            writes[_IRREVOCABLE + crypto.sha256_hex(entry.lease_id.encode())] = entry.lease_id.encode()
            log.error(
                "lease %s is irrevocable after %d attempts (still retrying, at most every %gs): %s",
                entry.lease_id,
                entry.revoke_attempts,
                self.backoff.cap,
                error,
            )
        else:
            log.warning("revocation of lease %s failed (attempt %d): %s", entry.lease_id, entry.revoke_attempts, error)
        writes[_LEASES + entry.lease_id] = entry.to_json()
        # the attempt happened whatever becomes of the request that made it: its record and retry stand at once
        await self.view.outside_request().transaction(writes)
        self._failing[entry.lease_id] = entry.irrevocable
        # irrevocable or not, the doubling goes on up to the cap: a leaked credential is worse than a retry
        self._push(_lease_key(entry.lease_id), now + self.backoff.delay(entry.revoke_attempts))

    async def _delete_entry(self, entry: LeaseEntry) -> None:
        writes: dict[str, Any] = {_LEASES + entry.lease_id: None}
        if entry.token_hash:
            writes[self._index_key(entry.token_hash, entry.lease_id)] = None
        if entry.irrevocable:
            writes[_IRREVOCABLE + crypto.sha256_hex(entry.lease_id.encode())] = None
        await self.view.transaction(writes)
        request_txn.after_commit(lambda: self._scheduled.pop(_lease_key(entry.lease_id), None))
        request_txn.after_commit(lambda: self._failing.pop(entry.lease_id, None))

    @staticmethod
    def _index_key(token_hash: str, lease_id: str) -> str:
        return f"{_TOKEN_INDEX}{token_hash}/{crypto.sha256_hex(lease_id.encode())}"

    # --- irrevocable, tidy --------------------------------------------------------------------------------------

    async def irrevocable(self, limit: int = 10000) -> list[dict[str, Any]]:
        """Leases whose revocation keeps failing, oldest expiry first, with the last error and attempt count."""
        out: list[dict[str, Any]] = []
        after = ""
        while True:
            keys = await self.view.list(_IRREVOCABLE, after, _PAGE)
            for k in keys:
                raw = await self.view.get(_IRREVOCABLE + k)
                entry = None if raw is None else await self.get(raw.decode())
                if entry is None or not entry.irrevocable:
                    continue
                out.append(
                    {
                        "lease_id": entry.lease_id,
                        "mount_path": entry.mount_path,
                        "error": entry.last_error,
                        "attempts": entry.revoke_attempts,
                        "expire_time": rfc3339(entry.expire_time),
                        "last_attempt_time": rfc3339(entry.last_attempt_time),
                    }
                )
            if len(keys) < _PAGE or (limit and len(out) >= limit):
                break
            after = keys[-1]
        out.sort(key=lambda d: (d["expire_time"], d["lease_id"]))
        return out[:limit] if limit else out

    async def tidy(self) -> dict[str, int]:
        """Repair: drop index entries that point at nothing, revoke leases whose token is gone (when the token store
        can tell), and schedule any stored lease the scheduler does not know about."""
        stats = {"dangling_index": 0, "orphaned_leases": 0, "rescheduled": 0}
        async for key in self._walk(_TOKEN_INDEX, ids=False):
            raw = await self.view.get(key)
            if raw is None or await self.get(raw.decode()) is None:
                await self.view.delete(key)
                stats["dangling_index"] += 1
        async for key in self._walk(_IRREVOCABLE, ids=False):
            raw = await self.view.get(key)
            entry = None if raw is None else await self.get(raw.decode())
            if entry is None or not entry.irrevocable:
                await self.view.delete(key)
                stats["dangling_index"] += 1
        async for lease_id in self._walk(_LEASES):
            entry = await self.get(lease_id)
            if entry is None:
                continue
            if (
                entry.token_hash
                and self.token_exists_fn is not None
                and not await self.token_exists_fn(entry.token_hash)
            ):
                await self._lazy_revoke(lease_id)
                stats["orphaned_leases"] += 1
                continue
            key = _lease_key(lease_id)
            if key not in self._scheduled and key not in self._running:
                self._schedule(key, entry.expire_time)
                stats["rescheduled"] += 1
        log.info("lease tidy finished: %s", stats)
        return stats

    # --- token expiry -------------------------------------------------------------------------------------------

    async def register_token(self, token_hash: str, expire_time: float) -> None:
        """Schedule a token's expiry (again, after a renewal); 0 means it never expires."""
        if not token_hash or "/" in token_hash or ".." in token_hash:
            raise ValueError("invalid token hash")
        if expire_time <= 0:
            await self.unregister_token(token_hash)
            return
        key = _token_key(token_hash)
        async with self._locks(key):
            await self.view.put_json(_TOKEN_EXPIRY + token_hash, {"expire_time": expire_time, "attempts": 0})
            self._schedule(key, expire_time)

    async def unregister_token(self, token_hash: str) -> None:
        if not token_hash or "/" in token_hash or ".." in token_hash:
            return
        key = _token_key(token_hash)
        async with self._locks(key):
            await self.view.delete(_TOKEN_EXPIRY + token_hash)
            request_txn.after_commit(lambda: self._scheduled.pop(key, None))

    async def _expire_token(self, token_hash: str) -> None:
        key = _token_key(token_hash)
        async with self._locks(key):
            rec = await self.view.get_json(_TOKEN_EXPIRY + token_hash)
            if rec is None:
                return
            if rec["expire_time"] > self._now():
                self._schedule(key, rec["expire_time"])
                return
        if self.token_expired_fn is None:
            log.warning("a token expired but no token revocation callback is set")
            await self.unregister_token(token_hash)
            return
        try:
            # outside the lock: revoking the token comes back here through revoke_by_token/unregister_token
            async with asyncio.timeout(self.revoke_timeout):
                await self.token_expired_fn(token_hash)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # keep the token scheduled: an expired token must not stay usable
            async with self._locks(key):
                rec = await self.view.get_json(_TOKEN_EXPIRY + token_hash)
                if rec is None:
                    return
                rec["attempts"] = int(rec.get("attempts", 0)) + 1
                rec["last_error"] = _describe(err, self.revoke_timeout)
                await self.view.put_json(_TOKEN_EXPIRY + token_hash, rec)
                self._schedule(key, self._now() + self.backoff.delay(rec["attempts"]))
            log.warning("revoking an expired token failed (attempt %d): %s", rec["attempts"], rec["last_error"])
            return
        await self.unregister_token(token_hash)

    # --- scheduling ---------------------------------------------------------------------------------------------

    def _schedule(self, key: str, due: float) -> None:
        # a request's lease or token is scheduled only once the request commits: a discarded one never was
        request_txn.after_commit(lambda: self._push(key, due))

    def _push(self, key: str, due: float) -> None:
        self._scheduled[key] = due
        item = (due, next(self._seq), key)
        heapq.heappush(self._heap, item)
        if self._heap[0] is item:
            self._wake.set()

    def _compact(self) -> None:
        """Drop superseded heap items once they outnumber live ones (renewals leave one behind each)."""
        if len(self._heap) > 2 * len(self._scheduled) + 1024:
            self._heap = [(due, next(self._seq), key) for key, due in self._scheduled.items()]
            heapq.heapify(self._heap)

    def set_elected(self, elected: bool) -> None:
        """Become (or stop being) the worker that runs the schedule; a new one first restores it from storage."""
        self.elected = elected
        if elected and self._runner is not None and (self._restorer is None or self._restorer.done()):
            self._restorer = asyncio.create_task(self._restore(), name="expiration-restore")
        self._wake.set()

    async def stored_change(self, key: str | None) -> None:
        """A lease or token expiry stored by any worker (change log): the elected worker schedules it."""
        if not self.elected or self._runner is None:
            return
        if key is None:
            if self._restorer is None or self._restorer.done():
                self._restorer = asyncio.create_task(self._restore(), name="expiration-restore")
            return
        rel = key[len(self.view.prefix) :]
        if rel.startswith(_LEASES):
            lease_id = rel[len(_LEASES) :]
            entry = await self.get(lease_id)
            if entry is not None and _lease_key(lease_id) not in self._running:
                self._push(_lease_key(lease_id), entry.expire_time)
        elif rel.startswith(_TOKEN_EXPIRY):
            token_hash = rel[len(_TOKEN_EXPIRY) :]
            rec = await self.view.get_json(_TOKEN_EXPIRY + token_hash)
            if rec is not None and _token_key(token_hash) not in self._running:
                self._push(_token_key(token_hash), float(rec["expire_time"]))

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = self._now()
            while self.elected and self._heap and self._heap[0][0] <= now:
                due, _, key = heapq.heappop(self._heap)
                if self._scheduled.get(key) != due:
                    continue  # superseded by a later schedule() or removed
                if key in self._running:
                    self._redo.add(key)  # re-examined when the running job ends
                    continue
                del self._scheduled[key]
                await self._sem.acquire()
                self._running.add(key)
                task = asyncio.create_task(self._job(key), name="expiration-job")
                self._jobs.add(task)
                task.add_done_callback(self._jobs.discard)
            self._compact()
            timeout = self.resync_interval
            if self._heap:
                timeout = min(timeout, max(0.0, self._heap[0][0] - now))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races the event being set
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _job(self, key: str) -> None:
        try:
            if key.startswith("l:"):
                await self._expire_lease(key[2:])
            else:
                await self._expire_token(key[2:])
        except asyncio.CancelledError:
            raise
        except Exception as err:  # storage trouble: never lose the entry from the schedule
            log.error("expiration job failed, retrying: %s", type(err).__name__)
            if key not in self._scheduled:
                self._schedule(key, self._now() + self.backoff.delay(2))
        finally:
            self._running.discard(key)
            self._sem.release()
            if key in self._redo:
                self._redo.discard(key)
                due = self._scheduled.get(key)
                if due is not None:
                    heapq.heappush(self._heap, (due, next(self._seq), key))
                    self._wake.set()

    async def _expire_lease(self, lease_id: str) -> None:
        key = _lease_key(lease_id)
        async with self._locks(key):
            entry = await self.get(lease_id)
            if entry is None:
                self._scheduled.pop(key, None)
                return
            if entry.expire_time > self._now():
                self._schedule(key, entry.expire_time)  # renewed since this was scheduled
                return
            await self._revoke_locked(entry, force=False)

    async def _restore(self) -> None:
        """Schedule every stored lease and token expiry, a page at a time, yielding between pages."""
        count = 0
        try:
            async for lease_id in self._walk(_LEASES):
                entry = await self.get(lease_id)
                key = _lease_key(lease_id)
                if entry is None or key in self._scheduled or key in self._running:
                    continue
                if entry.revoke_attempts:
                    self._failing[lease_id] = entry.irrevocable
                # irrevocable leases get one more attempt right after start; the rest keep their expiry
                self._schedule(key, min(entry.expire_time, self._now()) if entry.irrevocable else entry.expire_time)
                count += 1
            async for token_hash in self._walk(_TOKEN_EXPIRY):
                rec = await self.view.get_json(_TOKEN_EXPIRY + token_hash)
                key = _token_key(token_hash)
                if rec is None or key in self._scheduled or key in self._running:
                    continue
                self._schedule(key, float(rec["expire_time"]))
                count += 1
            log.info("restored %d lease and token expirations", count)
        finally:
            self.restored.set()

    async def _walk(self, prefix: str, *, ids: bool = True) -> AsyncIterator[str]:
        """Every key under ``prefix``, depth first, a page at a time (never the whole tree in memory).

        With ``ids`` the yielded keys are relative to the top-level folder (``id/``, ``token-exp/``, ...), which for
        ``id/`` is the lease id; otherwise the full key inside the view."""
        top = prefix.split("/", 1)[0] + "/"
        stack = [(prefix, "")]
        while stack:
            folder, after = stack.pop()
            keys = await self.view.list(folder, after, _PAGE)
            if len(keys) == _PAGE:
                stack.append((folder, keys[-1]))
            for k in reversed(keys):
                if k.endswith("/"):
                    stack.append((folder + k, ""))
            for k in keys:
                if not k.endswith("/"):
                    full = folder + k
                    yield full[len(top) :] if ids else full
            await asyncio.sleep(0)
