"""``config``: mount-wide settings applied to every key (max_versions, cas_required, delete_version_after)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.kv import write_once
from strongroom.engines.kv.storage import DVA_DISABLED
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.durations import format_duration, parse_duration

if TYPE_CHECKING:
    from strongroom.engines.kv.backend import KVBackend

FIELDS = {
    "max_versions": Field(FieldType.INT, "The number of versions to keep for each key. Defaults to 10."),
    "cas_required": Field(
        FieldType.BOOL, "If true, the backend will require the cas parameter to be set for each write."
    ),
    "delete_version_after": Field(
        FieldType.ANY,
        "If set, the length of time before a version is deleted. A negative duration disables the use of "
        "delete_version_after on all keys. A zero duration clears the current setting. Accepts a Go duration string.",
    ),
}


def parse_signed_duration(raw: Any) -> int:
    """Vault's TypeSignedDurationSecond: like a duration, but ``-1h`` and ``-5`` are allowed."""
    text = raw.strip() if isinstance(raw, str) else raw
    negative = False
    if isinstance(text, str) and text.startswith("-"):
        negative, text = True, text[1:]
    elif isinstance(text, int | float) and not isinstance(text, bool) and text < 0:
        negative, text = True, -text
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise InvalidRequest("error converting input for field 'delete_version_after': expected duration") from None
    return -seconds if negative else seconds


def format_signed_duration(seconds: int) -> str:
    return "-" + format_duration(-seconds) if seconds < 0 else format_duration(seconds)


def paths(b: KVBackend) -> list[Path]:
    async def read(req: Request, fd: FieldData) -> Response | None:
        config = await b.store(req).config()
        return Response(
            data={
                "max_versions": config.max_versions,
                "cas_required": config.cas_required,
                "delete_version_after": format_signed_duration(config.delete_version_after),
            }
        )

    async def write(req: Request, fd: FieldData) -> Response | None:
        max_versions, has_max = fd.get_ok("max_versions")
        cas_required, has_cas = fd.get_ok("cas_required")
        raw_dva, has_dva = fd.get_ok("delete_version_after")
        if not (has_max or has_cas or has_dva):
            return None
        if has_max and not 0 <= max_versions < 2**32:
            raise InvalidRequest("max_versions must be between 0 and 4294967295")
        dva = parse_signed_duration(raw_dva) if has_dva else 0
        if has_dva and await b.is_write_once():
            write_once.refuse_mount_expiry(dva)
        store = b.store(req)
        async with b.lock("\x00config"):
            config = await store.config()
            if has_max:
                config.max_versions = max_versions
            if has_cas:
                config.cas_required = cas_required
            if has_dva:
                config.delete_version_after = DVA_DISABLED if dva < 0 else dva
            await store.put_config(config)
        return None

    return [
        Path(
            pattern=r"config",
            fields=FIELDS,
            operations={Operation.READ: read, Operation.UPDATE: write},
            summary="Configure backend-level settings applied to every key in the key-value store.",
        )
    ]
