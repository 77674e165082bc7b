"""The inspection pages in real headless Chromium (Debian's), JavaScript off, with screenshots of every page.

One server, stand-in Kubernetes cluster, IdP and staff proxy for the module. Services log in with real ServiceAccount
tokens and read their own secrets, so the history shows real readers; the access explorer's answers are checked
against ``sys/capabilities`` for the services' real tokens; no page's HTML contains a value or a token.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import hvac
import pytest

from strongroom.broker.app import BrokerApp
from strongroom.broker.config import parse_config
from strongroom.broker.oidc import generate_signing_key
from strongroom.broker.runtime import BrokerRuntime
from strongroom.broker.seed import SeedKeys
from strongroom.core.system.people_policies import STAFF_PROXY_POLICY, WEB_USER_POLICY
from tests.broker.harness import AsgiThread
from tests.conftest import STRONGROOM, StrongroomServer, free_port, wait_for
from tests.identity.k8s_tokens import FakeCluster
from tests.proxy.staff import AUDIENCE, ISSUER, Idp, Proxy

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui" / "inspection"
# what reviewers get on top of web-user: the explorer, history and operations pages
INSPECTOR = """
path "sys/internal/access/*" { capabilities = ["read", "update"] }
path "sys/audit" { capabilities = ["read", "sudo"] }
path "sys/audit-chain/*" { capabilities = ["read"] }
path "sys/metrics" { capabilities = ["read"] }
path "sys/ha-status" { capabilities = ["read"] }
"""
SERVICES = [f"s-bulk-{i:03d}" for i in range(60)]


def start_broker(work: Path, idp: Idp) -> AsgiThread:
    """The MPA broker, trusting the same IdP as the proxy (the UI forwards each person's own IdP token)."""
    raw = {"broker": {"listen": "127.0.0.1:0", "public_url": "https://mpa.bank.test", "production": False,
                      "storage": f"sqlite:///{work / 'broker.db'}", "audit_log": str(work / "mpa-audit.jsonl")},
           "idp": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": idp.jwks_url},
           "seed": {"file": str(work / "seed.json"), "token_file": str(work / "seed-token")},
           "kinds": {"k8s-admin": {"type": "kubernetes", "request_groups": ["eng"], "approve_groups": ["leads"],
                                   "approvals": 1, "audience": "kubernetes", "groups": ["mpa:cluster-admin"]}}}
    runtime = BrokerRuntime(parse_config(raw, work), SeedKeys(generate_signing_key("RS256"), None),
                            measurement="ab" * 48)  # fmt: skip
    return AsgiThread(BrokerApp(runtime)).start()


def start_proxy(work: Path, upstream: str, token: str, idp: Idp, broker: str) -> Proxy:
    port = free_port()
    (work / "proxy-token").write_text(token)
    (work / "proxy-token").chmod(0o600)
    cfg = work / "proxy.toml"
    cfg.write_text(f'listen = "127.0.0.1:{port}"\nupstream = "{upstream}"\nlogin = "token"\n'
                   f'token_file = "{work / "proxy-token"}"\ncookie_secure = false\nmpa_broker = "{broker}"\n\n'
                   f'[idp]\nissuer = "{ISSUER}"\naudience = "{AUDIENCE}"\njwks_url = "{idp.jwks_url}"\n')
    log = work / "proxy.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([STRONGROOM, "proxy", "--config", str(cfg)], stdout=out, stderr=subprocess.STDOUT)
    proxy = Proxy(proc, f"http://127.0.0.1:{port}", log)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited: {log.read_text()}")
        try:
            return httpx.get(f"{proxy.addr}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=30, message="staff proxy")
    return proxy


@dataclass
class Env:
    server: StrongroomServer
    root: hvac.Client
    proxy: Proxy
    idp: Idp
    broker: str
    tokens: dict[str, str]  # service -> its real token
    values: dict[str, str]
    secrets_seen: list[str] = field(default_factory=list)  # every token/value that must never be in a page


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("inspection-ui")
    # the test-only lease engine (tests/leases) issues leases the way the database engine does
    leases = Path(__file__).resolve().parents[1] / "leases"
    server = StrongroomServer(work, env={"PYTHONPATH": f"{leases / 'site'}:{leases}"}).start()
    cluster = FakeCluster().start()
    idp = Idp()
    broker = start_broker(work, idp)
    proxy = None
    try:
        root = server.client()
        root.auth.kubernetes.configure(kubernetes_host=cluster.url, kubernetes_ca_cert=cluster.ca_pem,
                                       token_reviewer_jwt=cluster.reviewer_token)  # fmt: skip
        root.sys.enable_audit_device("file", options={"file_path": str(work / "audit.log")})
        root.sys.create_or_update_acl_policy(name="web-user", policy=WEB_USER_POLICY + INSPECTOR)
        root.sys.create_or_update_acl_policy(name="staff-proxy", policy=STAFF_PROXY_POLICY)
        alice = hvac.Client(url=server.addr, token=root.auth.token.create(
            policies=["root"], display_name="alice")["auth"]["client_token"])  # fmt: skip
        values = {}
        for sa, name, version in (("s-emoji", "canary", "v1"), ("s-emoji", "canary", "v2"),
                                  ("s-ledger", "db-password", "v1"), ("other", "x", "v1")):  # fmt: skip
            ns = "payments" if sa == "other" else "default"
            values[f"{sa}/{name}/{version}"] = v = "VALUE-" + secrets.token_hex(12)
            alice.secrets.kv.v2.create_or_update_secret(f"k8s/{ns}/{sa}/{name}/{version}", secret={"data": v}, cas=0)
        for sa in SERVICES:  # enough services to need a second page of search results
            root.secrets.kv.v2.create_or_update_secret(f"k8s/bulk/{sa}/token/v1", secret={"data": "x"}, cas=0)
        root.sys.enable_secrets_engine("lease-test", path="pgtest")
        # 280 s: in the "< 5 min" bucket, and still live when the operations test looks (long before it expires)
        for ttl, roles in ((280, ("k8s_rw_billing_default", "k8s_ro_billing_default", "k8s_rw_billing_default")),
                           (7200, ("k8s_rw_orders_shop",))):  # fmt: skip
            assert server.http().post("/v1/pgtest/config", json={"ttl": ttl, "max_ttl": 86400}).status_code == 204
            for role in roles:
                assert server.http().get(f"/v1/pgtest/creds/{role}").json()["lease_id"]
        tokens = {}
        for sa in ("s-emoji", "s-ledger"):
            ref = cluster.service_account("default", sa)
            client = server.client(token="")
            client.auth.kubernetes.login("default", cluster.projected_token(ref))
            tokens[sa] = client.token
        # the services read their own secrets: these reads are what the history page must show
        svc = hvac.Client(url=server.addr, token=tokens["s-emoji"])
        svc.secrets.kv.v2.read_secret_version("k8s/default/s-emoji/canary/v2", raise_on_deleted_version=True)
        hvac.Client(url=server.addr, token=tokens["s-ledger"]).secrets.kv.v2.read_secret_version(
            "k8s/default/s-ledger/db-password/v1", raise_on_deleted_version=True)
        proxy_token = root.auth.token.create(policies=["web-user", "staff-proxy"], ttl="1h")["auth"]["client_token"]
        proxy = start_proxy(work, server.addr, proxy_token, idp, broker.addr)
        yield Env(server, root, proxy, idp, broker.addr, tokens, values,
                  [*values.values(), *tokens.values(), proxy_token, server.root_token])
    finally:
        if proxy is not None:
            proxy.stop()
        broker.stop()
        idp.close()
        cluster.stop()
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    assert Path(CHROMIUM).exists(), "Debian chromium is not installed (scripts/install installs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, env: Env) -> Iterator[object]:  # noqa: ANN001
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1366, "height": 800})
    pg = ctx.new_page()
    pg.goto(f"{env.proxy.addr}/ui/")
    pg.fill("textarea[name=token]", env.idp.token("alice"))
    pg.click("button[type=submit]")
    assert "Signed in as alice" in pg.inner_text("main")
    yield pg
    ctx.close()


def _visit(pg, env: Env, path: str, shot: str, status: int = 200) -> str:  # noqa: ANN001
    resp = pg.goto(env.proxy.addr + path)
    assert resp is not None and resp.status == status, (path, resp and resp.status, pg.inner_text("main"))
    csp = resp.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    html = pg.content()
    for secret in env.secrets_seen:
        assert secret not in html, f"{shot}: a secret value or token is in the page"
    assert "<script" not in html  # readable without JavaScript; nothing inline for the CSP to block
    assert "https://" not in re.sub(r'(placeholder|xmlns)="[^"]*"', "", html)  # nothing loaded from elsewhere
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    return html


def _caps(env: Env, token: str, path: str) -> list[str]:
    r = env.server.http().post("/v1/sys/capabilities", json={"token": token, "paths": [path]})
    assert r.status_code == 200, r.text
    return sorted(r.json()["data"][path])


def test_who_can_read_a_secret(page, env: Env) -> None:  # noqa: ANN001
    page.goto(f"{env.proxy.addr}/ui/access")
    page.fill("#q-path", "secret/data/k8s/default/s-ledger/db-password/v1")
    page.click("form[aria-labelledby=who-h] button")
    assert "/ui/access?path=" in page.url
    _visit(page, env, page.url.removeprefix(env.proxy.addr), "01-who-can-s-ledger-db-password")
    table = page.inner_text("table.answer")
    rows = {r.inner_text().split("\t")[0]: r.inner_text() for r in page.locator("table.answer tbody tr").all()}
    assert any(k.startswith("ServiceAccount s-ledger in namespace default") for k in rows), rows
    assert "s-emoji" not in table  # exact: another service's ServiceAccount is not listed
    # the answer equals the server's own answer for the real service token
    truth = _caps(env, env.tokens["s-ledger"], "secret/data/k8s/default/s-ledger/db-password/v1")
    ledger = next(v for k, v in rows.items() if k.startswith("ServiceAccount s-ledger"))
    assert truth == ["list", "read"] and all(c in ledger for c in truth)
    assert "every staff member signed in through this proxy" in table and "create" in table
    assert _caps(env, env.tokens["s-emoji"], "secret/data/k8s/default/s-ledger/db-password/v1") == ["deny"]


def test_what_can_a_service_read(page, env: Env) -> None:  # noqa: ANN001
    own, other = "secret/data/k8s/default/s-emoji/canary/v1", "secret/data/k8s/default/s-ledger/db-password/v1"
    page.goto(f"{env.proxy.addr}/ui/access")
    page.select_option("#q-kind", "service_account")
    page.fill("#q-name", "default/s-emoji")
    page.fill("#q-check", own)
    page.click("form[aria-labelledby=what-h] button")
    _visit(page, env, page.url.removeprefix(env.proxy.addr), "02-what-can-s-emoji")
    main = page.inner_text("main")
    assert "ServiceAccount s-emoji in namespace default" in main
    tree = page.inner_text("ul.tree")
    assert "s-emoji" in tree and "s-ledger" not in tree
    check = page.inner_text("p.check")
    for cap in _caps(env, env.tokens["s-emoji"], own):
        assert cap in check
    page.goto(f"{env.proxy.addr}/ui/access?kind=service_account&name=default/s-emoji&check={quote(other)}")
    assert page.inner_text("p.check").strip().endswith("deny")
    assert _caps(env, env.tokens["s-emoji"], other) == ["deny"]


def test_history_shows_versions_writers_and_readers(page, env: Env) -> None:  # noqa: ANN001
    _visit(page, env, "/ui/", "00-overview")
    _visit(page, env, "/ui/secrets/default", "00-namespace-default")
    _visit(page, env, "/ui/secrets/default/s-emoji", "00-service-s-emoji")
    assert page.locator("table.secrets time[title$='UTC']").count() == 2
    assert page.locator("a", has_text="What can default/s-emoji read and write?").count() == 1
    page.click("table.secrets >> text=canary >> nth=0")
    html = _visit(page, env, page.url.removeprefix(env.proxy.addr), "03-history-s-emoji-canary")
    versions = page.inner_text("table.versions")
    assert "v1" in versions and "v2" in versions and "alice" in versions
    assert "token-" not in versions and "hvs." not in html  # a person, not a token name or accessor
    assert page.locator("table.versions time[title$='UTC']").count() == 2  # humane time, exact on hover
    assert "ago" in versions or "just now" in versions
    reads = page.inner_text("table.reads")
    assert "default/s-emoji" in reads and "read" in reads
    assert "Value read by 1 caller: default/s-emoji." in page.inner_text("p.summary")
    # the secret page links to the same history, and nothing is revealed on the way
    _visit(page, env, "/ui/secrets/default/s-emoji/canary/v2", "04-secret-s-emoji-canary-v2")


def test_search_and_pagination(page, env: Env) -> None:  # noqa: ANN001
    page.goto(f"{env.proxy.addr}/ui/search")
    page.fill("#q", "ledger")
    page.click("form[role=search] button")
    _visit(page, env, page.url.removeprefix(env.proxy.addr), "05-search-ledger")
    results = page.inner_text("table.results")
    assert "default/s-ledger" in results and "s-emoji" not in results
    page.fill("#q", "db-pass")
    page.click("form[role=search] button")
    rows = page.locator("table.results tbody tr").all_inner_texts()
    assert rows == ["secret\tdb-password\tdefault/s-ledger"], rows
    page.click("table.results >> text=db-password")
    assert "/ui/history/default/s-ledger/db-password" in page.url
    _visit(page, env, "/ui/search?q=s-bulk", "06-search-page-1")
    assert "60 results" in page.inner_text("main")
    assert page.locator("table.results tbody tr").count() == 50
    page.click("a[rel=next]")
    assert page.locator("table.results tbody tr").count() == 10
    assert "Page 2 of 2" in page.inner_text("nav.pager")
    _visit(page, env, page.url.removeprefix(env.proxy.addr), "07-search-page-2")


def test_operational_pages(page, env: Env) -> None:  # noqa: ANN001
    _visit(page, env, "/ui/ops", "08-ops")
    assert "unsealed" in page.inner_text("main")
    _visit(page, env, "/ui/ops/seal", "09-ops-seal")
    _visit(page, env, "/ui/ops/audit", "10-ops-audit")
    audit = page.inner_text("table.audit")
    assert "file/" in audit and "writing" in audit
    seq = int(page.locator("table.audit tbody tr td").nth(2).inner_text())
    assert seq > 0
    _visit(page, env, "/ui/ops/leases", "11-ops-leases")
    rows = page.locator("table.leases tbody tr").all_inner_texts()
    assert "pgtest/\tcreds/k8s_rw_billing_default\t2\t2\t0\t0\t0\t0" in [r.split("\tin ")[0] for r in rows], rows
    assert any(r.startswith("pgtest/\tcreds/k8s_rw_orders_shop\t1\t0\t0\t1\t0\t0") for r in rows), rows
    assert page.locator("svg.chart[role=img]").count() == 1
    _visit(page, env, "/ui/ops/database", "12-ops-database")
    db = page.locator("table.db tbody tr").all_inner_texts()
    assert [r.split("\t")[:4] for r in db] == [
        ["default/billing", "pgtest/creds/k8s_ro_billing_default", "read-only", "1"],
        ["default/billing", "pgtest/creds/k8s_rw_billing_default", "read-write", "2"],
        ["shop/orders", "pgtest/creds/k8s_rw_orders_shop", "read-write", "1"],
    ], db
    _visit(page, env, "/ui/ops/metrics", "14-ops-metrics")
    env.server.http().get("/v1/sys/seal-status")
    page.reload()
    assert page.locator("svg.chart[role=img]").count() >= 2
    assert "requests since start" in page.inner_text("dl.facts")


def test_keyboard_and_accessible_markup(page, env: Env) -> None:  # noqa: ANN001
    _visit(page, env, "/ui/access", "15-access-empty")
    page.keyboard.press("Tab")
    assert page.locator("a.skip:focus").count() == 1
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    for field_id in ("q-path", "q-kind", "q-name", "q-check"):
        assert page.locator(f"label[for={field_id}]").count() == 1
    assert page.locator("nav[aria-label=Main] a[accesskey=a]").count() == 1
    assert page.locator("h1").count() == 1 and page.locator("html[lang=en]").count() == 1


def test_inspection_pages_need_policy(browser, env: Env) -> None:  # noqa: ANN001
    # a person whose proxy children lack the inspector stanzas is told so, and sees nothing of the answer
    env.root.sys.create_or_update_acl_policy(name="web-user", policy=WEB_USER_POLICY)
    try:
        ctx = browser.new_context(java_script_enabled=False)
        pg = ctx.new_page()
        pg.goto(f"{env.proxy.addr}/ui/")
        pg.fill("textarea[name=token]", env.idp.token("mallory"))
        pg.click("button[type=submit]")
        resp = pg.goto(f"{env.proxy.addr}/ui/access?path=secret/data/k8s/default/s-ledger/db-password/v1")
        assert resp is not None and resp.status == 403
        assert "do not allow" in pg.inner_text("main") and "s-ledger in namespace" not in pg.content()
        resp = pg.goto(f"{env.proxy.addr}/ui/access?kind=martian&name=x")
        assert resp is not None and resp.status == 400
        ctx.close()
    finally:
        env.root.sys.create_or_update_acl_policy(name="web-user", policy=WEB_USER_POLICY + INSPECTOR)


def test_history_api_reports_readers(env: Env) -> None:
    with env.server.http() as http:
        r = http.get("/v1/sys/internal/access/history", params={"path": "secret/k8s/default/s-ledger/db-password/v1"})
        assert r.status_code == 200, r.text
        events = r.json()["data"]["events"]
        reads = [e for e in events if e["operation"] == "read" and e["who"] == "default/s-ledger"]
        assert reads and reads[0]["path"] == "secret/data/k8s/default/s-ledger/db-password/v1"
        assert all(e["path"].endswith("s-ledger/db-password/v1") for e in events)
        assert "VALUE-" not in r.text and env.tokens["s-ledger"] not in r.text
        r = http.get("/v1/sys/internal/access/leases")
        assert r.status_code == 200 and r.json()["data"]["buckets"][0] == "< 5 min"


def test_mpa_requests_reviewed_in_the_ui(browser, env: Env) -> None:  # noqa: ANN001
    reason = "Rotate secret/k8s/default/s-emoji/canary after INC-4711"
    r = httpx.post(f"{env.broker}/v1/requests", json={"kind": "k8s-admin", "reason": reason},
                   headers={"authorization": "Bearer " + env.idp.token("carol", groups=["eng"])})
    assert r.status_code == 201, r.text
    rid = r.json()["request"]["id"]
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1366, "height": 800})
    pg = ctx.new_page()
    pg.goto(f"{env.proxy.addr}/ui/")
    pg.fill("textarea[name=token]", env.idp.token("bob", groups=["leads"]))
    pg.click("button[type=submit]")
    _visit(pg, env, "/ui/ops/mpa", "13-ops-mpa")
    pending = pg.locator("table.mpa", has_text=reason)
    assert pending.count() == 1 and "carol" in pending.inner_text()
    # the history of the secret it names lists it too
    _visit(pg, env, "/ui/history/default/s-emoji/canary", "16-history-with-mpa")
    assert reason in pg.inner_text("table.mpa")
    pg.goto(f"{env.proxy.addr}/ui/ops/mpa")
    pg.fill(f"#c-{rid}", "checked the incident")
    pg.locator("table.mpa tr", has_text=reason).locator("button", has_text="Approve").click()
    assert "Recorded: approve." in pg.inner_text("main")
    pg.screenshot(path=str(ARTIFACTS / "17-ops-mpa-approved.png"), full_page=True)
    shown = httpx.get(f"{env.broker}/v1/requests/{rid}",
                      headers={"authorization": "Bearer " + env.idp.token("bob", groups=["leads"])}).json()
    assert shown["request"]["state"] == "approved"
    assert shown["request"]["reviews"][0]["comment"] == "checked the incident"
    # a review posted without the session's CSRF token changes nothing
    r2 = httpx.post(f"{env.broker}/v1/requests", json={"kind": "k8s-admin", "reason": "Restart the ingress, INC-4712"},
                    headers={"authorization": "Bearer " + env.idp.token("dave", groups=["eng"])})
    assert r2.status_code == 201, r2.text
    rid2 = r2.json()["request"]["id"]
    forged = pg.request.post(f"{env.proxy.addr}/ui/ops/mpa/{rid2}/review", form={"decision": "approve"})
    assert forged.status == 403
    shown = httpx.get(f"{env.broker}/v1/requests/{rid2}",
                      headers={"authorization": "Bearer " + env.idp.token("bob", groups=["leads"])}).json()
    assert shown["request"]["state"] == "pending"
    ctx.close()
