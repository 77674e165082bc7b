"""The storage format version: which layout of stored data a store holds, and the steps that bring it forward.

The version is recorded at ``sys/init`` behind the barrier, at ``core/storage-format`` (like every other value: nothing
is stored in clear but the seal's own records). It is read right after the keyring opens on unseal and before
anything else is: a binary that finds a version newer than it knows seals again and refuses the unseal with a message
saying so, instead of misreading data it does not understand (a future change of the barrier's own layout would bump
the barrier's value header instead, which an older binary refuses as well). A snapshot's header repeats the version,
so a restore refuses a newer snapshot before touching anything.

A store without the record was written before versions were recorded (version 0). On unseal the active node runs
every registered step from the stored version up to :data:`CURRENT`, recording the new version after each step, so an
interrupted upgrade resumes where it stopped. Every step must be idempotent (it may run again after a crash between
the step and its record) and tested with a store of the version before it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson

from strongroom.core.logical import LogicalError

if TYPE_CHECKING:
    from strongroom.core.barrier import Barrier
    from strongroom.core.core import Core

log = logging.getLogger("strongroom.ops")

FORMAT_PATH = "core/storage-format"
CURRENT = 1

Step = Callable[["Core"], Awaitable[None]]


class NewerFormat(LogicalError):
    """The store was written by a newer Strongroom: this binary must not touch it."""

    def __init__(self, found: int, what: str = "the storage") -> None:
        super().__init__(
            f"{what} has storage format version {found}, written by a newer Strongroom; this binary reads up to "
            f"version {CURRENT}: upgrade the binary (nothing was changed)",
            status=500,
        )


async def _v0_to_v1(core: Core) -> None:
    """Stores written before the version was recorded: their layout is version 1's, so there is nothing to rewrite;
    check that the keyring opens (the unseal did) and let the caller record the version."""
    core.barrier.key_status()


STEPS: dict[int, Step] = {0: _v0_to_v1}  # from version N to N + 1


def decode(raw: bytes | None) -> int:
    """The version a record says (0 for an unsealed store without one: written before versions were recorded)."""
    if raw is None:
        return 0
    try:
        doc = orjson.loads(raw)
        version = doc["version"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise LogicalError(f"{FORMAT_PATH} is not a storage format record", status=500) from None
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise LogicalError(f"{FORMAT_PATH} holds an invalid version", status=500)
    return version


async def read(barrier: Barrier) -> int:
    return decode(await barrier.get(FORMAT_PATH))


async def record(barrier: Barrier, version: int = CURRENT) -> None:
    # direct: bookkeeping of the unseal, never part of a client's request
    await barrier.put(FORMAT_PATH, orjson.dumps({"version": version}), direct=True)


async def check_supported(barrier: Barrier) -> int:
    """The store's version; :class:`NewerFormat` when this binary is too old for it."""
    version = await read(barrier)
    if version > CURRENT:
        raise NewerFormat(version)
    return version


async def upgrade(core: Core, steps: dict[int, Step] | None = None, target: int = CURRENT) -> int:
    """Bring the unsealed store up to ``target``, one recorded step at a time; returns the version it started at."""
    steps = STEPS if steps is None else steps
    start = version = await read(core.barrier)
    if start > target:
        raise NewerFormat(start)
    while version < target:
        step = steps.get(version)
        if step is None:
            raise LogicalError(f"no upgrade step from storage format version {version}", status=500)
        log.info("upgrading the storage format from version %d to %d", version, version + 1)
        await step(core)
        version += 1
        await record(core.barrier, version)
    return start
