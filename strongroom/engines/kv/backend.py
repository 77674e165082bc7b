"""The KV secrets engine: version 2 (versioned, Vault's ``vault-plugin-secrets-kv``) and version 1 passthrough.

Mount options (strings, as Vault stores them):

- ``version``: ``"2"`` for versioned data; ``"1"`` or absent for the unversioned passthrough store (Vault's default).
- ``write_once``: ``"true"`` makes every key accept exactly one version. A second write, a PATCH, deleting, undeleting
  or destroying that version, deleting the key's metadata, and changing ``max_versions``/``delete_version_after`` are
  refused with a 400 for every caller, root included: the value of a key, once written, can only be read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from strongroom.core.logical import InvalidRequest, Request
from strongroom.engines.kv import (
    path_config,
    path_data,
    path_delete,
    path_destroy,
    path_metadata,
    path_passthrough,
    path_subkeys,
)
from strongroom.engines.kv.storage import KVStore
from strongroom.framework import Backend, BackendContext

# Like Vault's locksutil: a fixed set of striped locks keeps memory bounded however many keys the mount holds.
_LOCK_STRIPES = 256
_TRUE = ("true", "1", "t", "yes")
_FALSE = ("false", "0", "f", "no", "")


def _bool_option(options: dict[str, Any], name: str) -> bool:
    raw = str(options.get(name, "")).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise InvalidRequest(f"invalid value for kv mount option {name!r}: must be true or false")


class KVBackend(Backend):
    type = "kv"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        version = str(ctx.options.get("version", "") or "1").strip()
        if version not in ("1", "2"):
            raise InvalidRequest(f"invalid value for kv mount option 'version': {version!r} (must be 1 or 2)")
        self.version = int(version)
        _bool_option(ctx.options, "write_once")  # refuse a bad option at mount time, not on the first write
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

    @property
    def write_once(self) -> bool:
        # Read on every request so that a tune of the mount's options takes effect without a remount.
        return _bool_option(self.ctx.options, "write_once")

    def store(self, req: Request) -> KVStore:
        return KVStore(req.storage if req.storage is not None else self.ctx.storage)

    def lock(self, key: str) -> asyncio.Lock:
        """The lock serialising read-modify-write of one key's records (striped, shared with unrelated keys)."""
        return self.ctx.storage.lock(f"kv-lock/{hash(key) % _LOCK_STRIPES}")

    def transport(self) -> Any:
        return self.ctx.services.get("transport")
