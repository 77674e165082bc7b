"""The barrier: every value that goes to storage is AES-256-GCM ciphertext bound to its storage path.

Layout of a stored value: ``0x01 | term (4 bytes, big endian) | nonce (12) | ciphertext+tag``. The associated data
is the storage path, so a ciphertext copied to another path fails to open. The keyring (one key per term, the newest
active) is itself stored encrypted by the root key at ``core/keyring``.
The root key exists only in memory while unsealed.

Cache coherence: every cache in a process (this barrier's value cache, and everything that subscribes with
:meth:`Barrier.subscribe`: the router, policies and ACLs, tokens, identity) is invalidated from the storage's change
log, read by :meth:`Barrier.sync` before each request. Several processes (a node's workers, HA nodes) therefore share
one storage and never serve from a cache that another one's acknowledged write made stale.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from strongroom import crypto
from strongroom.core import request_txn
from strongroom.core.logical import Sealed
from strongroom.core.metrics import DETACHED, Metrics, barrier_timed
from strongroom.core.request_txn import TxnLock
from strongroom.storage.base import Storage, TxnOp

log = logging.getLogger(__name__)

KEYRING_PATH = "core/keyring"
_VERSION = 1
_HEADER = struct.Struct(">BI")
_CACHE_SIZE = 8192

# called with each changed storage path, or ``None`` when everything may have changed
ChangeListener = Callable[[str | None], Awaitable[None] | None]


class BarrierError(Exception):
    pass


@dataclass
class _Term:
    term: int
    cipher: crypto.Cipher
    key: bytes
    install_time: float


class Barrier:
    def __init__(self, storage: Storage, metrics: Metrics = DETACHED) -> None:
        self.storage = storage
        self.metrics = metrics
        self._terms: dict[int, _Term] = {}
        self._active: _Term | None = None
        self._root_key: bytes | None = None
        # Decrypted values of recently used entries. Lives only while unsealed; cleared on seal.
        self._cache: OrderedDict[str, bytes | None] = OrderedDict()
        self._log_seq = 0  # how far this process has applied the storage's change log
        self._generation = 0  # bumped by every sync that invalidated something: a read racing it must not cache
        self._listeners: builtins.list[tuple[str, ChangeListener]] = []
        self._sync_lock = asyncio.Lock()

    @property
    def sealed(self) -> bool:
        return self._active is None

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def initialize(self, root_key: bytes) -> None:
        """Create the first keyring, encrypted by ``root_key``."""
        if await self.storage.get(KEYRING_PATH) is not None:
            raise BarrierError("barrier already initialized")
        term = _Term(1, crypto.Cipher(key := crypto.new_key()), key, time.time())
        await self._start_log()
        self._install(root_key, {1: term}, term)
        await self._persist_keyring()

    async def unseal(self, root_key: bytes) -> None:
        await self._start_log()
        await self._load_keyring(root_key)

    async def _load_keyring(self, root_key: bytes) -> None:
        blob = await self.storage.get(KEYRING_PATH)
        if blob is None:
            raise BarrierError("barrier not initialized")
        try:
            raw = crypto.open_sealed(root_key, blob, KEYRING_PATH.encode())
        except crypto.DecryptionError:
            raise BarrierError("failed to decrypt keyring") from None
        doc = orjson.loads(raw)
        terms = {
            int(t["term"]): _Term(int(t["term"]), crypto.Cipher(k := bytes.fromhex(t["key"])), k, t["install_time"])
            for t in doc["keys"]
        }
        self._install(root_key, terms, terms[int(doc["active_term"])])

    def seal(self) -> None:
        self._terms = {}
        self._active = None
        self._root_key = None
        self._cache.clear()

    def _install(self, root_key: bytes, terms: dict[int, _Term], active: _Term) -> None:
        self._root_key = root_key
        self._terms = terms
        self._active = active
        # (re)loading the keyring: another HA node may have written since anything here was cached
        self._cache.clear()

    async def _persist_keyring(self) -> None:
        assert self._root_key is not None and self._active is not None
        doc = {
            "active_term": self._active.term,
            "keys": [
                {"term": t.term, "key": t.key.hex(), "install_time": t.install_time} for t in self._terms.values()
            ],
        }
        await self.storage.put(KEYRING_PATH, crypto.seal(self._root_key, orjson.dumps(doc), KEYRING_PATH.encode()))

    async def rotate(self) -> int:
        """Add a new term; new writes use it, old values stay readable."""
        active = self._require()
        term = _Term(active.term + 1, crypto.Cipher(key := crypto.new_key()), key, time.time())
        self._terms[term.term] = term
        self._active = term
        await self._persist_keyring()
        return term.term

    async def rewrap_keyring(self, new_root_key: bytes) -> None:
        """Re-encrypt the keyring under a new root key (used by rekey)."""
        self._require()
        self._root_key = new_root_key
        await self._persist_keyring()

    def key_status(self) -> dict[str, Any]:
        active = self._require()
        return {
            "term": active.term,
            "install_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(active.install_time)) + "Z",
            "encryptions": 0,
        }

    # --- coherence: the storage's change log ---------------------------------------------------------------------

    async def _start_log(self) -> None:
        # nothing is cached yet: everything loaded from here on is at least as new as the log's head
        head = getattr(self.storage, "change_head", None)
        if head is not None:
            self._log_seq = await head()

    def subscribe(self, prefix: str, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener`` for every changed path under ``prefix`` (and with ``None`` when everything may have
        changed); returns the unsubscribe function."""
        item = (prefix, listener)
        self._listeners.append(item)

        def unsubscribe() -> None:
            if item in self._listeners:
                self._listeners.remove(item)

        return unsubscribe

    async def sync(self) -> None:
        """Apply every change committed to storage since the last call, by any process: before serving a request.

        Costs one cheap check (SQLite ``PRAGMA data_version``, PostgreSQL ``NOTIFY``) when nothing changed."""
        changed = getattr(self.storage, "changed", None)
        if changed is None or self._active is None:
            return
        async with self._sync_lock:
            if not await changed():
                return
            self._log_seq, keys = await self.storage.changes_since(self._log_seq)  # type: ignore[attr-defined]
            if keys is not None and not keys:
                return
            self._generation += 1
            changed_keys: builtins.list[str | None] = [None] if keys is None else builtins.list(dict.fromkeys(keys))
            # every cached value first: whatever a listener below does, nothing stale is served from this cache
            if keys is None:
                self._cache.clear()
            else:
                for key in changed_keys:
                    self._cache.pop(key, None)  # type: ignore[arg-type]
            if (keys is None or KEYRING_PATH in changed_keys) and self._root_key is not None:
                try:
                    await self._load_keyring(self._root_key)  # rotated or restored elsewhere: learn the new terms
                except BarrierError:
                    log.error("the stored keyring no longer opens with this process's root key; sealing")
                    self.seal()
                    raise
            for key in changed_keys:
                for prefix, listener in builtins.list(self._listeners):
                    if key is None or key.startswith(prefix):
                        try:
                            await _call(listener, key)
                        except Exception:  # one cache failing to follow must not stop the others from following
                            log.exception("a cache could not follow a change of %s", key or "everything")

    async def report_position(self) -> None:
        """Tell the storage how far this process has read (so the log can be trimmed), even if it writes nothing."""
        report = getattr(self.storage, "report_position", None)
        if report is not None:
            await report()

    def _require(self) -> _Term:
        if self._active is None:
            raise Sealed()
        return self._active

    # --- values -------------------------------------------------------------------------------------------------

    def encrypt(self, path: str, plaintext: bytes) -> bytes:
        active = self._require()
        return _HEADER.pack(_VERSION, active.term) + active.cipher.seal(plaintext, path.encode())

    def decrypt(self, path: str, blob: bytes) -> bytes:
        self._require()
        if len(blob) < _HEADER.size:
            raise BarrierError(f"corrupt entry at {path}")
        version, term = _HEADER.unpack_from(blob)
        if version != _VERSION or term not in self._terms:
            raise BarrierError(f"unknown key term for {path}")
        try:
            return self._terms[term].cipher.open(blob[_HEADER.size :], path.encode())
        except crypto.DecryptionError:
            raise BarrierError(f"entry at {path} failed authentication") from None

    @barrier_timed("get")
    async def get(self, path: str) -> bytes | None:
        self._require()
        txn = request_txn.current()
        if txn is not None and path in txn.writes:
            return txn.writes[path]
        cache = self._cache
        if path in cache:
            cache.move_to_end(path)
            return cache[path]
        generation = self._generation
        blob = await self.storage.get(path)
        value = None if blob is None else self.decrypt(path, blob)
        if generation == self._generation:
            self._remember(path, value)
        return value

    async def get_guarded(self, path: str) -> bytes | None:
        """Read ``path`` from storage itself (never the cache) for a decision that must be exact across processes
        (a limited-use counter): inside a request, its commit then also checks that the value is unchanged."""
        self._require()
        txn = request_txn.current()
        if txn is not None and path in txn.writes:
            return txn.writes[path]
        blob = await self.storage.get(path)
        if txn is not None:
            txn.checks.setdefault(path, blob)
        return None if blob is None else self.decrypt(path, blob)

    @barrier_timed("put")
    async def put(self, path: str, value: bytes, *, direct: bool = False) -> None:
        txn = None if direct else request_txn.current()
        if txn is not None:
            self._require()
            txn.writes[path] = value
            return
        generation = self._generation
        await self.storage.put(path, self.encrypt(path, value))
        self._remember_written(generation, path, value)

    @barrier_timed("delete")
    async def delete(self, path: str, *, direct: bool = False) -> None:
        self._require()
        txn = None if direct else request_txn.current()
        if txn is not None:
            txn.writes[path] = None
            return
        generation = self._generation
        await self.storage.delete(path)
        self._remember_written(generation, path, None)

    @barrier_timed("list")
    async def list(self, prefix: str, after: str = "", limit: int = 0) -> builtins.list[str]:
        self._require()
        txn = request_txn.current()
        if txn is not None and txn.writes:
            pending = {k: v for k, v in txn.writes.items() if k.startswith(prefix)}
            if pending:
                return await self._merged_list(prefix, after, limit, pending)
        return await self.storage.list(prefix, after, limit)

    async def _merged_list(
        self, prefix: str, after: str, limit: int, pending: dict[str, bytes | None]
    ) -> builtins.list[str]:
        """Storage's children of ``prefix`` as the request's pending writes will leave them."""
        deletes = sum(1 for v in pending.values() if v is None)
        # each pending delete hides at most one stored child: ask for that many more so a page stays full
        stored = await self.storage.list(prefix, after, limit + deletes if limit else 0)
        complete = not limit or len(stored) < limit + deletes
        children = set(stored)
        for key, value in pending.items():
            rest = key[len(prefix) :]
            slash = rest.find("/")
            child = rest if slash == -1 else rest[: slash + 1]
            if value is not None:
                children.add(child)
            elif slash == -1:
                children.discard(child)
        for child in [c for c in children if c.endswith("/")]:
            if any(v is None for k, v in pending.items() if k.startswith(prefix + child)):
                below = {k: v for k, v in pending.items() if k.startswith(prefix + child)}
                if not await self._merged_list(prefix + child, "", 1, below):
                    children.discard(child)
        out = sorted(c for c in children if c > after) if after else sorted(children)
        if not complete and stored:
            out = [c for c in out if c <= stored[-1]]
        return out[:limit] if limit else out

    @barrier_timed("transaction")
    async def transaction(
        self, puts: dict[str, bytes | None], *, direct: bool = False, checks: dict[str, bytes | None] | None = None
    ) -> None:
        """Apply puts (``None`` deletes) atomically; ``checks``: stored bytes each path must still hold."""
        txn = None if direct else request_txn.current()
        if txn is not None:
            self._require()
            txn.writes.update(puts)
            return
        ops = [TxnOp("check", path, blob) for path, blob in (checks or {}).items()]
        ops += [
            TxnOp("delete", path) if value is None else TxnOp("put", path, self.encrypt(path, value))
            for path, value in puts.items()
        ]
        generation = self._generation
        try:
            await self.storage.transaction(ops)
        except BaseException:
            for path in puts:
                self._cache.pop(path, None)
            raise
        for path, value in puts.items():
            self._remember_written(generation, path, value)

    def _remember_written(self, generation: int, path: str, value: bytes | None) -> None:
        # a sync while the write was in flight may already have applied a later write of the same path by another
        # process: then the value just written is not known to be current
        if generation == self._generation:
            self._remember(path, value)
        else:
            self._cache.pop(path, None)

    def _remember(self, path: str, value: bytes | None) -> None:
        if self._active is None:
            return
        cache = self._cache
        cache[path] = value
        cache.move_to_end(path)
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)

    def view(self, prefix: str, *, direct: bool = False) -> BarrierView:
        """``direct``: writes skip the request transaction (machinery that records or guards requests, never a
        client's change; see :mod:`strongroom.core.request_txn`)."""
        return BarrierView(self, prefix, direct=direct)


async def _call(listener: ChangeListener, key: str | None) -> None:
    result = listener(key)
    if inspect.isawaitable(result):
        await result


class BarrierView:
    """A backend's slice of storage: every key it uses is under its own prefix and cannot escape it."""

    __slots__ = ("_barrier", "prefix", "_locks", "_direct")

    def __init__(self, barrier: Barrier, prefix: str, *, direct: bool = False) -> None:
        self._barrier = barrier
        self.prefix = prefix
        self._locks: dict[str, TxnLock] = {}
        self._direct = direct

    def _key(self, key: str) -> str:
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError("invalid storage key")
        return self.prefix + key

    async def get(self, key: str) -> bytes | None:
        return await self._barrier.get(self._key(key))

    async def put(self, key: str, value: bytes) -> None:
        await self._barrier.put(self._key(key), value, direct=self._direct)

    async def delete(self, key: str) -> None:
        await self._barrier.delete(self._key(key), direct=self._direct)

    async def get_guarded_json(self, key: str) -> Any:
        raw = await self._barrier.get_guarded(self._key(key))
        return None if raw is None else orjson.loads(raw)

    def has_pending(self, key: str) -> bool:
        """Whether the current request has an uncommitted write of ``key`` (a cache in front must not answer)."""
        txn = request_txn.current()
        return txn is not None and self._key(key) in txn.writes

    async def list(self, prefix: str = "", after: str = "", limit: int = 0) -> builtins.list[str]:
        return await self._barrier.list(self._key(prefix) if prefix else self.prefix, after, limit)

    async def list_all(self, prefix: str = "", page: int = 1000) -> builtins.list[str]:
        """Every child of ``prefix``, fetched a page at a time."""
        out: builtins.list[str] = []
        after = ""
        while True:
            chunk = await self.list(prefix, after, page)
            out.extend(chunk)
            if len(chunk) < page:
                return out
            after = chunk[-1]

    async def get_json(self, key: str) -> Any:
        raw = await self.get(key)
        return None if raw is None else orjson.loads(raw)

    async def put_json(self, key: str, value: Any) -> None:
        await self.put(key, orjson.dumps(value))

    async def transaction(self, puts: dict[str, Any]) -> None:
        """Atomic multi-key write; values are JSON-encoded, ``None`` deletes."""
        await self._barrier.transaction(
            {
                self._key(k): (None if v is None else v if isinstance(v, bytes) else orjson.dumps(v))
                for k, v in puts.items()
            },
            direct=self._direct,
        )

    def lock(self, key: str) -> TxnLock:
        """A per-key lock for read-modify-write sequences on the active node; taken in a request, it is held until
        the request commits or is discarded."""
        lk = self._locks.get(key)
        if lk is None:
            lk = self._locks[key] = TxnLock()
        return lk

    def sub(self, prefix: str) -> BarrierView:
        return BarrierView(self._barrier, self._key(prefix), direct=self._direct)

    def outside_request(self) -> BarrierView:
        """This view, writing straight to storage even inside a request (bookkeeping that must stand either way)."""
        return BarrierView(self._barrier, self.prefix, direct=True)

    async def delete_prefix(self, prefix: str = "") -> None:
        """Remove everything under ``prefix`` (used when a mount is disabled)."""
        for child in await self.list_all(prefix):
            if child.endswith("/"):
                await self.delete_prefix(prefix + child)
            else:
                await self.delete(prefix + child)
