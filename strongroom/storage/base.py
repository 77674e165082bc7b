from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol


class CheckAndSetError(Exception):
    """A transaction's check did not hold; nothing in it was applied."""


@dataclass(frozen=True, slots=True)
class TxnOp:
    """One step of an atomic transaction.

    ``check`` asserts the key currently holds ``value`` (``None``: the key must not exist).
    """

    kind: Literal["put", "delete", "check"]
    key: str
    value: bytes | None = None


class Storage(Protocol):
    """The physical backend. Keys are ``/``-separated; listing returns immediate children, folders ending in ``/``."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def list(self, prefix: str, after: str = "", limit: int = 0) -> builtins.list[str]:
        """Children of ``prefix`` in key order, strictly after ``after``; at most ``limit`` (0: no limit)."""
        ...

    async def transaction(self, ops: builtins.list[TxnOp]) -> None: ...

    async def close(self) -> None: ...


def next_sibling(key: str) -> str:
    """The smallest string greater than every string that starts with ``key``'s folder (``a/`` -> ``a0``)."""
    return key[:-1] + chr(ord(key[-1]) + 1)


# above every key character, so ``prefix + KEY_CEILING`` bounds the keys under ``prefix``
KEY_CEILING = "\U0010ffff"

# (lower, inclusive, upper) -> the first key >= lower (> lower when not inclusive) and < upper, or None
FirstKey = Callable[[str, bool, str], Awaitable[str | None]]


async def seek_children(prefix: str, after: str, limit: int, first_key: FirstKey) -> builtins.list[str]:
    """``Storage.list`` for an ordered store that can find the first key at or after a bound.

    Seek from child to child: a folder is reported once, then the scan jumps past its whole subtree, so listing costs
    one indexed lookup per child returned, never a scan of everything below the prefix.
    """
    out: builtins.list[str] = []
    lower = prefix + after if after else prefix
    upper = prefix + KEY_CEILING
    inclusive = not after
    while True:
        key = await first_key(lower, inclusive, upper)
        if key is None:
            break
        rest = key[len(prefix) :]
        slash = rest.find("/")
        if slash == -1:
            out.append(rest)
            lower, inclusive = key, False
        else:
            folder = rest[: slash + 1]
            if not (after and folder == after):
                out.append(folder)
            lower, inclusive = next_sibling(prefix + folder), True
        if limit and len(out) >= limit:
            break
    return out
