"""Scheduled snapshots (Vault's automated snapshots, ``storage_type = "local"``), run by the active node only.

A configuration (stored behind the barrier at ``sys/snapshot-auto/config/<name>``) says how often to take a snapshot
(``interval``), where to write it (``path_prefix``, a local directory, and ``file_prefix``), how many to keep
(``retain``) and how much space they may take (``local_max_space`` bytes, 0: no limit). The scheduler exists only
while the node is unsealed and active (the core starts and stops it with its other services), so a standby never
writes snapshots. A snapshot file is written to a temporary name, fsynced and renamed: a file named like a snapshot is
always complete. Status is kept in memory, as Vault does, and the time of the last success is a gauge
(``vault_autosnapshots_last_success_time``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strongroom.ops import snapshot

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView
    from strongroom.core.core import Core

log = logging.getLogger("strongroom.ops")

CONFIG_PREFIX = "sys/snapshot-auto/config/"
SUFFIX = ".snap"


@dataclass
class Status:
    consecutive_errors: int = 0
    last_snapshot_start: float = 0.0
    last_snapshot_end: float = 0.0
    last_snapshot_error: str = ""
    last_snapshot_url: str = ""
    last_success: float = 0.0
    next_snapshot_start: float = 0.0
    snapshot_start: float = 0.0  # a snapshot in progress started then (0: none)
    snapshot_url: str = ""

    def as_data(self) -> dict[str, Any]:
        return {
            "consecutive_errors": self.consecutive_errors,
            "last_snapshot_start": _iso(self.last_snapshot_start),
            "last_snapshot_end": _iso(self.last_snapshot_end),
            "last_snapshot_error": self.last_snapshot_error,
            "last_snapshot_url": self.last_snapshot_url,
            "next_snapshot_start": _iso(self.next_snapshot_start),
            "snapshot_start": _iso(self.snapshot_start),
            "snapshot_url": self.snapshot_url,
        }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else ""


class AutoSnapshots:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.view: BarrierView = core.barrier.view(CONFIG_PREFIX)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.status: dict[str, Status] = {}

    async def start(self) -> None:
        for name in await self.view.list_all():
            cfg = await self.view.get_json(name)
            if cfg is not None:
                self.schedule(name, cfg)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def schedule(self, name: str, cfg: dict[str, Any]) -> None:
        """(Re)start ``name``'s timer with ``cfg``; the first snapshot is one interval from now."""
        self.unschedule(name)
        status = self.status.setdefault(name, Status())
        status.next_snapshot_start = time.time() + int(cfg["interval"])
        self._tasks[name] = asyncio.create_task(self._run(name, cfg), name=f"snapshot-auto {name}")

    async def stored_change(self, key: str | None) -> None:
        """A configuration stored by any worker of the node (change log): follow it, so the elected one runs it."""
        if key is None:
            await self.stop()
            await self.start()
            return
        name = key[len(self.view.prefix) :]
        cfg = await self.view.get_json(name)
        if cfg is None:
            self.unschedule(name, forget=True)
        else:
            self.schedule(name, cfg)

    def unschedule(self, name: str, *, forget: bool = False) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
        if forget:
            self.status.pop(name, None)

    def gauges(self) -> list[tuple[str, dict[str, str], float]]:
        return [
            ("autosnapshots.last.success.time", {"snapshot_config_name": name}, st.last_success)
            for name, st in sorted(self.status.items())
            if st.last_success
        ]

    async def _run(self, name: str, cfg: dict[str, Any]) -> None:
        status = self.status[name]
        interval = int(cfg["interval"])
        while True:
            await asyncio.sleep(max(0.0, status.next_snapshot_start - time.time()))
            # of a node's workers, only the one elected for background work takes them (strongroom/scaleout/)
            if getattr(self.core, "background_elected", True):
                await self.take(name, cfg)
            status.next_snapshot_start = time.time() + interval

    async def take(self, name: str, cfg: dict[str, Any]) -> None:
        status = self.status.setdefault(name, Status())
        status.snapshot_start = time.time()
        directory = str(cfg["path_prefix"])
        target = os.path.join(directory, f"{cfg['file_prefix']}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-"
                              f"{int(status.snapshot_start * 1000) % 1000:03d}{SUFFIX}")
        status.snapshot_url = target
        try:
            data = await snapshot.take(self.core)
            await asyncio.to_thread(_write, directory, str(cfg["file_prefix"]), target, data,
                                    int(cfg.get("local_max_space") or 0), int(cfg["retain"]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recorded and retried at the next interval; the message names no secret
            status.consecutive_errors += 1
            status.last_snapshot_error = str(exc) or type(exc).__name__
            log.error("automated snapshot %s failed: %s", name, status.last_snapshot_error)
        else:
            status.consecutive_errors = 0
            status.last_snapshot_error = ""
            status.last_snapshot_url = target
            status.last_success = time.time()
        finally:
            status.last_snapshot_start = status.snapshot_start
            status.last_snapshot_end = time.time()
            status.snapshot_start = 0.0
            status.snapshot_url = ""


def _snapshots(directory: str, prefix: str) -> list[str]:
    names = [n for n in os.listdir(directory) if n.startswith(prefix + "-") and n.endswith(SUFFIX)]
    return sorted(os.path.join(directory, n) for n in names)  # the timestamp in the name sorts them by age


def _write(directory: str, prefix: str, target: str, data: bytes, max_space: int, retain: int) -> None:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    existing = _snapshots(directory, prefix)
    # the ones that will be rotated out do not count against the allowance
    kept = existing[len(existing) - (retain - 1):] if retain > 1 else []
    if max_space and sum(os.path.getsize(p) for p in kept) + len(data) > max_space:
        raise OSError(f"not enough space left in local_max_space ({max_space} bytes) for a {len(data)}-byte snapshot")
    partial = target + ".partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, target)
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    for old in _snapshots(directory, prefix)[:-retain]:
        with contextlib.suppress(OSError):
            os.unlink(old)
