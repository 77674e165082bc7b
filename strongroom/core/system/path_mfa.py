"""sys/mfa/validate: the second step of a login that login MFA holds back (see :mod:`strongroom.core.mfa`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core import mfa
from strongroom.core.logical import Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core


def paths(core: Core) -> list[Path]:
    async def validate(req: Request, fd: FieldData) -> Response:
        auth = await mfa.validate(core, fd.get("mfa_request_id") or "", fd.get("mfa_payload"))
        # the pipeline issues the token on the login's own auth mount, as if the login had just succeeded
        return Response(auth=auth)

    return [
        Path(
            "mfa/validate",
            {Operation.UPDATE: validate},
            {
                "mfa_request_id": Field(FieldType.STRING, "ID for this MFA request"),
                "mfa_payload": Field(
                    FieldType.ANY,
                    "A map from MFA method ID to a slice of passcodes or an empty slice if the method does not use "
                    "passcodes",
                ),
            },
            summary="Validates the login for the given MFA methods. Upon successful validation, it returns an auth "
            "response containing the client token",
            unauthenticated=True,
        )
    ]
