"""sys/internal/specs/openapi: the API description, generated from the same path declarations the pipeline routes by."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from strongroom import __version__
from strongroom.core.logical import Operation, Request, Response
from strongroom.framework import FieldData, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core

_GROUP = re.compile(r"\(\?P<(\w+)>[^()]*(?:\([^()]*\)[^()]*)*\)")
_VERBS = {
    Operation.READ: "get",
    Operation.UPDATE: "post",
    Operation.CREATE: "post",
    Operation.DELETE: "delete",
    Operation.PATCH: "patch",
    Operation.LIST: "get",
}
_JSON_TYPES = {
    "int": "integer",
    "bool": "boolean",
    "duration": "string",
    "map": "object",
    "string_map": "object",
    "string_list": "array",
    "comma_string_list": "array",
    "int_list": "array",
    "any": "object",
}


def _template(pattern: str) -> str:
    text = _GROUP.sub(lambda m: "{" + m.group(1) + "}", pattern)
    return re.sub(r"[?^$\\]|\(/[^)]*\)\?|/\?$", "", text).rstrip("/")


def describe(core: Core) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for is_auth in (False, True):
        for entry in core.router.entries(is_auth):
            route = core.router.get(entry.route_path)
            if route is None:
                continue
            for p in route.backend.paths:
                item: dict[str, Any] = {
                    "description": p.summary,
                    "x-vault-sudo": p.sudo,
                    "x-vault-unauthenticated": p.unauthenticated,
                }
                body = {
                    n: {"type": _JSON_TYPES.get(f.type.value, "string"), "description": f.description}
                    for n, f in p.fields.items()
                    if not f.in_path
                }
                for op in p.operations:
                    verb = _VERBS.get(op)
                    if verb is None or verb in item:
                        continue
                    spec: dict[str, Any] = {
                        "operationId": f"{entry.route_path}{p.pattern}:{op.value}",
                        "responses": {"200": {"description": "OK"}},
                    }
                    if verb in ("post", "patch") and body:
                        spec["requestBody"] = {
                            "content": {"application/json": {"schema": {"type": "object", "properties": body}}}
                        }
                    if op is Operation.LIST:
                        spec["parameters"] = [
                            {
                                "name": "list",
                                "in": "query",
                                "required": True,
                                "schema": {"type": "string", "enum": ["true"]},
                            }
                        ]
                    item[verb] = spec
                paths["/" + entry.route_path + _template(p.pattern)] = item
    return {"openapi": "3.0.2", "info": {"title": "Strongroom HTTP API", "version": __version__}, "paths": paths}


def paths(core: Core) -> list[Path]:
    async def openapi(req: Request, fd: FieldData) -> Response:
        return Response(raw_body=orjson.dumps(describe(core)))

    # authenticated (unlike Vault's): the description names every mount, which is reconnaissance for an outsider
    return [
        Path(
            r"internal/specs/openapi",
            {Operation.READ: openapi},
            summary="The OpenAPI description of every mounted path.",
        )
    ]
