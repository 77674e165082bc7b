"""sys/audit, sys/audit/<path>, sys/audit-hash/<path> and sys/audit-events: the audit device table over the API."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from strongroom.audit import AuditFailure
from strongroom.core.logical import InvalidRequest, LogicalError, Operation, Request, Response
from strongroom.framework import FieldData, Path
from strongroom.framework.fields import Field, FieldType

if TYPE_CHECKING:
    from strongroom.core.core import Core

_MAX_EVENTS = 1000
_MAX_EVENT_BYTES = 64 * 1024
_MAX_SOURCE = 128

_DEVICE_PATH = Field(FieldType.STRING, "The path the audit device is enabled at.", required=True, in_path=True)


def paths(core: Core) -> list[Path]:
    async def list_devices(req: Request, fd: FieldData) -> Response:
        return Response(data=core.audit.list(), inject_top_level=True)

    async def enable(req: Request, fd: FieldData) -> None:
        if not fd.get("type"):
            raise InvalidRequest("missing required field 'type'")
        await core.audit.enable(
            fd.get("path"), fd.get("type"), fd.get("description"), fd.get("options") or {}, fd.get("local")
        )

    async def read_device(req: Request, fd: FieldData) -> Response:
        path = fd.get("path").strip().strip("/") + "/"
        head = core.audit.head(path)  # 400 for an unknown device
        return Response(data={**core.audit.list()[path], "head": head})

    async def disable(req: Request, fd: FieldData) -> None:
        await core.audit.disable(fd.get("path"))

    async def audit_hash(req: Request, fd: FieldData) -> Response:
        if fd.get("path").strip().strip("/") + "/" not in core.audit.list():
            raise InvalidRequest("unknown audit backend")  # Vault's words; clients match them
        return Response(data={"hash": core.audit.hash(fd.get("path"), fd.get("input"))}, inject_top_level=True)

    async def chain_head(req: Request, fd: FieldData) -> Response:
        return Response(data={"head": core.audit.head(fd.get("path"))})

    async def chain_check(req: Request, fd: FieldData) -> Response:
        digest, mac = fd.get("line_sha256"), fd.get("mac")
        if not digest or not mac:
            raise InvalidRequest("'line_sha256' and 'mac' are required")
        valid = core.audit.check_line(fd.get("path"), digest.lower(), mac)
        return Response(data={"valid": valid, "head": core.audit.head(fd.get("path"))})

    async def events(req: Request, fd: FieldData) -> Response:
        source = fd.get("source")
        if not source or len(source) > _MAX_SOURCE:
            raise InvalidRequest(f"'source' must be a non-empty string of at most {_MAX_SOURCE} characters")
        items = fd.get("events")
        if not isinstance(items, list) or not items or len(items) > _MAX_EVENTS:
            raise InvalidRequest(f"'events' must be a list of 1 to {_MAX_EVENTS} objects")
        for item in items:
            if not isinstance(item, dict) or len(orjson.dumps(item)) > _MAX_EVENT_BYTES:
                raise InvalidRequest(f"every event must be a JSON object of at most {_MAX_EVENT_BYTES} bytes")
        try:
            # who submitted the event is recorded from the token, whatever "source" claims
            submitter = {"display_name": req.caller.display_name, "entity_id": req.caller.entity_id}
            for item in items:
                await core.audit.log_event(source, {**item, "submitted_by": submitter}, request_id=req.request_id)
        except AuditFailure as e:
            raise LogicalError(str(e), status=500) from None
        # with no device enabled there is nowhere to record them (and nothing else is audited either)
        return Response(data={"recorded": len(items) if core.audit.enabled else 0})

    return [
        Path(
            r"audit/?",
            {Operation.READ: list_devices},
            sudo=True,
            summary="List the enabled audit devices.",
        ),
        Path(
            r"audit/(?P<path>.+)",
            {Operation.UPDATE: enable, Operation.DELETE: disable, Operation.READ: read_device},
            fields={
                "path": _DEVICE_PATH,
                "type": Field(FieldType.STRING, "The device type: file or socket."),
                "description": Field(FieldType.STRING, "A human-friendly description.", default=""),
                "options": Field(FieldType.MAP, "Device options (file_path, mode, address, …).", default={}),
                "local": Field(FieldType.BOOL, "Only for this cluster (kept for compatibility).", default=False),
            },
            sudo=True,
            summary="Enable, disable or inspect an audit device (GET also returns the device's chain head).",
        ),
        Path(
            r"audit-hash/(?P<path>.+)",
            {Operation.UPDATE: audit_hash},
            fields={
                "path": _DEVICE_PATH,
                "input": Field(FieldType.STRING, "The value to hash with the device's HMAC key.", required=True),
            },
            summary="The HMAC an audit device would write for a value.",
        ),
        Path(
            r"audit-chain/(?P<path>.+)",
            {Operation.READ: chain_head, Operation.UPDATE: chain_check},
            fields={
                "path": _DEVICE_PATH,
                "line_sha256": Field(FieldType.STRING, "SHA-256 (hex) of a log line as it reads without its mac."),
                "mac": Field(FieldType.STRING, "The line's mac field."),
            },
            summary="A device's chain head, and whether a line's mac is one the device wrote (for audit verify).",
        ),
        Path(
            r"audit-events/?",
            {Operation.UPDATE: events},
            fields={
                "source": Field(FieldType.STRING, "The service reporting the events (e.g. mpa-broker).", required=True),
                "events": Field(FieldType.ANY, "A list of event objects (no secrets).", required=True),
            },
            summary="Record events from another Strongroom service in the audit trail.",
        ),
    ]
