"""The identity/ API over HTTP with hvac: entities, entity aliases, groups, group aliases and lookups."""

from __future__ import annotations

import hvac
import pytest


def _list(server, path: str) -> dict:  # noqa: ANN001
    with server.http() as http:
        r = http.get(f"/v1/identity/{path}", params={"list": "true"})
    return r.json()["data"] if r.status_code == 200 else {"status": r.status_code}


def test_entity_lifecycle(server) -> None:  # noqa: ANN001
    ident = server.client().secrets.identity
    created = ident.create_or_update_entity(name="alice", metadata={"team": "payments"}, policies=["Ops"])["data"]
    eid = created["id"]
    assert created["name"] == "alice"
    entity = ident.read_entity(eid)["data"]
    assert entity["metadata"] == {"team": "payments"} and entity["policies"] == ["ops"]
    assert entity["aliases"] == [] and entity["disabled"] is False and entity["direct_group_ids"] == []
    assert ident.read_entity_by_name("alice")["data"]["id"] == eid
    # same name, no id: updates that entity (204), as Vault does
    assert ident.create_or_update_entity(name="alice", policies=["ops", "dev"]).status_code == 204
    assert ident.read_entity(eid)["data"]["policies"] == ["dev", "ops"]
    ident.update_entity(eid, name="alice2", metadata={"team": "ledger"})
    assert ident.read_entity_by_name("alice2")["data"]["metadata"] == {"team": "ledger"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        ident.read_entity_by_name("alice")
    listed = _list(server, "entity/id")
    assert eid in listed["keys"] and listed["key_info"][eid]["name"] == "alice2"
    assert "alice2" in _list(server, "entity/name")["keys"]
    ident.create_or_update_entity(name="bob")
    with server.http() as http:
        r = http.post("/v1/identity/entity", json={"id": eid, "name": "bob"})
        assert r.status_code == 400 and r.json()["errors"] == ["entity name is already in use"]
        r = http.post("/v1/identity/entity/id/does-not-exist", json={"policies": ["root"]})
        assert r.status_code == 400
        r = http.post("/v1/identity/entity", json={"name": "carol", "metadata": "not-a-map"})
        assert r.status_code == 400
        # root can never be granted through identity, in any spelling (CVE-2025-5999)
        for spelling in (["root"], [" Root"], ["ROOT ", "ops"]):
            r = http.post("/v1/identity/entity", json={"name": "mallory", "policies": spelling})
            assert r.status_code == 400, spelling
            r = http.post("/v1/identity/group", json={"name": "admins", "policies": spelling})
            assert r.status_code == 400, spelling
        assert http.get("/v1/identity/entity/name/mallory").status_code == 404
    ident.delete_entity(eid)
    with pytest.raises(hvac.exceptions.InvalidPath):
        ident.read_entity(eid)


def test_entity_aliases(server) -> None:  # noqa: ANN001
    root = server.client()
    ident = root.secrets.identity
    accessor = root.sys.list_auth_methods()["data"]["kubernetes/"]["accessor"]
    eid = ident.create_or_update_entity(name="svc")["data"]["id"]
    alias = ident.create_or_update_entity_alias(name="uid-1", canonical_id=eid, mount_accessor=accessor)["data"]
    assert alias["canonical_id"] == eid
    read = ident.read_entity_alias(alias["id"])["data"]
    assert read["name"] == "uid-1" and read["mount_accessor"] == accessor and read["mount_type"] == "kubernetes"
    assert read["mount_path"] == "auth/kubernetes/"
    assert [a["id"] for a in ident.read_entity(eid)["data"]["aliases"]] == [alias["id"]]
    assert alias["id"] in _list(server, "entity-alias/id")["keys"]
    other = ident.create_or_update_entity(name="other")["data"]["id"]
    with server.http() as http:
        # the same name on the same mount belongs to one entity only
        r = http.post("/v1/identity/entity-alias", json={"name": "uid-1", "canonical_id": other,
                                                         "mount_accessor": accessor})
        assert r.status_code == 400 and "already in use" in r.json()["errors"][0]
        # and one entity has at most one alias per mount, so templates are never ambiguous
        r = http.post("/v1/identity/entity-alias", json={"name": "uid-2", "canonical_id": eid,
                                                         "mount_accessor": accessor})
        assert r.status_code == 400
        r = http.post("/v1/identity/entity-alias", json={"name": "x", "canonical_id": eid,
                                                         "mount_accessor": "auth_nope_123"})
        assert r.status_code == 400 and "invalid mount accessor" in r.json()["errors"][0]
    found = ident.lookup_entity(alias_name="uid-1", alias_mount_accessor=accessor)["data"]
    assert found["id"] == eid
    assert ident.lookup_entity(alias_id=alias["id"])["data"]["id"] == eid
    ident.delete_entity_alias(alias["id"])
    assert ident.read_entity(eid)["data"]["aliases"] == []
    assert ident.lookup_entity(alias_name="uid-1", alias_mount_accessor=accessor).status_code == 204


def test_groups_members_and_hierarchy(server) -> None:  # noqa: ANN001
    root = server.client()
    ident = root.secrets.identity
    alice = ident.create_or_update_entity(name="alice")["data"]["id"]
    team = ident.create_or_update_group(name="team", policies=["team"], member_entity_ids=[alice],
                                        metadata={"cost": "42"})["data"]
    org = ident.create_or_update_group(name="org", policies=["org"], member_group_ids=[team["id"]])["data"]
    entity = ident.read_entity(alice)["data"]
    assert entity["direct_group_ids"] == [team["id"]]
    assert entity["inherited_group_ids"] == [org["id"]]
    assert sorted(entity["group_ids"]) == sorted([team["id"], org["id"]])
    group = ident.read_group(team["id"])["data"]
    assert group["type"] == "internal" and group["member_entity_ids"] == [alice]
    assert group["parent_group_ids"] == [org["id"]] and group["metadata"] == {"cost": "42"}
    assert ident.read_group_by_name("org")["data"]["member_group_ids"] == [team["id"]]
    assert ident.lookup_group(name="team")["data"]["id"] == team["id"]
    assert sorted(_list(server, "group/name")["keys"]) == ["org", "team"]
    with server.http() as http:
        r = http.post(f"/v1/identity/group/id/{team['id']}", json={"member_group_ids": [org["id"]]})
        assert r.status_code == 400 and "cycle" in r.json()["errors"][0]
        r = http.post("/v1/identity/group", json={"name": "bad", "member_entity_ids": ["no-such-entity"]})
        assert r.status_code == 400
        r = http.post("/v1/identity/group", json={"name": "ext", "type": "external",
                                                  "member_entity_ids": [alice]})
        assert r.status_code == 400
        # aliases only on external groups
        accessor = root.sys.list_auth_methods()["data"]["kubernetes/"]["accessor"]
        r = http.post("/v1/identity/group-alias", json={"name": "team", "mount_accessor": accessor,
                                                        "canonical_id": team["id"]})
        assert r.status_code == 400 and "internal group" in r.json()["errors"][0]
    ident.delete_group(team["id"])
    assert ident.read_entity(alice)["data"]["group_ids"] == []
    assert ident.read_group(org["id"])["data"]["member_group_ids"] is None


def test_group_aliases(server) -> None:  # noqa: ANN001
    root = server.client()
    ident = root.secrets.identity
    root.sys.enable_auth_method("jwt", path="jwt")
    accessor = root.sys.list_auth_methods()["data"]["jwt/"]["accessor"]
    eng = ident.create_or_update_group(name="eng", group_type="external", policies=["eng"])["data"]
    alias = ident.create_or_update_group_alias(name="eng", mount_accessor=accessor, canonical_id=eng["id"])["data"]
    read = ident.read_group_alias(alias["id"])["data"]
    assert read["name"] == "eng" and read["canonical_id"] == eng["id"] and read["mount_type"] == "jwt"
    assert ident.read_group(eng["id"])["data"]["alias"]["id"] == alias["id"]
    assert ident.lookup_group(alias_name="eng", alias_mount_accessor=accessor)["data"]["id"] == eng["id"]
    assert alias["id"] in _list(server, "group-alias/id")["keys"]
    with server.http() as http:
        other = ident.create_or_update_group(name="eng2", group_type="external")["data"]
        r = http.post("/v1/identity/group-alias", json={"name": "eng", "mount_accessor": accessor,
                                                        "canonical_id": other["id"]})
        assert r.status_code == 400
    ident.delete_group_alias(alias["id"])
    assert ident.read_group(eng["id"])["data"]["alias"] == {}


def test_lookup_needs_exactly_one_criterion(server) -> None:  # noqa: ANN001
    with server.http() as http:
        assert http.post("/v1/identity/lookup/entity", json={}).status_code == 400
        assert http.post("/v1/identity/lookup/entity", json={"name": "a", "id": "b"}).status_code == 400
        assert http.post("/v1/identity/lookup/entity", json={"alias_name": "a"}).status_code == 400
        assert http.post("/v1/identity/lookup/group", json={"name": "none"}).status_code == 204


def test_entity_policies_and_disabling_apply_to_logged_in_tokens(k8s) -> None:  # noqa: ANN001
    sa = k8s.cluster.service_account("default", "s-emoji")
    client = k8s.login(k8s.cluster.projected_token(sa))
    entity_id = client.auth.token.lookup_self()["data"]["entity_id"]
    ident = k8s.root.secrets.identity
    k8s.root.sys.create_or_update_policy("mounts-reader", 'path "sys/mounts" { capabilities = ["read"] }')
    with k8s.server.http(token=client.token) as http:
        assert http.get("/v1/sys/mounts").status_code == 403
        ident.update_entity(entity_id, policies=["mounts-reader"])
        assert http.get("/v1/sys/mounts").status_code == 200  # identity policies are evaluated per request
    ident.update_entity(entity_id, disabled=True)
    r = k8s.login_http(k8s.cluster.projected_token(sa))
    assert r.status_code == 403


def test_bootstrap_is_idempotent_and_keeps_admin_changes(k8s) -> None:  # noqa: ANN001
    root = k8s.root
    policy = root.sys.read_policy("kubernetes-reader")["data"]["rules"]
    assert f"identity.entity.aliases.{k8s.accessor}.metadata.service_account_namespace" in policy
    role = root.auth.kubernetes.read_role("default")
    assert role["bound_service_account_names"] == ["*"] and role["token_policies"] == ["kubernetes-reader"]
    root.auth.kubernetes.create_role("default", bound_service_account_names=["*"],
                                     bound_service_account_namespaces=["apps"], policies=["kubernetes-reader"])
    with k8s.server.http() as http:
        r = http.put("/v1/sys/bootstrap")
        assert r.status_code in (200, 204), r.text
        r = http.put("/v1/sys/bootstrap")
        assert r.status_code in (200, 204), r.text
    assert root.auth.kubernetes.read_role("default")["bound_service_account_namespaces"] == ["apps"]
    assert root.sys.list_auth_methods()["data"]["kubernetes/"]["accessor"] == k8s.accessor
