"""The by-id and by-name paths entities, groups and their aliases share: the same routes, answers and 404s."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import NotFound, Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView

Record = dict[str, Any]
Handler = Callable[[Request, FieldData], Awaitable[Response | None]]
# writes the object the request describes; the str is its id (by-id paths) or its name (by-name paths)
Writer = Callable[[Request, FieldData, str], Awaitable[Response | None]]
# an object's API shape by id or name, None when there is none
Reader = Callable[[str], Awaitable[Record | None]]
Deleter = Callable[[str], Awaitable[Any]]


@dataclass(frozen=True)
class Kind:
    prefix: str  # the path segment: "entity", "group-alias"
    noun: str  # as summaries name it: "entity alias"
    article: str  # "a" or "an"


def id_paths(
    kind: Kind, fields: dict[str, Field], create_summary: str,
    *, write: Writer, read: Reader, delete: Deleter, list_ids: Handler,
) -> list[Path]:
    async def create(req: Request, fd: FieldData) -> Response | None:
        return await write(req, fd, fd.get("id") or "")

    async def by_id_write(req: Request, fd: FieldData) -> Response | None:
        return await write(req, fd, fd.get("id"))

    async def by_id_read(req: Request, fd: FieldData) -> Response:
        return await _found(read, fd.get("id"))

    async def by_id_delete(req: Request, fd: FieldData) -> None:
        await delete(fd.get("id"))

    id_fields = {**fields, "id": Field(FieldType.STRING, f"ID of the {kind.noun}.", in_path=True)}
    return [
        Path(rf"{kind.prefix}/?", {Operation.UPDATE: create}, fields, summary=create_summary),
        Path(rf"{kind.prefix}/id/?", {Operation.LIST: list_ids}, {}, summary=f"List {kind.noun} ids."),
        Path(rf"{kind.prefix}/id/(?P<id>[^/]+)", {Operation.UPDATE: by_id_write, Operation.READ: by_id_read,
                                                  Operation.DELETE: by_id_delete}, id_fields,
             summary=f"Manage {kind.article} {kind.noun} by id."),
    ]


def name_paths(
    kind: Kind, fields: dict[str, Field], index: Callable[[], BarrierView],
    *, write: Writer, read: Reader, find: Reader, delete: Deleter,
) -> list[Path]:
    """``find`` is the stored record by name (its id is what ``delete`` takes); ``read`` is its API shape.

    ``index`` is a callable because the identity store is looked up per request: a reseal replaces it.
    """

    async def by_name_write(req: Request, fd: FieldData) -> Response | None:
        return await write(req, fd, fd.get("name"))

    async def by_name_read(req: Request, fd: FieldData) -> Response:
        return await _found(read, fd.get("name"))

    async def by_name_delete(req: Request, fd: FieldData) -> None:
        rec = await find(fd.get("name"))
        if rec is not None:
            await delete(rec["id"])

    async def list_names(req: Request, fd: FieldData) -> Response:
        # index keys are hex-encoded names; "-" stands for the empty name, which is not listed
        return Response.list_keys(sorted(bytes.fromhex(k).decode() for k in await index().list_all(
            f"idx/{kind.prefix}-name/") if k != "-"))

    name_fields = {**fields, "name": Field(FieldType.STRING, f"Name of the {kind.noun}.", in_path=True)}
    return [
        Path(rf"{kind.prefix}/name/?", {Operation.LIST: list_names}, {}, summary=f"List {kind.noun} names."),
        Path(rf"{kind.prefix}/name/(?P<name>.+)", {Operation.UPDATE: by_name_write, Operation.READ: by_name_read,
                                                   Operation.DELETE: by_name_delete}, name_fields,
             summary=f"Manage {kind.article} {kind.noun} by name."),
    ]


async def _found(read: Reader, key: str) -> Response:
    data = await read(key)
    if data is None:
        raise NotFound()
    return Response(data=data)
