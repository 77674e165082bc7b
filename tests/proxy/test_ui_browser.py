"""The inspection UI in real headless Chromium (Debian's), JavaScript off: it must work as plain HTML.

Screenshots of every page land in ``test-artifacts/ui/`` (gitignored) for people to look at.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from strongroom.core.system.people_policies import WEB_USER_POLICY

from .conftest import Staff

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # a missing browser is a failure, never a skip: CI must exercise the UI for real
    assert Path(CHROMIUM).exists(), "Debian chromium is not installed (scripts/install installs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def seeded(staff: Staff) -> dict[str, str]:
    root = staff.root
    # secrets are written by an engineer's token, so the tree shows who wrote each version
    alice = hvac.Client(url=root.url, token=root.auth.token.create(policies=["root"], display_name="alice")["auth"][
        "client_token"])
    values = {}
    for sa, name, version in (
        ("s-emoji", "canary", "2019-05-10"),
        ("s-emoji", "canary", "2019-05-11"),
        ("s-emoji", "aws/secret-access-key", "v1"),
        ("s-ledger", "db/password", "v3"),
        ("s-demo", "greeting", "v1"),
    ):
        values[f"{sa}/{name}/{version}"] = v = "VALUE-" + secrets.token_hex(12)
        path = f"k8s/default/{sa}/{name}/{version}"
        alice.secrets.kv.v2.create_or_update_secret(path=path, secret={"data": v}, cas=0, mount_point="secret")
    # one service whose values staff may read, to show Reveal working where policy allows it
    root.sys.create_or_update_acl_policy(
        name="web-user",
        policy=WEB_USER_POLICY + '\npath "secret/data/k8s/default/s-demo/*" {\n  capabilities = ["read"]\n}\n',
    )
    return values


def _shot(page, name: str) -> None:  # noqa: ANN001
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _sign_in(browser, staff: Staff, user: str = "alice"):  # noqa: ANN001, ANN202
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(f"{staff.proxy.addr}/ui/")
    assert page.url.endswith("/ui/login")
    page.fill("textarea[name=token]", staff.idp.token(user))
    page.click("button[type=submit]")
    return ctx, page


def test_browse_configuration_and_secret_tree_without_values(browser, staff: Staff, seeded: dict) -> None:  # noqa: ANN001
    ctx, page = _sign_in(browser, staff)
    assert "Signed in as alice" in page.inner_text("main")
    _shot(page, "01-overview")

    page.click("text=Mounts")
    table = page.inner_text("table")
    assert "secret/" in table and "kv" in table and "sys/" in table
    _shot(page, "02-mounts")

    page.click("text=Auth methods")
    assert "kubernetes/" in page.inner_text("table") and "token/" in page.inner_text("table")
    _shot(page, "03-auth")

    page.click("nav >> text=Policies")
    page.click("main >> text=secret-writer")
    rendered = page.inner_text("table.policy")
    assert "secret/data/k8s/*" in rendered and "create" in rendered
    assert "update" not in rendered
    _shot(page, "04-policy-secret-writer")

    page.click("nav >> text=Secrets")
    page.click("main >> text=default")
    assert "s-ledger" in page.inner_text("main")
    page.click("main >> text=s-emoji")
    html = page.content()
    text = page.inner_text("table.secrets")
    for want in ("canary", "2019-05-10", "2019-05-11", "aws/secret-access-key", "alice"):
        assert want in text
    assert "Z" in text  # created times are shown (RFC 3339, UTC)
    for value in seeded.values():
        assert value not in html
    _shot(page, "05-secrets-s-emoji")
    ctx.close()


def test_reveal_only_what_policy_allows(browser, staff: Staff, seeded: dict) -> None:  # noqa: ANN001
    ctx, page = _sign_in(browser, staff)
    page.goto(f"{staff.proxy.addr}/ui/secrets/default/s-emoji")
    page.locator("tr", has_text="2019-05-11").locator("button", has_text="Reveal").click()
    assert "do not allow reading" in page.inner_text("main")
    assert seeded["s-emoji/canary/2019-05-11"] not in page.content()
    _shot(page, "06-reveal-denied")

    page.goto(f"{staff.proxy.addr}/ui/secrets/default/s-demo")
    assert seeded["s-demo/greeting/v1"] not in page.content()
    page.locator("tr", has_text="greeting").locator("button", has_text="Reveal").click()
    assert page.inner_text("pre.value") == seeded["s-demo/greeting/v1"]
    _shot(page, "07-reveal-allowed")
    ctx.close()


def test_signed_out_and_bad_tokens_see_nothing(browser, staff: Staff, seeded: dict) -> None:  # noqa: ANN001
    ctx = browser.new_context(java_script_enabled=False)
    page = ctx.new_page()
    page.goto(f"{staff.proxy.addr}/ui/secrets/default/s-emoji")
    assert page.url.endswith("/ui/login")
    assert "canary" not in page.content()
    page.fill("textarea[name=token]", staff.idp.token("alice", issuer="https://evil.example"))
    page.click("button[type=submit]")
    assert "foreign issuer" in page.inner_text("main")
    _shot(page, "08-login-refused")
    page.goto(f"{staff.proxy.addr}/ui/mounts")
    assert page.url.endswith("/ui/login")
    ctx.close()


def test_path_tricks_are_refused(browser, staff: Staff, seeded: dict) -> None:  # noqa: ANN001
    ctx, page = _sign_in(browser, staff)
    resp = page.goto(f"{staff.proxy.addr}/ui/secrets/default/..%2F..%2Fsys")
    assert resp is not None and resp.status in (400, 404)
    resp = page.goto(f"{staff.proxy.addr}/ui/policies/..%2Fmounts")
    assert resp is not None and resp.status in (400, 404)
    ctx.close()


def test_policy_text_is_shown_escaped_never_executed(browser, staff: Staff) -> None:  # noqa: ANN001
    evil = (
        '# <script>document.title="owned"</script><img src=x onerror=alert(1)>\n'
        'path "secret/data/x" {\n  capabilities = ["read"]\n}\n'
    )
    staff.root.sys.create_or_update_acl_policy(name="tricky", policy=evil)
    ctx, page = _sign_in(browser, staff)
    page.goto(f"{staff.proxy.addr}/ui/policies/tricky")
    assert "<script>" in page.inner_text("pre")  # shown as text
    assert page.locator("main script").count() == 0 and page.locator("main img").count() == 0
    assert page.title() != "owned"
    ctx.close()
