"""Response wrapping over HTTP against one real dev server: hvac's wrap/unwrap/token create and Vault's raw requests.

A wrapped answer must reach exactly one unwrapper, once, within its TTL; policies can demand wrapping; the audit
trail records wrap and unwrap without the wrapped secret in clear.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import hvac
import pytest
from hvac import exceptions

from tests.conftest import StrongroomServer, wait_for

INVALID = "wrapping token is not valid or does not exist"


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wrap-audit") / "audit.log"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, audit_log: Path) -> Iterator[StrongroomServer]:
    s = StrongroomServer(tmp_path_factory.mktemp("wrapping")).start()
    root = s.client()
    root.sys.enable_audit_device("file", options={"file_path": str(audit_log), "fsync": "always"})
    root.sys.enable_auth_method("userpass")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def root(srv: StrongroomServer) -> hvac.Client:
    return srv.client()


def _wrapped(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["data"] is None and body["auth"] is None and body["lease_id"] == ""
    return body["wrap_info"]


def _errors(resp: httpx.Response) -> list[str]:
    return resp.json().get("errors", [])


def test_wrapped_read_unwraps_once(srv: StrongroomServer, root: hvac.Client) -> None:
    root.secrets.kv.v2.create_or_update_secret("wrap/once", secret={"password": "hunter2"})
    with srv.http() as h:
        info = _wrapped(h.get("/v1/secret/data/wrap/once", headers={"X-Vault-Wrap-TTL": "5m"}))
    assert info["ttl"] == 300 and info["creation_path"] == "secret/data/wrap/once"
    assert info["token"].startswith("hvs.") and info["accessor"] and info["wrapped_accessor"] == ""
    created = dt.datetime.fromisoformat(info["creation_time"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 60

    # lookup needs no client token and does not spend the wrapping token
    looked = httpx.post(f"{srv.addr}/v1/sys/wrapping/lookup", json={"token": info["token"]}, timeout=10)
    assert looked.status_code == 200, looked.text
    assert looked.json()["data"] == {
        "creation_ttl": 300, "creation_time": info["creation_time"], "creation_path": "secret/data/wrap/once",
    }

    unwrapped = root.sys.unwrap(info["token"])
    assert unwrapped["data"]["data"] == {"password": "hunter2"}
    assert unwrapped["data"]["metadata"]["version"] == 1

    with srv.http() as h:
        again = h.post("/v1/sys/wrapping/unwrap", json={"token": info["token"]})
        assert again.status_code == 400 and _errors(again) == [INVALID]
        gone = h.post("/v1/sys/wrapping/lookup", json={"token": info["token"]})
        assert gone.status_code == 400 and _errors(gone) == [INVALID]


def test_wrapped_token_create_unwrapped_by_its_own_token(srv: StrongroomServer, root: hvac.Client) -> None:
    info = root.auth.token.create(policies=["default"], ttl="1h", wrap_ttl="60s")["wrap_info"]
    assert info["creation_path"] == "auth/token/create" and info["wrapped_accessor"]

    wrapper = srv.client(info["token"])
    # a wrapping token can do nothing but unwrap: a refused request does not spend it
    with pytest.raises(exceptions.Forbidden):
        wrapper.auth.token.lookup_self()

    unwrapped = wrapper.sys.unwrap()
    minted = unwrapped["auth"]["client_token"]
    assert unwrapped["auth"]["accessor"] == info["wrapped_accessor"]
    assert srv.client(minted).auth.token.lookup_self()["data"]["policies"] == ["default"]

    with srv.http(info["token"]) as h:
        again = h.post("/v1/sys/wrapping/unwrap", json={})
    assert again.status_code == 400 and _errors(again) == [INVALID]
    # not a wrapping token at all: the same answer
    with srv.http(minted) as h:
        wrong = h.post("/v1/sys/wrapping/unwrap", json={})
    assert wrong.status_code == 400 and _errors(wrong) == [INVALID]


def test_wrap_arbitrary_data_and_rewrap(srv: StrongroomServer, root: hvac.Client) -> None:
    info = root.sys.wrap(payload={"api_key": "k-123", "n": 7}, ttl="90s")["wrap_info"]
    assert info["creation_path"] == "sys/wrapping/wrap" and info["ttl"] == 90

    with srv.http() as h:
        moved = h.post("/v1/sys/wrapping/rewrap", json={"token": info["token"]})
        new = _wrapped(moved)
        assert new["token"] != info["token"]
        assert new["ttl"] == 90 and new["creation_path"] == "sys/wrapping/wrap"
        old = h.post("/v1/sys/wrapping/unwrap", json={"token": info["token"]})
        assert old.status_code == 400 and _errors(old) == [INVALID]

        no_header = h.post("/v1/sys/wrapping/wrap", json={"a": "b"})
        assert no_header.status_code == 400
        assert _errors(no_header) == ["endpoint requires response wrapping to be used"]

    assert root.sys.unwrap(new["token"])["data"] == {"api_key": "k-123", "n": 7}


def test_expired_wrapping_token_is_gone(srv: StrongroomServer, root: hvac.Client) -> None:
    info = root.sys.wrap(payload={"short": "lived"}, ttl="1")["wrap_info"]
    assert info["ttl"] == 1

    def expired() -> bool:
        r = httpx.post(f"{srv.addr}/v1/sys/wrapping/lookup", json={"token": info["token"]}, timeout=10)
        return r.status_code == 400 and _errors(r) == [INVALID]

    wait_for(expired, timeout=15, message="the wrapping token to expire")
    with srv.http() as h:
        r = h.post("/v1/sys/wrapping/unwrap", json={"token": info["token"]})
    assert r.status_code == 400 and _errors(r) == [INVALID]


@pytest.mark.parametrize("header", ["soon", "-5s", "0"])
def test_bad_wrap_ttl_is_refused_and_changes_nothing(srv: StrongroomServer, header: str) -> None:
    with srv.http() as h:
        r = h.post(
            "/v1/secret/data/wrap/bad-header", json={"data": {"v": "1"}}, headers={"X-Vault-Wrap-TTL": header}
        )
        assert r.status_code == 400 and r.json()["errors"]
        assert h.get("/v1/secret/data/wrap/bad-header").status_code == 404


def test_policy_min_and_max_wrapping_ttl(srv: StrongroomServer, root: hvac.Client) -> None:
    root.secrets.kv.v2.create_or_update_secret("wrapped-only/db", secret={"password": "pw"})
    root.sys.create_or_update_policy(
        "wrap-required",
        'path "secret/data/wrapped-only/*" {\n capabilities = ["read"]\n'
        ' min_wrapping_ttl = "30s"\n max_wrapping_ttl = "5m"\n}',
    )
    token = root.auth.token.create(policies=["wrap-required"], ttl="10m")["auth"]["client_token"]
    with srv.http(token) as h:
        assert h.get("/v1/secret/data/wrapped-only/db").status_code == 403
        assert h.get("/v1/secret/data/wrapped-only/db", headers={"X-Vault-Wrap-TTL": "10s"}).status_code == 403
        assert h.get("/v1/secret/data/wrapped-only/db", headers={"X-Vault-Wrap-TTL": "10m"}).status_code == 403
        info = _wrapped(h.get("/v1/secret/data/wrapped-only/db", headers={"X-Vault-Wrap-TTL": "60"}))
    assert info["ttl"] == 60
    assert root.sys.unwrap(info["token"])["data"]["data"] == {"password": "pw"}

    with srv.http() as h:
        bad = h.put(
            "/v1/sys/policies/acl/wrap-bad",
            json={"policy": 'path "x/*" {\n capabilities = ["read"]\n min_wrapping_ttl = "5m"\n'
                            ' max_wrapping_ttl = "1m"\n}'},
        )
        assert bad.status_code == 400
        assert "max_wrapping_ttl cannot be less than min_wrapping_ttl" in bad.json()["errors"][0]
        assert h.get("/v1/sys/policies/acl/wrap-bad").status_code == 404


def test_wrapped_login_holds_the_new_token(srv: StrongroomServer, root: hvac.Client) -> None:
    root.auth.userpass.create_or_update_user("wrapped-user", password="correct horse", policies=["default"])
    r = httpx.post(
        f"{srv.addr}/v1/auth/userpass/login/wrapped-user",
        json={"password": "correct horse"},
        headers={"X-Vault-Wrap-TTL": "2m"},
        timeout=10,
    )
    info = _wrapped(r)
    assert info["creation_path"] == "auth/userpass/login/wrapped-user" and info["wrapped_accessor"]

    auth = srv.client(info["token"]).sys.unwrap()["auth"]
    assert auth["accessor"] == info["wrapped_accessor"]
    me = srv.client(auth["client_token"]).auth.token.lookup_self()["data"]
    assert me["accessor"] == info["wrapped_accessor"] and "default" in me["policies"]


def test_audit_records_wrap_and_unwrap_without_the_secret(
    srv: StrongroomServer, root: hvac.Client, audit_log: Path
) -> None:
    secret = "clear-" + secrets.token_hex(12)
    root.secrets.kv.v2.create_or_update_secret("wrap/audited", secret={"value": secret})
    with srv.http() as h:
        info = _wrapped(h.get("/v1/secret/data/wrap/audited", headers={"X-Vault-Wrap-TTL": "60s"}))
    assert root.sys.unwrap(info["token"])["data"]["data"] == {"value": secret}
    with srv.http() as h:  # a second unwrap (say, by whoever intercepted the token) is refused and recorded
        assert h.post("/v1/sys/wrapping/unwrap", json={"token": info["token"]}).status_code == 400

    def recorded() -> str:
        text = audit_log.read_text()
        return text if "sys/wrapping/unwrap" in text and INVALID in text else ""

    text = wait_for(recorded, timeout=10, message="the unwraps in the audit log")
    assert secret not in text
    assert info["token"] not in text and info["accessor"] not in text
    hmac_of = root.adapter.post("/v1/sys/audit-hash/file", json={"input": info["token"]})["hash"]
    assert hmac_of in text  # the wrap (and the unwrap) are attributable to the HMAC'd wrapping token


def test_vault_cli_requests(srv: StrongroomServer, root: hvac.Client) -> None:
    """The requests `vault token create -wrap-ttl`, `vault read -wrap-ttl` and `vault unwrap` send (openbao's
    command/token_create.go, command/read.go, api/logical.go Unwrap), replayed byte for byte."""
    root.secrets.kv.v2.create_or_update_secret("wrap/cli", secret={"user": "svc"})
    with srv.http() as h:
        # vault token create -wrap-ttl=60s -policy=default
        created = h.post(
            "/v1/auth/token/create",
            headers={"X-Vault-Wrap-TTL": "60s"},
            json={"policies": ["default"], "display_name": "", "num_uses": 0, "renewable": True, "type": "service",
                  "entity_alias": ""},
        )
        token_wrap = _wrapped(created)
        # vault read -wrap-ttl=30s secret/data/wrap/cli
        read_wrap = _wrapped(h.get("/v1/secret/data/wrap/cli", headers={"X-Vault-Wrap-TTL": "30s"}))
        assert read_wrap["ttl"] == 30
        # vault unwrap <token>, with VAULT_TOKEN set to another token: the wrapping token goes in the body
        unwrapped = h.put("/v1/sys/wrapping/unwrap", json={"token": read_wrap["token"]})
        assert unwrapped.status_code == 200 and unwrapped.json()["data"]["data"] == {"user": "svc"}
    # vault unwrap, with VAULT_TOKEN set to the wrapping token: the body is JSON null
    with srv.http(token_wrap["token"]) as h:
        own = h.put("/v1/sys/wrapping/unwrap", content=b"null", headers={"Content-Type": "application/json"})
    assert own.status_code == 200, own.text
    minted = own.json()["auth"]
    assert minted["accessor"] == token_wrap["wrapped_accessor"]
    # vault token lookup -accessor <accessor>
    with srv.http() as h:
        by_accessor = h.post("/v1/auth/token/lookup-accessor", json={"accessor": minted["accessor"]})
    assert by_accessor.status_code == 200 and by_accessor.json()["data"]["id"] == ""
    assert by_accessor.json()["data"]["accessor"] == minted["accessor"]
