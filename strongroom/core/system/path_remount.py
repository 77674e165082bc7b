"""sys/remount and sys/remount/status/<id>: move a secrets engine or an auth method (`vault secrets move`,
`vault auth move`).

The move itself is quick here (a mount's data is keyed by its uuid, so nothing is copied; only its leases are
renamed), so it completes before the answer; the status endpoint still answers in Vault's shape because the CLI polls
it. Statuses live in memory, as Vault's do.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.core.logical import InvalidRequest, NotFound, Operation, PermissionDenied, Request, Response
from strongroom.core.mounts import normalize_mount_path
from strongroom.core.system.path_mounts import write_once_removal_refused
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core

_KEEP = 1000  # statuses remembered; the oldest are forgotten first
_PROTECTED = ("auth/", "sys/", "cubbyhole/", "identity/")  # Vault's protectedMounts (plus our identity singleton)


def paths(core: Core) -> list[Path]:
    migrations: dict[str, dict[str, Any]] = {}

    async def remount(req: Request, fd: FieldData) -> Response:
        raw_from, raw_to = fd.get("from"), fd.get("to")
        if not raw_from or not raw_to:
            raise InvalidRequest("both 'from' and 'to' path must be specified as a string")
        for name, raw in (("from", raw_from), ("to", raw_to)):
            if raw != raw.strip():
                raise InvalidRequest(f"'{name}' path cannot contain trailing whitespace")
        src, dst = normalize_mount_path(raw_from), normalize_mount_path(raw_to)
        # Vault's checks and words, in Vault's order
        if src.startswith("auth/"):
            if not dst.startswith("auth/"):
                raise InvalidRequest(f'cannot remount auth mount to non-auth mount "{dst}"')
            if src == "auth/token/":
                raise InvalidRequest(f'cannot remount "{src}"')
            if dst == "auth/token/":
                raise InvalidRequest(f'cannot remount to destination "{dst}"')
        else:
            if src.startswith(_PROTECTED):
                raise InvalidRequest(f'cannot remount "{src}"')
            if dst.startswith(_PROTECTED):
                raise InvalidRequest(f"cannot remount to destination {dst}")
        route = core.router.get(src)
        if route is None:
            raise InvalidRequest(f'no matching mount at "{src}"')
        if core.router.get(dst) is not None or core.router.conflicts(dst):
            raise InvalidRequest(f'path already in use at "{dst}"')
        if await write_once_removal_refused(core, req, route, "move"):
            raise PermissionDenied("moving a write-once mount requires sudo")
        migration_id = crypto.new_uuid()
        info = {"source_mount": src, "target_mount": dst, "status": "in-progress"}
        migrations[migration_id] = {"info": info, "started": time.time()}
        while len(migrations) > _KEEP:
            migrations.pop(next(iter(migrations)))
        try:
            await core.remount(src, dst)
        except Exception:
            info["status"] = "failure"
            raise
        info["status"] = "success"
        return Response(data={"migration_id": migration_id}, inject_top_level=True)  # as Vault's sys/remount

    async def status(req: Request, fd: FieldData) -> Response:
        migration_id = fd.get("migration_id")
        record = migrations.get(migration_id)
        if record is None:
            raise NotFound()  # Vault answers an unknown id with no data
        return Response(data={"migration_id": migration_id, "migration_info": dict(record["info"])})

    return [
        Path(
            r"remount",
            {Operation.UPDATE: remount},
            {
                "from": Field(FieldType.STRING, "The previous mount point."),
                "to": Field(FieldType.STRING, "The new mount point."),
            },
            sudo=True,  # root-protected in Vault too
            summary="Move a mounted backend to a new path.",
        ),
        Path(
            r"remount/status/(?P<migration_id>.+)",
            {Operation.READ: status},
            {"migration_id": Field(FieldType.STRING, "The id returned by sys/remount.", in_path=True)},
            summary="The status of a mount move.",
        ),
    ]
