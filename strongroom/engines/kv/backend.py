"""The KV secrets engine: version 2 (versioned, Vault's ``vault-plugin-secrets-kv``) and version 1 passthrough.

Mount options (strings, as Vault stores them):

- ``version``: ``"2"`` for versioned data; ``"1"`` or absent for the unversioned passthrough store (Vault's default).
- ``write_once``: ``"true"`` makes every key accept exactly one version. A second write, a PATCH, deleting, undeleting
  or destroying that version, deleting the key's metadata, and changing ``max_versions``/``delete_version_after`` are
  refused with a 400 for every caller, root included: the value of a key, once written, can only be read.
  The setting is sticky: the engine records it in its own storage the first time it sees it, so tuning the mount's
  options back to ``false`` does not reopen the keys.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from strongroom.core.logical import InvalidRequest, Request
from strongroom.core.request_txn import TxnLock
from strongroom.engines.kv import (
    path_config,
    path_data,
    path_delete,
    path_destroy,
    path_metadata,
    path_passthrough,
    path_subkeys,
)
from strongroom.engines.kv.storage import WRITE_ONCE_MARKER, KVStore
from strongroom.framework import Backend, BackendContext

# Like Vault's locksutil: a fixed set of striped locks keeps memory bounded however many keys the mount holds.
_LOCK_STRIPES = 256
_TRUE = ("true", "1", "t", "yes")
_FALSE = ("false", "0", "f", "no", "")


def _write_once_option(options: dict[str, Any]) -> bool | None:
    """True, False, or None for a value that is neither."""
    raw = str(options.get("write_once", "")).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    return None


def _version_option(options: dict[str, Any]) -> int:
    version = str(options.get("version", "") or "1").strip()
    if version not in ("1", "2"):
        raise InvalidRequest(f"invalid value for kv mount option 'version': {version!r} (must be 1 or 2)")
    return int(version)


class KVBackend(Backend):
    type = "kv"

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> None:
        """For the mount and tune endpoints: refuse options this engine does not understand, before they are stored."""
        _version_option(options)
        if _write_once_option(options) is None:
            raise InvalidRequest("invalid value for kv mount option 'write_once': must be true or false")

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.version = _version_option(ctx.options)
        self._write_once = False
        self._marker_checked = False
        self._marker_lock = asyncio.Lock()
        if self.version == 2:
            self.paths = [
                *path_data.paths(self),
                *path_metadata.paths(self),
                *path_subkeys.paths(self),
                *path_delete.paths(self),
                *path_destroy.paths(self),
                *path_config.paths(self),
            ]
        else:
            self.paths = path_passthrough.paths(self)

    async def initialize(self) -> None:
        await self.is_write_once()

    async def is_write_once(self) -> bool:
        """Whether the mount is write-once: asked for in its options now, or at any time before (sticky)."""
        if self._write_once:
            return True
        # The options are read on every request, so a tune to write_once=true takes effect without a remount.
        # A value that is neither true nor false fails safe: the mount is write-once (and the backend still loads).
        if _write_once_option(self.ctx.options) is not False:
            # Sticky and fail-safe, so recorded at once whatever becomes of the request that first saw it: a plain
            # lock, never held to a request's commit, where data writes already hold a key's lock (no lock-order cycle).
            async with self._marker_lock:
                if await self.ctx.storage.get(WRITE_ONCE_MARKER) is None:
                    marker = {"since": time.time()}
                    await self.ctx.storage.outside_request().put_json(WRITE_ONCE_MARKER, marker)
            self._write_once = True
        elif not self._marker_checked:
            self._write_once = await self.ctx.storage.get(WRITE_ONCE_MARKER) is not None
            self._marker_checked = True
        return self._write_once

    def store(self, req: Request) -> KVStore:
        return KVStore(req.storage if req.storage is not None else self.ctx.storage)

    def lock(self, key: str) -> TxnLock:
        """The lock serialising read-modify-write of one key's records (striped, shared with unrelated keys); held
        until the request commits, so the next writer of the key reads the committed version."""
        return self.ctx.storage.lock(f"kv-lock/{hash(key) % _LOCK_STRIPES}")

    def transport(self) -> Any:
        return self.ctx.services.get("transport")
