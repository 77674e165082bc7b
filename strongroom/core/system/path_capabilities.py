"""sys/capabilities, sys/capabilities-self, sys/capabilities-accessor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.core.tokens import TokenEntry
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core


def paths(core: Core) -> list[Path]:
    async def caps_for(entry: TokenEntry | None, fd: FieldData) -> Response:
        wanted = list(fd.get("paths") or [])
        if fd.get("path"):
            wanted.extend(fd.get("path"))
        if not wanted:
            raise InvalidRequest("paths must be supplied")
        out: dict[str, Any] = {}
        if entry is None:
            for p in wanted:
                out[p] = ["deny"]
        elif entry.is_root:
            for p in wanted:
                out[p] = ["root"]
        else:
            identity = await core.pipeline._identity_policies(entry)
            acl = await core.policies.acl_for(tuple(entry.policies) + tuple(identity), entry.entity_id)
            for p in wanted:
                out[p] = sorted(acl.capabilities(p.lstrip("/"))) or ["deny"]
        if len(wanted) == 1:
            out["capabilities"] = out[wanted[0]]
        return Response(data=out, inject_top_level=True)

    async def self_caps(req: Request, fd: FieldData) -> Response:
        return await caps_for(await core.tokens.lookup_hash(req.caller.token_hash), fd)

    async def token_caps(req: Request, fd: FieldData) -> Response:
        token = fd.get("token")
        if not token:
            raise InvalidRequest("missing token")
        return await caps_for(await core.tokens.lookup(token), fd)

    async def accessor_caps(req: Request, fd: FieldData) -> Response:
        accessor = fd.get("accessor")
        if not accessor:
            raise InvalidRequest("missing accessor")
        entry = await core.tokens.lookup_accessor(accessor)
        if entry is None:
            raise InvalidRequest("invalid accessor")
        return await caps_for(entry, fd)

    fields = {
        "paths": Field(FieldType.COMMA_STRING_LIST, "Paths to check."),
        "path": Field(FieldType.COMMA_STRING_LIST, "Deprecated: a single path."),
        "token": Field(FieldType.STRING, "The token to check."),
        "accessor": Field(FieldType.STRING, "The accessor of the token to check."),
    }
    return [
        Path(r"capabilities-self", {Operation.UPDATE: self_caps}, fields, summary="Capabilities of the caller."),
        Path(r"capabilities", {Operation.UPDATE: token_caps}, fields, summary="Capabilities of a token."),
        Path(
            r"capabilities-accessor",
            {Operation.UPDATE: accessor_caps},
            fields,
            summary="Capabilities of a token, by accessor.",
        ),
    ]
