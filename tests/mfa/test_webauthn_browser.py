"""WebAuthn step-up in real headless Chromium with a CDP virtual authenticator: revealing a value in the UI, and an
API path on the configured list, are refused until the signed-in person verifies with a registered security key;
the step-up belongs to that session only, and a second key cannot be added without one."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.conftest import StrongroomServer
from tests.mfa.webauthn_setup import (
    StepUpProxy,
    add_virtual_authenticator,
    prepare_server,
    sign_in,
    start_step_up_proxy,
    step_up,
)
from tests.proxy.staff import Idp

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StrongroomServer, StepUpProxy, Idp, str]]:
    workdir = tmp_path_factory.mktemp("webauthn")
    server = StrongroomServer(workdir).start()
    root = prepare_server(server, "secret/data/k8s/default/s-demo/*")
    value = "VALUE-" + secrets.token_hex(12)
    root.secrets.kv.v2.create_or_update_secret("k8s/default/s-demo/greeting/v1", secret={"data": value}, cas=0)
    root.secrets.kv.v2.create_or_update_secret("k8s/default/s-demo/prod/v1", secret={"data": "prod-" + value}, cas=0)
    idp = Idp()
    proxy = start_step_up_proxy(workdir, server, idp, ["secret/data/k8s/*/prod/*"])
    yield server, proxy, idp, value
    proxy.stop()
    idp.close()
    server.stop()


def _reveal(page, proxy: StepUpProxy) -> str:  # noqa: ANN001
    page.goto(f"{proxy.addr}/ui/secrets/default/s-demo/greeting/v1")
    page.click("button:has-text('Reveal value')")
    return page.content()


def _api_get(page, path: str) -> int:  # noqa: ANN001
    """A request from the page's own session (cookie + CSRF header), as the UI's scripts would make it."""
    return page.evaluate(
        """async (path) => {
            const csrf = document.querySelector("input[name=csrf_token]").value;
            const r = await fetch(path, {headers: {"x-csrf-token": csrf}, credentials: "same-origin"});
            return r.status;
        }""",
        path,
    )


def test_reveal_and_listed_paths_need_a_security_key_step_up(browser, env) -> None:  # noqa: ANN001
    server, proxy, idp, value = env
    ctx, page = sign_in(browser, proxy, idp, "alice")
    add_virtual_authenticator(page)

    html = _reveal(page, proxy)
    assert value not in html and "Step-up required" in html
    assert _api_get(page, "/v1/secret/data/k8s/default/s-demo/prod/v1") == 403
    assert _api_get(page, "/v1/secret/data/k8s/default/s-demo/greeting/v1") == 200  # not on the list

    assert "Verified" in step_up(page, proxy, register=True)
    page.goto(f"{proxy.addr}/ui/step-up")
    assert page.inner_text("#step-up-state") == "verified"
    html = _reveal(page, proxy)
    assert page.inner_text("pre.value") == value
    page.goto(f"{proxy.addr}/ui/")
    assert _api_get(page, "/v1/secret/data/k8s/default/s-demo/prod/v1") == 200

    # the step-up is bound to this session: its cookie in another signed-in session of the same person is worthless
    step_cookie = next(c for c in ctx.cookies() if c["name"] == "strongroom_step_up")
    other, other_page = sign_in(browser, proxy, idp, "alice")
    other.add_cookies([step_cookie])
    html = _reveal(other_page, proxy)
    assert value not in html and "Step-up required" in html

    # ... and that session cannot enrol a key of its own: alice already has one
    add_virtual_authenticator(other_page)
    failed = step_up(other_page, proxy, register=True)
    assert "already registered" in failed
    other.close()

    # a person without a key registered cannot step up at all
    bob, bob_page = sign_in(browser, proxy, idp, "bob")
    add_virtual_authenticator(bob_page)
    bob_page.goto(f"{proxy.addr}/ui/step-up")
    bob_page.click("#verify")
    expect(bob_page.locator("#step-up-status")).not_to_be_empty(timeout=15000)
    assert "no security key is registered" in bob_page.inner_text("#step-up-status")
    bob.close()
    ctx.close()


def test_bearer_callers_cannot_reach_listed_paths_without_step_up(env) -> None:  # noqa: ANN001
    import httpx

    server, proxy, idp, value = env
    with httpx.Client(base_url=proxy.addr, headers={"Authorization": f"Bearer {idp.token('carol')}"}) as http:
        refused = http.get("/v1/secret/data/k8s/default/s-demo/prod/v1")
        assert refused.status_code == 403 and "step-up" in refused.json()["errors"][0]
        assert value not in refused.text
        assert http.get("/v1/secret/data/k8s/default/s-demo/greeting/v1").json()["data"]["data"]["data"] == value
        # the JSON ceremony endpoints are for the UI's cookie sessions only
        assert http.post("/webauthn/register/options", json={}).status_code == 403
