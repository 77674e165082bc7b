"""``sys/transport/key`` (read: the public key clients encrypt secret values to) and ``sys/transport/rotate`` (sudo)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import Operation, Request, Response
from strongroom.framework import FieldData, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core


def paths(core: Core) -> list[Path]:
    async def read_key(req: Request, fd: FieldData) -> Response:
        return Response(data=await core.transport.public_key())

    async def rotate(req: Request, fd: FieldData) -> Response:
        return Response(data=await core.transport.rotate())

    return [
        Path(
            pattern=r"transport/key",
            operations={Operation.READ: read_key},
            summary="The public key (and its fingerprint) clients encrypt secret values to.",
        ),
        Path(
            pattern=r"transport/rotate",
            operations={Operation.UPDATE: rotate},
            sudo=True,
            summary="Make a new transport key; older keys keep opening in-flight envelopes for a while.",
        ),
    ]
