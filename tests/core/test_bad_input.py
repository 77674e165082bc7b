"""Bad input gets a 4xx in Vault's error shape and changes nothing; never a stack trace."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def http(server):
    with server.http() as h:
        yield h


def _assert_error(resp: httpx.Response, status: int | tuple[int, ...]) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in statuses, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"errors"} and isinstance(body["errors"], list)
    assert "Traceback" not in resp.text and 'File "' not in resp.text


def test_malformed_json_changes_nothing(http):
    _assert_error(http.post("/v1/secret/data/bad", content=b'{"data": {"a": '), 400)
    _assert_error(http.post("/v1/secret/data/bad", content=b'["not", "an", "object"]'), 400)
    assert http.get("/v1/secret/data/bad").status_code == 404


def test_wrong_types_are_400(http):
    _assert_error(http.post("/v1/auth/token/create", json={"ttl": {"x": 1}}), 400)
    _assert_error(http.post("/v1/auth/token/create", json={"num_uses": "many"}), 400)
    _assert_error(http.post("/v1/sys/mounts/newmount", json={"type": "kv", "config": "notamap"}), 400)
    assert "newmount/" not in http.get("/v1/sys/mounts").json()["data"]
    _assert_error(http.put("/v1/sys/init", json={"secret_shares": "five", "secret_threshold": 3}), 400)


def test_oversize_body_is_413(http):
    big = b'{"data": {"blob": "' + b"x" * (33 * 1024 * 1024) + b'"}}'
    _assert_error(http.post("/v1/secret/data/huge", content=big), 413)
    assert http.get("/v1/secret/data/huge").status_code == 404


def test_unknown_mount_and_unknown_path(http):
    _assert_error(http.get("/v1/nosuchmount/thing"), 404)
    _assert_error(http.get("/v1/sys/nosuchendpoint"), 404)
    _assert_error(http.get("/v1/auth/token/nosuch"), 404)


def _raw(server, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request byte for byte: HTTP clients normalise ``..`` away before it could reach the server."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: {server.root_token}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_traversal_and_empty_segments(server, http):
    http.post("/v1/secret/data/real", json={"data": {"v": "1"}})
    for path in (
        "/v1/secret/data/../../sys/mounts",
        "/v1/secret//data/real",
        "/v1/secret/data/./real",
        "/v1/secret/data/a/../real",
        "/v1//sys/mounts",
        "/v1/secret/data/x%2F..%2F..%2Fsys%2Fmounts",
    ):
        status, body = _raw(server, "GET", path)
        assert status in (400, 404), (path, status, body)
        assert b'"errors"' in body and b"Traceback" not in body
    status, _ = _raw(server, "POST", "/v1/secret/data/../../sys/mounts/evil", b'{"type": "kv"}')
    assert status == 400
    assert "evil/" not in http.get("/v1/sys/mounts").json()["data"]


def test_wrong_verbs(http):
    _assert_error(http.request("COPY", "/v1/secret/data/real"), 405)
    _assert_error(http.request("PATCH", "/v1/secret/data/real", json={"data": {"v": "2"}}), 415)
    _assert_error(http.get("/v1/sys/unseal"), 405)
    _assert_error(http.post("/v1/sys/seal-status"), 405)


def test_missing_token_is_403_and_does_not_reveal_paths(server):
    resp = httpx.get(f"{server.addr}/v1/secret/data/anything")
    _assert_error(resp, 403)
    resp = httpx.get(f"{server.addr}/v1/nosuchmount/x")
    _assert_error(resp, 403)


def test_responses_are_not_cached(http):
    resp = http.get("/v1/sys/mounts")
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["content-type"] == "application/json"


def test_openapi_description_lists_declared_paths(server):
    assert httpx.get(f"{server.addr}/v1/sys/internal/specs/openapi").status_code == 403
    spec = httpx.get(
        f"{server.addr}/v1/sys/internal/specs/openapi", headers={"X-Vault-Token": server.root_token}
    ).json()
    assert spec["openapi"].startswith("3.")
    assert "/secret/data/{path}" in spec["paths"]
    assert "post" in spec["paths"]["/auth/token/create"]
    assert spec["paths"]["/sys/seal"]["x-vault-sudo"] is True
