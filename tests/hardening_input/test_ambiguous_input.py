"""Ambiguous credentials and out-of-range integers are 400s (issue 18 items 9 and 10).

Two ``X-Vault-Token`` headers, or a token header beside a different ``Authorization: Bearer``, leave it to chance
which token the server uses; integers beyond Go's int64 (Vault's ``int``) used to end in a 500.
"""

from __future__ import annotations

import httpx
import pytest

from strongroom.api import http as api_http

from .conftest import Audited

AMBIGUOUS = {
    "two token headers": [("X-Vault-Token", "{root}"), ("X-Vault-Token", "{other}")],
    "the same token twice": [("X-Vault-Token", "{root}"), ("X-Vault-Token", "{root}")],
    "token and a different bearer": [("X-Vault-Token", "{other}"), ("Authorization", "Bearer {root}")],
    "two bearers": [("Authorization", "Bearer {other}"), ("Authorization", "Bearer {root}")],
}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_ambiguous_token_headers_are_refused(audited: Audited, case: str) -> None:
    server = audited.server
    with server.http() as root:
        other = root.post("/v1/auth/token/create", json={"policies": ["default"]}).json()["auth"]["client_token"]
    headers = [(k, v.format(root=server.root_token, other=other)) for k, v in AMBIGUOUS[case]]
    with httpx.Client(base_url=server.addr, timeout=30) as http:
        r = http.post("/v1/cubbyhole/ambiguous", json={"v": 1}, headers=headers)
        assert r.status_code == 400, (case, r.text)
        assert "X-Vault-Token" in r.json()["errors"][0]
        assert server.root_token not in r.text and other not in r.text
        # a token header and the same bearer token are one credential: fine, as Vault sees it
        same = [("X-Vault-Token", server.root_token), ("Authorization", f"Bearer {server.root_token}")]
        assert http.get("/v1/auth/token/lookup-self", headers=same).status_code == 200
    with server.http() as root:
        assert root.get("/v1/cubbyhole/ambiguous").status_code == 404


def test_asgi_adapter_sees_repeated_headers_too() -> None:
    # the server runs under Granian's RSGI interface (tested above over HTTP); the ASGI adapter shares the rule
    scope = {"headers": [(b"x-vault-token", b"a"), (b"X-Vault-Token", b"b"), (b"accept", b"a"), (b"accept", b"b")]}
    headers = api_http.headers_of(scope)
    assert headers["accept"] == "a, b"
    with pytest.raises(api_http.InvalidRequest):
        api_http.client_token(headers)
    assert api_http.client_token(api_http.headers_of({"headers": [(b"authorization", b"Bearer t")]})) == "t"


@pytest.mark.parametrize(
    "body",
    [
        {"num_uses": 2**63},
        {"num_uses": 2**64 - 1},
        {"num_uses": "92233720368547758080"},
        {"num_uses": "-9223372036854775809"},
        {"ttl": 2**63},
        {"ttl": "9999999999999h"},
        {"explicit_max_ttl": 10**30},
    ],
)
def test_integers_beyond_int64_are_400(audited: Audited, body: dict) -> None:
    with audited.server.http() as http:
        r = http.post("/v1/auth/token/create", json={"policies": ["default"], **body})
        assert r.status_code == 400, r.text
        assert "out of range" in r.json()["errors"][0]
        # the largest int64 is still a valid value
        ok = http.post("/v1/auth/token/create", json={"policies": ["default"], "num_uses": 2**63 - 1})
        assert ok.status_code == 200, ok.text
        token = ok.json()["auth"]["client_token"]
    with httpx.Client(base_url=audited.server.addr, headers={"X-Vault-Token": token}, timeout=30) as http:
        assert http.get("/v1/auth/token/lookup-self").json()["data"]["num_uses"] == 2**63 - 2
    assert "Traceback" not in audited.server_log()
