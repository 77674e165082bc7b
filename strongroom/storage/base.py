from __future__ import annotations

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

    async def list(self, prefix: str, after: str = "", limit: int = 0) -> list[str]:
        """Children of ``prefix`` in key order, strictly after ``after``; at most ``limit`` (0: no limit)."""
        ...

    async def transaction(self, ops: list[TxnOp]) -> None: ...

    async def close(self) -> None: ...


def next_sibling(key: str) -> str:
    """The smallest string greater than every string that starts with ``key``'s folder (``a/`` -> ``a0``)."""
    return key[:-1] + chr(ord(key[-1]) + 1)
