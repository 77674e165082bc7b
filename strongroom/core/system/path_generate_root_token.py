"""sys/generate-root-token/*: OpenBao's authenticated form of root token generation (what the `bao` CLI calls).

The same ceremony as the unauthenticated ``sys/generate-root/*`` endpoints (``strongroom/api/sys_special.py``), but
routed through the pipeline, so the caller needs a token whose policy grants it with ``sudo``, and every step is
audited like any other request. Answers are in the response envelope's ``data``, as OpenBao answers them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.core.seal import decode_key
from strongroom.framework import Field, FieldData, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core


def paths(core: Core) -> list[Path]:
    async def status(req: Request, fd: FieldData) -> Response | None:
        await core.refresh_threshold()
        return Response(data=core.generate_root_status())

    async def start(req: Request, fd: FieldData) -> Response | None:
        pgp_key = fd.get("pgp_key") or None
        return Response(data=await core.generate_root_start(fd.get("otp") or "", pgp_key))

    async def cancel(req: Request, fd: FieldData) -> Response | None:
        core.generate_root_cancel()
        return None

    async def update(req: Request, fd: FieldData) -> Response | None:
        if not fd.get("key"):
            raise InvalidRequest("'key' must be specified in request body as JSON")
        return Response(data=await core.generate_root_update(decode_key(fd.get("key")), fd.get("nonce") or ""))

    return [
        Path(
            r"generate-root-token/attempt",
            {Operation.READ: status, Operation.UPDATE: start, Operation.DELETE: cancel},
            fields={
                "otp": Field(description="One-time password for encoding the root token."),
                "pgp_key": Field(description="PGP key for encrypting the root token."),
            },
            sudo=True,
            summary="Start, read or cancel a root token generation (authenticated form).",
        ),
        Path(
            r"generate-root-token/update",
            {Operation.UPDATE: update},
            fields={
                "key": Field(description="One unseal key share."),
                "nonce": Field(description="The nonce of the root generation attempt."),
            },
            sudo=True,
            summary="Provide one unseal key share to the root token generation (authenticated form).",
        ),
    ]
