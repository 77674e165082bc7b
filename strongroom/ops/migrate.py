"""``strongroom operator migrate``: copy every entry of one storage into another, as ``vault operator migrate`` does.

The configuration is Vault's::

    storage_source "sqlite" { path = "/var/lib/strongroom/strongroom.db" }
    storage_destination "postgresql" { connection_url = "postgresql://..." }
    cluster_addr = "https://..."   # accepted and ignored (Strongroom has no cluster port)

Both servers must be stopped: the migration takes each storage's exclusive claim (SQLite's ``<db>.lock``, PostgreSQL's
advisory lock, which an HA node holds too), so a server running on either makes it refuse, and no server can start on
either while it runs. Entries are copied verbatim (barrier ciphertext; the seal configuration and the storage format
record included), in key order, a page per destination transaction. A destination that already holds data is
refused, unless ``reset`` (empty it first) or ``start`` (resume an interrupted run: copy the keys at or after
``start``, which the progress lines name) is given. Afterwards both sides are read in full and compared: entry count
and a SHA-256 over every key and value in order must be equal, or the migration reports failure. Values stay
ciphertext, so the storage format version is not checked here: the server on the destination checks it on unseal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strongroom.config import ConfigError
from strongroom.storage.base import TxnOp

PAGE = 1000
_STORAGE_KEYS = {
    "sqlite": {"path"},
    "postgresql": {"connection_url", "table", "ha_enabled", "max_parallel"},
}


@dataclass
class Side:
    kind: str
    settings: dict[str, Any]


@dataclass
class MigrateConfig:
    source: Side
    destination: Side


@dataclass
class Result:
    copied: int
    entries: int
    sha256: str


class MigrationError(Exception):
    pass


def parse_config(text: str, filename: str = "migrate.hcl") -> MigrateConfig:
    from strongroom.config import _blocks, parse_document

    doc = parse_document(text, filename)
    unknown = sorted(set(doc) - {"storage_source", "storage_destination", "cluster_addr"})
    if unknown:
        raise ConfigError(f"{filename}: unknown stanza(s): {', '.join(unknown)}")
    sides = []
    for stanza in ("storage_source", "storage_destination"):
        blocks = _blocks(doc, stanza)
        if len(blocks) != 1:
            raise ConfigError(f'{filename}: exactly one {stanza} "type" {{ ... }} stanza is required')
        kind, body = blocks[0]
        if kind not in _STORAGE_KEYS:
            raise ConfigError(f"{filename}: unknown storage type {kind!r} (supported: {', '.join(_STORAGE_KEYS)})")
        bad = sorted(set(body) - _STORAGE_KEYS[kind])
        if bad:
            raise ConfigError(f'{filename}: unknown key(s) in {stanza} "{kind}": {", ".join(bad)}')
        need = "path" if kind == "sqlite" else "connection_url"
        if not isinstance(body.get(need), str) or not body[need]:
            raise ConfigError(f'{filename}: {stanza} "{kind}" needs {need} = "..."')
        sides.append(Side(kind, body))
    src, dst = sides
    if src.kind == dst.kind and _identity(src) == _identity(dst):
        raise ConfigError(f"{filename}: the source and the destination are the same storage")
    return MigrateConfig(src, dst)


def _identity(side: Side) -> tuple[str, ...]:
    if side.kind == "sqlite":
        import os

        return ("sqlite", os.path.realpath(side.settings["path"]))
    return ("postgresql", side.settings["connection_url"], side.settings.get("table", "strongroom_kv"))


class Opened:
    """A storage with its exclusive claim held, for as long as the migration runs."""

    def __init__(self, store: Any, claim: Any) -> None:
        self.store = store
        self.claim = claim

    async def close(self) -> None:
        await self.store.close()
        if self.claim is not None:
            await self.claim._lose(False, _nothing)


async def _nothing() -> None:
    return None


async def open_side(side: Side, role: str) -> Opened:
    if side.kind == "sqlite":
        from strongroom.storage.sqlite import SQLiteStorage

        return Opened(SQLiteStorage(side.settings["path"]), None)  # claims <db>.lock, or raises ConfigError
    from strongroom.core.ha import PostgresStorageClaim
    from strongroom.storage.postgres import PostgresStorage

    table = side.settings.get("table", "strongroom_kv")
    claim = PostgresStorageClaim(
        side.settings["connection_url"], lock_key=table, node_id=f"migrate-{role}", advertise_addr="(migration)"
    )
    await claim.take()
    return Opened(PostgresStorage(side.settings["connection_url"], table=table), claim)


async def digest(store: Any) -> tuple[int, str]:
    """Entry count and SHA-256 over every key and value, in key order."""
    h = hashlib.sha256()
    count = 0
    after, first = "", True
    while rows := await store.scan(after, PAGE * 5, include_lower=first):
        for key, value in rows:
            k = key.encode()
            h.update(len(k).to_bytes(4, "big") + k + len(value).to_bytes(4, "big") + value)
        count += len(rows)
        after, first = rows[-1][0], False
    return count, h.hexdigest()


async def migrate(
    cfg: MigrateConfig,
    *,
    start: str = "",
    reset: bool = False,
    progress: Callable[[int, str], None] | None = None,
) -> Result:
    src = await open_side(cfg.source, "source")
    try:
        dst = await open_side(cfg.destination, "destination")
        try:
            return await copy(src.store, dst.store, start=start, reset=reset, progress=progress)
        finally:
            await dst.close()
    finally:
        await src.close()


async def copy(
    src: Any, dst: Any, *, start: str = "", reset: bool = False, progress: Callable[[int, str], None] | None = None
) -> Result:
    if await dst.scan("", 1):
        if reset:
            await dst.replace_all([])
        elif not start:
            raise MigrationError(
                "the destination storage already holds data; give --reset to empty it first, or --start KEY to "
                "resume an interrupted migration"
            )
    copied = 0
    after, first = start, True
    while rows := await src.scan(after, PAGE, include_lower=first):
        await dst.transaction([TxnOp("put", key, value) for key, value in rows])
        copied += len(rows)
        after, first = rows[-1][0], False
        if progress is not None:
            progress(copied, after)
    src_count, src_sum = await digest(src)
    dst_count, dst_sum = await digest(dst)
    if (src_count, src_sum) != (dst_count, dst_sum):
        raise MigrationError(
            f"verification failed: the source holds {src_count} entries, the destination {dst_count}, and their "
            "checksums differ; run again with --reset"
            if src_count != dst_count
            else "verification failed: the destination's entries differ from the source's; run again with --reset"
        )
    return Result(copied, src_count, src_sum)
