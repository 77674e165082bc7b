"""totp/code/<name>: GET generates the current code, POST validates one (each accepted once)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.totp import otp
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.totp.backend import TOTPBackend

_FIELDS = {
    "name": Field(FieldType.STRING, "Name of the key.", in_path=True),
    "code": Field(FieldType.STRING, "TOTP code to be validated."),
}


def paths(b: TOTPBackend) -> list[Path]:
    storage = b.ctx.storage
    # replay state stands even when the request that produced it fails
    direct = storage.outside_request()

    async def load(name: str) -> tuple[otp.TotpKey, int]:
        rec = await storage.get_json(f"key/{name}")
        if rec is None:
            raise InvalidRequest(f"unknown key: {name}")
        key = otp.TotpKey(otp.parse_b32(rec["key"]), int(rec["period"]), int(rec["digits"]), rec["algorithm"])
        return key, int(rec.get("skew", 1))

    async def generate(req: Request, fd: FieldData) -> Response:
        key, _ = await load(fd.get("name"))
        return Response(data={"code": key.code(time.time())})

    async def validate(req: Request, fd: FieldData) -> Response:
        name, code = fd.get("name"), (fd.get("code") or "").strip()
        if not code:
            raise InvalidRequest("the code value is required")
        async with storage.lock(f"code/{name}"):
            key, skew = await load(name)
            valid = len(code) == key.digits and code.isascii() and code.isdigit()
            step = key.matching_step(code, time.time(), skew) if valid else None
            if step is None:
                return Response(data={"valid": False})
            used = await direct.get_json(f"used/{name}") or {}
            if step <= int(used.get("step", -1)):
                raise InvalidRequest("code already used; wait until the next time period")
            await direct.put_json(f"used/{name}", {"step": step})
        return Response(data={"valid": True})

    return [
        Path(
            rf"code/{generic_name('name')}",
            {Operation.READ: generate, Operation.UPDATE: validate},
            _FIELDS,
            summary="Request time-based one-time use password or validate a password for a certain key.",
        ),
    ]
