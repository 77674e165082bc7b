"""The proxy never hands the browser a token, and a cookie session needs its CSRF token (issue 18 items 8 and 10).

``auth/token/lookup-self`` through the proxy used to return the child token's ``id``, usable directly against the
server, bypassing the IdP. The UI's cookie is sent by the browser on its own, so ``/v1`` requests authenticated by it
must echo the session's CSRF token, and the sign-in form carries one of its own (no signing a browser in as someone
else from another site).
"""

from __future__ import annotations

import re
from contextlib import closing

import httpx
import pytest

from .conftest import Staff


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _sign_in(staff: Staff, user: str) -> tuple[httpx.Client, str]:
    """A cookie session as a browser gets it; returns the client and the CSRF token the pages carry."""
    http = httpx.Client(base_url=staff.proxy.addr, timeout=30)
    form = http.get("/ui/login")
    nonce = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text)
    assert form.status_code == 200 and nonce, form.text
    r = http.post("/ui/login", data={"token": staff.idp.token(user), "csrf_token": nonce.group(1)})
    assert r.status_code == 303, r.text
    page = http.get("/ui/")
    csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert page.status_code == 200 and csrf, page.text
    return http, csrf.group(1)


def test_no_usable_token_comes_back_through_the_proxy(staff: Staff) -> None:
    with staff.proxy.http(staff.idp.token("alice")) as http:
        me = http.get("/v1/auth/token/lookup-self")
        assert me.status_code == 200, me.text
        again = http.get("/v1/auth%2Ftoken%2Flookup-self")  # an encoded spelling of the same path
    data = me.json()["data"]
    assert "id" not in data and data["meta"]["staff_user"] == "alice"
    # the child token needs (and has) no default policy: web-user grants the one lookup the proxy makes
    assert data["policies"] == ["web-user"]
    # no string anywhere in the answers authenticates against the server directly
    candidates = set(_strings(me.json())) | (set(_strings(again.json())) if again.status_code == 200 else set())
    assert data["accessor"] in candidates
    with httpx.Client(base_url=staff.server.addr, timeout=30) as direct:
        for value in candidates:
            if value:
                r = direct.get("/v1/auth/token/lookup-self", headers={"X-Vault-Token": value})
                assert r.status_code in (400, 403), (value, r.status_code)
    # a cookie session gets the same answer
    cookie, csrf = _sign_in(staff, "alice")
    with closing(cookie):
        r = cookie.get("/v1/auth/token/lookup-self", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and "id" not in r.json()["data"], r.text


def test_cookie_sessions_need_the_csrf_token(staff: Staff) -> None:
    path = "/v1/secret/data/k8s/default/s-csrf/canary/v1"
    cookie, csrf = _sign_in(staff, "alice")
    with closing(cookie):
        for headers in ({}, {"X-CSRF-Token": "0" * 64}, {"X-CSRF-Token": csrf[:-1]}):
            r = cookie.post(path, json={"data": {"data": "forged"}, "options": {"cas": 0}}, headers=headers)
            assert r.status_code == 403 and "CSRF" in r.json()["errors"][0], r.text
            assert cookie.get("/v1/sys/mounts", headers=headers).status_code == 403
        with staff.server.http() as root:  # nothing was written by the refused requests
            assert root.get("/v1/secret/metadata/k8s/default/s-csrf/canary/v1").status_code == 404
        ok = cookie.post(path, json={"data": {"data": "real"}, "options": {"cas": 0}}, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200, ok.text
        # the UI's own forms carry the token; a POST without it is refused
        reveal = "/ui/secrets/default/s-csrf/canary/v1"
        assert cookie.post(reveal, data={"reveal": "1"}).status_code == 403
        allowed = cookie.post(reveal, data={"reveal": "1", "csrf_token": csrf})
        assert allowed.status_code == 403 and "do not allow reading" in allowed.text  # refused by policy, not CSRF
    # another person's session has another token
    bob, bob_csrf = _sign_in(staff, "bob")
    with closing(bob):
        assert bob_csrf != csrf
        assert bob.get("/v1/sys/mounts", headers={"X-CSRF-Token": csrf}).status_code == 403
        assert bob.get("/v1/sys/mounts", headers={"X-CSRF-Token": bob_csrf}).status_code == 200
    # a bearer token is never sent by the browser on its own: no CSRF token needed
    with staff.proxy.http(staff.idp.token("alice")) as bearer:
        assert bearer.get("/v1/sys/mounts").status_code == 200


def test_sign_in_form_needs_its_csrf_token(staff: Staff) -> None:
    token = staff.idp.token("mallory")
    with httpx.Client(base_url=staff.proxy.addr, timeout=30) as http:
        # a form posted from another site: no nonce cookie, no field
        r = http.post("/ui/login", data={"token": token})
        assert r.status_code == 403 and "did not come from this site" in r.text
        assert "strongroom_staff" not in r.headers.get("set-cookie", "")
        # the field without the matching cookie (an attacker's own nonce)
        http.cookies.clear()
        r = http.post("/ui/login", data={"token": token, "csrf_token": "ab" * 16})
        assert r.status_code == 403 and "strongroom_staff" not in r.headers.get("set-cookie", "")
        form = http.get("/ui/login")
        nonce = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text).group(1)
        assert "HttpOnly" in form.headers["set-cookie"] and "SameSite=Strict" in form.headers["set-cookie"]
        wrong = http.post("/ui/login", data={"token": token, "csrf_token": nonce[::-1]})
        assert wrong.status_code == 403
        fresh = re.search(r'name="csrf_token" value="([0-9a-f]+)"', wrong.text).group(1)
        ok = http.post("/ui/login", data={"token": token, "csrf_token": fresh})
        assert ok.status_code == 303 and "strongroom_staff=" in ok.headers.get("set-cookie", "")


def test_replicas_sharing_a_csrf_key_accept_each_others_tokens(tmp_path) -> None:  # noqa: ANN001
    from strongroom.proxy.app import ProxyApp
    from strongroom.proxy.config import ConfigError, load

    def config(extra: str) -> str:
        path = tmp_path / f"p{len(list(tmp_path.iterdir()))}.toml"
        path.write_text(f'upstream = "http://127.0.0.1:1"\ntoken_file = "x"\n{extra}\n[idp]\nissuer = "i"\n'
                        'audience = "a"\njwks_file = "j"\n')  # fmt: skip
        return str(path)

    key = tmp_path / "csrf.key"
    key.write_bytes(b"k" * 40)
    shared = load(config(f'csrf_key_file = "{key}"'))
    one, two, alone = ProxyApp(shared), ProxyApp(shared), ProxyApp(load(config("")))
    assert one.csrf_token("cookie") == two.csrf_token("cookie") != one.csrf_token("other cookie")
    assert alone.csrf_token("cookie") != one.csrf_token("cookie")  # without a key file each process has its own
    key.write_bytes(b"short")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        ProxyApp(shared)
