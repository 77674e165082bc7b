"""How the KV engine keeps its records behind the barrier.

Layout inside the mount's view (each value is encrypted and bound to its storage path by the barrier):

- ``config``                       the mount-wide settings (:class:`Config`);
- ``metadata/<key path>``          one :class:`KeyMetadata` per key; listing walks this tree, so folders are real;
- ``versions/<sha256(key)>/<n>``   one immutable record per version of a key, holding its data;
- ``sys/write-once``               present once the mount has been write-once (the setting cannot be tuned away);
- ``entries/<key path>``           KV version 1 only: one unversioned map per key.

Metadata and the versions it describes change together in one storage transaction, so a crash never leaves a version
without metadata or metadata pointing at data that was never written.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from strongroom import crypto
from strongroom.core.logical import InvalidRequest

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView

DEFAULT_MAX_VERSIONS = 10
# Vault's marker for "delete_version_after disabled on this mount" (a negative duration was written to config).
DVA_DISABLED = -1
CONFIG_KEY = "config"
# present once the mount has ever been write-once; outside the key trees of both KV versions
WRITE_ONCE_MARKER = "sys/write-once"
METADATA_PREFIX = "metadata/"
VERSIONS_PREFIX = "versions/"


def now_ns() -> int:
    return time.time_ns()


@functools.lru_cache(maxsize=16384)  # the same few timestamps are formatted on every read of a busy key
def format_time(ns: int | None) -> str:
    """Go's ``time.RFC3339Nano`` in UTC (trailing zeros of the fraction trimmed), ``""`` for no time."""
    if ns is None:
        return ""
    secs, nanos = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        base += "." + f"{nanos:09d}".rstrip("0")
    return base + "Z"


def validate_key_path(path: str, *, folder: bool = False) -> str:
    """Refuse paths that would be ambiguous or escape their folder: empty, ``.`` and ``..`` segments, control bytes.

    ``folder`` allows the empty root and a trailing ``/`` (listing).
    """
    if path == "" and not folder:
        raise InvalidRequest("missing path")
    body = path
    if folder:
        if body == "":
            return body
        body = body.removesuffix("/")
    segments = body.split("/")
    if not body or any(s in ("", ".", "..") for s in segments) or not body.isprintable():
        raise InvalidRequest(
            f'invalid path {path!r}: empty, "." and ".." segments and control characters are not allowed'
        )
    return path


def metadata_key(path: str) -> str:
    return METADATA_PREFIX + path


def version_key(path: str, version: int) -> str:
    # A digest keeps the version tree flat and free of the key's own "/" structure; metadata holds the real name.
    return f"{VERSIONS_PREFIX}{crypto.sha256_hex(path.encode())}/{version}"


def deletion_time(created_ns: int, mount_dva: int, key_dva: int) -> int | None:
    """When a version written at ``created_ns`` is soft-deleted automatically: the smaller non-zero setting wins."""
    if mount_dva == DVA_DISABLED:
        return None
    candidates = [d for d in (mount_dva, key_dva) if d > 0]
    if not candidates:
        return None
    return created_ns + min(candidates) * 1_000_000_000


@dataclass(slots=True)
class Config:
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: int = 0  # seconds; 0 unset, DVA_DISABLED disabled

    def to_json(self) -> dict[str, Any]:
        return {
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "delete_version_after": self.delete_version_after,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> Config:
        if not doc:
            return cls()
        return cls(int(doc["max_versions"]), bool(doc["cas_required"]), int(doc["delete_version_after"]))


@dataclass(slots=True)
class VersionMetadata:
    created_time: int
    deletion_time: int | None = None
    destroyed: bool = False
    # who wrote this version (the token's display name): the inspection UI and `strongroom secret versions` show it
    created_by: str = ""

    def is_deleted(self, now: int) -> bool:
        return self.deletion_time is not None and self.deletion_time < now

    def is_live(self, now: int) -> bool:
        return not self.destroyed and not self.is_deleted(now)

    def describe(self) -> dict[str, Any]:
        return {
            "created_time": format_time(self.created_time),
            "deletion_time": format_time(self.deletion_time),
            "destroyed": self.destroyed,
        }

    def describe_with_author(self) -> dict[str, Any]:
        return {**self.describe(), "created_by": self.created_by}


@dataclass(slots=True)
class KeyMetadata:
    key: str
    versions: dict[int, VersionMetadata] = field(default_factory=dict)
    current_version: int = 0
    oldest_version: int = 0
    created_time: int | None = None
    updated_time: int | None = None
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: int = 0  # seconds, 0 unset
    custom_metadata: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "versions": {
                str(n): [v.created_time, v.deletion_time, v.destroyed, v.created_by] for n, v in self.versions.items()
            },
            "current_version": self.current_version,
            "oldest_version": self.oldest_version,
            "created_time": self.created_time,
            "updated_time": self.updated_time,
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "delete_version_after": self.delete_version_after,
            "custom_metadata": self.custom_metadata,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> KeyMetadata:
        return cls(
            key=doc["key"],
            versions={int(n): VersionMetadata(*v[:4]) for n, v in doc["versions"].items()},
            current_version=doc["current_version"],
            oldest_version=doc["oldest_version"],
            created_time=doc["created_time"],
            updated_time=doc["updated_time"],
            max_versions=doc["max_versions"],
            cas_required=doc["cas_required"],
            delete_version_after=doc["delete_version_after"],
            custom_metadata=doc["custom_metadata"],
        )

    def version_summary(self, number: int) -> dict[str, Any]:
        """The per-version block that data reads, writes and subkeys return."""
        vm = self.versions[number]
        return {"version": number, **vm.describe(), "custom_metadata": self.custom_metadata}

    def add_version(
        self, created: int, deleted: int | None, config_max_versions: int, created_by: str = ""
    ) -> tuple[VersionMetadata, list[int]]:
        """Append a version and slide the window of kept versions; returns it and the versions to remove from storage.

        The window is the larger of the key's and the mount's ``max_versions`` (Vault's rule), 10 when both are 0.
        ``oldest_version`` stays 0 until the window first slides, as in Vault.
        """
        vm = VersionMetadata(created, deleted, created_by=created_by)
        self.current_version += 1
        self.versions[self.current_version] = vm
        self.updated_time = created
        if self.created_time is None:
            self.created_time = created
        keep = max(self.max_versions, config_max_versions) or DEFAULT_MAX_VERSIONS
        removed: list[int] = []
        if self.current_version - self.oldest_version >= keep:
            last_removed = self.current_version - keep
            removed = list(range(max(self.oldest_version, 1), last_removed + 1))
            for n in removed:
                self.versions.pop(n, None)
            self.oldest_version = last_removed + 1
        return vm, removed


class KVStore:
    """Typed access to one mount's records. Callers hold :meth:`lock` around read-modify-write sequences."""

    __slots__ = ("view",)

    def __init__(self, view: BarrierView) -> None:
        self.view = view

    async def config(self) -> Config:
        return Config.from_json(await self.view.get_json(CONFIG_KEY))

    async def put_config(self, config: Config) -> None:
        await self.view.put_json(CONFIG_KEY, config.to_json())

    async def metadata(self, path: str) -> KeyMetadata | None:
        doc = await self.view.get_json(metadata_key(path))
        return None if doc is None else KeyMetadata.from_json(doc)

    async def version_data(self, path: str, version: int) -> dict[str, Any] | None:
        doc = await self.view.get_json(version_key(path, version))
        return None if doc is None else doc["data"]

    async def commit(
        self,
        meta: KeyMetadata,
        new_version: tuple[int, dict[str, Any]] | None = None,
        remove_versions: list[int] | tuple[int, ...] = (),
    ) -> None:
        """Write metadata, a new version and the removal of old versions as one atomic step."""
        puts: dict[str, Any] = {metadata_key(meta.key): meta.to_json()}
        for n in remove_versions:
            puts[version_key(meta.key, n)] = None
        if new_version is not None:
            number, data = new_version
            record = {"data": data, "created_time": meta.versions[number].created_time}
            try:
                puts[version_key(meta.key, number)] = orjson.dumps(record)
            except TypeError:
                raise InvalidRequest("data cannot be stored: it is not representable as JSON") from None
        await self.view.transaction(puts)

    async def remove_key(self, meta: KeyMetadata) -> None:
        puts: dict[str, Any] = {metadata_key(meta.key): None}
        for n in meta.versions:
            puts[version_key(meta.key, n)] = None
        await self.view.transaction(puts)

    async def list_page(self, prefix: str, after: str, limit: int) -> list[str]:
        return await self.view.list(metadata_key(prefix), after, limit)
