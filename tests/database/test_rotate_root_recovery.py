"""rotate-root interrupted between the database and storage: the engine recovers the password only it knew.

Drives the backend directly (as the pipeline does) over a real barrier, to simulate a crash at the one moment that
matters; the database is the real Cassandra node.
"""

from __future__ import annotations

import pytest

from strongroom import crypto
from strongroom.core.barrier import Barrier
from strongroom.core.logical import Caller, Operation, Request
from strongroom.engines.database.backend import DatabaseBackend
from strongroom.engines.database.entries import get_connection, put_connection
from strongroom.framework import BackendContext
from strongroom.storage.memory import InMemoryStorage

pytestmark = pytest.mark.cassandra


async def _backend(view) -> DatabaseBackend:
    b = DatabaseBackend(BackendContext(storage=view, mount_path="database/", mount_type="database", mount_accessor="x"))
    await b.initialize()
    return b


async def _call(b: DatabaseBackend, op: Operation, path: str, data: dict | None = None):
    p, params = b.route(path)
    req = Request(operation=op, path=path, data=data or {}, storage=b.ctx.storage, caller=Caller(display_name="t"))
    return await b.handle(p, req, b.field_data(p, req, params))


@pytest.mark.parametrize("database_changed", [True, False])
async def test_interrupted_rotation_is_settled(cassandra_node, cassandra_admin, database_changed):
    barrier = Barrier(InMemoryStorage())
    await barrier.initialize(crypto.new_key())
    view = barrier.view("logical/db/")
    b = await _backend(view)
    config = {"plugin_name": "cassandra-database-plugin", "hosts": cassandra_node.host, "port": cassandra_node.port,
              "username": cassandra_admin[0], "password": cassandra_admin[1], "allowed_roles": "*"}  # fmt: skip
    await _call(b, Operation.UPDATE, "config/main", config)
    await _call(b, Operation.UPDATE, "roles/app", {"db_name": "main"})
    await b.cleanup()

    # the crash: the new password was recorded as pending and (maybe) set in Cassandra, never promoted
    conn = await get_connection(view, "main")
    conn.pending_password = "Pending-Passw0rd-123456"
    await put_connection(view, conn)
    if database_changed:
        s = cassandra_node.session()
        s.execute(f"ALTER ROLE '{cassandra_admin[0]}' WITH PASSWORD = '{conn.pending_password}'")
        s.cluster.shutdown()

    restarted = await _backend(view)
    try:
        resp = await _call(restarted, Operation.READ, "creds/app")
        assert cassandra_node.can_login(resp.data["username"], resp.data["password"])
        settled = await get_connection(view, "main")
        assert settled.pending_password == ""
        expected = "Pending-Passw0rd-123456" if database_changed else cassandra_admin[1]
        assert settled.connection_details["password"] == expected
        assert "Pending" not in str((await _call(restarted, Operation.READ, "config/main")).data)
    finally:
        await restarted.cleanup()
