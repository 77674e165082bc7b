"""sys/seal, sys/step-down, sys/rotate, sys/key-status: operator actions that need a token (and sudo)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import Operation, Request, Response
from strongroom.framework import FieldData, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core


def paths(core: Core) -> list[Path]:
    async def seal(req: Request, fd: FieldData) -> Response | None:
        # the API layer seals once this request has been answered and audited
        return None

    async def rotate(req: Request, fd: FieldData) -> Response | None:
        await core.barrier.rotate()
        return Response(data=core.barrier.key_status(), inject_top_level=True)

    async def key_status(req: Request, fd: FieldData) -> Response | None:
        return Response(data=core.barrier.key_status(), inject_top_level=True)

    async def bootstrap(req: Request, fd: FieldData) -> Response:
        from strongroom.core.system.bootstrap import bootstrap as run_bootstrap

        return Response(data={"installed": await run_bootstrap(core)})

    return [
        Path(
            r"bootstrap",
            {Operation.UPDATE: bootstrap},
            sudo=True,
            summary="Install the default workload login, kubernetes-reader and people policies.",
        ),
        Path(r"seal", {Operation.UPDATE: seal}, sudo=True, summary="Seal the server."),
        Path(r"step-down", {Operation.UPDATE: seal}, sudo=True, summary="Give up active duty (seals a single node)."),
        Path(r"rotate(/keyring)?", {Operation.UPDATE: rotate}, sudo=True, summary="Add a new barrier key term."),
        Path(r"key-status", {Operation.READ: key_status}, summary="The barrier's active key term."),
    ]
