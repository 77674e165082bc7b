"""Write-ahead entries for IAM users, so a crash between creating a user and recording its lease leaks nothing.

Before ``CreateUser`` the engine writes ``wal/<id>`` (the user's name) straight to storage, outside the request's
transaction. The request deletes that entry inside its transaction, so the deletion commits together with the lease
that will revoke the user; if the request fails the engine deletes the user itself, and if the request is discarded
(audit) the pipeline revokes the lease. Only a crash, or a failed clean-up, leaves an entry behind: a background task
on the active node deletes each user whose entry is older than ``STRONGROOM_AWS_ROLLBACK_MIN_AGE`` seconds (default
300, Vault's minimum rollback age: no request takes that long) and then the entry, retrying at every pass
(``STRONGROOM_AWS_ROLLBACK_CHECK`` seconds, default 60) while AWS refuses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING

from strongroom.engines.aws.client import AWSError

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView
    from strongroom.engines.aws.backend import AWSBackend

log = logging.getLogger(__name__)

PREFIX = "wal/"


def _setting(name: str, default: float) -> float:
    try:
        return max(0.1, float(os.environ.get(name, default)))
    except ValueError:
        return default


async def put(storage: BarrierView, user_name: str) -> str:
    wal_id = str(uuid.uuid4())
    await storage.outside_request().put_json(PREFIX + wal_id, {"username": user_name, "created_at": time.time()})
    return wal_id


async def sweep(b: AWSBackend) -> int:
    """Delete the users of entries older than the minimum age; returns how many were settled."""
    from strongroom.engines.aws.entries import get_root
    from strongroom.engines.aws.secret_access_keys import delete_user

    storage = b.ctx.storage
    min_age = _setting("STRONGROOM_AWS_ROLLBACK_MIN_AGE", 300)
    settled = 0
    for wal_id in await storage.list_all(PREFIX):
        entry = await storage.get_json(PREFIX + wal_id)
        if entry is None or time.time() - float(entry.get("created_at") or 0) < min_age:
            continue
        clients = await b.clients.get(await get_root(storage))
        try:
            await delete_user(clients, str(entry["username"]), accept_missing=True)
        except AWSError as exc:
            log.warning("aws engine: rolling back IAM user %s failed, will retry: %s", entry["username"], exc)
            continue
        await storage.delete(PREFIX + wal_id)
        log.warning("aws engine: rolled back IAM user %s left by an unfinished request", entry["username"])
        settled += 1
    return settled


async def run_forever(b: AWSBackend) -> None:
    interval = _setting("STRONGROOM_AWS_ROLLBACK_CHECK", 60)
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep(b)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a storage or configuration hiccup must not end the rollbacks for good
            log.warning("aws engine rollback on %s failed: %s", b.ctx.mount_path, type(exc).__name__)
