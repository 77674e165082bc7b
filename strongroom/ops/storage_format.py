"""The storage format version: which layout of stored data a store holds, and the steps that bring it forward.

The version is recorded **in clear** at ``core/storage-format`` beside the seal configuration, because it must be read
before anything can be decrypted: a binary that finds a version newer than it knows refuses to unseal (and a restore
or migration refuses such a snapshot or source) with a message saying so, instead of misreading data it does not
understand. It is a number, not a secret; someone able to change it could already delete the store.

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
from strongroom.storage.base import Storage

if TYPE_CHECKING:
    from strongroom.core.core import Core

log = logging.getLogger("strongroom.ops")

FORMAT_PATH = "core/storage-format"
SEAL_CONFIG_PATH = "core/seal-config"  # seal.SEAL_CONFIG_PATH; repeated so this module imports nothing of the core
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


def decode(raw: bytes | None, initialized: bool) -> int | None:
    """The version a record says (0 for an initialised store without one, None for an empty store)."""
    if raw is None:
        return 0 if initialized else None
    try:
        doc = orjson.loads(raw)
        version = doc["version"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise LogicalError(f"{FORMAT_PATH} is not a storage format record", status=500) from None
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise LogicalError(f"{FORMAT_PATH} holds an invalid version", status=500)
    return version


def encode(version: int) -> bytes:
    return orjson.dumps({"version": version})


async def read(storage: Storage) -> int | None:
    raw = await storage.get(FORMAT_PATH)
    initialized = raw is not None or await storage.get(SEAL_CONFIG_PATH) is not None
    return decode(raw, initialized)


async def record(storage: Storage, version: int = CURRENT) -> None:
    await storage.put(FORMAT_PATH, encode(version))


async def check_supported(storage: Storage) -> int | None:
    """The store's version; :class:`NewerFormat` when this binary is too old for it."""
    version = await read(storage)
    if version is not None and version > CURRENT:
        raise NewerFormat(version)
    return version


async def upgrade(core: Core, steps: dict[int, Step] | None = None, target: int = CURRENT) -> int:
    """Bring the unsealed store up to ``target``, one recorded step at a time; returns the version it started at."""
    steps = STEPS if steps is None else steps
    start = await read(core.storage)
    if start is not None and start > target:
        raise NewerFormat(start)
    version = start if start is not None else target
    while version < target:
        step = steps.get(version)
        if step is None:
            raise LogicalError(f"no upgrade step from storage format version {version}", status=500)
        log.info("upgrading the storage format from version %d to %d", version, version + 1)
        await step(core)
        version += 1
        await record(core.storage, version)
    return start if start is not None else target
