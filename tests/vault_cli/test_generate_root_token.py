"""`bao operator generate-root` (OpenBao 2.x) uses the authenticated ``sys/generate-root-token/*`` paths instead of
Vault's unauthenticated ``sys/generate-root/*``: the same ceremony, answered inside the envelope's ``data``, needing a
token with ``sudo`` and audited like any request. These are the requests the CLI sends (api/sys_generate_root.go)."""

from __future__ import annotations

import base64

import httpx
import hvac

from tests.conftest import StrongroomServer

INIT_CONFIG = """
storage "sqlite" { path = "{storage}" }
listener "tcp" {
  address = "127.0.0.1:{port}"
  tls_disable = true
}
"""
OTP = "ABCDEFGHIJKLMNOPQRSTUVWXYZab"


def test_authenticated_root_generation_as_the_bao_cli_drives_it(server_factory) -> None:  # noqa: ANN001
    server: StrongroomServer = server_factory(config_text=INIT_CONFIG)
    client = hvac.Client(url=server.addr)
    init = client.sys.initialize(secret_shares=3, secret_threshold=2)
    client.sys.submit_unseal_keys(init["keys"][:2])
    root = init["root_token"]
    with httpx.Client(base_url=server.addr, headers={"X-Vault-Token": root}, timeout=10) as http:
        status = http.get("/v1/sys/generate-root-token/attempt").json()["data"]
        assert status["started"] is False and status["required"] == 2

        started = http.put("/v1/sys/generate-root-token/attempt", json={"otp": OTP, "pgp_key": ""}).json()["data"]
        assert started["started"] is True and started["progress"] == 0
        nonce = started["nonce"]
        step = http.put("/v1/sys/generate-root-token/update", json={"key": init["keys"][0], "nonce": nonce})
        assert step.status_code == 200 and step.json()["data"]["progress"] == 1
        done = http.put("/v1/sys/generate-root-token/update", json={"key": init["keys"][2], "nonce": nonce})
        encoded = done.json()["data"]["encoded_token"]
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
        new_root = bytes(a ^ b for a, b in zip(raw, OTP.encode(), strict=True)).decode()
        lookup = httpx.get(f"{server.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": new_root})
        assert lookup.json()["data"]["policies"] == ["root"]

        # cancel, as `bao operator generate-root -cancel` does
        http.put("/v1/sys/generate-root-token/attempt", json={"otp": OTP})
        assert http.delete("/v1/sys/generate-root-token/attempt").status_code == 204
        assert http.get("/v1/sys/generate-root-token/attempt").json()["data"]["started"] is False

        # without a token, or with one whose policy lacks sudo, nothing starts
        assert httpx.put(f"{server.addr}/v1/sys/generate-root-token/attempt", json={"otp": OTP}).status_code == 403
        client.token = root
        client.sys.create_or_update_policy(
            "gen-no-sudo", 'path "sys/generate-root-token/*" { capabilities = ["read", "update", "delete"] }'
        )
        weak = client.auth.token.create(policies=["gen-no-sudo"])["auth"]["client_token"]
        refused = httpx.put(
            f"{server.addr}/v1/sys/generate-root-token/attempt", json={"otp": OTP}, headers={"X-Vault-Token": weak}
        )
        assert refused.status_code == 403
        assert http.get("/v1/sys/generate-root-token/attempt").json()["data"]["started"] is False
