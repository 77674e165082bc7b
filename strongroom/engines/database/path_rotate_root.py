"""``rotate-root/<name>``: the engine sets its own database password to one only it knows.

The new password is generated here, set in the database by the plugin, then stored behind the barrier; nobody is
shown it. Like Vault, if the database accepts the change but storing it fails, the connection must be reconfigured
by a human with a password they set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, LogicalError, Operation, Request, Response
from strongroom.engines.database import password as passwords
from strongroom.engines.database.entries import get_connection, put_connection
from strongroom.engines.database.plugins import PluginError
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.database.backend import DatabaseBackend


def paths(b: DatabaseBackend) -> list[Path]:
    async def rotate(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        conn, plugin = await b.plugin(name)
        async with b.lock(name):
            stored = await get_connection(b.storage(req), name)
            if stored is None:
                raise InvalidRequest(f"database connection {name!r} is not configured")
            new_password = passwords.generate(stored.password_policy)
            try:
                fragment = await plugin.rotate_root(stored.root_rotation_statements, new_password)
            except PluginError as exc:
                raise LogicalError(f"failed to rotate root credentials: {exc}", status=500) from None
            stored.connection_details = {**stored.connection_details, **fragment}
            await put_connection(b.storage(req), stored)
            b.install_plugin(stored, plugin)
        return None

    return [
        Path(
            pattern=rf"rotate-root/{generic_name('name')}",
            fields={"name": Field(FieldType.STRING, "Name of the connection", required=True, in_path=True)},
            operations={Operation.UPDATE: rotate},
            summary="Rotate the engine's own database password.",
        )
    ]
