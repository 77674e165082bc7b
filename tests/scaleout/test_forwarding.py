"""HA on PostgreSQL: a standby forwards requests to the active node instead of refusing them, and a write made
through the standby is acknowledged only once the active node stored it."""

from __future__ import annotations

import httpx
import hvac
import pytest

from tests.conftest import wait_for
from tests.storage_pg.conftest import fresh_table, ha_config, health

pytestmark = [pytest.mark.postgres]




def test_a_standby_forwards_writes_and_reads_to_the_active_node(server_factory, pg_dsn: str) -> None:  # noqa: ANN001
    config = ha_config(pg_dsn, fresh_table())
    first = server_factory(config_text=config)
    init = hvac.Client(url=first.addr).sys.initialize(secret_shares=1, secret_threshold=1)
    key, root = init["keys"][0], init["root_token"]
    second = server_factory(config_text=config)
    for srv in (first, second):
        hvac.Client(url=srv.addr).sys.submit_unseal_key(key)
        srv.wait_unsealed()
    wait_for(lambda: sorted([health(first.addr), health(second.addr)]) == [200, 429], message="active and standby")
    active, standby = (first, second) if health(first.addr) == 200 else (second, first)

    via_standby = hvac.Client(url=standby.addr, token=root)
    via_standby.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    for i in range(20):
        via_standby.secrets.kv.v2.create_or_update_secret("fwd/app", secret={"n": i})
        # acknowledged by the standby means stored by the active node: read there at once
        on_active = hvac.Client(url=active.addr, token=root).secrets.kv.v2.read_secret_version(
            "fwd/app", raise_on_deleted_version=True
        )
        assert on_active["data"]["data"] == {"n": i}
        assert via_standby.secrets.kv.v2.read_secret_version("fwd/app", raise_on_deleted_version=True)["data"][
            "data"
        ] == {"n": i}
    # a bad request is answered by the active node in Vault's shape, through the standby
    bad = httpx.post(f"{standby.addr}/v1/secret/data/fwd/app", headers={"X-Vault-Token": root}, content=b"{nope")
    assert bad.status_code == 400 and bad.json()["errors"]
    # no token: the active node's 403 comes back unchanged
    assert httpx.get(f"{standby.addr}/v1/secret/data/fwd/app").status_code == 403
    # a request that was already forwarded once is never sent on again
    again = httpx.get(
        f"{standby.addr}/v1/secret/data/fwd/app", headers={"X-Vault-Token": root, "X-Strongroom-Forwarded": "1"}
    )
    assert again.status_code == 503 and '"n"' not in again.text
