"""A server, an IdP and a staff proxy with WebAuthn step-up configured, for the browser and broker tests."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hvac
from playwright.sync_api import expect

from strongroom.core.system.people_policies import SECRET_WRITER_POLICY, STAFF_PROXY_POLICY, WEB_USER_POLICY
from tests.conftest import StrongroomServer
from tests.proxy.staff import AUDIENCE, ISSUER, STRONGROOM, Idp, free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip


@dataclass
class StepUpProxy:
    proc: subprocess.Popen[bytes]
    # WebAuthn needs a domain for its relying-party id (never an IP address) and a secure context: localhost is both
    addr: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def prepare_server(server: StrongroomServer, readable: str) -> hvac.Client:
    root = server.client()
    root.sys.create_or_update_acl_policy(name="secret-writer", policy=SECRET_WRITER_POLICY)
    root.sys.create_or_update_acl_policy(
        name="web-user", policy=WEB_USER_POLICY + f'\npath "{readable}" {{\n  capabilities = ["read"]\n}}\n'
    )
    root.sys.create_or_update_acl_policy(name="staff-proxy", policy=STAFF_PROXY_POLICY)
    return root


def start_step_up_proxy(
    workdir: Path,
    server: StrongroomServer,
    idp: Idp | Any,
    step_up_paths: list[str],
    *,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    proof_key_file: Path | None = None,
) -> StepUpProxy:
    root = server.client()
    token = root.auth.token.create(policies=["web-user", "staff-proxy"], ttl="1h", display_name="staff-proxy")
    token_file = workdir / "proxy-token"
    token_file.write_text(token["auth"]["client_token"])
    token_file.chmod(0o600)
    port = free_port()
    addr = f"http://localhost:{port}"
    paths = ", ".join(f'"{p}"' for p in step_up_paths)
    cfg = workdir / "proxy.toml"
    cfg.write_text(
        f'listen = "127.0.0.1:{port}"\nupstream = "{server.addr}"\nlogin = "token"\ntoken_file = "{token_file}"\n'
        f"cookie_secure = false\n\n"
        f'[idp]\nissuer = "{issuer}"\naudience = "{audience}"\njwks_url = "{idp.jwks_url}"\n\n'
        f'[step_up]\nrp_id = "localhost"\norigin = "{addr}"\nttl = "5m"\nreveal = true\npaths = [{paths}]\n'
        f'credentials_db = "{workdir / "webauthn.db"}"\n'
        + (f'proof_key_file = "{proof_key_file}"\n' if proof_key_file else "")
    )
    log = workdir / "proxy.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([STRONGROOM, "proxy", "--config", str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ))  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return StepUpProxy(proc, addr, log)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"proxy did not start: {log.read_text()}")
        time.sleep(0.1)


def add_virtual_authenticator(page) -> str:  # noqa: ANN001
    """A CTAP2 security key inside Chromium (CDP WebAuthn domain) that answers every ceremony on its own."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    out = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": False,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return out["authenticatorId"]


def sign_in(browser, proxy: StepUpProxy, idp: Idp, user: str = "alice", token: str | None = None):  # noqa: ANN001, ANN201
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(f"{proxy.addr}/ui/login")
    page.fill("textarea[name=token]", token or idp.token(user))
    page.click("button[type=submit]")
    assert f"Signed in as {user}" in page.inner_text("main")
    return ctx, page


def step_up(page, proxy: StepUpProxy, register: bool) -> str:  # noqa: ANN001
    page.goto(f"{proxy.addr}/ui/step-up")
    status = page.locator("#step-up-status")
    if register:
        page.click("#register")
        expect(page.locator("#step-up-status")).not_to_be_empty(timeout=15000)
        if status.inner_text() != "Security key registered.":
            return status.inner_text()
        page.evaluate("document.getElementById('step-up-status').textContent = ''")
    page.click("#verify")
    expect(page.locator("#step-up-status")).not_to_be_empty(timeout=15000)
    return status.inner_text()
