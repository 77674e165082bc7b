"""``rotate-root/<name>``: the engine sets its own database password to one only it knows.

The new password is generated here, stored behind the barrier as *pending*, set in the database by the plugin, then
promoted to the connection's password; nobody is shown it. A pending password left by a crash or a failed attempt
is resolved the next time the connection is opened: whichever of the two passwords the database accepts is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import LogicalError, Operation, Request, Response
from strongroom.engines.database import password as passwords
from strongroom.engines.database.entries import put_connection, require_connection
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
            stored = await require_connection(b.storage(req), name)
            new_password = passwords.generate(stored.password_policy)
            # Stored first: if the server dies after the database accepted the new password but before the config
            # says so, the engine finds it again (see DatabaseBackend.plugin) instead of locking itself out.
            stored.pending_password = new_password
            await put_connection(b.storage(req), stored)
            try:
                fragment = await plugin.rotate_root(stored.root_rotation_statements, new_password)
            except PluginError as exc:
                # left pending: a timeout may hide a change the database did make
                raise LogicalError(f"failed to rotate root credentials: {exc}", status=500) from None
            stored.connection_details = {**stored.connection_details, **fragment}
            stored.pending_password = ""
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
