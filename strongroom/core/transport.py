"""The server's transport keys: X25519 key pairs whose private halves live behind the barrier.

Clients encrypt secret values to the newest public key (:mod:`strongroom.transport_crypto`); a write handler calls
:meth:`TransportKeys.decrypt_json`. After a rotation the previous keys keep opening envelopes for ``retention`` seconds,
so a value sealed just before the rotation still lands; after that they are deleted.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

from strongroom import transport_crypto as tc

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView

_KEYRING = "keyring"
DEFAULT_RETENTION = 24 * 3600


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class TransportKeys:
    def __init__(self, view: BarrierView, retention: int = DEFAULT_RETENTION) -> None:
        self._view = view
        self.retention = retention

    async def load(self) -> None:
        """Nothing to do at unseal: the keyring is read (or created) on first use."""

    async def stop(self) -> None:
        """Nothing held outside the barrier to drop."""

    async def _load(self) -> dict[str, Any] | None:
        return await self._view.get_json(_KEYRING)

    async def _keyring(self) -> dict[str, Any]:
        doc = await self._load()
        if doc is not None:
            return doc
        async with self._view.lock(_KEYRING):
            doc = await self._load()
            if doc is None:
                doc = {"latest": 0, "keys": {}}
                self._add(doc)
                await self._view.put_json(_KEYRING, doc)
            return doc

    @staticmethod
    def _add(doc: dict[str, Any]) -> None:
        now = time.time()
        for entry in doc["keys"].values():
            entry.setdefault("retired", now)
        version = int(doc["latest"]) + 1
        doc["latest"] = version
        doc["keys"][str(version)] = {"private": base64.b64encode(tc.new_private_key()).decode(), "created": now}

    def _prune(self, doc: dict[str, Any]) -> None:
        cutoff = time.time() - self.retention
        doc["keys"] = {v: e for v, e in doc["keys"].items() if e.get("retired") is None or e["retired"] >= cutoff}

    @staticmethod
    def _describe(version: int, entry: dict[str, Any]) -> dict[str, Any]:
        public = tc.public_key_of(base64.b64decode(entry["private"]))
        return {
            "key": base64.b64encode(public).decode(),
            "fingerprint": tc.fingerprint(public),
            "algorithm": tc.ALGORITHM,
            "version": version,
            "created_time": _iso(entry["created"]),
        }

    async def public_key(self) -> dict[str, Any]:
        doc = await self._keyring()
        version = int(doc["latest"])
        return self._describe(version, doc["keys"][str(version)])

    async def rotate(self) -> dict[str, Any]:
        await self._keyring()
        async with self._view.lock(_KEYRING):
            doc = await self._load() or {"latest": 0, "keys": {}}
            self._add(doc)
            self._prune(doc)
            await self._view.put_json(_KEYRING, doc)
        version = int(doc["latest"])
        return self._describe(version, doc["keys"][str(version)])

    async def decrypt_json(self, envelope: str, path: str | None = None) -> dict[str, Any]:
        """The JSON object inside ``envelope``; raises :class:`transport_crypto.EnvelopeError` (safe message).

        ``path`` is where the value is being written (the API path, e.g. ``secret/data/k8s/ns/sa/name/v1``). When it is
        given, the envelope must have been sealed for exactly that destination, so it cannot be replayed elsewhere.
        """
        version, sealed, context = tc.parse(envelope)
        if path is not None and context != tc.canonical_context(path):
            raise tc.EnvelopeError("transport envelope was sealed for a different path")
        doc = await self._keyring()
        entry = doc["keys"].get(str(version))
        retired = entry.get("retired") if entry else None
        if entry is None or (retired is not None and retired < time.time() - self.retention):
            raise tc.EnvelopeError(f"transport key version {version} is unknown or retired; fetch the current key")
        return tc.open_json(base64.b64decode(entry["private"]), version, sealed, context)
