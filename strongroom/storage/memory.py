"""In-memory storage for unit tests of components above the barrier."""

from __future__ import annotations

import bisect
import builtins
from collections.abc import Callable, Iterable

from strongroom.storage.base import CheckAndSetError, TxnOp, next_sibling


class InMemoryStorage:
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._keys: builtins.list[str] = []

    async def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    async def put(self, key: str, value: bytes) -> None:
        await self.transaction([TxnOp("put", key, value)])

    async def delete(self, key: str) -> None:
        await self.transaction([TxnOp("delete", key)])

    async def list(self, prefix: str, after: str = "", limit: int = 0) -> builtins.list[str]:
        out: builtins.list[str] = []
        lower = prefix + after if after else prefix
        i = bisect.bisect_right(self._keys, lower) if after else bisect.bisect_left(self._keys, lower)
        while i < len(self._keys) and self._keys[i].startswith(prefix):
            rest = self._keys[i][len(prefix) :]
            slash = rest.find("/")
            if slash == -1:
                out.append(rest)
                i += 1
            else:
                folder = rest[: slash + 1]
                if not (after and folder == after):
                    out.append(folder)
                i = bisect.bisect_left(self._keys, next_sibling(prefix + folder))
            if limit and len(out) >= limit:
                break
        return out

    async def transaction(self, ops: builtins.list[TxnOp]) -> None:
        for op in ops:
            if op.kind == "check" and self._data.get(op.key) != op.value:
                raise CheckAndSetError(op.key)
        for op in ops:
            if op.kind == "put":
                assert op.value is not None
                if op.key not in self._data:
                    bisect.insort(self._keys, op.key)
                self._data[op.key] = op.value
            elif op.kind == "delete" and op.key in self._data:
                del self._data[op.key]
                self._keys.pop(bisect.bisect_left(self._keys, op.key))

    async def scan(
        self, lower: str = "", limit: int = 1000, *, include_lower: bool = True
    ) -> builtins.list[tuple[str, bytes]]:
        i = bisect.bisect_left(self._keys, lower) if include_lower else bisect.bisect_right(self._keys, lower)
        return [(k, self._data[k]) for k in self._keys[i : i + limit]]

    async def export(self, sink: Callable[[builtins.list[tuple[str, bytes]]], None], page: int = 5000) -> None:
        items = [(k, self._data[k]) for k in self._keys]  # taken at once: nothing else runs meanwhile
        for i in range(0, len(items), page):
            sink(items[i : i + page])

    async def replace_all(self, entries: Iterable[tuple[str, bytes]]) -> None:
        self._data = dict(entries)
        self._keys = sorted(self._data)

    async def close(self) -> None:
        return None
