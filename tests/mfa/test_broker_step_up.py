"""The MPA broker with step-up configured: approving and break-glass need the staff proxy's WebAuthn step-up proof
for the very IdP token presented, obtained in real headless Chromium with a CDP virtual authenticator. A stolen IdP
token alone approves nothing; a denial needs no step-up."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from strongroom.broker.app import BrokerApp
from strongroom.broker.config import parse_config
from strongroom.broker.oidc import generate_signing_key
from strongroom.broker.runtime import BrokerRuntime
from strongroom.broker.seed import SeedKeys
from tests.broker.harness import AsgiThread, Clock
from tests.broker.harness import TestIdp as BrokerIdp
from tests.conftest import StrongroomServer
from tests.mfa.webauthn_setup import add_virtual_authenticator, prepare_server, sign_in, start_step_up_proxy, step_up

pytestmark = pytest.mark.browser

BOB = {"sub": "u-bob", "groups": ["platform", "platform-leads"], "email": "bob@bank.test", "hr": "E1002"}
ALICE = {"sub": "u-alice", "groups": ["platform"], "email": "alice@bank.test", "hr": "E1001"}
DAVE = {"sub": "u-dave", "groups": ["platform", "sre-oncall"], "email": "dave@bank.test", "hr": "E1004"}


def _token(idp: BrokerIdp, who: dict[str, Any]) -> str:
    return idp.token(who["sub"], who["groups"], email=who["email"], extra={"employee_id": who["hr"]})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("broker-step-up")
    key_file = tmp / "step-up-proof-key"
    key_file.write_text(secrets.token_hex(32))
    idp = BrokerIdp()
    raw = {
        "broker": {"listen": "127.0.0.1:0", "public_url": "https://mpa.bank.test", "production": False,
                   "storage": f"sqlite:///{tmp / 'broker.db'}", "audit_log": str(tmp / "audit.jsonl")},
        "idp": {"issuer": idp.issuer, "audience": idp.audience, "jwks_url": idp.jwks_url,
                "person_claim": "employee_id"},
        "seed": {"file": str(tmp / "seed.json"), "token_file": str(tmp / "seed-token")},
        "break_glass": {"groups": ["sre-oncall"], "duration": "5m"},
        "step_up": {"proof_key_file": str(key_file)},
        "kinds": {"k8s-admin": {"type": "kubernetes", "request_groups": ["platform"],
                                "approve_groups": ["platform-leads"], "approvals": 1, "audience": "kubernetes",
                                "groups": ["mpa:cluster-admin"]}},
    }  # fmt: skip
    runtime = BrokerRuntime(parse_config(raw, tmp), SeedKeys(generate_signing_key("RS256"), None), clock=Clock(),
                            measurement="ab" * 48, sweep_interval=0.1, retry_base_delay=0.05)  # fmt: skip
    broker = AsgiThread(BrokerApp(runtime)).start()
    (tmp / "server").mkdir()
    server = StrongroomServer(tmp / "server").start()
    prepare_server(server, "secret/data/none/*")
    proxy = start_step_up_proxy(tmp, server, idp, [], issuer=idp.issuer, audience=idp.audience, proof_key_file=key_file)
    yield {"broker": broker.addr, "proxy": proxy, "idp": idp}
    proxy.stop()
    server.stop()
    broker.stop()
    idp.close()


def _as(addr: str, token: str, proof: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    if proof:
        headers["X-Strongroom-Step-Up"] = proof
    return httpx.Client(base_url=addr, headers=headers, timeout=30)


def _new_request(env: dict[str, Any]) -> str:
    resp = _as(env["broker"], _token(env["idp"], ALICE)).post(
        "/v1/requests", json={"kind": "k8s-admin", "reason": "Rotate the etcd encryption key, INC-4711"}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["request"]["id"]


def test_approval_needs_a_step_up_proof_for_the_same_token(browser, env: dict[str, Any]) -> None:  # noqa: ANN001
    idp, broker = env["idp"], env["broker"]
    bob_token = _token(idp, BOB)
    rid = _new_request(env)

    refused = _as(broker, bob_token).post(f"/v1/requests/{rid}/review", json={"decision": "approve", "comment": "ok"})
    assert refused.status_code == 403 and "step-up required" in refused.json()["errors"][0]
    assert _as(broker, bob_token).get(f"/v1/requests/{rid}").json()["request"]["state"] == "pending"

    # Bob signs in to the proxy with the same IdP token, verifies with his security key and asks for a proof
    ctx, page = sign_in(browser, env["proxy"], idp, BOB["sub"], token=bob_token)
    add_virtual_authenticator(page)
    assert "Verified" in step_up(page, env["proxy"], register=True)
    proof = page.evaluate(
        """async () => {
            const csrf = document.getElementById("step-up").dataset.csrf;
            const r = await fetch("/webauthn/proof", {method: "POST", headers: {"x-csrf-token": csrf}});
            return (await r.json()).proof;
        }"""
    )
    ctx.close()
    assert proof.startswith("v1.")

    # the proof is worthless with another token of Bob's, and a forged one is refused
    other_token = _token(idp, BOB) + ""
    if other_token == bob_token:  # same second, same claims: make it differ
        other_token = idp.token(BOB["sub"], BOB["groups"], email=BOB["email"], ttl=601,
                                extra={"employee_id": BOB["hr"]})  # fmt: skip
    for token, presented in ((other_token, proof), (bob_token, proof[:-4] + "0000")):
        resp = _as(broker, token, presented).post(
            f"/v1/requests/{rid}/review", json={"decision": "approve", "comment": "ok"}
        )
        assert resp.status_code == 403, resp.text

    approved = _as(broker, bob_token, proof).post(
        f"/v1/requests/{rid}/review", json={"decision": "approve", "comment": "ok"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["request"]["state"] == "approved"


def test_denial_needs_no_step_up_but_break_glass_does(env: dict[str, Any]) -> None:
    idp, broker = env["idp"], env["broker"]
    rid = _new_request(env)
    denied = _as(broker, _token(idp, BOB)).post(
        f"/v1/requests/{rid}/review", json={"decision": "deny", "comment": "not during the freeze"}
    )
    assert denied.status_code == 200 and denied.json()["request"]["state"] == "denied"

    glass = _as(broker, _token(idp, DAVE)).post(
        "/v1/break-glass", json={"kind": "k8s-admin", "reason": "Production is down, INC-4712, paging did not help"}
    )
    assert glass.status_code == 403 and "step-up required" in glass.json()["errors"][0]
    listed = _as(broker, _token(idp, DAVE)).get("/v1/requests?mine=1").json()["requests"]
    assert listed == []


def test_proxy_gives_no_proof_without_step_up(browser, env: dict[str, Any]) -> None:  # noqa: ANN001
    ctx, page = sign_in(browser, env["proxy"], env["idp"], ALICE["sub"], token=_token(env["idp"], ALICE))
    page.goto(f"{env['proxy'].addr}/ui/step-up")
    status = page.evaluate(
        """async () => {
            const csrf = document.getElementById("step-up").dataset.csrf;
            const r = await fetch("/webauthn/proof", {method: "POST", headers: {"x-csrf-token": csrf}});
            return r.status;
        }"""
    )
    assert status == 403
    ctx.close()
