"""sys/internal/specs/openapi: the API description, generated from the same path declarations the pipeline routes by."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from strongroom import __version__
from strongroom.core.logical import LogicalError, Operation, Request, Response
from strongroom.core.pipeline import Incoming, Outcome
from strongroom.framework import FieldData, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core
    from strongroom.core.mounts import MountEntry, Route
    from strongroom.core.tokens import TokenEntry

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


def _schema(field_type: str, description: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _JSON_TYPES.get(field_type, "string"), "description": description}
    if schema["type"] == "array":  # OpenAPI 3.0: an array schema must say what its items are
        schema["items"] = {"type": "integer" if field_type == "int_list" else "string"}
    return schema


def _template(pattern: str) -> str:
    """A path pattern as an OpenAPI path template: each named group becomes ``{name}`` (however its regex nests), an
    optional group (``(/...)?``) and an optional ``/`` are dropped, anchors and escapes go; no regex is left."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "(":
            end = _group_end(pattern, i)
            named = re.match(r"\(\?P<(\w+)>", pattern[i:])
            optional = end + 1 < len(pattern) and pattern[end + 1] in "?*"
            if named and not optional:
                out.append("{" + named.group(1) + "}")
            i = end + 1
            while i < len(pattern) and pattern[i] in "?*+":
                i += 1
        elif c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
        elif c in "^$?":
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out).rstrip("/")


def _group_end(pattern: str, start: int) -> int:
    """The index of the ``)`` closing the group opened at ``start`` (escapes and character classes respected)."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(pattern) - 1


def _path_parameters(template: str, p: Path) -> list[dict[str, Any]]:
    """OpenAPI 3 requires every ``{name}`` of a path template to be declared as a required path parameter."""
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": p.fields[name].description if name in p.fields else "",
            "schema": {"type": "string"},
        }
        for name in dict.fromkeys(re.findall(r"\{(\w+)\}", template))
    ]


def _path_items(entry: MountEntry, plist: list[Path]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for p in plist:
        template = _template(p.pattern)
        item: dict[str, Any] = {
            "description": p.summary,
            "x-vault-sudo": p.sudo,
            "x-vault-unauthenticated": p.unauthenticated,
        }
        parameters = _path_parameters(template, p)
        if parameters:
            item["parameters"] = parameters
        body = {n: _schema(f.type.value, f.description) for n, f in p.fields.items() if not f.in_path}
        for op in p.operations:
            verb = _VERBS.get(op)
            if verb is None or verb in item:
                continue
            spec: dict[str, Any] = {
                "operationId": f"{entry.route_path}{template}:{op.value}",
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
        paths["/" + entry.route_path + template] = item
    return paths


def _document(paths: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.0.2", "info": {"title": "Strongroom HTTP API", "version": __version__}, "paths": paths}


def describe(core: Core) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for is_auth in (False, True):
        for entry in core.router.entries(is_auth):
            route = core.router.get(entry.route_path)
            if route is not None:
                paths.update(_path_items(entry, route.backend.paths))
    return _document(paths)


async def help_outcome(core: Core, inc: Incoming, route: Route, path: Path | None, token: TokenEntry | None) -> Outcome:
    """``?help=1`` on any path (Vault's help operation): the path's help text and its OpenAPI, from the same
    declarations the pipeline routes by; for a path no declaration matches, the whole backend's. Audited like any
    request; it reveals no data, only what the mount's paths are."""
    from strongroom.audit import AuditContext

    entry = route.entry
    chosen = [path] if path is not None else list(route.backend.paths)
    if path is not None:
        text = "\n\n".join(t for t in (path.summary, path.description) if t) or f"Path {inc.path} of {entry.type}."
    else:
        lines = [f"## DESCRIPTION\n\nThe {entry.type} backend mounted at {entry.route_path}.", "## PATHS"]
        lines += [f"    {_template(p.pattern) or '/'}\n        {p.summary}" for p in chosen]
        text = "\n\n".join(lines)
    ctx = AuditContext(
        request_id=inc.request_id,
        operation=Operation.HELP.value,
        path=inc.path,
        mount_point=entry.route_path,
        mount_type=entry.type,
        mount_accessor=entry.accessor,
        remote_addr=inc.remote_addr,
        client_token=inc.token if token is not None else "",
        accessor=token.accessor if token else "",
        display_name=token.display_name if token else "",
        policies=list(token.policies) if token else [],
        token_policies=list(token.policies) if token else [],
        entity_id=token.entity_id if token else "",
    )
    try:
        await core.audit.log_request(ctx)
    except Exception:
        raise LogicalError("the request could not be recorded in the audit log, so it was refused") from None
    body = {"help": text, "openapi": _document(_path_items(entry, chosen)), "see_also": None}
    try:
        await core.audit.log_response(ctx, body, "")
    except Exception:
        raise LogicalError("the response could not be recorded in the audit log") from None
    return Outcome(200, body)


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
