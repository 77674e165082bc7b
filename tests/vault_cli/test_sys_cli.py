"""The sys requests of ``vault secrets enable|disable|tune|move|list``, ``vault auth enable|tune|list|move`` and
``vault path-help``, as the CLI sends them; sys/remount with leases and tokens; ha-status and host-info; refusing
before routing (403 before 404); Vault's error strings that clients match."""

from __future__ import annotations

import httpx

from tests.conftest import StrongroomServer, wait_for
from tests.identity.idp import AUDIENCE, Idp

# api.MountConfigInput as `vault secrets enable` / `vault auth enable` fill it with the flags' defaults
DEFAULT_CONFIG = {"options": None, "default_lease_ttl": "0s", "max_lease_ttl": "0s", "force_no_cache": False}


def _tune_body(**flags: object) -> dict[str, object]:
    """api.MountConfigInput as `vault secrets tune` / `vault auth tune` send it: unset TTL flags are empty strings."""
    return {"options": None, "default_lease_ttl": "", "max_lease_ttl": "", "force_no_cache": False, **flags}


def _enable_body(mtype: str, **extra: object) -> dict[str, object]:
    return {"type": mtype, "description": "", "config": DEFAULT_CONFIG, "local": False, "seal_wrap": False,
            "external_entropy_access": False, "options": None, **extra}


def _move(http: httpx.Client, src: str, dst: str) -> dict[str, object]:
    """`vault secrets move` / `vault auth move`: POST sys/remount, then poll the status until it is final."""
    resp = http.post("/v1/sys/remount", json={"from": src, "to": dst})
    assert resp.status_code == 200, resp.text
    migration_id = resp.json()["data"]["migration_id"]
    assert resp.json()["migration_id"] == migration_id  # Vault injects it at the top level too

    def final() -> dict[str, object] | None:
        info = http.get(f"/v1/sys/remount/status/{migration_id}").json()["data"]
        return info if info["migration_info"]["status"] != "in-progress" else None

    return wait_for(final, timeout=10, message="remount status")


def test_secrets_enable_list_tune_move_disable(srv: StrongroomServer) -> None:
    with srv.http() as http:
        body = _enable_body("kv", description="team", options={"version": "2"})
        resp = http.post("/v1/sys/mounts/team-kv", json=body)
        assert resp.status_code == 204
        listed = http.get("/v1/sys/mounts").json()["data"]  # `vault secrets list` reads data
        assert listed["team-kv/"]["type"] == "kv" and listed["team-kv/"]["options"] == {"version": "2"}
        assert listed["team-kv/"]["description"] == "team"

        # `vault secrets tune -default-lease-ttl=1h -max-lease-ttl=24h -description=tuned team-kv`
        tune = _tune_body(default_lease_ttl="1h0m0s", max_lease_ttl="24h0m0s", description="tuned")
        assert http.post("/v1/sys/mounts/team-kv/tune", json=tune).status_code == 204
        tuned = http.get("/v1/sys/mounts/team-kv/tune").json()["data"]
        assert (tuned["default_lease_ttl"], tuned["max_lease_ttl"], tuned["description"]) == (3600, 86400, "tuned")

        assert http.post("/v1/team-kv/data/app", json={"data": {"v": "1"}}).status_code == 200
        status = _move(http, "team-kv", "moved-kv")
        info = {"source_mount": "team-kv/", "target_mount": "moved-kv/", "status": "success"}
        assert status["migration_info"] == info
        # the data, the options and the tuning moved with it; the old path is gone
        assert http.get("/v1/moved-kv/data/app").json()["data"]["data"] == {"v": "1"}
        ui = http.get("/v1/sys/internal/ui/mounts/moved-kv").json()["data"]
        assert ui["path"] == "moved-kv/" and ui["options"] == {"version": "2"} and ui["description"] == "tuned"
        assert http.get("/v1/team-kv/data/app").status_code == 404
        assert "team-kv/" not in http.get("/v1/sys/mounts").json()["data"]

        assert http.delete("/v1/sys/mounts/moved-kv").status_code == 204
        assert "moved-kv/" not in http.get("/v1/sys/mounts").json()["data"]


def test_remount_refusals(srv: StrongroomServer) -> None:
    with srv.http() as http:
        assert http.post("/v1/sys/mounts/stay", json=_enable_body("kv")).status_code == 204
        assert http.post("/v1/sys/mounts/other", json=_enable_body("kv")).status_code == 204
        for body, status in (
            ({"from": "stay"}, 400),
            ({"from": "nope", "to": "x"}, 400),
            ({"from": "stay", "to": "other"}, 400),
            ({"from": "stay", "to": "auth/stay"}, 400),
            ({"from": "sys", "to": "sys2"}, 400),
            ({"from": "stay", "to": "sys/stay"}, 400),
        ):
            resp = http.post("/v1/sys/remount", json=body)
            assert resp.status_code == status and resp.json()["errors"], (body, resp.text)
        assert http.get("/v1/sys/remount/status/not-an-id").status_code == 404
        resp = http.post("/v1/sys/remount", json={"from": "stay", "to": "auth/stay"})
        assert resp.json()["errors"] == ["cannot remount to destination auth/stay/"]
        assert {"stay/", "other/"} <= set(http.get("/v1/sys/mounts").json()["data"])
    # root-protected: a token with update on sys/remount but no sudo is refused
    client = srv.client()
    client.sys.create_or_update_policy("mover", 'path "sys/remount" { capabilities = ["update"] }')
    token = client.auth.token.create(policies=["mover"])["auth"]["client_token"]
    with srv.http(token) as http:
        assert http.post("/v1/sys/remount", json={"from": "stay", "to": "stay2"}).status_code == 403


def test_remount_renames_leases_which_stay_renewable_and_revocable(srv: StrongroomServer) -> None:
    client = srv.client()
    client.sys.enable_secrets_engine("lease-test", path="lt-src")
    client.write("lt-src/config", ttl=120, max_ttl=600)
    resp = client.read("lt-src/creds/app")
    old_id, user = resp["lease_id"], resp["data"]["username"]
    assert old_id.startswith("lt-src/creds/app/")
    # a second lease, held by a token of its own: revoking that token after the move must still revoke it
    holder = client.auth.token.create(policies=["root"])["auth"]["client_token"]
    held_user = srv.client(holder).read("lt-src/creds/app")["data"]["username"]

    with srv.http() as http:
        _move(http, "lt-src", "lt-dst")
    new_id = "lt-dst/" + old_id[len("lt-src/") :]
    looked = client.sys.read_lease(new_id)["data"]
    assert looked["id"] == new_id and looked["renewable"] is True
    with srv.http() as http:
        gone = http.put("/v1/sys/leases/lookup", json={"lease_id": old_id})
        assert gone.status_code == 400
        listed = http.request("LIST", "/v1/sys/leases/lookup/lt-dst/creds/app/").json()["data"]["keys"]
        assert new_id.rsplit("/", 1)[1] in listed
    renewed = client.sys.renew_lease(new_id, increment=300)
    assert renewed["lease_id"] == new_id and renewed["lease_duration"] == 300
    assert user in client.read("lt-dst/live")["data"]["users"]
    client.sys.revoke_lease(new_id)
    assert user not in client.read("lt-dst/live")["data"]["users"]
    assert held_user in client.read("lt-dst/live")["data"]["users"]
    client.auth.token.revoke(holder)
    wait_for(lambda: held_user not in client.read("lt-dst/live")["data"]["users"], timeout=10,
             message="the moved lease revoked with its token")


def test_auth_enable_list_tune_move_keeps_tokens_working(srv: StrongroomServer) -> None:
    idp = Idp()
    with srv.http() as http:
        assert http.post("/v1/sys/auth/staff", json=_enable_body("jwt", options={})).status_code == 204
        listed = http.get("/v1/sys/auth").json()["data"]  # `vault auth list`
        assert listed["staff/"]["type"] == "jwt"
        accessor = listed["staff/"]["accessor"]
        assert http.post("/v1/sys/auth/staff/tune", json=_tune_body(default_lease_ttl="30m0s")).status_code == 204
        assert http.get("/v1/sys/auth/staff/tune").json()["data"]["default_lease_ttl"] == 1800
        http.post("/v1/auth/staff/config", json={"jwt_validation_pubkeys": [idp.public_pem],
                                                 "bound_issuer": idp.issuer}).raise_for_status()
        http.post("/v1/auth/staff/role/eng", json={"role_type": "jwt", "user_claim": "sub",
                                                   "bound_audiences": [AUDIENCE], "token_ttl": "1h"}).raise_for_status()
    login = httpx.post(f"{srv.addr}/v1/auth/staff/login", json={"role": "eng", "jwt": idp.token("user_7")})
    assert login.status_code == 200, login.text
    token = login.json()["auth"]["client_token"]

    with srv.http() as http:
        status = _move(http, "auth/staff", "auth/people")
        assert status["migration_info"]["target_mount"] == "auth/people/"
        moved = http.get("/v1/sys/auth").json()["data"]
        assert "staff/" not in moved and moved["people/"]["accessor"] == accessor
    # the token from before the move still works and renews; logins go to the new path only
    with srv.http(token) as http:
        assert http.get("/v1/auth/token/lookup-self").status_code == 200
        assert http.post("/v1/auth/token/renew-self", json={"increment": "10m"}).status_code == 200
    again = httpx.post(f"{srv.addr}/v1/auth/people/login", json={"role": "eng", "jwt": idp.token("user_7")})
    assert again.status_code == 200
    assert again.json()["auth"]["entity_id"] == login.json()["auth"]["entity_id"]  # same accessor, same alias
    old = httpx.post(f"{srv.addr}/v1/auth/staff/login", json={"role": "eng", "jwt": idp.token("user_7")})
    assert old.status_code in (403, 404)


def test_path_help(srv: StrongroomServer) -> None:
    with srv.http() as http:
        resp = http.get("/v1/secret/data/anything", params={"help": "1"})  # `vault path-help secret/data/anything`
        assert resp.status_code == 200
        body = resp.json()
        assert body["help"] and set(body) >= {"help", "openapi"}
        assert "/secret/data/{path}" in body["openapi"]["paths"]
        assert body["openapi"]["paths"]["/secret/data/{path}"]["get"]
        root_help = http.get("/v1/secret/", params={"help": "1"}).json()  # the mount's root: every path
        assert len(root_help["openapi"]["paths"]) > 3 and "metadata" in root_help["help"]
        sys_help = http.get("/v1/sys/mounts/secret", params={"help": "1"}).json()
        assert "/sys/mounts/{path}" in sys_help["openapi"]["paths"]
        assert http.get("/v1/no-such-mount/x", params={"help": "1"}).status_code == 404
    # help needs a valid token, and a caller granted something at the path: otherwise it would map what exists
    assert httpx.get(f"{srv.addr}/v1/secret/data/x", params={"help": "1"}).status_code == 403
    client = srv.client()
    client.sys.create_or_update_policy("help-reader", 'path "secret/data/team/*" { capabilities = ["list"] }')
    token = client.auth.token.create(policies=["help-reader"])["auth"]["client_token"]
    with srv.http(token) as http:
        assert http.get("/v1/secret/data/team/x", params={"help": "1"}).status_code == 200
        assert http.get("/v1/secret/data/other", params={"help": "1"}).status_code == 403
        assert http.get("/v1/no-such-mount/x", params={"help": "1"}).status_code == 403


def test_forbidden_before_not_found(srv: StrongroomServer) -> None:
    client = srv.client()
    nobody = client.auth.token.create(policies=["default"])["auth"]["client_token"]
    client.sys.create_or_update_policy("ghost-reader", 'path "ghost/*" { capabilities = ["read"] }\n'
                                                       'path "secret/nosuch/*" { capabilities = ["read"] }')
    ghost = client.auth.token.create(policies=["ghost-reader"])["auth"]["client_token"]
    with srv.http(nobody) as http:
        # an unknown mount and an unsupported path inside a real one look alike to a caller the ACL refuses
        for path in ("/v1/ghost/x", "/v1/secret/nosuch/x", "/v1/secret/data/x"):
            resp = http.get(path)
            assert resp.status_code == 403 and resp.json()["errors"] == ["permission denied"], path
    with srv.http(ghost) as http:
        assert http.get("/v1/ghost/x").status_code == 404
        assert http.get("/v1/secret/nosuch/x").status_code == 404
    with srv.http() as http:
        assert http.get("/v1/ghost/x").status_code == 404


def test_ha_status_and_host_info(srv: StrongroomServer) -> None:
    with srv.http() as http:
        status = http.get("/v1/sys/ha-status").json()
        nodes = status["nodes"]  # at the top level too, where `vault operator members` (api.HAStatus) reads it
        assert status["data"]["nodes"] == nodes
        assert len(nodes) == 1 and nodes[0]["active_node"] is True and nodes[0]["hostname"]
        info = http.get("/v1/sys/host-info").json()["data"]
        assert info["cpu"] and info["memory"]["total"] > 0 and info["host"]["hostname"] and info["disk"]
        assert info["host"]["uptime"] > 0 and info["timestamp"]
    client = srv.client()
    client.sys.create_or_update_policy("host-reader", 'path "sys/host-info" { capabilities = ["read"] }')
    token = client.auth.token.create(policies=["host-reader"])["auth"]["client_token"]
    with srv.http(token) as http:
        assert http.get("/v1/sys/host-info").status_code == 403  # root-protected, as in Vault


def test_vault_error_strings(srv: StrongroomServer) -> None:
    with srv.http() as http:
        resp = http.post("/v1/sys/audit-hash/missing", json={"input": "x"})
        assert resp.status_code == 400 and resp.json()["errors"] == ["unknown audit backend"]


def test_generic_mount_through_hvac(srv: StrongroomServer) -> None:
    client = srv.client()
    client.sys.enable_secrets_engine("generic", path="legacy")
    assert client.sys.list_mounted_secrets_engines()["data"]["legacy/"]["type"] == "generic"
    client.secrets.kv.v1.create_or_update_secret("a", {"k": "v"}, mount_point="legacy")
    assert client.secrets.kv.v1.read_secret("a", mount_point="legacy")["data"] == {"k": "v"}
    client.sys.tune_mount_configuration("legacy", default_lease_ttl="1h")
    assert client.sys.read_mount_configuration("legacy")["data"]["default_lease_ttl"] == 3600
    client.sys.move_backend("legacy", "legacy2")
    assert client.secrets.kv.v1.read_secret("a", mount_point="legacy2")["data"] == {"k": "v"}
    client.sys.disable_secrets_engine("legacy2")
    assert "legacy2/" not in client.sys.list_mounted_secrets_engines()["data"]
