"""The request transaction: a change is committed only after its audit response entry is recorded.

While the pipeline handles a request, every write through the barrier (``put``, ``delete``, ``transaction``) lands in
the request's write set instead of storage; reads through the barrier see it (read-your-writes, listings included).
The pipeline commits the write set as ONE storage transaction after ``audit.log_response`` succeeded, or discards it.

    begin → handler writes (held) → audit response recorded → commit (one storage transaction)
                                                            → hooks: in-memory caches updated → locks released
          → any failure before that ──────────────────────→ discard: nothing stored, undo external side effects

What joins the write set, and what does not:

- only the task that handles the request: a task it spawns (lease tidy) and every background task (expiration, audit
  head saver, HA) writes straight to storage, as does anything outside a request (unseal, startup);
- never the machinery that records or guards requests: the keyring and the seal write to storage below the barrier,
  and views opened with ``direct=True`` (the audit table, the transport keys) bypass the write set; so does
  bookkeeping that must stand whatever the request's outcome (``BarrierView.outside_request``: a failed revocation
  attempt and its retry, the sticky KV write-once marker);
- in-memory state a handler changes (router, policy, token and barrier caches, the expiration schedule) is applied
  by :func:`after_commit` hooks, so a discarded request leaves nothing behind in memory either; a cache that the
  request itself must read through (identity) is dropped now and again at the end (:func:`invalidate`);
- an external side effect that cannot be held back (a database user created) registers an undo with
  :meth:`RequestTxn.on_discard`; the pipeline runs it through the revocation path and records it as an audit event.

Locks taken with :class:`TxnLock` inside a request are held until its commit or discard, so a second writer of the
same key waits for the first one's outcome (no reused KV version numbers, exact token use counts). The commit itself
takes no global lock: concurrent requests' commits share the storage's group commit.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

_current: contextvars.ContextVar[RequestTxn | None] = contextvars.ContextVar("strongroom_request_txn", default=None)


class RequestTxn:
    """One request's pending writes (storage path → plaintext, ``None`` deletes), hooks and held locks."""

    __slots__ = ("writes", "checks", "open", "response_recorded", "_task", "_hooks", "_undo", "_locks")

    def __init__(self) -> None:
        self.writes: dict[str, bytes | None] = {}
        # storage path -> the stored bytes a decision was based on (``Barrier.get_guarded``): the commit holds only
        # if each is still what is stored, so counters are exact across processes sharing the storage
        self.checks: dict[str, bytes | None] = {}
        self.open = True
        # set once the audit response entry is on record: from then on an error answer still commits what is left
        self.response_recorded = False
        self._task = asyncio.current_task()
        self._hooks: list[Callable[[], object]] = []
        self._undo: list[Callable[[], Awaitable[None]]] = []
        self._locks: list[TxnLock] = []

    def owns_current_task(self) -> bool:
        return self.open and asyncio.current_task() is self._task

    def after_commit(self, hook: Callable[[], object]) -> None:
        self._hooks.append(hook)

    def on_discard(self, undo: Callable[[], Awaitable[None]]) -> None:
        """Register the undo of an external side effect that storage cannot roll back."""
        self._undo.append(undo)

    def savepoint(self) -> tuple[dict[str, bytes | None], int, int]:
        return dict(self.writes), len(self._hooks), len(self._undo)

    def rollback_to(self, point: tuple[dict[str, bytes | None], int, int]) -> list[Callable[[], Awaitable[None]]]:
        """Drop what was written since ``point``; returns the undos of side effects made since then (to run)."""
        writes, hooks, undo = point
        self.writes = writes
        del self._hooks[hooks:]
        dropped, self._undo = self._undo[undo:], self._undo[:undo]
        return dropped

    def close_for_commit(self) -> dict[str, bytes | None]:
        """Stop collecting writes (the commit itself must reach storage) and hand over the write set."""
        self.open = False
        return self.writes

    async def finish_commit(self) -> None:
        """After the storage commit: apply the in-memory changes, then let the next writer in."""
        try:
            for hook in self._hooks:
                result = hook()
                if inspect.isawaitable(result):
                    await result
        finally:
            self._release()

    def discard(self) -> list[Callable[[], Awaitable[None]]]:
        """Forget every pending write and hook; returns the undos to run (outside any lock)."""
        self.open = False
        self.writes = {}
        self._hooks.clear()
        undo, self._undo = self._undo, []
        self._release()
        return undo

    def _release(self) -> None:
        locks, self._locks = self._locks, []
        for lk in reversed(locks):
            lk._release_held()


def begin() -> tuple[RequestTxn, contextvars.Token[RequestTxn | None]]:
    txn = RequestTxn()
    return txn, _current.set(txn)


def end(token: contextvars.Token[RequestTxn | None]) -> None:
    _current.reset(token)


def current() -> RequestTxn | None:
    """The open transaction of the request this task is handling, if any."""
    txn = _current.get()
    return txn if txn is not None and txn.owns_current_task() else None


def after_commit(hook: Callable[[], Any]) -> None:
    """Apply an in-memory change once the current request commits (never, if it is discarded); at once outside one."""
    txn = current()
    if txn is None:
        hook()
    else:
        txn.after_commit(hook)


def invalidate(forget: Callable[[], object]) -> None:
    """For a cache that is only ever dropped: drop it now (the request then reads its own writes through it), and
    again when the request ends, committed or discarded, so nothing it cached from uncommitted state outlives it."""
    forget()
    txn = current()
    if txn is not None:
        txn.after_commit(forget)

        async def again() -> None:
            forget()

        txn.on_discard(again)


async def after_commit_await(hook: Callable[[], Awaitable[Any]]) -> None:
    """:func:`after_commit` for a coroutine function (a backend's cleanup once its unmount is committed)."""
    txn = current()
    if txn is None:
        await hook()
    else:
        txn.after_commit(hook)


class TxnLock:
    """A per-key lock used as ``async with``. Taken inside a request, it is released at the request's commit or
    discard, not at the end of the block, and the same request may take it again (re-entrant for its owner)."""

    __slots__ = ("_lock", "_owner")

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: RequestTxn | None = None

    def locked(self) -> bool:
        return self._lock.locked()

    async def __aenter__(self) -> None:
        txn = current()
        if txn is not None and self._owner is txn:
            return
        await self._lock.acquire()
        if txn is not None:
            if not txn.open:  # the request ended while this waited
                self._lock.release()
                raise RuntimeError("request transaction closed while waiting for a lock")
            self._owner = txn
            txn._locks.append(self)

    async def __aexit__(self, *exc: object) -> None:
        if self._owner is None:
            self._lock.release()

    def _release_held(self) -> None:
        self._owner = None
        self._lock.release()
