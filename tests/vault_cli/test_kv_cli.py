"""``vault kv …`` on version 1 (``kv`` with version 1, ``generic``) and version 2 mounts, with and without ``-mount``,
through the exact requests the CLI sends (see ``kvcli.py``)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import StrongroomServer
from tests.vault_cli.kvcli import KV, CLIError


@pytest.fixture(scope="module")
def mounts(srv: StrongroomServer) -> StrongroomServer:
    with srv.http() as http:
        # what `vault secrets enable -version=1 -path=kv1 kv`, `... -version=2 -path=kv2 kv` and `... generic` send
        for path, body in (
            ("kv1", {"type": "kv", "options": {"version": "1"}}),
            ("kv2", {"type": "kv", "options": {"version": "2"}}),
            ("gen", {"type": "generic", "options": None}),
        ):
            body |= {"description": "", "local": False, "seal_wrap": False, "external_entropy_access": False,
                     "config": {"default_lease_ttl": "0s", "max_lease_ttl": "0s", "force_no_cache": False}}
            assert http.post(f"/v1/sys/mounts/{path}", json=body).status_code == 204
    return srv


def _kv(server: StrongroomServer, token: str | None = None) -> KV:
    return KV(server.http(token))


def _call(mount: str, use_flag: bool, key: str) -> tuple[str, str | None]:
    """The argument and ``-mount`` flag for ``vault kv <cmd> [-mount=<mount>] <arg>``."""
    return (key, mount) if use_flag else (f"{mount}/{key}", None)


@pytest.mark.parametrize("use_flag", [False, True], ids=["path", "mount-flag"])
@pytest.mark.parametrize("mount", ["secret", "kv2"])
def test_kv_v2_every_subcommand(mounts: StrongroomServer, mount: str, use_flag: bool) -> None:
    kv = _kv(mounts)
    key = f"k8s/default/s-emoji/canary-{int(use_flag)}"
    arg, flag = _call(mount, use_flag, key)

    assert kv.preflight(flag or arg) == (f"{mount}/", 2)
    written = kv.put(arg, {"data": "tweet"}, mount=flag, cas=0)
    assert written is not None and written["data"]["version"] == 1
    assert ("PUT", f"{mount}/data/{key}") in kv.sent
    with pytest.raises(CLIError) as cas_fail:  # -cas=0 on an existing key
        kv.put(arg, {"data": "other"}, mount=flag, cas=0)
    assert cas_fail.value.status == 400
    kv.put(arg, {"data": "tweet2"}, mount=flag)

    got = kv.get(arg, mount=flag)
    assert got is not None and got["data"]["data"] == {"data": "tweet2"} and got["data"]["metadata"]["version"] == 2
    first = kv.get(arg, mount=flag, version=1)
    assert first is not None and first["data"]["data"] == {"data": "tweet"}

    parent_arg, parent_flag = _call(mount, use_flag, "k8s/default/s-emoji")
    assert f"canary-{int(use_flag)}" in kv.list(parent_arg, mount=parent_flag)
    assert ("GET", f"{mount}/metadata/k8s/default/s-emoji") in kv.sent

    # patch: HTTP PATCH (merge patch), then -method=rw (read, then write with cas)
    patched = kv.patch(arg, {"user": "svc"}, mount=flag)
    assert patched is not None and patched["data"]["version"] == 3
    assert ("PATCH", f"{mount}/data/{key}") in kv.sent
    kv.patch(arg, {"data": None, "extra": "x"}, mount=flag, method="rw")
    got = kv.get(arg, mount=flag)
    assert got is not None and got["data"]["data"] == {"data": None, "user": "svc", "extra": "x"}
    assert got["data"]["metadata"]["version"] == 4

    # delete (latest), undelete, delete -versions, destroy -versions
    kv.delete(arg, mount=flag)
    deleted = kv.get(arg, mount=flag)  # a 404 with the version's metadata, which the CLI still shows
    assert deleted is not None and deleted["data"]["data"] is None and deleted["data"]["metadata"]["deletion_time"]
    kv.undelete(arg, ["4"], mount=flag)
    got = kv.get(arg, mount=flag)
    assert got is not None and got["data"]["metadata"]["version"] == 4 and got["data"]["data"]["extra"] == "x"
    kv.delete(arg, mount=flag, versions=["1"])
    kv.destroy(arg, ["2"], mount=flag)
    meta = kv.metadata_get(arg, mount=flag)
    assert meta is not None
    versions = meta["data"]["versions"]
    assert versions["1"]["deletion_time"] and versions["2"]["destroyed"] is True and versions["3"]["destroyed"] is False

    # rollback to version 3: a new version 5 with version 3's data; to a destroyed or deleted version it refuses
    rolled = kv.rollback(arg, 3, mount=flag)
    assert rolled is not None and rolled["data"]["version"] == 5
    got = kv.get(arg, mount=flag)
    assert got is not None and got["data"]["data"] == {"data": "tweet2", "user": "svc"}
    with pytest.raises(CLIError, match="destroyed"):
        kv.rollback(arg, 2, mount=flag)
    with pytest.raises(CLIError, match="deleted"):
        kv.rollback(arg, 1, mount=flag)

    # metadata put (Go duration strings, custom metadata), get, delete
    kv.metadata_put(arg, mount=flag, max_versions=7, cas_required=True, delete_version_after="1h0m0s",
                    custom_metadata={"owner": "emoji"})
    meta = kv.metadata_get(arg, mount=flag)
    assert meta is not None
    assert meta["data"]["max_versions"] == 7 and meta["data"]["cas_required"] is True
    assert meta["data"]["delete_version_after"] == "1h0m0s" and meta["data"]["custom_metadata"] == {"owner": "emoji"}
    with pytest.raises(CLIError) as no_cas:  # cas_required now: a put without -cas is refused
        kv.put(arg, {"data": "x"}, mount=flag)
    assert no_cas.value.status == 400
    kv.metadata_delete(arg, mount=flag)
    assert kv.get(arg, mount=flag) is None
    assert kv.metadata_get(arg, mount=flag) is None


def test_kv_patch_falls_back_to_read_then_write_without_the_patch_capability(mounts: StrongroomServer) -> None:
    root = _kv(mounts)
    root.put("secret/fallback/app", {"a": "1"})
    client = mounts.client()
    client.sys.create_or_update_policy(
        "kv-no-patch", 'path "secret/data/fallback/*" { capabilities = ["create", "read", "update"] }'
    )
    token = client.auth.token.create(policies=["kv-no-patch"])["auth"]["client_token"]
    kv = _kv(mounts, token)
    patched = kv.patch("secret/fallback/app", {"b": "2"})  # PATCH → 403 → GET + PUT with cas
    assert patched is not None and patched["data"]["version"] == 2
    assert kv.warnings and [m for m, _ in kv.sent[-3:]] == ["PATCH", "GET", "PUT"]
    got = root.get("secret/fallback/app")
    assert got is not None and got["data"]["data"] == {"a": "1", "b": "2"}
    # -method=patch does not fall back: the 403 is the answer
    with pytest.raises(CLIError) as denied:
        kv.patch("secret/fallback/app", {"c": "3"}, method="patch")
    assert denied.value.status == 403


@pytest.mark.parametrize("use_flag", [False, True], ids=["path", "mount-flag"])
@pytest.mark.parametrize("mount", ["kv1", "gen"])
def test_kv_v1_subcommands(mounts: StrongroomServer, mount: str, use_flag: bool) -> None:
    kv = _kv(mounts)
    arg, flag = _call(mount, use_flag, "team/db")
    assert kv.preflight(flag or arg) == (f"{mount}/", 1)
    assert kv.put(arg, {"password": "p1"}, mount=flag) is None  # v1 writes answer 204
    assert ("PUT", f"{mount}/team/db") in kv.sent
    got = kv.get(arg, mount=flag)
    assert got is not None and got["data"] == {"password": "p1"}
    kv.put(arg, {"password": "p2"}, mount=flag)
    got = kv.get(arg, mount=flag)
    assert got is not None and got["data"] == {"password": "p2"}
    parent, parent_flag = _call(mount, use_flag, "team")
    assert kv.list(parent, mount=parent_flag) == ["db"]
    kv.delete(arg, mount=flag)
    assert kv.get(arg, mount=flag) is None
    # version-2-only subcommands stop in the CLI, because the preflight says version 1
    with pytest.raises(CLIError, match="version 2"):
        kv.patch(arg, {"x": "y"}, mount=flag)
    with pytest.raises(CLIError, match="version 2"):
        kv.rollback(arg, 1, mount=flag)


def test_generic_is_reported_as_vault_reports_it(mounts: StrongroomServer) -> None:
    with mounts.http() as http:
        listed = http.get("/v1/sys/mounts").json()["data"]["gen/"]
        assert listed["type"] == "generic" and listed["options"] is None
        ui = http.get("/v1/sys/internal/ui/mounts/gen").json()["data"]
        assert ui["type"] == "generic" and ui["path"] == "gen/"
        # kv-v1 is an alias too, stored as kv with version 1
        assert http.post("/v1/sys/mounts/kvone", json={"type": "kv-v1"}).status_code == 204
        kvone = http.get("/v1/sys/mounts/kvone").json()["data"]
        assert kvone["type"] == "kv" and kvone["options"] == {"version": "1"}


def test_preflight_answers_vaults_shape_and_refuses_what_the_token_cannot_see(mounts: StrongroomServer) -> None:
    client = mounts.client()
    client.sys.create_or_update_policy(
        "emoji-reader", 'path "secret/data/k8s/default/s-emoji/*" { capabilities = ["read"] }'
    )
    reader = client.auth.token.create(policies=["emoji-reader"], no_default_policy=True)["auth"]["client_token"]
    nobody = client.auth.token.create(policies=["default"])["auth"]["client_token"]

    with httpx.Client(base_url=mounts.addr, headers={"X-Vault-Token": reader}) as http:
        resp = http.get("/v1/sys/internal/ui/mounts/secret/k8s/default/s-emoji/canary")
        assert resp.status_code == 200
        data = resp.json()["data"]
        for field in ("type", "options", "path", "description", "accessor", "config", "local", "seal_wrap",
                      "external_entropy_access", "plugin_version", "uuid"):
            assert field in data
        assert data["type"] == "kv" and data["options"] == {"version": "2"} and data["path"] == "secret/"
        # the whole list: only the mounts something is granted under (this token has no default policy)
        listing = http.get("/v1/sys/internal/ui/mounts").json()["data"]
        assert set(listing["secret"]) == {"secret/"} and listing["auth"] == {}
        # a mount it may not see, and one that does not exist, answer the same 403
        hidden = http.get("/v1/sys/internal/ui/mounts/kv1/x")
        missing = http.get("/v1/sys/internal/ui/mounts/no-such-mount/x")
        assert hidden.status_code == missing.status_code == 403
        assert "preflight capability check returned 403" in hidden.json()["errors"][0]

    with httpx.Client(base_url=mounts.addr, headers={"X-Vault-Token": nobody}) as http:
        listing = http.get("/v1/sys/internal/ui/mounts").json()["data"]
        assert "secret/" not in listing["secret"] and "cubbyhole/" in listing["secret"]
        assert "token/" in listing["auth"]
        assert http.get("/v1/sys/internal/ui/mounts/secret/x").status_code == 403

    # no token: refused
    assert httpx.get(f"{mounts.addr}/v1/sys/internal/ui/mounts/secret/x").status_code == 403
