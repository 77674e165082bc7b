"""KV v2 over HTTP against a real ``strongroom server --dev``, driven by hvac (and httpx where hvac has no call).

The dev server mounts KV version 2 at ``secret/``.
"""

from __future__ import annotations

import hvac
import pytest
from hvac import exceptions

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def _errors(exc: exceptions.VaultError) -> list[str]:
    return list(exc.errors or [])


def test_data_versions_delete_undelete_destroy(server) -> None:  # noqa: ANN001
    kv = server.client().secrets.kv.v2
    first = kv.create_or_update_secret(path="app/db", secret={"password": "p1"})
    assert first["data"]["version"] == 1 and first["data"]["deletion_time"] == ""
    second = kv.create_or_update_secret(path="app/db", secret={"password": "p2"}, cas=1)
    assert second["data"]["version"] == 2

    latest = kv.read_secret(path="app/db", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"password": "p2"} and latest["data"]["metadata"]["version"] == 2
    old = kv.read_secret_version(path="app/db", version=1, raise_on_deleted_version=True)
    assert old["data"]["data"] == {"password": "p1"}
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version(path="app/db", version=9, raise_on_deleted_version=True)
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret(path="app/none", raise_on_deleted_version=True)

    # hvac's patch: read, merge, write back with cas
    patched = kv.patch(path="app/db", secret={"user": "svc"})
    assert patched["data"]["version"] == 3
    assert kv.read_secret(path="app/db", raise_on_deleted_version=True)["data"]["data"] == {
        "password": "p2",
        "user": "svc",
    }

    # soft delete of the latest version: 404, but hvac can still show the metadata
    kv.delete_latest_version_of_secret(path="app/db")
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret(path="app/db", raise_on_deleted_version=True)
    shown = kv.read_secret(path="app/db", raise_on_deleted_version=False)
    assert shown["data"]["data"] is None and shown["data"]["metadata"]["deletion_time"] != ""
    kv.undelete_secret_versions(path="app/db", versions=[3])
    assert kv.read_secret(path="app/db", raise_on_deleted_version=True)["data"]["metadata"]["version"] == 3

    kv.delete_secret_versions(path="app/db", versions=[1])
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version(path="app/db", version=1, raise_on_deleted_version=True)
    kv.destroy_secret_versions(path="app/db", versions=[1, 2])
    meta = kv.read_secret_metadata(path="app/db")["data"]
    assert meta["current_version"] == 3
    assert meta["versions"]["1"]["destroyed"] is True and meta["versions"]["2"]["destroyed"] is True
    assert meta["versions"]["3"]["destroyed"] is False
    with pytest.raises(exceptions.InvalidPath) as destroyed:
        kv.read_secret_version(path="app/db", version=2, raise_on_deleted_version=True)
    assert destroyed.value.json["data"]["metadata"]["destroyed"] is True


def test_check_and_set_and_error_strings(server) -> None:  # noqa: ANN001
    client = server.client()
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path="cas", secret={"v": 1}, cas=0)
    with pytest.raises(exceptions.InvalidRequest) as mismatch:
        kv.create_or_update_secret(path="cas", secret={"v": 2}, cas=0)
    assert _errors(mismatch.value) == ["check-and-set parameter did not match the current version"]

    kv.configure(max_versions=10, cas_required=True)
    with pytest.raises(exceptions.InvalidRequest) as required:
        kv.create_or_update_secret(path="cas", secret={"v": 2})
    assert _errors(required.value) == ["check-and-set parameter required for this call"]
    assert kv.create_or_update_secret(path="cas", secret={"v": 2}, cas=1)["data"]["version"] == 2
    kv.configure(max_versions=10, cas_required=False)

    with server.http() as http:
        res = http.post("/v1/secret/data/cas", json={"options": {}})
        assert res.status_code == 400 and res.json() == {"errors": ["no data provided"]}
        res = http.post("/v1/secret/data/cas", json={"data": {"v": 3}, "options": {"cas": "x"}})
        assert res.status_code == 400 and res.json() == {"errors": ["error parsing check-and-set parameter"]}
        res = http.post("/v1/secret/data/a//b", json={"data": {"v": 1}})
        assert 400 <= res.status_code < 500
        assert http.get("/v1/secret/metadata/a", params={"list": "true"}).status_code == 404
        res = http.post("/v1/secret/destroy/cas", json={"versions": []})
        assert res.status_code == 400 and res.json() == {"errors": ["no version number provided"]}
        res = http.post("/v1/secret/delete/cas", json={})
        assert res.status_code == 400 and res.json() == {"errors": ["No version number provided"]}
    assert kv.read_secret(path="cas", raise_on_deleted_version=True)["data"]["data"] == {"v": 2}


def test_config_metadata_and_listing(server) -> None:  # noqa: ANN001
    kv = server.client().secrets.kv.v2
    kv.configure(max_versions=2, delete_version_after="3h25m19s")
    assert kv.read_configuration()["data"] == {
        "max_versions": 2,
        "cas_required": False,
        "delete_version_after": "3h25m19s",
    }
    kv.configure(max_versions=2, delete_version_after="0s")
    for i in range(4):
        kv.create_or_update_secret(path="team/a/one", secret={"i": i})
    kv.create_or_update_secret(path="team/a/two", secret={"i": 0})
    kv.create_or_update_secret(path="team/b", secret={"i": 0})

    meta = kv.read_secret_metadata(path="team/a/one")["data"]
    assert sorted(meta["versions"]) == ["3", "4"] and meta["oldest_version"] == 3
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version(path="team/a/one", version=1, raise_on_deleted_version=True)

    kv.update_metadata(path="team/a/one", max_versions=5, cas_required=False, custom_metadata={"owner": "payments"})
    meta = kv.read_secret_metadata(path="team/a/one")["data"]
    assert meta["max_versions"] == 5 and meta["custom_metadata"] == {"owner": "payments"}
    assert meta["delete_version_after"] == "0s"
    read = kv.read_secret(path="team/a/one", raise_on_deleted_version=True)
    assert read["data"]["metadata"]["custom_metadata"] == {"owner": "payments"}

    assert kv.list_secrets(path="team")["data"]["keys"] == ["a/", "b"]
    assert kv.list_secrets(path="team/a")["data"]["keys"] == ["one", "two"]
    with pytest.raises(exceptions.InvalidPath):
        kv.list_secrets(path="nothing-here")

    kv.delete_metadata_and_all_versions(path="team/a/one")
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_metadata(path="team/a/one")
    assert kv.list_secrets(path="team/a")["data"]["keys"] == ["two"]

    with pytest.raises(exceptions.InvalidRequest) as too_many:
        kv.update_metadata(path="team/b", custom_metadata={f"k{i}": "v" for i in range(65)})
    assert "payload must contain at most 64 keys, provided 65" in _errors(too_many.value)[0]


def test_patch_subkeys_and_deleted_body_over_http(server) -> None:  # noqa: ANN001
    kv = server.client().secrets.kv.v2
    kv.create_or_update_secret(path="p", secret={"a": "1", "nest": {"x": "y", "z": "w"}})
    with server.http() as http:
        res = http.patch("/v1/secret/data/p", json={"data": {"a": None, "nest": {"z": None}, "b": "2"}})
        assert res.status_code == 415  # PATCH needs the merge-patch content type
        res = http.patch(
            "/v1/secret/data/p",
            content=b'{"data": {"a": null, "nest": {"z": null}, "b": "2"}}',
            headers=MERGE_PATCH,
        )
        assert res.status_code == 200 and res.json()["data"]["version"] == 2
        assert kv.read_secret(path="p", raise_on_deleted_version=True)["data"]["data"] == {"nest": {"x": "y"}, "b": "2"}
        res = http.patch("/v1/secret/data/missing", content=b'{"data": {"a": 1}}', headers=MERGE_PATCH)
        assert res.status_code == 404

        res = http.patch(
            "/v1/secret/metadata/p",
            content=b'{"custom_metadata": {"team": "t1"}, "max_versions": 4}',
            headers=MERGE_PATCH,
        )
        assert res.status_code == 204
        meta = kv.read_secret_metadata(path="p")["data"]
        assert meta["custom_metadata"] == {"team": "t1"} and meta["max_versions"] == 4

        res = http.get("/v1/secret/subkeys/p")
        assert res.status_code == 200 and res.json()["data"]["subkeys"] == {"nest": {"x": None}, "b": None}
        res = http.get("/v1/secret/subkeys/p", params={"depth": 1, "version": 1})
        assert res.json()["data"]["subkeys"] == {"a": None, "nest": None}

        assert http.delete("/v1/secret/data/p").status_code == 204
        res = http.get("/v1/secret/data/p")
        assert res.status_code == 404
        body = res.json()
        assert body["data"]["data"] is None and body["data"]["metadata"]["version"] == 2
        assert body["data"]["metadata"]["deletion_time"] != ""
        res = http.get("/v1/secret/data/p", params={"version": "1"})
        assert res.status_code == 200 and res.json()["data"]["data"]["a"] == "1"


def test_create_only_policy_allows_new_keys_and_refuses_new_versions(server) -> None:  # noqa: ANN001
    root = server.client()
    root.sys.create_or_update_policy(name="create-only", policy='path "secret/data/*" { capabilities = ["create"] }')
    token = root.auth.token.create(policies=["create-only"])["auth"]["client_token"]
    kv = server.client(token=token).secrets.kv.v2

    assert kv.create_or_update_secret(path="k8s/default/s-emoji/db", secret={"data": "v1"})["data"]["version"] == 1
    with pytest.raises(exceptions.Forbidden):
        kv.create_or_update_secret(path="k8s/default/s-emoji/db", secret={"data": "v2"})
    with pytest.raises(exceptions.Forbidden):
        kv.read_secret(path="k8s/default/s-emoji/db", raise_on_deleted_version=True)
    # a key whose versions are all destroyed still exists: writing to it is an update, refused
    root.secrets.kv.v2.destroy_secret_versions(path="k8s/default/s-emoji/db", versions=[1])
    with pytest.raises(exceptions.Forbidden):
        kv.create_or_update_secret(path="k8s/default/s-emoji/db", secret={"data": "v2"})
    got = root.secrets.kv.v2.read_secret_metadata(path="k8s/default/s-emoji/db")["data"]
    assert got["current_version"] == 1


def test_write_once_mount_refuses_every_change_even_for_root(server) -> None:  # noqa: ANN001
    root: hvac.Client = server.client()
    with server.http() as http:
        mounted = http.post(
            "/v1/sys/mounts/frozen", json={"type": "kv", "options": {"version": "2", "write_once": "true"}}
        )
        assert mounted.status_code == 204
    kv = root.secrets.kv.v2
    assert kv.create_or_update_secret(path="db/password", secret={"data": "hunter2"}, mount_point="frozen")

    def refused(call, *args, **kwargs) -> str:  # noqa: ANN001, ANN002, ANN003
        with pytest.raises(exceptions.InvalidRequest) as exc:
            call(*args, mount_point="frozen", **kwargs)
        return _errors(exc.value)[0]

    msg = refused(kv.create_or_update_secret, path="db/password", secret={"data": "other"})
    assert msg == 'this mount is write-once: version 1 of "db/password" already exists; write a new key instead'
    refused(kv.patch, path="db/password", secret={"more": "x"})
    assert "write-once" in refused(kv.delete_latest_version_of_secret, path="db/password")
    for call in (kv.delete_secret_versions, kv.undelete_secret_versions, kv.destroy_secret_versions):
        assert "cannot be deleted, undeleted or destroyed" in refused(call, path="db/password", versions=[1])
    assert "cannot be deleted" in refused(kv.delete_metadata_and_all_versions, path="db/password")
    assert "cannot be changed" in refused(kv.update_metadata, path="db/password", max_versions=1)
    assert "cannot be changed" in refused(kv.update_metadata, path="db/password", delete_version_after="1s")
    assert "cannot be set" in refused(kv.configure, delete_version_after="1h")
    with server.http() as http:
        res = http.patch("/v1/frozen/data/db/password", content=b'{"data": {"x": "y"}}', headers=MERGE_PATCH)
        assert res.status_code == 400 and "write-once" in res.json()["errors"][0]

    # reading, listing, describing and writing new keys stay normal
    kv.update_metadata(path="db/password", custom_metadata={"owner": "payments"}, mount_point="frozen")
    got = kv.read_secret(path="db/password", mount_point="frozen", raise_on_deleted_version=True)["data"]
    assert got["data"] == {"data": "hunter2"} and got["metadata"]["version"] == 1
    assert got["metadata"]["deletion_time"] == "" and got["metadata"]["destroyed"] is False
    kv.create_or_update_secret(path="db/user", secret={"data": "svc"}, mount_point="frozen")
    assert kv.list_secrets(path="db", mount_point="frozen")["data"]["keys"] == ["password", "user"]

    # root cannot tune the guarantee away, and it survives a restart
    with server.http() as http:
        tuned = http.post("/v1/sys/mounts/frozen/tune", json={"options": {"write_once": "false"}})
        assert tuned.status_code == 400 and "write_once" in tuned.json()["errors"][0]
    assert "already exists" in refused(kv.create_or_update_secret, path="db/password", secret={"data": "after-tune"})
    server.restart()
    kv = server.client().secrets.kv.v2
    assert "already exists" in refused(kv.create_or_update_secret, path="db/password", secret={"data": "restarted"})
    got = kv.read_secret(path="db/password", mount_point="frozen", raise_on_deleted_version=True)["data"]
    assert got["data"] == {"data": "hunter2"}
