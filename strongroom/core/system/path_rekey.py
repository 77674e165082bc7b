"""sys/rekey/backup: the PGP-encrypted copies of the new unseal keys kept by a rekey with ``backup=true`` (sudo)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.framework import FieldData, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core


def paths(core: Core) -> list[Path]:
    async def read_backup(req: Request, fd: FieldData) -> Response | None:
        backup = await core.rekey_backup()
        if backup is None:
            raise InvalidRequest("no backed-up keys found")
        keys: dict[str, list[str]] = backup["keys"]
        keys_b64 = {fp: [base64.b64encode(bytes.fromhex(k)).decode() for k in hexes] for fp, hexes in keys.items()}
        return Response(
            data={"nonce": backup["nonce"], "keys": keys, "keys_base64": keys_b64}, inject_top_level=True
        )

    async def delete_backup(req: Request, fd: FieldData) -> Response | None:
        await core.rekey_backup_delete()
        return None

    return [
        Path(
            r"rekey/backup",
            {Operation.READ: read_backup, Operation.DELETE: delete_backup},
            sudo=True,
            summary="The backed-up, PGP-encrypted unseal keys of the last rekey with backup=true.",
        ),
    ]
