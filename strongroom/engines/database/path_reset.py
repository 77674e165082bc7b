"""``reset/<name>``: close a connection's sessions and open it again from its stored configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.database.entries import require_connection
from strongroom.engines.database.plugins import PluginError, new_plugin
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.database.backend import DatabaseBackend


def paths(b: DatabaseBackend) -> list[Path]:
    async def reset(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        async with b.lock(name):
            conn = await require_connection(b.storage(req), name)
            await b.close_plugin(name)
            plugin = new_plugin(conn.plugin_name)
            try:
                await plugin.initialize(conn.connection_details, verify=conn.verify_connection)
            except PluginError as exc:
                await plugin.close()
                raise InvalidRequest(f"error reopening database connection: {exc}") from None
            b.install_plugin(conn, plugin)
        return None

    return [
        Path(
            pattern=rf"reset/{generic_name('name')}",
            fields={"name": Field(FieldType.STRING, "Name of the connection", required=True, in_path=True)},
            operations={Operation.UPDATE: reset},
            summary="Close and reopen a database connection.",
        )
    ]
