"""``sys/storage/snapshot`` (and Vault's ``sys/storage/raft/snapshot`` spelling): save and restore the whole store,
and ``sys/storage/snapshot-auto/{config,status}/<name>``: scheduled snapshots. All of them need sudo.

What a snapshot holds and how a restore is checked and installed: :mod:`strongroom.ops.snapshot`.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import TYPE_CHECKING, Any

from strongroom.core import request_txn
from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import NAME
from strongroom.ops import snapshot
from strongroom.ops.auto import AutoSnapshots, Status

if TYPE_CHECKING:
    from strongroom.core.core import Core

_PREFIX = r"storage/(?:raft/)?"
_CONFIG_FIELDS = ("interval", "retain", "path_prefix", "file_prefix", "storage_type", "local_max_space")


def paths(core: Core) -> list[Path]:
    async def save(req: Request, fd: FieldData) -> Response:
        body = await snapshot.take(core)
        return Response(raw_body=body, raw_content_type=snapshot.CONTENT_TYPE)

    async def restore(req: Request, fd: FieldData, *, force: bool) -> None:
        raw = req.data.get("http_raw_body")
        try:
            data = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
        except (binascii.Error, ValueError):
            data = b""
        await snapshot.restore(core, data, force=force)

    async def restore_checked(req: Request, fd: FieldData) -> None:
        await restore(req, fd, force=False)

    async def restore_forced(req: Request, fd: FieldData) -> None:
        await restore(req, fd, force=True)

    raw_body = {"http_raw_body": Field(FieldType.STRING, "The snapshot archive (the request body, as sent).")}

    def auto() -> AutoSnapshots:
        scheduler: AutoSnapshots | None = getattr(core, "auto_snapshots", None)
        if scheduler is None:  # only while unsealed and active, when no request can reach here anyway
            raise InvalidRequest("automated snapshots are not running on this node")
        return scheduler

    async def list_configs(req: Request, fd: FieldData) -> Response:
        return Response.list_keys(await auto().view.list_all())

    async def read_config(req: Request, fd: FieldData) -> Response:
        cfg = await auto().view.get_json(fd.get("name"))
        if cfg is None:
            raise NotFound()
        return Response(data={k: cfg.get(k) for k in _CONFIG_FIELDS})

    async def write_config(req: Request, fd: FieldData) -> None:
        scheduler = auto()
        name = fd.get("name")
        current = await scheduler.view.get_json(name) or {}

        def pick(field: str) -> Any:
            value, given = fd.get_ok(field)
            return value if given or field not in current else current[field]

        cfg = {k: pick(k) for k in _CONFIG_FIELDS}
        if not cfg["interval"]:
            raise InvalidRequest("interval is required and must be at least 1s")
        if cfg["storage_type"] != "local":
            raise InvalidRequest('storage_type is required; only "local" is supported')
        if not cfg["path_prefix"] or not os.path.isabs(cfg["path_prefix"]):
            raise InvalidRequest("path_prefix is required: an absolute directory on the server for storage_type=local")
        if cfg["retain"] < 1:
            raise InvalidRequest("retain must be at least 1")
        if cfg["local_max_space"] < 0:
            raise InvalidRequest("local_max_space must not be negative")
        if not cfg["file_prefix"] or "/" in cfg["file_prefix"] or cfg["file_prefix"].startswith("."):
            raise InvalidRequest("file_prefix must be a plain file name prefix")
        await scheduler.view.put_json(name, cfg)
        request_txn.after_commit(lambda: scheduler.schedule(name, cfg))

    async def delete_config(req: Request, fd: FieldData) -> None:
        scheduler = auto()
        name = fd.get("name")
        await scheduler.view.delete(name)
        request_txn.after_commit(lambda: scheduler.unschedule(name, forget=True))

    async def read_status(req: Request, fd: FieldData) -> Response:
        scheduler = auto()
        name = fd.get("name")
        if await scheduler.view.get_json(name) is None:
            raise NotFound()
        return Response(data=scheduler.status.get(name, Status()).as_data())

    name = Field(FieldType.STRING, "The name of the automated snapshot configuration.", required=True, in_path=True)
    config_fields = {
        "name": name,
        "interval": Field(FieldType.DURATION, "Time between snapshots: seconds or a duration string (24h)."),
        "retain": Field(FieldType.INT, "How many snapshots to keep; older ones are deleted.", default=1),
        "path_prefix": Field(FieldType.STRING, "For storage_type=local, the directory to write snapshots in."),
        "file_prefix": Field(FieldType.STRING, "The start of every snapshot file's name.", default="vault-snapshot"),
        "storage_type": Field(FieldType.STRING, 'Where snapshots go; only "local".', allowed=("local",)),
        "local_max_space": Field(
            FieldType.INT, "For storage_type=local, the most bytes all kept snapshots may take (0: no limit).",
            default=0,
        ),
    }
    return [
        Path(
            _PREFIX + "snapshot",
            {Operation.READ: save, Operation.UPDATE: restore_checked},
            fields=raw_body,
            sudo=True,
            summary="Save a snapshot of the whole store (GET) or restore one (POST the archive as the body).",
        ),
        Path(
            _PREFIX + "snapshot-force",
            {Operation.UPDATE: restore_forced},
            fields=raw_body,
            sudo=True,
            summary="Restore a snapshot even if it was sealed with other keys than this server's.",
        ),
        Path(
            _PREFIX + "snapshot-auto/config/?",
            {Operation.LIST: list_configs},
            sudo=True,
            summary="List the automated snapshot configurations.",
        ),
        Path(
            _PREFIX + rf"snapshot-auto/config/(?P<name>{NAME})",
            {Operation.READ: read_config, Operation.UPDATE: write_config, Operation.DELETE: delete_config},
            fields=config_fields,
            sudo=True,
            summary="An automated snapshot configuration: how often, where, how many to keep.",
        ),
        Path(
            _PREFIX + rf"snapshot-auto/status/(?P<name>{NAME})",
            {Operation.READ: read_status},
            fields={"name": name},
            sudo=True,
            summary="The state of an automated snapshot configuration: last and next snapshot, errors.",
        ),
    ]
