"""The ``totp`` secrets engine through hvac and httpx: generated and imported keys, codes generated and validated,
each code accepted once, Vault's errors for bad input (which change nothing)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import hvac
import pytest

from tests.conftest import StrongroomServer
from tests.mfa.totp_codes import code_from_url


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    s = StrongroomServer(tmp_path_factory.mktemp("totp")).start()
    s.client().sys.enable_secrets_engine("totp")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def root(srv: StrongroomServer) -> hvac.Client:
    return srv.client()


def test_generated_key_gives_codes_an_authenticator_agrees_with(root: hvac.Client, srv: StrongroomServer) -> None:
    made = root.write_data(
        "totp/keys/gen", data={"generate": True, "issuer": "Strongroom", "account_name": "alice@example.com"}
    )["data"]
    assert made["url"].startswith("otpauth://totp/Strongroom:alice@example.com?")
    assert base64.b64decode(made["barcode"]).startswith(b"\x89PNG")
    info = root.read("totp/keys/gen")["data"]
    assert info == {
        "issuer": "Strongroom",
        "account_name": "alice@example.com",
        "period": 30,
        "algorithm": "SHA1",
        "digits": 6,
    }
    assert "key" not in info
    code = root.read("totp/code/gen")["data"]["code"]
    now = time.time()
    assert code in {code_from_url(made["url"], now + d) for d in (-30, 0, 30)}
    assert root.list("totp/keys")["data"]["keys"] == ["gen"]

    quiet = {"generate": True, "exported": False, "issuer": "S", "account_name": "a"}
    assert srv.http().post("/v1/totp/keys/quiet", json=quiet).status_code == 204  # nothing shown, nothing to leak


def test_imported_key_validates_once(root: hvac.Client, srv: StrongroomServer) -> None:
    secret = base64.b32encode(b"0123456789abcdefghij").decode()
    url = f"otpauth://totp/Bank:bob?secret={secret}&issuer=Bank&algorithm=SHA256&digits=8&period=60"
    assert root.write_data("totp/keys/imported", data={"url": url}).status_code == 204
    assert root.read("totp/keys/imported")["data"] == {
        "issuer": "Bank",
        "account_name": "bob",
        "period": 60,
        "algorithm": "SHA256",
        "digits": 8,
    }
    code = code_from_url(url)
    assert root.write_data("totp/code/imported", data={"code": code})["data"] == {"valid": True}
    http = srv.http()
    replay = http.post("/v1/totp/code/imported", json={"code": code})
    assert replay.status_code == 400
    assert replay.json()["errors"] == ["code already used; wait until the next time period"]
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    assert root.write_data("totp/code/imported", data={"code": wrong})["data"] == {"valid": False}

    root.write_data("totp/keys/bykey", data={"key": secret, "digits": 6})
    assert root.write_data("totp/code/bykey", data={"code": code_from_url(f"otpauth://totp/x?secret={secret}")})[
        "data"
    ] == {"valid": True}


def test_bad_input_is_refused_and_changes_nothing(root: hvac.Client, srv: StrongroomServer) -> None:
    http = srv.http()
    for body, message in (
        ({"generate": True, "key": "ABCD"}, "a key should not be passed if generate is true"),
        ({"generate": True, "issuer": "S"}, "the account_name value is required for generated keys"),
        ({"generate": True, "account_name": "a"}, "the issuer value is required for generated keys"),
        ({}, "the key value is required"),
        ({"key": "not base32!"}, "invalid key value"),
        ({"key": "ABCDEFGH", "digits": 7}, "the digits value can only be 6 or 8"),
        ({"key": "ABCDEFGH", "algorithm": "MD5"}, "the algorithm value is not valid"),
        ({"key": "ABCDEFGH", "skew": 2}, "the skew value must be 0 or 1"),
        ({"url": "https://example.com/"}, "an error occurred while parsing url string"),
        ({"key": "ABCDEFGH", "period": "soon"}, "period"),
    ):
        resp = http.post("/v1/totp/keys/bad", json=body)
        assert resp.status_code == 400, (body, resp.text)
        assert message in " ".join(resp.json()["errors"]), (body, resp.text)
    assert http.get("/v1/totp/keys/bad").status_code == 404
    unknown = http.get("/v1/totp/code/missing")
    assert unknown.status_code == 400 and unknown.json()["errors"] == ["unknown key: missing"]
    assert http.post("/v1/totp/code/gen", json={}).json()["errors"] == ["the code value is required"]
    root.delete("totp/keys/gen")
    assert http.get("/v1/totp/keys/gen").status_code == 404
