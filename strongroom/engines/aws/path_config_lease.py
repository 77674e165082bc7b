"""``config/lease``: the lease (and maximum) of IAM-user credentials. Unset, IAM users live an hour, at most a day."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.engines.aws.entries import LeaseConfig, get_lease
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.durations import format_duration

if TYPE_CHECKING:
    from strongroom.engines.aws.backend import AWSBackend

FIELDS: dict[str, Field] = {
    "lease": Field(FieldType.DURATION, "Default lease for roles"),
    "lease_max": Field(FieldType.DURATION, "Maximum time a credential is valid for"),
}


def paths(b: AWSBackend) -> list[Path]:
    async def write(req: Request, fd: FieldData) -> Response | None:
        lease, lease_max = fd.get("lease") or 0, fd.get("lease_max") or 0
        if lease <= 0:
            raise InvalidRequest("'lease' is a required parameter")
        if lease_max <= 0:
            raise InvalidRequest("'lease_max' is a required parameter")
        if lease > lease_max:
            raise InvalidRequest("'lease' cannot be greater than 'lease_max'")
        await b.storage(req).put_json("config/lease", asdict(LeaseConfig(lease, lease_max)))
        return None

    async def read(req: Request, fd: FieldData) -> Response:
        config = await get_lease(b.storage(req))
        if config is None:
            raise NotFound()
        return Response(data={"lease": format_duration(config.lease), "lease_max": format_duration(config.lease_max)})

    return [
        Path(
            pattern=r"config/lease",
            fields=FIELDS,
            operations={Operation.UPDATE: write, Operation.READ: read},
            summary="Configure the default lease information for generated credentials.",
        )
    ]
