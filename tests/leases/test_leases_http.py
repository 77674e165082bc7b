"""The lease API over HTTP with hvac, against a real server.

Leases come from ``lease-test``, a test-only engine (``lease_engine.py``) that the test server loads through
``site/sitecustomize.py``; it records issued "users" under ``<mount>/live`` so revocation is observable.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

HERE = Path(__file__).parent
MOUNT = "lt"


def wait_until(check, within: float = 15.0, what: str = "condition"):  # noqa: ANN001
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start(server_factory, **env: str):  # noqa: ANN001, ANN201
    path = os.pathsep.join(p for p in (str(HERE / "site"), str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    srv = server_factory(env={"PYTHONPATH": path, **env})
    srv.client().sys.enable_secrets_engine("lease-test", path=MOUNT)
    return srv


@pytest.fixture
def lease_server(server_factory):  # noqa: ANN001
    return start(server_factory)


def configure(client: hvac.Client, **cfg: object) -> None:
    client.write(f"{MOUNT}/config", **cfg)


def live_users(client: hvac.Client) -> list[str]:
    return client.read(f"{MOUNT}/live")["data"]["users"]


def issue(client: hvac.Client, name: str = "app") -> tuple[str, str]:
    resp = client.read(f"{MOUNT}/creds/{name}")
    return resp["lease_id"], resp["data"]["username"]


def test_lookup_renew_revoke_with_hvac(lease_server):  # noqa: ANN001
    client = lease_server.client()
    configure(client, ttl=120, max_ttl=300)
    resp = client.read(f"{MOUNT}/creds/app")
    lease_id, user = resp["lease_id"], resp["data"]["username"]
    assert lease_id.startswith(f"{MOUNT}/creds/app/") and resp["lease_duration"] == 120 and resp["renewable"]

    info = client.sys.read_lease(lease_id)["data"]
    assert info["id"] == lease_id and info["renewable"] is True and info["last_renewal"] is None
    assert 118 <= info["ttl"] <= 120 and info["issue_time"].endswith("Z") and info["expire_time"]

    configure(client, ttl=90, max_ttl=300)  # the backend's renew answers with its current TTL
    assert client.sys.renew_lease(lease_id)["lease_duration"] == 90  # no increment: the backend's TTL, from now
    renewed = client.sys.renew_lease(lease_id, increment=60)
    assert renewed["lease_id"] == lease_id and renewed["lease_duration"] == 60 and renewed["renewable"] is True
    assert client.sys.read_lease(lease_id)["data"]["last_renewal"] is not None

    capped = client.sys.renew_lease(lease_id, increment=10_000)
    assert 290 <= capped["lease_duration"] <= 300  # never past the max TTL, counted from issue
    assert "exceeded the effective max_ttl" in capped["warnings"][0]

    client.sys.revoke_lease(lease_id)
    assert user not in live_users(client)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid lease"):
        client.sys.read_lease(lease_id)


def test_lease_expires_and_is_revoked(lease_server):  # noqa: ANN001
    client = lease_server.client()
    configure(client, ttl=1, max_ttl=60)
    lease_id, user = issue(client)
    assert user in live_users(client)
    wait_until(lambda: user not in live_users(client), what="the expired lease's user to be revoked")

    def lease_gone() -> bool:
        # the credential is revoked first and the lease record removed right after: poll for the second step too
        try:
            client.sys.read_lease(lease_id)
        except hvac.exceptions.InvalidRequest:
            return True
        return False

    wait_until(lease_gone, what="the expired lease to be removed")


def test_error_messages_match_vault(lease_server):  # noqa: ANN001
    http = lease_server.http()
    for path in ("sys/leases/lookup", "sys/leases/renew", "sys/leases/revoke", "sys/renew", "sys/revoke"):
        r = http.put(f"/v1/{path}", json={})
        assert r.status_code == 400 and r.json() == {"errors": ["lease_id must be specified"]}, path
    r = http.put("/v1/sys/leases/renew", json={"lease_id": f"{MOUNT}/creds/app/nope"})
    assert r.status_code == 400 and r.json()["errors"] == ["lease not found"]
    r = http.put("/v1/sys/leases/lookup", json={"lease_id": "../../core/keyring"})
    assert r.status_code == 400 and r.json()["errors"] == ["invalid lease"]
    client = lease_server.client()
    configure(client, ttl=60, max_ttl=60, renewable=False)
    lease_id, _ = issue(client)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="lease is not renewable"):
        client.sys.renew_lease(lease_id, increment=30)


def test_legacy_endpoints_and_url_forms(lease_server):  # noqa: ANN001
    client = lease_server.client()
    http = lease_server.http()
    configure(client, ttl=60, max_ttl=600)
    a, user_a = issue(client)
    r = http.put(f"/v1/sys/renew/{a}", json={"increment": 30})
    assert r.status_code == 200 and r.json()["lease_duration"] == 30 and r.json()["lease_id"] == a
    r = http.put("/v1/sys/leases/renew", json={"lease_id": a, "increment": "2m"})
    assert r.json()["lease_duration"] == 120
    assert http.put(f"/v1/sys/revoke/{a}").status_code == 204
    assert user_a not in live_users(client)

    b, user_b = issue(client)
    r = http.put(f"/v1/sys/leases/revoke/{b}", json={"sync": False})
    assert r.status_code == 202  # queued
    wait_until(lambda: user_b not in live_users(client), what="queued revocation")


def test_list_and_revoke_prefix(lease_server):  # noqa: ANN001
    client = lease_server.client()
    configure(client, ttl=600, max_ttl=600)
    app = [issue(client, "app") for _ in range(3)]
    other_lease, other_user = issue(client, "other")

    assert client.sys.list_leases(f"{MOUNT}/creds/")["data"]["keys"] == ["app/", "other/"]
    ids = client.sys.list_leases(f"{MOUNT}/creds/app")["data"]["keys"]
    assert sorted(ids) == sorted(lease.rsplit("/", 1)[1] for lease, _ in app)

    client.sys.revoke_prefix(f"{MOUNT}/creds/app")
    live = live_users(client)
    assert all(user not in live for _, user in app) and other_user in live
    assert client.sys.list_leases(f"{MOUNT}/creds/")["data"]["keys"] == ["other/"]


def test_revoke_prefix_and_listing_need_sudo(lease_server):  # noqa: ANN001
    root = lease_server.client()
    configure(root, ttl=600, max_ttl=600)
    _, user = issue(root)
    root.sys.create_or_update_policy(
        "lease-ops",
        'path "sys/leases/revoke-prefix/*" { capabilities = ["update"] }\n'
        'path "sys/leases/revoke-force/*" { capabilities = ["update"] }\n'
        'path "sys/leases/lookup/*" { capabilities = ["list"] }\n'
        'path "sys/leases/irrevocable" { capabilities = ["read"] }\n',
    )
    root.sys.create_or_update_policy(
        "lease-admin", 'path "sys/leases/*" { capabilities = ["update", "list", "read", "sudo"] }\n'
    )
    ops = lease_server.client(root.auth.token.create(policies=["lease-ops"])["auth"]["client_token"])
    admin = lease_server.client(root.auth.token.create(policies=["lease-admin"])["auth"]["client_token"])

    with pytest.raises(hvac.exceptions.Forbidden):
        ops.sys.revoke_prefix(f"{MOUNT}/creds/")
    with pytest.raises(hvac.exceptions.Forbidden):
        ops.sys.revoke_force(f"{MOUNT}/creds/")
    with pytest.raises(hvac.exceptions.Forbidden):
        ops.sys.list_leases(f"{MOUNT}/creds/")
    with pytest.raises(hvac.exceptions.Forbidden):
        ops.read("sys/leases/irrevocable")
    assert user in live_users(root)  # nothing was revoked

    assert admin.sys.list_leases(f"{MOUNT}/creds/")["data"]["keys"] == ["app/"]
    admin.sys.revoke_prefix(f"{MOUNT}/creds/")
    assert user not in live_users(root)


def test_revoking_a_token_revokes_its_leases(lease_server):  # noqa: ANN001
    root = lease_server.client()
    configure(root, ttl=600, max_ttl=600)
    root.sys.create_or_update_policy("creds-reader", f'path "{MOUNT}/creds/*" {{ capabilities = ["read"] }}\n')
    token = root.auth.token.create(policies=["creds-reader"])["auth"]["client_token"]
    other = root.auth.token.create(policies=["creds-reader"])["auth"]["client_token"]
    _, mine = issue(lease_server.client(token))
    _, theirs = issue(lease_server.client(other))

    root.auth.token.revoke(token)
    wait_until(lambda: mine not in live_users(root), what="the token's lease to be revoked")
    assert theirs in live_users(root)


def test_expired_token_takes_its_leases_with_it(lease_server):  # noqa: ANN001
    root = lease_server.client()
    configure(root, ttl=600, max_ttl=600)
    root.sys.create_or_update_policy("creds-reader", f'path "{MOUNT}/creds/*" {{ capabilities = ["read"] }}\n')
    token = root.auth.token.create(policies=["creds-reader"], ttl="2s")["auth"]["client_token"]
    _, user = issue(lease_server.client(token))
    wait_until(lambda: user not in live_users(root), what="lease revoked when its token expired")


def test_failing_revocation_is_retried_and_revoke_force_drops_it(lease_server):  # noqa: ANN001
    client = lease_server.client()
    configure(client, ttl=600, max_ttl=600, fail_revokes=2)
    lease_id, user = issue(client)
    with pytest.raises(hvac.exceptions.InternalServerError, match="test database unreachable"):
        client.sys.revoke_lease(lease_id)
    # still there, no longer valid, and retried in the background (1 s, then 2 s) until the backend recovers
    assert client.sys.read_lease(lease_id)["data"]["renewable"] is False
    wait_until(lambda: user not in live_users(client), within=20, what="retried revocation to succeed")

    configure(client, ttl=600, max_ttl=600, fail_revokes=-1)
    stuck, stuck_user = issue(client)
    with pytest.raises(hvac.exceptions.InternalServerError):
        client.sys.revoke_prefix(f"{MOUNT}/creds/")
    client.sys.revoke_force(f"{MOUNT}/creds/")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.read_lease(stuck)
    assert stuck_user in live_users(client)  # force means the backend's copy is the operator's problem now


def test_leases_survive_restart_and_expired_ones_are_revoked_on_start(lease_server):  # noqa: ANN001
    client = lease_server.client()
    configure(client, ttl=1, max_ttl=600)
    short, short_user = issue(client)
    configure(client, ttl=600, max_ttl=600)
    long, long_user = issue(client)
    lease_server.stop()  # the 1 s lease expires while the server is down

    lease_server.start()
    client = lease_server.client()
    wait_until(lambda: short_user not in live_users(client), what="revocation after restart")
    assert client.sys.read_lease(long)["data"]["ttl"] > 500
    assert long_user in live_users(client)


def test_tidy_and_empty_irrevocable_listings(lease_server):  # noqa: ANN001
    http = lease_server.http()
    r = http.put("/v1/sys/leases/tidy")
    assert r.status_code == 202 and "Tidy operation successfully started" in r.json()["warnings"][0]
    r = http.get("/v1/sys/leases/irrevocable")
    assert r.status_code == 200 and r.json()["data"] == {"lease_count": 0, "leases": []}
    r = http.get("/v1/sys/leases", params={"type": "irrevocable"})
    assert r.status_code == 200 and r.json()["data"] == {"lease_count": 0, "leases": []}
    r = http.get("/v1/sys/leases/count", params={"type": "irrevocable"})
    assert r.status_code == 200 and r.json()["data"] == {"lease_count": 0, "counts": {}}
    assert http.get("/v1/sys/leases").status_code == 400


def test_a_lease_that_cannot_be_revoked_is_listed_not_dropped(server_factory):  # noqa: ANN001
    srv = start(server_factory, STRONGROOM_TEST_FAST_RETRIES="1")  # retries 0.05 s doubling, irrevocable after 3
    client, http = srv.client(), srv.http()
    configure(client, ttl=600, max_ttl=600, fail_revokes=-1)
    lease_id, user = issue(client)
    assert http.put("/v1/sys/leases/revoke", json={"lease_id": lease_id, "sync": False}).status_code == 202

    def listed() -> list[dict]:
        return http.get("/v1/sys/leases/irrevocable").json()["data"]["leases"]

    wait_until(lambda: len(listed()) == 1, what="the lease to be listed as irrevocable")
    (item,) = listed()
    assert item["lease_id"] == lease_id and item["error"] == "test database unreachable" and item["attempts"] >= 3
    accessor = http.get("/v1/sys/mounts").json()["data"][f"{MOUNT}/"]["accessor"]
    vault_view = http.get("/v1/sys/leases", params={"type": "irrevocable"}).json()["data"]
    assert vault_view["leases"] == [{"lease_id": lease_id, "mount_id": accessor, "error": "test database unreachable"}]
    counts = http.get("/v1/sys/leases/count", params={"type": "irrevocable"}).json()["data"]
    assert counts == {"lease_count": 1, "counts": {accessor: 1}}
    assert client.sys.read_lease(lease_id)["data"]["renewable"] is False  # kept, not valid

    configure(client, ttl=600, max_ttl=600, fail_revokes=0)  # the database comes back: still being retried
    wait_until(lambda: user not in live_users(client), what="the irrevocable lease to be revoked at last")
    wait_until(lambda: listed() == [], what="the irrevocable listing to empty")
