"""Transit auto-rotation runs on the active node only: two servers share one PostgreSQL with ``ha_enabled``.

A key whose rotation is due is rotated by the active node, never by the standby; after a step-down the new active
node takes the work over. Which node rotated is read from each server's own log (``transit: auto-rotated``).
"""

from __future__ import annotations

import base64
import json
import time

import hvac
import pytest

from tests.conftest import StrongroomServer, wait_for
from tests.storage_pg.conftest import (  # noqa: F401 - pg_dsn is a fixture used by name
    fresh_table,
    ha_config,
    health,
    pg_dsn,
)

pytestmark = [pytest.mark.postgres]

FAST_CHECK = {"STRONGROOM_TRANSIT_ROTATE_CHECK": "0.2"}



def rotations(srv: StrongroomServer) -> int:
    return srv.log_path.read_text(errors="replace").count("transit: auto-rotated")


def restore_due(client: hvac.Client, backup: str, name: str) -> None:
    """Restore ``backup`` as ``name`` with its only version created two hours ago (due at a one-hour period)."""
    doc = json.loads(base64.b64decode(backup))
    two_hours_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
    doc["policy"]["keys"]["1"]["time"] = two_hours_ago
    doc["archived_keys"]["keys"][1]["time"] = two_hours_ago
    client.secrets.transit.restore_key(base64.b64encode(json.dumps(doc).encode()).decode(), name=name)


def test_auto_rotation_runs_on_the_active_node_only(server_factory, pg_dsn: str) -> None:  # noqa: F811
    config = ha_config(pg_dsn, fresh_table(), "info")
    first = server_factory(config_text=config, env=FAST_CHECK)
    init = hvac.Client(url=first.addr).sys.initialize(secret_shares=1, secret_threshold=1)
    key, root = init["keys"][0], init["root_token"]
    second = server_factory(config_text=config, env=FAST_CHECK)
    for srv in (first, second):
        hvac.Client(url=srv.addr).sys.submit_unseal_key(key)
        srv.wait_unsealed()
    wait_for(lambda: sorted([health(first.addr), health(second.addr)]) == [200, 429], timeout=20,
             message="one active, one standby")
    active, standby = (first, second) if health(first.addr) == 200 else (second, first)

    client = hvac.Client(url=active.addr, token=root)
    client.sys.enable_secrets_engine("transit")
    t = client.secrets.transit
    t.create_key("src", exportable=True, allow_plaintext_backup=True, auto_rotate_period="1h")
    backup = t.backup_key("src")["data"]["backup"]

    restore_due(client, backup, "due-1")
    wait_for(lambda: t.read_key("due-1")["data"]["latest_version"] == 2, timeout=20, message="rotation on active")
    assert rotations(active) == 1 and rotations(standby) == 0
    assert t.read_key("src")["data"]["latest_version"] == 1

    # hand over: the new active node rotates what becomes due, the old one (now standby) does nothing more
    client.sys.step_down()
    wait_for(lambda: health(standby.addr) == 200, timeout=30, message="the standby to take over")
    new_client = hvac.Client(url=standby.addr, token=root)
    restore_due(new_client, backup, "due-2")
    wait_for(lambda: new_client.secrets.transit.read_key("due-2")["data"]["latest_version"] == 2, timeout=20,
             message="rotation on the new active node")
    assert rotations(standby) == 1 and rotations(active) == 1
    assert new_client.secrets.transit.read_key("due-1")["data"]["latest_version"] == 2
