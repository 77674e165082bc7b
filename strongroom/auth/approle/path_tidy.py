"""auth/<mount>/tidy/secret-id: remove expired secret IDs, and accessors or secret IDs that lost their partner.

Login already refuses an expired secret ID; tidy reclaims the storage. Unlike Vault, which tidies in the background,
the sweep finishes before the answer, so the operator who asked sees its result at once (the answer keeps Vault's
202 and warning so clients that expect them are unaffected). One sweep runs at a time per mount.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from strongroom.auth.approle.path_secret_id import SecretIDs, expired
from strongroom.core.logical import Operation, Request, Response
from strongroom.framework import FieldData, Path

if TYPE_CHECKING:
    from strongroom.auth.approle.backend import AppRoleBackend

log = logging.getLogger("strongroom.auth.approle")

STARTED = ("Tidy operation successfully started. Any information from the operation will be printed to Vault's "
           "server logs.")


async def tidy(b: AppRoleBackend) -> int:
    """One sweep; returns how many storage entries it removed."""
    storage = b.ctx.storage
    ids = SecretIDs(b)
    removed = 0
    live_hmacs: set[str] = set()
    for folder in await storage.list_all("secret_id/"):
        prefix = f"secret_id/{folder}"
        for child in await storage.list_all(prefix):
            key = prefix + child
            async with storage.lock(key):
                entry = await ids.get(key)
                if entry is None:
                    continue
                has_accessor = await storage.get(ids.accessor_key(entry["secret_id_accessor"])) is not None
                if not has_accessor:
                    await storage.transaction({key: None})
                    removed += 1
                elif expired(entry):
                    await ids.remove(key, entry)
                    removed += 2
                else:
                    live_hmacs.add(child)
    for child in await storage.list_all("accessor/"):
        index: dict[str, Any] | None = await storage.get_json(f"accessor/{child}")
        if index is not None and index.get("secret_id_hmac") not in live_hmacs:
            secret_key = f"secret_id/{index.get('role_hmac')}/{index.get('secret_id_hmac')}"
            async with storage.lock(secret_key):
                # issued while the sweep ran: the secret ID is written in the same transaction as its accessor
                if await storage.get(secret_key) is None:
                    await storage.transaction({f"accessor/{child}": None})
                    removed += 1
    return removed


def paths(b: AppRoleBackend) -> list[Path]:
    running = asyncio.Lock()

    async def run(req: Request, fd: FieldData) -> Response:
        if running.locked():
            return Response(warnings=["Tidy operation already in progress."])
        async with running:
            removed = await tidy(b)
        log.info("approle tidy at %s removed %d entries", b.ctx.mount_path, removed)
        return Response(warnings=[STARTED], status=202)

    return [Path(r"tidy/secret-id", {Operation.UPDATE: run}, {}, summary="Remove expired secret IDs.")]
