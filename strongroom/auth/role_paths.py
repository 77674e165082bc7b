"""``role/`` and ``role/<name>`` for auth methods whose roles are one JSON record each under ``role/<name>``.

The method supplies what differs — validating and storing a write, and the read shape; existence, read, delete and
list behave the same everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import NotFound, Operation, Request, Response
from strongroom.framework import Field, FieldData, Path

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView


def role_paths(
    storage: BarrierView,
    name_pattern: str,
    fields: dict[str, Field],
    summary: str,
    *,
    write: Callable[[Request, FieldData], Awaitable[Response | None]],
    role_json: Callable[[dict[str, Any]], dict[str, Any]],
    canonical: Callable[[str], str] = str,
) -> list[Path]:
    """``canonical`` maps the name in the URL to the stored one (e.g. lower-cased where names ignore case)."""

    def key(fd: FieldData) -> str:
        return f"role/{canonical(fd.get('name'))}"

    async def exists(req: Request, fd: FieldData) -> bool:
        return await storage.get(key(fd)) is not None

    async def read(req: Request, fd: FieldData) -> Response:
        role = await storage.get_json(key(fd))
        if role is None:
            raise NotFound()
        return Response(data=role_json(role))

    async def delete(req: Request, fd: FieldData) -> None:
        await storage.delete(key(fd))

    async def list_roles(req: Request, fd: FieldData) -> Response:
        return Response.list_keys(await storage.list_all("role/"))

    return [
        Path(r"role/?", {Operation.LIST: list_roles}, {}, summary="List roles."),
        Path(rf"role/{name_pattern}", {Operation.CREATE: write, Operation.UPDATE: write, Operation.READ: read,
                                       Operation.DELETE: delete}, fields, existence_check=exists, summary=summary),
    ]
