"""``config/dynamic-roles``: which role ARNs ServiceAccount annotations may name (see dynamic_roles)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.aws.entries import DynamicRolesConfig, get_dynamic
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.aws.backend import AWSBackend

FIELDS: dict[str, Field] = {
    "allowed_role_arns": Field(
        FieldType.COMMA_STRING_LIST,
        "Globs of role ARNs an annotation may name; {{namespace}} and {{service_account}} are the ServiceAccount's",
    ),
}


def paths(b: AWSBackend) -> list[Path]:
    async def write(req: Request, fd: FieldData) -> Response | None:
        patterns = fd.get("allowed_role_arns") if fd.has("allowed_role_arns") else []
        for pattern in patterns:
            if not pattern.startswith("arn:") or pattern.count(":") < 5:
                raise InvalidRequest(f"allowed_role_arns: {pattern!r} is not a role ARN pattern")
        await b.storage(req).put_json("config/dynamic-roles", asdict(DynamicRolesConfig(list(patterns))))
        return None

    async def read(req: Request, fd: FieldData) -> Response:
        return Response(data=asdict(await get_dynamic(b.storage(req))))

    return [
        Path(
            pattern=r"config/dynamic-roles",
            fields=FIELDS,
            operations={Operation.UPDATE: write, Operation.READ: read},
            summary="Which role ARNs ServiceAccount annotations may name.",
        )
    ]
