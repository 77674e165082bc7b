"""``sys/wrapping/wrap|unwrap|lookup|rewrap``: Vault's response-wrapping endpoints (the mechanism is core.wrapping)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core import wrapping
from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core


def paths(core: Core) -> list[Path]:
    async def wrap(req: Request, fd: FieldData) -> Response:
        if not wrapping.requested_ttl(req.headers):
            raise InvalidRequest("endpoint requires response wrapping to be used")
        if not req.data:
            raise InvalidRequest("missing data to wrap")  # an empty secret would unwrap to nothing
        return Response(data=dict(req.data))

    async def unwrap(req: Request, fd: FieldData) -> Response:
        token, third_party = wrapping.presented_token(req.data, req.client_token)
        stored = await wrapping.unwrap(core, token, third_party)
        # the original answer, byte for byte as its requester would have had it (request_id, lease, data, auth)
        return Response(raw_body=stored.encode(), status=200)

    async def lookup(req: Request, fd: FieldData) -> Response:
        token, _ = wrapping.presented_token(req.data, req.client_token)
        if not token:
            raise InvalidRequest('missing "token" value in input')
        return Response(data=await wrapping.lookup(core, token))

    async def rewrap(req: Request, fd: FieldData) -> Response:
        token, third_party = wrapping.presented_token(req.data, req.client_token)
        return Response(data=await wrapping.rewrap(core, token, third_party))

    token_field = {"token": Field(FieldType.STRING, "The wrapping token (instead of sending it as the client token).")}
    return [
        Path(r"wrapping/wrap", {Operation.UPDATE: wrap}, summary="Wrap the given data in a response-wrapping token."),
        Path(
            r"wrapping/unwrap",
            {Operation.UPDATE: unwrap},
            token_field,
            summary="Return the response a wrapping token holds; the token is spent.",
        ),
        Path(
            r"wrapping/lookup",
            {Operation.UPDATE: lookup, Operation.READ: lookup},
            token_field,
            unauthenticated=True,
            summary="Look up a wrapping token's creation TTL, time and path without spending it.",
        ),
        Path(
            r"wrapping/rewrap",
            {Operation.UPDATE: rewrap},
            token_field,
            summary="Move a wrapped response to a new wrapping token; the old one is spent.",
        ),
    ]
