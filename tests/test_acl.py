"""ACL matching with Vault's semantics: globs, segment wildcards, priority, deny, LIST, sudo, parameters, templates."""

from __future__ import annotations

import time

import pytest

from strongroom.core.acl import ACL, AliasInfo, GroupInfo, IdentityContext, compile_acl, render_pattern
from strongroom.core.barrier import Barrier
from strongroom.core.logical import Operation
from strongroom.core.policy import PolicyError, parse_policy
from strongroom.core.policy_store import PolicyStore
from strongroom.crypto import new_key
from strongroom.storage.memory import InMemoryStorage

R, L, C, U, D, P = (Operation.READ, Operation.LIST, Operation.CREATE, Operation.UPDATE, Operation.DELETE,
                    Operation.PATCH)


def acl_of(*texts: str, ident: IdentityContext | None = None) -> ACL:
    return compile_acl([parse_policy(f"p{i}", t) for i, t in enumerate(texts)], ident)


def stanza(path: str, *caps: str) -> str:
    quoted = ", ".join(f'"{c}"' for c in caps)
    return f'path "{path}" {{ capabilities = [{quoted}] }}\n'


def allowed(acl: ACL, op: Operation, path: str, data: dict | None = None, sudo: bool = False) -> bool:
    return acl.allow(op, path, data, sudo).allowed


# --- globs and wildcards -------------------------------------------------------------------------------------------


def test_default_deny() -> None:
    acl = acl_of(stanza("secret/foo", "read"))
    assert not allowed(acl, R, "secret/bar")
    assert not allowed(acl, R, "secret/foo/bar")
    assert acl.capabilities("anything") == ["deny"]


def test_exact_path_matches_only_itself() -> None:
    acl = acl_of(stanza("secret/foo", "read"))
    assert allowed(acl, R, "secret/foo")
    assert allowed(acl, R, "/secret/foo")  # leading slashes do not matter
    assert not allowed(acl, R, "secret/fo")
    assert not allowed(acl, R, "secret/foo/")
    assert not allowed(acl, U, "secret/foo")


def test_trailing_star_is_a_prefix_glob() -> None:
    acl = acl_of(stanza("secret/zip-*", "read"))
    assert allowed(acl, R, "secret/zip-zap")
    assert allowed(acl, R, "secret/zip-zap/zong")  # the docs' example: a glob crosses segments
    assert allowed(acl, R, "secret/zip-")
    assert not allowed(acl, R, "secret/zip")


def test_star_elsewhere_is_literal() -> None:
    acl = acl_of(stanza("secret/*/foo", "read"))
    assert allowed(acl, R, "secret/*/foo")
    assert not allowed(acl, R, "secret/bar/foo")


def test_plus_matches_exactly_one_segment() -> None:
    acl = acl_of(stanza("secret/+/teamb", "read"))
    assert allowed(acl, R, "secret/foo/teamb")
    assert allowed(acl, R, "secret/bar/teamb")
    assert not allowed(acl, R, "secret/foo/bar/teamb")
    assert not allowed(acl, R, "secret/teamb")
    assert not allowed(acl, R, "secret/foo/teamb/x")


def test_plus_with_trailing_glob() -> None:
    acl = acl_of(stanza("secret/+/team*", "read"))
    assert allowed(acl, R, "secret/a/teamb")
    assert allowed(acl, R, "secret/a/team/x/y")
    assert not allowed(acl, R, "secret/a/b/teamb")
    assert not allowed(acl, R, "secret/a")


def test_plus_inside_a_segment_is_literal() -> None:
    acl = acl_of(stanza("secret/a+b/+", "read"))
    assert allowed(acl, R, "secret/a+b/x")
    assert not allowed(acl, R, "secret/ab/x")


# --- priority ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("winner", "loser", "path"),
    [
        # examples from Vault's docs and the comments on its ordering function
        ("secret/*", "secret/+/+/foo/*", "secret/a/b/foo/c"),  # same first wildcard, both globs: fewer "+" wins
        ("foo/a*", "foo/+", "foo/ab"),  # the later first wildcard wins
        ("foo/bar/+/baz", "foo/+/bar/baz", "foo/bar/bar/baz"),
        ("foo/+/bar", "foo/+/ba*", "foo/x/bar"),  # not a glob beats a glob
        ("foo/+", "foo/*", "foo/x"),
        ("foo/+/bar/ba*", "foo/+/bar/b*", "foo/x/bar/baz"),  # longer wins
        ("secret/foo/*", "secret/*", "secret/foo/bar"),  # longest prefix
        ("secret/+/b", "secret/*", "secret/a/b"),  # same first wildcard position, non-glob wins
        ("a/+/c", "a/+/*", "a/b/c"),
        ("a/b*", "a/+/c", "a/bb/c"),
        ("+/b", "*", "a/b"),
    ],
)
def test_priority_between_non_exact_matches(winner: str, loser: str, path: str) -> None:
    for order in ((winner, loser), (loser, winner)):  # declaration order never matters
        acl = acl_of(stanza(order[0], "read" if order[0] == winner else "update"),
                     stanza(order[1], "read" if order[1] == winner else "update"))
        assert allowed(acl, R, path), (order, path)
        assert not allowed(acl, U, path), (order, path)


def test_lexicographic_tie_break() -> None:
    # same first wildcard, both non-glob, same "+" count and length: the lexically larger pattern wins
    acl = acl_of(stanza("x/+/b", "read"), stanza("x/+/+", "update"))
    assert allowed(acl, R, "x/a/b")  # fewer "+" first
    acl = acl_of(stanza("+/a/+", "read"), stanza("+/+/b", "update"))
    # first "+" both at 0, neither a glob, both two "+", both length 5: "+/a/+" > "+/+/b"
    assert allowed(acl, R, "q/a/b")
    assert not allowed(acl, U, "q/a/b")


def test_exact_match_beats_any_glob() -> None:
    acl = acl_of(stanza("secret/foo", "read"), stanza("secret/foo*", "deny"), stanza("secret/+", "update"))
    assert allowed(acl, R, "secret/foo")
    assert not allowed(acl, U, "secret/foo")


def test_broad_deny_does_not_override_a_more_specific_allow() -> None:
    acl = acl_of(stanza("secret/*", "deny"), stanza("secret/foo", "read"), stanza("secret/team/*", "read"))
    assert allowed(acl, R, "secret/foo")
    assert allowed(acl, R, "secret/team/x")
    assert not allowed(acl, R, "secret/other")


def test_specific_deny_beats_broader_allow() -> None:
    acl = acl_of(stanza("secret/*", "read", "list", "sudo"), stanza("secret/admin/*", "deny"),
                 stanza("secret/+/root", "deny"))
    assert allowed(acl, R, "secret/x")
    assert not allowed(acl, R, "secret/admin/password")
    assert not allowed(acl, R, "secret/x/root")
    assert acl.capabilities("secret/admin/x") == ["deny"]


def test_deny_matches_case_insensitively() -> None:
    # Vault 2.2.2: a deny on secret/data/example also denies secret/data/EXAMPLE
    acl = acl_of(stanza("secret/*", "read", "list"), stanza("secret/data/*", "read", "list"),
                 stanza("secret/data/example", "deny"), stanza("secret/data/admin/*", "deny"),
                 stanza("secret/+/private", "deny"))
    assert not allowed(acl, R, "secret/data/EXAMPLE")
    assert not allowed(acl, R, "secret/data/Example")
    assert not allowed(acl, R, "secret/data/ADMIN/key")
    assert not allowed(acl, R, "secret/team/PRIVATE")
    assert allowed(acl, R, "secret/team/public")
    assert not allowed(acl, L, "secret/data/Admin/")
    assert allowed(acl, R, "secret/data/other")
    assert acl.capabilities("secret/data/EXAMPLE") == ["deny"]


def test_case_insensitive_deny_is_still_subject_to_priority() -> None:
    acl = acl_of(stanza("SECRET/*", "deny"), stanza("secret/team/*", "read"))
    assert allowed(acl, R, "secret/team/x")  # the longer allow is more specific
    assert not allowed(acl, R, "secret/other")


def test_allow_rules_stay_case_sensitive() -> None:
    acl = acl_of(stanza("secret/data/app/*", "read"), stanza("secret/+/x", "read"), stanza("a/b", "read"))
    assert not allowed(acl, R, "secret/data/APP/db")
    assert not allowed(acl, R, "secret/q/X")
    assert not allowed(acl, R, "A/b")


# --- merging across policies ---------------------------------------------------------------------------------------


def test_union_of_capabilities_for_the_same_pattern() -> None:
    acl = acl_of(stanza("secret/*", "read"), stanza("secret/*", "list"), stanza("secret/*", "create"))
    assert acl.capabilities("secret/a") == ["create", "list", "read"]
    decision = acl.allow(R, "secret/a")
    assert decision.allowed and decision.granting_policies == ("p0",)


def test_deny_wins_for_the_same_pattern_in_any_order() -> None:
    for texts in ((stanza("s/*", "read", "sudo"), stanza("s/*", "deny")),
                  (stanza("s/*", "deny"), stanza("s/*", "read", "sudo"))):
        acl = acl_of(*texts)
        assert not allowed(acl, R, "s/a")
        assert not allowed(acl, R, "s/a", sudo=True)
        assert acl.capabilities("s/a") == ["deny"]


def test_deny_in_the_same_policy_twice() -> None:
    acl = acl_of(stanza("a", "read") + stanza("a", "deny"))
    assert not allowed(acl, R, "a")


# --- LIST and trailing slashes -------------------------------------------------------------------------------------


def test_list_uses_the_path_without_its_trailing_slash() -> None:
    acl = acl_of(stanza("secret/metadata/app", "list"))
    assert allowed(acl, L, "secret/metadata/app/")
    assert not allowed(acl, R, "secret/metadata/app/")


def test_list_with_glob_on_the_folder() -> None:
    acl = acl_of(stanza("secret/metadata/app*", "list"))
    assert allowed(acl, L, "secret/metadata/app/")
    assert allowed(acl, L, "secret/metadata/application/")


def test_list_with_plus_on_the_folder_name() -> None:
    acl = acl_of(stanza("secret/metadata/+", "list"))
    assert allowed(acl, L, "secret/metadata/app/")


def test_trailing_slash_list_does_not_skip_a_more_specific_deny() -> None:
    # CVE-2026-63131 / Vault 2.0.3: a wildcard grant on the parent must not decide a LIST the deny covers
    acl = acl_of(stanza("secret/*", "read", "list"), stanza("secret/private/*", "deny"))
    assert not allowed(acl, L, "secret/private/")
    assert not allowed(acl, L, "secret/private/x/")
    assert allowed(acl, L, "secret/public/")
    assert acl.capabilities("secret/private/") == ["deny"]


def test_list_without_trailing_slash_is_treated_as_the_folder() -> None:
    acl = acl_of(stanza("secret/*", "list"), stanza("secret/private/*", "deny"))
    assert not allowed(acl, L, "secret/private")
    assert allowed(acl, L, "secret/public")


def test_trailing_slash_list_respects_a_specific_segment_deny_on_the_folder() -> None:
    acl = acl_of(stanza("secret/*", "list"), stanza("secret/+/private", "deny"))
    assert not allowed(acl, L, "secret/team/private/")
    assert allowed(acl, L, "secret/team/public/")


def test_exact_rule_on_the_folder_decides_its_list() -> None:
    acl = acl_of(stanza("secret/*", "list"), stanza("secret/locked", "deny"))
    assert not allowed(acl, L, "secret/locked/")


def test_read_of_trailing_slash_path_does_not_use_list_fallbacks() -> None:
    acl = acl_of(stanza("secret/foo", "read", "list"))
    assert not allowed(acl, R, "secret/foo/")


# --- operations, sudo, root ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "cap"),
    [(R, "read"), (L, "list"), (C, "create"), (U, "update"), (D, "delete"), (P, "patch"),
     (Operation.RENEW, "update"), (Operation.REVOKE, "update"), (Operation.ROLLBACK, "update")],
)
def test_each_operation_needs_its_capability(op: Operation, cap: str) -> None:
    assert allowed(acl_of(stanza("x", cap)), op, "x")
    others = [c for c in ("read", "list", "create", "update", "delete", "patch", "sudo") if c != cap]
    assert not allowed(acl_of(stanza("x", *others)), op, "x")


def test_create_without_update_cannot_overwrite() -> None:
    acl = acl_of(stanza("secret/data/*", "create"))
    assert allowed(acl, C, "secret/data/new")
    assert not allowed(acl, U, "secret/data/new")


def test_root_protected_path_needs_sudo() -> None:
    acl = acl_of(stanza("sys/audit/*", "update"), stanza("sys/rotate", "update", "sudo"))
    assert allowed(acl, U, "sys/audit/file", sudo=False)
    decision = acl.allow(U, "sys/audit/file", None, True)
    assert not decision.allowed and "sudo" in decision.reason
    assert allowed(acl, U, "sys/rotate", sudo=True)


def test_sudo_alone_grants_no_operation() -> None:
    assert not allowed(acl_of(stanza("sys/rotate", "sudo")), U, "sys/rotate", sudo=True)


def test_root_policy_alongside_others_grants_nothing() -> None:
    # Vault refuses such an ACL outright; a "root" arriving with other policies must not make a root token
    acl = compile_acl([parse_policy("root", ""), parse_policy("x", stanza("*", "read"))])
    assert not acl.root
    assert not allowed(acl, R, "secret/x")


def test_root_policy_grants_everything() -> None:
    acl = compile_acl([parse_policy("root", "")])
    assert acl.root
    decision = acl.allow(D, "sys/raw/anything", None, True)
    assert decision.allowed and decision.is_root
    assert acl.capabilities("x") == ["root"]


def test_help_is_always_allowed() -> None:
    assert allowed(acl_of(), Operation.HELP, "secret/x")


def test_capabilities_report() -> None:
    acl = acl_of(stanza("secret/*", "read", "list", "sudo"))
    assert acl.capabilities("secret/x") == ["list", "read", "sudo"]
    assert acl.capabilities("other") == ["deny"]


# --- parameters ----------------------------------------------------------------------------------------------------


def test_required_parameters() -> None:
    acl = acl_of('path "x" {\n capabilities = ["update"]\n required_parameters = ["Bar", "baz"]\n}')
    assert not allowed(acl, U, "x", {"bar": 1})
    assert allowed(acl, U, "x", {"bar": 1, "baz": 2})
    assert not allowed(acl, U, "x", {})


def test_allowed_parameters_with_globs() -> None:
    acl = acl_of('path "x" {\n capabilities = ["update", "list"]\n allowed_parameters = {\n'
                 ' "name" = ["web-*", "*-db", "exact"]\n "ttl" = []\n}\n}')
    assert allowed(acl, U, "x", {"name": "web-1"})
    assert allowed(acl, U, "x", {"name": "prod-db", "ttl": "1h"})
    assert allowed(acl, U, "x", {"NAME": "exact"})  # request names compared lower-cased
    assert not allowed(acl, U, "x", {"name": "admin"})
    assert not allowed(acl, U, "x", {"other": "x"})
    assert allowed(acl, U, "x", None)  # no body: nothing to restrict
    assert allowed(acl, L, "x", {"other": 1})  # LIST is not subject to parameter rules


def test_allowed_star_key_allows_any_other_parameter() -> None:
    acl = acl_of('path "x" {\n capabilities = ["update"]\n allowed_parameters = {\n'
                 ' "*" = []\n "mode" = ["safe"]\n}\n}')
    assert allowed(acl, U, "x", {"anything": 1, "mode": "safe"})
    assert not allowed(acl, U, "x", {"mode": "fast"})


def test_denied_parameters_win_over_allowed() -> None:
    acl = acl_of('path "x" {\n capabilities = ["update"]\n allowed_parameters = { "*" = [] }\n'
                 ' denied_parameters = { "policies" = ["root", "admin*"] }\n}')
    assert allowed(acl, U, "x", {"policies": "dev"})
    assert not allowed(acl, U, "x", {"policies": "root"})
    assert not allowed(acl, U, "x", {"policies": "admins"})
    assert not allowed(acl, U, "x", {"policies": ["dev", "root"]})  # any element of a list
    assert not allowed(acl, U, "x", {"policies": "dev, root"})  # any part of a comma-separated string


def test_denied_star_denies_any_parameter() -> None:
    acl = acl_of('path "x" {\n capabilities = ["update"]\n denied_parameters = { "*" = [] }\n}')
    assert not allowed(acl, U, "x", {"a": 1})
    assert allowed(acl, U, "x", {})


def test_allowed_list_values_need_every_element_allowed() -> None:
    acl = acl_of('path "x" {\n capabilities = ["update"]\n allowed_parameters = { "policies" = ["a", "b"] }\n}')
    assert allowed(acl, U, "x", {"policies": ["a", "b"]})
    assert allowed(acl, U, "x", {"policies": "a,b"})
    assert not allowed(acl, U, "x", {"policies": ["a", "c"]})
    assert not allowed(acl, U, "x", {"policies": "a,c"})
    assert not allowed(acl, U, "x", {"policies": ""})


def test_parameter_types_are_not_confused() -> None:
    acl = acl_of('path "x" {\n capabilities = ["update"]\n allowed_parameters = { "n" = [1], "b" = [true] }\n}')
    assert allowed(acl, U, "x", {"n": 1})
    assert not allowed(acl, U, "x", {"n": True})
    assert not allowed(acl, U, "x", {"b": 1})
    assert not allowed(acl, U, "x", {"n": "1"})


def test_parameter_maps_merge_across_policies() -> None:
    a = 'path "x" {\n capabilities = ["update"]\n allowed_parameters = { "k" = ["a"] }\n}'
    b = 'path "x" {\n capabilities = ["update"]\n allowed_parameters = { "k" = ["b"] }\n}'
    acl = acl_of(a, b)
    assert allowed(acl, U, "x", {"k": "a"}) and allowed(acl, U, "x", {"k": "b"})
    c = 'path "x" {\n capabilities = ["update"]\n allowed_parameters = { "k" = [] }\n}'
    assert allowed(acl_of(a, c), U, "x", {"k": "zzz"})  # an empty list (any value) wins


def test_wrapping_ttl_limits_require_wrapping() -> None:
    acl = acl_of('path "x" {\n capabilities = ["read"]\n min_wrapping_ttl = "1m"\n max_wrapping_ttl = "1h"\n}')
    assert not acl.allow(R, "x").allowed
    assert acl.allow(R, "x", wrap_ttl=300).allowed
    assert not acl.allow(R, "x", wrap_ttl=30).allowed
    assert not acl.allow(R, "x", wrap_ttl=7200).allowed


def test_expired_stanzas_do_not_apply() -> None:
    past = 'path "x" {\n capabilities = ["read"]\n expiration = "2001-01-01T00:00:00Z"\n}'
    assert not allowed(acl_of(past), R, "x")
    future = f'path "x" {{\n capabilities = ["read"]\n expiration = {int(time.time()) + 3600}\n}}'
    acl = acl_of(future)
    assert allowed(acl, R, "x") and acl.expires_at is not None


# --- identity templates --------------------------------------------------------------------------------------------

K8S = "auth_kubernetes_1a2b3c4d"
IDENT = IdentityContext(
    entity_id="ent-1",
    entity_name="s-emoji",
    entity_metadata={"team": "payments", "empty": ""},
    aliases={K8S: AliasInfo(id="alias-1", name="s-emoji", metadata={"service_account_namespace": "default"},
                            custom_metadata={"tier": "gold"})},
    groups=[GroupInfo(id="grp-1", name="engineers", metadata={"site": "ldn"})],
)


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("identity.entity.id", "ent-1"),
        ("identity.entity.name", "s-emoji"),
        ("identity.entity.metadata.team", "payments"),
        (f"identity.entity.aliases.{K8S}.id", "alias-1"),
        (f"identity.entity.aliases.{K8S}.name", "s-emoji"),
        (f"identity.entity.aliases.{K8S}.metadata.service_account_namespace", "default"),
        (f"identity.entity.aliases.{K8S}.custom_metadata.tier", "gold"),
        ("identity.groups.ids.grp-1.name", "engineers"),
        ("identity.groups.names.engineers.id", "grp-1"),
        ("identity.groups.names.engineers.metadata.site", "ldn"),
        ("identity.groups.ids.grp-1.metadata.site", "ldn"),
    ],
)
def test_template_values(template: str, value: str) -> None:
    assert render_pattern(f"secret/{{{{ {template} }}}}/*", IDENT) == f"secret/{value}/*"
    acl = acl_of(stanza(f"secret/data/{{{{{template}}}}}/*", "read"), ident=IDENT)
    assert allowed(acl, R, f"secret/data/{value}/x")
    assert not allowed(acl, R, "secret/data/other/x")


@pytest.mark.parametrize(
    "template",
    [
        "identity.entity.metadata.missing",
        "identity.entity.metadata.empty",  # an empty value could turn "team-{{...}}*" into a wider glob
        "identity.entity.metadata",
        "identity.entity.aliases.auth_other_1.name",
        f"identity.entity.aliases.{K8S}.metadata.missing",
        f"identity.entity.aliases.{K8S}",
        "identity.entity.groups.names",
        "identity.groups.names.admins.id",
        "identity.groups.ids.grp-1.nope",
        "identity.nothing",
        "identity.entity.nope",
    ],
)
def test_unresolvable_template_drops_the_stanza(template: str) -> None:
    text = stanza(f"secret/data/{{{{{template}}}}}*", "read") + stanza("secret/data/ok", "read")
    acl = acl_of(text, ident=IDENT)
    assert not allowed(acl, R, "secret/data/x")
    assert not allowed(acl, R, "secret/data/")
    assert allowed(acl, R, "secret/data/ok")  # the rest of the policy still applies


@pytest.mark.parametrize("bad", ["*", "a*", "+", "team+x", "a/b", "../x", "..", "."])
def test_template_value_with_glob_plus_or_slash_drops_the_stanza(bad: str) -> None:
    ident = IdentityContext(entity_id="e", entity_name=bad, entity_metadata={"ns": bad},
                            aliases={K8S: AliasInfo(id="a", name=bad)})
    for template in ("identity.entity.name", "identity.entity.metadata.ns", f"identity.entity.aliases.{K8S}.name"):
        acl = acl_of(stanza(f"secret/data/{{{{{template}}}}}/*", "read", "list"), ident=ident)
        for probe in ("secret/data/anything/x", "secret/data/a/b/x", "secret/data/x", f"secret/data/{bad}/x"):
            assert not allowed(acl, R, probe), (template, probe)
        assert acl.capabilities("secret/data/anything/x") == ["deny"]


def test_templates_without_an_entity_drop_the_stanza() -> None:
    acl = acl_of(stanza("secret/{{identity.entity.id}}", "read"), stanza("secret/{{identity.groups.names.g.id}}",
                                                                          "read"))
    assert acl.capabilities("secret/") == ["deny"]
    acl = acl_of(stanza("x/{{identity.groups.names.g.id}}", "read"), ident=IdentityContext(entity_id="e"))
    assert acl.capabilities("x/") == ["deny"]


def test_templated_deny_applies_only_to_its_identity() -> None:
    text = stanza("secret/*", "read") + stanza("secret/{{identity.entity.name}}/*", "deny")
    acl = acl_of(text, ident=IDENT)
    assert not allowed(acl, R, "secret/s-emoji/x")
    assert allowed(acl, R, "secret/other/x")


def test_templated_and_plain_stanza_on_the_same_pattern_merge() -> None:
    acl = acl_of(stanza("secret/s-emoji/*", "read"), stanza("secret/{{identity.entity.name}}/*", "list"),
                 ident=IDENT)
    assert acl.capabilities("secret/s-emoji/x") == ["list", "read"]
    acl = acl_of(stanza("secret/+/x", "read"), stanza("secret/+/{{identity.entity.name}}", "deny"), ident=IDENT)
    assert allowed(acl, R, "secret/a/x")
    assert not allowed(acl, R, "secret/a/s-emoji")


def test_time_template() -> None:
    now = 1_700_000_000
    assert render_pattern("a/{{time.now}}", None, now) == f"a/{now}"
    assert render_pattern("a/{{time.now.plus.1h}}", None, now) == f"a/{now + 3600}"
    assert render_pattern("a/{{time.now.minus.60s}}", None, now) == f"a/{now - 60}"
    assert render_pattern("a/{{time.now.plus}}", None, now) is None
    assert render_pattern("a/{{time.later}}", None, now) is None


# --- the policy store ----------------------------------------------------------------------------------------------


async def store() -> PolicyStore:
    barrier = Barrier(InMemoryStorage())
    await barrier.initialize(new_key())
    ps = PolicyStore(barrier.view("sys/policy/"))
    await ps.load()
    return ps


async def test_store_crud_and_builtins() -> None:
    ps = await store()
    assert await ps.list_names() == ["default"]
    await ps.set("Web-App", stanza("secret/web/*", "read"))
    assert (await ps.get("web-app")).name == "web-app"  # names are lower-cased
    assert await ps.list_names() == ["default", "web-app"]
    assert await ps.list_names(after="default") == ["web-app"]
    assert await ps.list_names(limit=1) == ["default"]
    await ps.delete("web-app")
    assert await ps.get("web-app") is None
    await ps.delete("web-app")  # idempotent
    with pytest.raises(PolicyError):
        await ps.delete("default")
    with pytest.raises(PolicyError):
        await ps.delete("root")
    with pytest.raises(PolicyError):
        await ps.set("root", stanza("x", "read"))
    await ps.set("default", stanza("x", "read"))  # default is editable
    assert [r.pattern for r in (await ps.get("default")).paths] == ["x"]
    with pytest.raises(PolicyError):
        await ps.set("bad", 'path "x" { capabilities = ["nope"] }')
    assert await ps.get("bad") is None  # nothing stored
    assert (await ps.get("root")).name == "root"


async def test_store_names_with_slashes() -> None:
    ps = await store()
    await ps.set("team/a", stanza("x", "read"))
    assert "team/a" in await ps.list_names()
    assert (await ps.get("team/a")).paths[0].pattern == "x"
    for bad in ("../x", "..", "a/", "/a", "a\nb", ""):
        with pytest.raises(PolicyError):
            await ps.set(bad, stanza("x", "read"))
        assert await ps.get(bad) is None
    with pytest.raises(PolicyError):
        await ps.delete("..")


async def test_default_policy_lets_a_token_look_itself_up() -> None:
    ps = await store()
    acl = await ps.acl_for(("default",), "")
    assert allowed(acl, R, "auth/token/lookup-self")
    assert allowed(acl, U, "auth/token/renew-self")
    assert allowed(acl, C, "cubbyhole/x")
    assert not allowed(acl, R, "secret/data/x")
    assert not allowed(acl, R, "identity/entity/id/")  # no entity: the templated stanza is gone


async def test_acl_for_reflects_policy_changes() -> None:
    ps = await store()
    await ps.set("app", stanza("secret/a", "read"))
    acl = await ps.acl_for(("app", "default"), "")
    assert allowed(acl, R, "secret/a")
    assert await ps.acl_for(("default", "APP", "app"), "") is acl  # same names in any order share the compiled ACL
    await ps.set("app", stanza("secret/a", "deny"))
    assert not allowed(await ps.acl_for(("app",), ""), R, "secret/a")
    await ps.delete("app")
    assert not allowed(await ps.acl_for(("app",), ""), R, "secret/a")
    assert (await ps.acl_for(("root",), "")).root
    mixed = await ps.acl_for(("root", "default"), "")
    assert not mixed.root and not allowed(mixed, R, "auth/token/lookup-self")


async def test_acl_for_resolves_identity_and_follows_its_changes() -> None:
    ps = await store()
    identities = {"e1": IDENT}
    calls: list[str] = []

    async def resolver(entity_id: str) -> IdentityContext | None:
        calls.append(entity_id)
        return identities.get(entity_id)

    ps.identity_resolver = resolver
    await ps.set("reader", stanza(f"secret/data/{{{{identity.entity.aliases.{K8S}.metadata.service_account_namespace"
                                  f"}}}}/{{{{identity.entity.name}}}}/*", "read"))
    acl = await ps.acl_for(("reader",), "e1")
    assert allowed(acl, R, "secret/data/default/s-emoji/db")
    assert not allowed(acl, R, "secret/data/default/s-other/db")
    assert await ps.acl_for(("reader",), "e1") is acl  # cached for the same identity
    identities["e1"] = IdentityContext(entity_id="e1", entity_name="s-new",
                                       aliases={K8S: AliasInfo("a", "s-new", {"service_account_namespace": "prod"})})
    acl2 = await ps.acl_for(("reader",), "e1")
    assert allowed(acl2, R, "secret/data/prod/s-new/db")
    assert not allowed(acl2, R, "secret/data/default/s-emoji/db")
    assert not allowed(await ps.acl_for(("reader",), "unknown"), R, "secret/data/default/s-emoji/db")
    # policies without templates never ask for the identity
    calls.clear()
    await ps.set("plain", stanza("x", "read"))
    await ps.acl_for(("plain",), "e1")
    assert calls == []
