"""Snapshots of a whole store, and installing one.

A snapshot is a gzip'd tar archive, shaped like Vault's so ``vault operator raft snapshot save`` accepts it (the
Vault client checks that the last member, ``SHA256SUMS.sealed``, is present and not empty):

- ``meta.json``: the header: snapshot format version, storage format version, entry count, the SHA-256 of
  ``state.bin``, the keyring term and the seal identity (cluster id, a fingerprint of the encrypted root key);
- ``state.bin``: every stored entry in key order, ``u32 key length | u32 value length | key | value``. Values are
  exactly what storage holds, barrier ciphertext: a snapshot is useless without the unseal keys;
- ``SHA256SUMS``: ``sha256sum`` lines for the two files above;
- ``SHA256SUMS.sealed``: ``SHA256SUMS`` encrypted by the root key. A server whose root key opens it holds the same
  keys as the snapshot; any other server refuses the snapshot unless forced (Vault's ``snapshot-force``).

The entries come from one consistent view of the storage taken without pausing writers (``export`` of the SQLite
and PostgreSQL backends), so a snapshot holds every write acknowledged before it began.

Restoring checks the archive completely (sums, records, the storage format version, the keys) before anything
changes, records an audit event (refused if it cannot be recorded), and only after the request's audit response is
on record seals the node and replaces the storage in one transaction. The node must then be unsealed with the
snapshot's keys; leases that expired since the snapshot are revoked when the expiration manager loads them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import struct
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

import orjson

from strongroom import crypto
from strongroom.core import request_txn
from strongroom.core.logical import InvalidRequest, Sealed
from strongroom.ops import storage_format

if TYPE_CHECKING:
    from strongroom.core.core import Core

log = logging.getLogger("strongroom.ops")

SNAPSHOT_FORMAT = "strongroom-snapshot"
SNAPSHOT_VERSION = 1
CONTENT_TYPE = "application/gzip"
_SEALED_AD = b"strongroom/snapshot/SHA256SUMS"
_RECORD = struct.Struct(">II")
_MEMBERS = ("meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed")
# what a store must hold to be unsealed at all
_REQUIRED_KEYS = ("core/seal-config", "core/root-key", "core/keyring")
FORCE_HINT = (
    "could not verify hash file, possibly the snapshot is using a different set of unseal keys; use the "
    "snapshot-force API to bypass this check"
)


class WholeStore(Protocol):
    """What the storage backends offer beyond :class:`~strongroom.storage.base.Storage` for whole-store work."""

    async def export(self, sink: Callable[[list[tuple[str, bytes]]], None], page: int = 5000) -> None: ...

    async def replace_all(self, entries: Iterable[tuple[str, bytes]]) -> None: ...

    async def scan(self, lower: str = "", limit: int = 1000, *, include_lower: bool = True) -> list[
        tuple[str, bytes]
    ]: ...


@dataclass
class Snapshot:
    meta: dict[str, Any]
    state: bytes
    sums: bytes
    sealed: bytes

    def entries(self) -> Iterator[tuple[str, bytes]]:
        return iter_records(self.state)


def iter_records(state: bytes) -> Iterator[tuple[str, bytes]]:
    view = memoryview(state)
    pos, end = 0, len(state)
    while pos < end:
        if pos + _RECORD.size > end:
            raise InvalidRequest("the snapshot is corrupt: a record is truncated")
        klen, vlen = _RECORD.unpack_from(view, pos)
        pos += _RECORD.size
        if pos + klen + vlen > end:
            raise InvalidRequest("the snapshot is corrupt: a record is truncated")
        try:
            key = bytes(view[pos : pos + klen]).decode()
        except UnicodeDecodeError:
            raise InvalidRequest("the snapshot is corrupt: a key is not UTF-8") from None
        pos += klen
        yield key, bytes(view[pos : pos + vlen])
        pos += vlen


def encode_records(rows: list[tuple[str, bytes]]) -> bytes:
    out = bytearray()
    for key, value in rows:
        k = key.encode()
        out += _RECORD.pack(len(k), len(value))
        out += k
        out += value
    return bytes(out)


# --- taking a snapshot ------------------------------------------------------------------------------------------


async def take(core: Core) -> bytes:
    """A snapshot archive of the whole store of this (unsealed, active) node."""
    if core.sealed:
        raise Sealed()
    store: WholeStore = core.storage  # type: ignore[assignment]
    root_key = core._root_key
    term = int(core.barrier.key_status()["term"])
    fmt = await storage_format.read(core.barrier)
    started = time.time()
    state = tempfile.TemporaryFile()  # noqa: SIM115 - unlinked at once, closed below; holds ciphertext only
    try:
        digest = hashlib.sha256()
        seen: dict[str, bytes] = {}
        count = 0

        def sink(rows: list[tuple[str, bytes]]) -> None:
            nonlocal count
            chunk = encode_records(rows)
            state.write(chunk)
            digest.update(chunk)
            count += len(rows)
            for key, value in rows:
                if key == "core/root-key":
                    seen[key] = value

        await store.export(sink)
        meta = {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "storage_format_version": fmt,
            "strongroom_version": _version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "source_storage": core.storage_type,
            "entries": count,
            "state_sha256": digest.hexdigest(),
            "keyring_term": term,
            "cluster_id": core.cluster_id,
            "seal_fingerprint": seal_fingerprint(seen.get("core/root-key", b"")),
        }
        return await asyncio.to_thread(_archive, state, meta, root_key)
    finally:
        state.close()


def seal_fingerprint(encrypted_root_key: bytes) -> str:
    """Which seal a store belongs to, without revealing anything: a hash of the stored (encrypted) root key."""
    return hashlib.sha256(encrypted_root_key).hexdigest()[:32] if encrypted_root_key else ""


def _version() -> str:
    from strongroom.core.core import VERSION

    return VERSION


def _archive(state: IO[bytes], meta: dict[str, Any], root_key: bytes) -> bytes:
    meta_raw = orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    sums = (
        f"{hashlib.sha256(meta_raw).hexdigest()}  meta.json\n{meta['state_sha256']}  state.bin\n".encode()
    )
    out = io.BytesIO()
    # ciphertext does not compress: level 1 keeps gzip's cost low while the keys still shrink
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as tar:
        _add(tar, "meta.json", meta_raw)
        info = tarfile.TarInfo("state.bin")
        info.size = state.seek(0, io.SEEK_END)
        info.mtime = int(time.time())
        info.mode = 0o600
        state.seek(0)
        tar.addfile(info, state)
        _add(tar, "SHA256SUMS", sums)
        _add(tar, "SHA256SUMS.sealed", crypto.seal(root_key, sums, _SEALED_AD))
    return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


# --- reading one --------------------------------------------------------------------------------------------------


def parse(data: bytes) -> Snapshot:
    """Open and check an archive: every member present once, the sums right, the header understood."""
    if not data:
        raise InvalidRequest("no snapshot in the request body")
    # ciphertext barely compresses, so a member far larger than the archive is a decompression bomb
    limit = 32 * len(data) + (16 << 20)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                if not member.isfile() or member.name not in _MEMBERS or member.name in files:
                    raise InvalidRequest(f"the snapshot holds an unexpected member {member.name[:64]!r}")
                if member.size > limit:
                    raise InvalidRequest("the snapshot is corrupt: a member is implausibly large")
                fh = tar.extractfile(member)
                files[member.name] = fh.read() if fh is not None else b""
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        raise InvalidRequest("the request body is not a snapshot archive (a gzip'd tar)") from None
    missing = [m for m in _MEMBERS if m not in files]
    if missing:
        raise InvalidRequest(f"the snapshot is incomplete: {', '.join(missing)} missing")
    sums = files["SHA256SUMS"]
    expected: dict[str, str] = {}
    for line in sums.decode(errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        expected[name.strip()] = digest.strip()
    for name in ("meta.json", "state.bin"):
        if not crypto.constant_time_eq(expected.get(name, ""), hashlib.sha256(files[name]).hexdigest()):
            raise InvalidRequest(f"the snapshot is corrupt: the checksum of {name} does not match")
    try:
        meta = orjson.loads(files["meta.json"])
    except orjson.JSONDecodeError:
        raise InvalidRequest("the snapshot is corrupt: meta.json is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT:
        raise InvalidRequest("not a Strongroom snapshot")
    version = meta.get("version")
    if not isinstance(version, int) or version > SNAPSHOT_VERSION:
        raise InvalidRequest(f"snapshot format version {version!r} is not one this binary reads ({SNAPSHOT_VERSION})")
    if meta.get("state_sha256") != expected.get("state.bin"):
        raise InvalidRequest("the snapshot is corrupt: its header and SHA256SUMS disagree")
    fmt = meta.get("storage_format_version")
    if isinstance(fmt, int) and fmt > storage_format.CURRENT:
        raise InvalidRequest(
            f"the snapshot has storage format version {fmt}, written by a newer Strongroom; this binary reads up to "
            f"version {storage_format.CURRENT}: upgrade the binary first"
        )
    return Snapshot(meta, files["state.bin"], sums, files["SHA256SUMS.sealed"])


def _load(data: bytes) -> tuple[Snapshot, list[tuple[str, bytes]]]:
    snap = parse(data)
    return snap, list(snap.entries())


def same_keys(snap: Snapshot, root_key: bytes) -> bool:
    """Whether ``root_key`` (this server's) sealed the snapshot."""
    try:
        return crypto.constant_time_eq(crypto.open_sealed(root_key, snap.sealed, _SEALED_AD), snap.sums)
    except crypto.DecryptionError:
        return False


# --- restoring one ------------------------------------------------------------------------------------------------


async def restore(core: Core, data: bytes, *, force: bool) -> dict[str, Any]:
    """Check ``data`` and schedule its installation for when the current request commits (at once outside one)."""
    if core.sealed:
        raise Sealed()
    # tens of megabytes to inflate, hash and split: off the event loop, which keeps serving meanwhile
    snap, entries = await asyncio.to_thread(_load, data)
    if len(entries) != snap.meta.get("entries"):
        raise InvalidRequest("the snapshot is corrupt: its entry count does not match its header")
    present = {k for k, _ in entries if k in _REQUIRED_KEYS}
    if len(present) != len(_REQUIRED_KEYS):
        raise InvalidRequest("the snapshot is not of an initialised store (no seal configuration or keyring)")
    matches = same_keys(snap, core._root_key)
    if not matches and not force:
        raise InvalidRequest(FORCE_HINT)
    summary = {
        "entries": len(entries),
        "state_sha256": snap.meta["state_sha256"],
        "keyring_term": snap.meta.get("keyring_term"),
        "snapshot_created": snap.meta.get("created"),
        "forced": force,
        "same_keys": matches,
    }
    # fail closed: a restore nobody could see happen must not happen
    await core._record("snapshot-restore", summary)

    async def install() -> None:
        # sealed first: no request can encrypt anything under the old keyring any more, and every write already
        # queued reaches storage before the replacement (the backends order it after them)
        await core.seal(node_wide=True)  # every worker of the node: none may serve from the replaced state
        store: WholeStore = core.storage  # type: ignore[assignment]
        await store.replace_all(entries)
        log.warning("storage replaced by a snapshot of %d entries; the node is sealed", len(entries))

    await request_txn.after_commit_await(install)
    return summary
