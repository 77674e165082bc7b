"""Two Strongroom servers sharing one PostgreSQL with ``ha_enabled``: one active, one standby; step-down and a crash
hand over leadership, and a node that leads again serves what the other node wrote, not what it had cached.

This is the acceptance test for ``strongroom/core/ha.py`` wired into the server.
"""

from __future__ import annotations

import httpx
import hvac
import pytest

from tests.conftest import wait_for
from tests.storage_pg.conftest import fresh_table, ha_config, health

pytestmark = [pytest.mark.postgres]




def test_standby_forwards_requests_and_takes_over_when_the_active_node_dies(server_factory, pg_dsn: str) -> None:
    config = ha_config(pg_dsn, fresh_table())
    first = server_factory(config_text=config)
    init = hvac.Client(url=first.addr).sys.initialize(secret_shares=1, secret_threshold=1)
    key, root = init["keys"][0], init["root_token"]
    second = server_factory(config_text=config)
    for srv in (first, second):
        hvac.Client(url=srv.addr).sys.submit_unseal_key(key)
        srv.wait_unsealed()

    # exactly one node is active (200), the other a standby (429)
    wait_for(
        lambda: sorted([health(first.addr), health(second.addr)]) == [200, 429],
        timeout=15,
        message="one active, one standby",
    )
    active, standby = (first, second) if health(first.addr) == 200 else (second, first)

    client = hvac.Client(url=active.addr, token=root)
    client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    client.secrets.kv.v2.create_or_update_secret("ha/app", secret={"v": "one"})

    leader = httpx.get(f"{standby.addr}/v1/sys/leader", timeout=5).json()
    assert leader["ha_enabled"] is True and leader["is_self"] is False
    assert leader["leader_address"] == active.addr
    # the standby forwards to the active node (tests/scaleout/test_forwarding.py) rather than serving from itself
    forwarded = httpx.get(f"{standby.addr}/v1/secret/data/ha/app", headers={"X-Vault-Token": root}, timeout=5)
    assert forwarded.status_code == 200 and forwarded.json()["data"]["data"] == {"v": "one"}

    # step-down hands over without sealing: the other node serves what the first one wrote, and writes more
    client.sys.step_down()
    wait_for(lambda: health(standby.addr) == 200, timeout=30, message="the standby to take over after step-down")
    assert health(active.addr) == 429 and hvac.Client(url=active.addr).sys.is_sealed() is False
    second_leader = hvac.Client(url=standby.addr, token=root)
    assert read(second_leader) == {"v": "one"}
    second_leader.secrets.kv.v2.create_or_update_secret("ha/app", secret={"v": "two"})

    # the second leader dies; the first takes over again and must see the second one's write, not what it cached
    standby.stop(kill=True)
    wait_for(lambda: health(active.addr) == 200, timeout=30, message="the first node to take over again")
    assert read(hvac.Client(url=active.addr, token=root)) == {"v": "two"}
    assert httpx.get(f"{active.addr}/v1/sys/leader", timeout=5).json()["is_self"] is True


def read(client: hvac.Client) -> dict:
    return client.secrets.kv.v2.read_secret_version("ha/app", raise_on_deleted_version=True)["data"]["data"]
