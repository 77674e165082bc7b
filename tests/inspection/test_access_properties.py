"""Property test: the access explorer's answers equal the pipeline's real answer (``sys/capabilities``).

Random policies (exact, ``*`` and ``+`` patterns, deny, parameter constraints, identity templates) are stored on a
real server and bound to a token role and a userpass user; tokens are minted through both, and for every generated
path the explorer's "what can this identity do" and "who can do what on this path" must report exactly the
capabilities the server reports for those real tokens.
"""

from __future__ import annotations

import itertools

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import StrongroomServer

TEMPLATE = "@T"  # stands for {{identity.entity.aliases.<userpass accessor>.name}}
USERS = ("alice", "bob")
LEAF = ("a", "b", "alice", "bob", "A", "c", "d")
PATHS = [f"secret/data/{x}/{y}" for x in ("a", "b", "alice", "bob", "A") for y in ("c", "d")] + [
    "secret/data/a", "secret/data/alice/", "secret/metadata/a/c", "secret/data/b/c/e",
]  # fmt: skip
CAPS = ("read", "list", "create", "update", "delete", "sudo")
_counter = itertools.count()


@st.composite
def patterns(draw: st.DrawFn) -> str:
    segs = [draw(st.sampled_from(["secret", "secret", "+"])), draw(st.sampled_from(["data", "data", "+", "metadata"]))]
    for _ in range(draw(st.integers(0, 2))):
        segs.append(draw(st.sampled_from([*LEAF, "+", TEMPLATE])))
    pattern = "/".join(segs)
    tail = draw(st.sampled_from(["", "", "*", "/*"]))
    if tail == "*" and segs[-1] in ("+", TEMPLATE):
        tail = "/*"
    return pattern + tail


@st.composite
def stanzas(draw: st.DrawFn) -> str:
    pattern = draw(patterns())
    if draw(st.integers(0, 4)) == 0:
        caps = ["deny"]
    else:
        caps = sorted(draw(st.sets(st.sampled_from(CAPS), min_size=1, max_size=4)))
    body = "capabilities = [" + ", ".join(f'"{c}"' for c in caps) + "]"
    if draw(st.booleans()):
        body += '\n  allowed_parameters = { "data" = [] }'
    if draw(st.integers(0, 3)) == 0:
        body += '\n  denied_parameters = { "options" = [] }'
    return f'path "{pattern}" {{\n  {body}\n}}\n'


policy_sets = st.lists(st.lists(stanzas(), min_size=1, max_size=4).map("".join), min_size=1, max_size=3)


def _caps(http: httpx.Client, token: str, paths: list[str]) -> dict[str, list[str]]:
    r = http.post("/v1/sys/capabilities", json={"token": token, "paths": paths})
    assert r.status_code == 200, r.text
    return {p: sorted(r.json()["data"][p]) for p in paths}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=policy_sets, asked=st.lists(st.sampled_from(PATHS), min_size=1, max_size=3, unique=True))
def test_explorer_agrees_with_sys_capabilities(inspected: StrongroomServer, texts: list[str], asked: list[str]) -> None:
    n = next(_counter)
    with inspected.http() as http:
        if n == 0:
            r = http.post("/v1/sys/auth/userpass", json={"type": "userpass"})
            assert r.status_code == 204, r.text
        accessor = http.get("/v1/sys/auth").json()["data"]["userpass/"]["accessor"]
        names = []
        for i, text in enumerate(texts):
            name = f"prop-{n}-{i}"
            text = text.replace(TEMPLATE, f"{{{{identity.entity.aliases.{accessor}.name}}}}")
            r = http.put(f"/v1/sys/policies/acl/{name}", json={"policy": text})
            assert r.status_code == 204, (text, r.text)
            names.append(name)
        role, user = f"prop-role-{n}", USERS[n % 2]
        r = http.post(f"/v1/auth/token/roles/{role}", json={"allowed_policies": names})
        assert r.status_code == 204, r.text
        r = http.post(f"/v1/auth/userpass/users/{user}", json={"password": "pw-" + user, "token_policies": names})
        assert r.status_code == 204, r.text
        try:
            role_token = http.post(f"/v1/auth/token/create/{role}", json={}).json()["auth"]["client_token"]
            r = http.post(f"/v1/auth/userpass/login/{user}", json={"password": "pw-" + user})
            assert r.status_code == 200, r.text
            user_token = r.json()["auth"]["client_token"]
            truth_role = _caps(http, role_token, PATHS)
            truth_user = _caps(http, user_token, PATHS)

            # what can: the token role, and the user (whose template renders to its own name)
            for kind, name, truth in (("token_role", role, truth_role), ("user", user, truth_user)):
                r = http.post("/v1/sys/internal/access/identity", json={"kind": kind, "name": name, "paths": PATHS})
                assert r.status_code == 200, r.text
                routes = r.json()["data"]["routes"]
                assert len(routes) == 1, routes
                got = {p: sorted(c) for p, c in routes[0]["capabilities"].items()}
                assert got == truth, (kind, texts)

            # who can: the token role's entry is exactly the token's answer; the userpass user's answer appears either
            # plainly or bound to exactly its own name
            for path in asked:
                r = http.post("/v1/sys/internal/access/path", json={"path": path})
                assert r.status_code == 200, r.text
                found = r.json()["data"]["principals"]
                role_entries = [e for e in found if e["kind"] == "token_role" and e["name"] == role]
                want = [] if truth_role[path] == ["deny"] else [truth_role[path]]
                assert [sorted(e["capabilities"]) for e in role_entries] == want, (path, texts, role_entries)
                user_entries = [e for e in found if e["kind"] == "auth_user" and e["name"] == user]
                plain = [sorted(e["capabilities"]) for e in user_entries if not e.get("identity")]
                bound = {
                    tuple(sorted(e["capabilities"])) for e in user_entries
                    if e.get("identity") and set(e["bindings"].values()) == {user}
                }  # fmt: skip
                if truth_user[path] == ["deny"]:
                    assert not plain and not bound, (path, texts, user_entries)
                else:
                    assert plain == [truth_user[path]] or tuple(truth_user[path]) in bound, (path, texts, user_entries)
        finally:
            http.delete(f"/v1/auth/token/roles/{role}")
            http.delete(f"/v1/auth/userpass/users/{user}")
            for name in names:
                http.delete(f"/v1/sys/policies/acl/{name}")


def test_templated_reader_resolves_to_one_service_account(inspected: StrongroomServer) -> None:
    with inspected.http() as http:
        r = http.get("/v1/sys/internal/access/path", params={"path": "secret/data/k8s/default/s-ledger/db-password/v1"})
        assert r.status_code == 200, r.text
        entries = [e for e in r.json()["data"]["principals"] if e.get("mount_type") == "kubernetes"]
        assert [e["identity"].split(" (")[0] for e in entries] == ["ServiceAccount s-ledger in namespace default"]
        assert entries[0]["capabilities"] == ["list", "read"]
        r = http.post("/v1/sys/internal/access/identity", json={
            "kind": "service_account", "name": "default/s-emoji",
            "paths": ["secret/data/k8s/default/s-emoji/x/1", "secret/data/k8s/default/s-ledger/x/1"]})
        assert r.status_code == 200, r.text
        caps = r.json()["data"]["routes"][0]["capabilities"]
        assert caps == {"secret/data/k8s/default/s-emoji/x/1": ["list", "read"],
                        "secret/data/k8s/default/s-ledger/x/1": ["deny"]}
        rules = {rule["path"] for rule in r.json()["data"]["routes"][0]["rules"]}
        assert "secret/data/k8s/default/s-emoji/*" in rules


def test_explorer_is_guarded_by_policy_and_refuses_bad_input(inspected: StrongroomServer) -> None:
    with inspected.http() as http:
        r = http.put("/v1/sys/policies/acl/explorer", json={"policy": 'path "sys/internal/access/*" {\n'
                                                                      '  capabilities = ["read", "update"]\n}\n'})
        assert r.status_code == 204
        plain = http.post("/v1/auth/token/create", json={"policies": ["default"]}).json()["auth"]["client_token"]
        allowed = http.post("/v1/auth/token/create", json={"policies": ["explorer"]}).json()["auth"]["client_token"]
        for path in ("path", "identity", "history"):
            r = httpx.get(f"{inspected.addr}/v1/sys/internal/access/{path}", params={"path": "secret/data/x"},
                          headers={"X-Vault-Token": plain})
            assert r.status_code == 403, r.text
            assert r.json()["errors"]
        r = httpx.get(f"{inspected.addr}/v1/sys/internal/access/path", params={"path": "secret/data/x"},
                      headers={"X-Vault-Token": allowed})
        assert r.status_code == 200, r.text
        for url, params, message in (
            ("path", {}, "path must be supplied"),
            ("identity", {"kind": "martian", "name": "x"}, "kind must be one of"),
            ("identity", {"kind": "entity", "name": ""}, "name must be supplied"),
            ("history", {"path": "secret/k8s/a/b/c/d", "limit": "0"}, "limit must be between"),
        ):
            r = http.get(f"/v1/sys/internal/access/{url}", params=params)
            assert r.status_code == 400, r.text
            assert any(message in e for e in r.json()["errors"]), r.text
        r = http.get("/v1/sys/internal/access/identity", params={"kind": "entity", "name": "nobody"})
        assert r.status_code == 404 and r.json()["errors"], r.text


def test_groups_and_entities_agree_with_their_tokens(inspected: StrongroomServer) -> None:
    path, other = "secret/data/team/payments/key", "secret/data/team/ledger/key"
    with inspected.http() as http:
        if "userpass/" not in http.get("/v1/sys/auth").json()["data"]:
            assert http.post("/v1/sys/auth/userpass", json={"type": "userpass"}).status_code == 204
        assert http.put("/v1/sys/policies/acl/team-payments", json={"policy": (
            'path "secret/data/team/payments/*" {\n  capabilities = ["create", "read", "update"]\n'
            '  allowed_parameters = { "data" = [] }\n}\n'
            'path "secret/data/team/payments/key" { capabilities = ["deny"] }\n'
            'path "secret/data/team/{{identity.groups.names.payments.name}}/key" { capabilities = ["list"] }\n'
        )}).status_code == 204
        assert http.put("/v1/sys/policies/acl/carol-own", json={"policy": (
            'path "secret/data/team/ledger/*" { capabilities = ["read"] }\n'
        )}).status_code == 204
        assert http.post("/v1/auth/userpass/users/carol", json={"password": "pw-carol"}).status_code == 204
        token = http.post("/v1/auth/userpass/login/carol", json={"password": "pw-carol"}).json()["auth"]
        entity_id = token["entity_id"]
        r = http.post("/v1/identity/entity/id/" + entity_id, json={"policies": ["carol-own"]})
        assert r.status_code in (200, 204), r.text
        r = http.post("/v1/identity/group", json={"name": "payments", "policies": ["team-payments"],
                                                   "member_entity_ids": [entity_id]})
        assert r.status_code in (200, 204), r.text
        truth = _caps(http, token["client_token"], [path, other])
        # the deny on the exact path wins over the broader grant, and the group template does not widen it
        assert truth == {path: ["deny"], other: ["read"]}
        entity_name = http.get("/v1/identity/entity/id/" + entity_id).json()["data"]["name"]
        r = http.post("/v1/sys/internal/access/identity", json={"kind": "entity", "name": entity_name,
                                                                "paths": [path, other]})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["routes"][0]["capabilities"] == truth
        r = http.post("/v1/sys/internal/access/identity", json={"kind": "group", "name": "payments",
                                                                "paths": [path, "secret/data/team/payments/x"]})
        assert r.json()["data"]["routes"][0]["capabilities"] == {
            path: ["deny"], "secret/data/team/payments/x": ["create", "read", "update"]}
        found = http.post("/v1/sys/internal/access/path", json={"path": "secret/data/team/payments/x"}).json()
        groups = [p for p in found["data"]["principals"] if p["kind"] == "group"]
        assert [(g["name"], g["capabilities"]) for g in groups] == [("payments", ["create", "read", "update"])]
        # the deciding rule and its parameter constraints, which sys/capabilities does not show
        assert groups[0]["rule"]["path"] == "secret/data/team/payments/*"
        assert groups[0]["rule"]["allowed_parameters"] == {"data": []}
        r = http.post("/v1/secret/data/team/payments/x", headers={"X-Vault-Token": token["client_token"]},
                      json={"data": {"v": "1"}, "options": {"cas": 0}})
        assert r.status_code == 403  # "options" is not an allowed parameter: the constraint is real
        r = http.post("/v1/secret/data/team/payments/x", headers={"X-Vault-Token": token["client_token"]},
                      json={"data": {"v": "1"}})
        assert r.status_code == 200, r.text
