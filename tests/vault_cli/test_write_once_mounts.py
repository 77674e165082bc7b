"""Issue 18 item 6: a write-once mount that holds secrets can be neither disabled, nor moved, nor re-created, by anyone
(root included); an empty one may go, and only with ``sudo``."""

from __future__ import annotations

import pytest

from tests.conftest import StrongroomServer


def _enable(srv: StrongroomServer, path: str, version: str) -> None:
    with srv.http() as http:
        body = {"type": "kv", "options": {"version": version, "write_once": "true"}}
        assert http.post(f"/v1/sys/mounts/{path}", json=body).status_code == 204


def _write(srv: StrongroomServer, mount: str, version: str, value: str) -> int:
    with srv.http() as http:
        if version == "2":
            return http.post(f"/v1/{mount}/data/app/key", json={"data": {"v": value}}).status_code
        return http.post(f"/v1/{mount}/app/key", json={"v": value}).status_code


def _read(srv: StrongroomServer, mount: str, version: str) -> str:
    with srv.http() as http:
        if version == "2":
            return http.get(f"/v1/{mount}/data/app/key").json()["data"]["data"]["v"]
        return http.get(f"/v1/{mount}/app/key").json()["data"]["v"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_the_unmount_and_remount_bypass_is_closed(srv: StrongroomServer, version: str) -> None:
    mount = f"wo{version}"
    _enable(srv, mount, version)
    assert _write(srv, mount, version, "first") in (200, 204)
    with srv.http() as http:  # root
        disabled = http.delete(f"/v1/sys/mounts/{mount}")
        assert disabled.status_code == 400 and "write-once" in disabled.json()["errors"][0]
        # re-creating over it is refused (the path is in use), and the key keeps its one value
        again = http.post(f"/v1/sys/mounts/{mount}", json={"type": "kv", "options": {"version": version}})
        assert again.status_code == 400
        moved = http.post("/v1/sys/remount", json={"from": mount, "to": f"{mount}-moved"})
        assert moved.status_code == 400 and "write-once" in moved.json()["errors"][0]
        assert f"{mount}/" in http.get("/v1/sys/mounts").json()["data"]
        assert f"{mount}-moved/" not in http.get("/v1/sys/mounts").json()["data"]
    assert _write(srv, mount, version, "second") == 400
    assert _read(srv, mount, version) == "first"


def test_a_mount_tuned_to_write_once_after_writes_is_protected_too(srv: StrongroomServer) -> None:
    with srv.http() as http:
        assert http.post("/v1/sys/mounts/later-wo", json={"type": "kv", "options": {"version": "2"}}).status_code == 204
        assert http.post("/v1/later-wo/data/a", json={"data": {"v": "1"}}).status_code == 200
        tune = {"options": {"version": "2", "write_once": "true"}}
        assert http.post("/v1/sys/mounts/later-wo/tune", json=tune).status_code == 204
        assert http.delete("/v1/sys/mounts/later-wo").status_code == 400
        assert http.get("/v1/later-wo/data/a").json()["data"]["data"] == {"v": "1"}


def test_an_empty_write_once_mount_goes_only_with_sudo(srv: StrongroomServer) -> None:
    _enable(srv, "wo-empty", "2")
    client = srv.client()
    client.sys.create_or_update_policy(
        "mount-admin", 'path "sys/mounts/*" { capabilities = ["create", "read", "update", "delete"] }'
    )
    client.sys.create_or_update_policy(
        "mount-root", 'path "sys/mounts/*" { capabilities = ["create", "read", "update", "delete", "sudo"] }'
    )
    admin = client.auth.token.create(policies=["mount-admin"])["auth"]["client_token"]
    sudoer = client.auth.token.create(policies=["mount-root"])["auth"]["client_token"]
    with srv.http(admin) as http:
        assert http.delete("/v1/sys/mounts/wo-empty").status_code == 403
        # an ordinary mount needs no sudo, as in Vault
        assert http.post("/v1/sys/mounts/plain", json={"type": "kv"}).status_code == 204
        assert http.delete("/v1/sys/mounts/plain").status_code == 204
    with srv.http() as http:
        assert "wo-empty/" in http.get("/v1/sys/mounts").json()["data"]
    with srv.http(sudoer) as http:
        assert http.delete("/v1/sys/mounts/wo-empty").status_code == 204
    with srv.http() as http:
        assert "wo-empty/" not in http.get("/v1/sys/mounts").json()["data"]
        # root may move an empty write-once mount (sys/remount is root-protected anyway)
        _enable(srv, "wo-empty2", "1")
        resp = http.post("/v1/sys/remount", json={"from": "wo-empty2", "to": "wo-empty3"})
        assert resp.status_code == 200
        assert "wo-empty3/" in http.get("/v1/sys/mounts").json()["data"]
