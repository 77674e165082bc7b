"""Parsing policy documents: HCL, JSON, base64, the legacy form, and clear refusals of bad input."""

from __future__ import annotations

import base64
import json

import pytest

from strongroom.core.policy import PolicyError, decode_policy_text, parse_policy
from strongroom.core.policy_store import DEFAULT_POLICY

HCL = """
# engineers may read team secrets
path "secret/data/team/*" {
  capabilities = ["read", "list"]
}

path "/secret/data/team/admin" {
  capabilities = ["deny"]
}

path "transit/encrypt/+" {
  capabilities = ["update"]
  allowed_parameters = {
    "plaintext" = []
    "Context"   = ["a*", "*b"]
  }
  denied_parameters = {
    "key_version" = [1]
  }
  required_parameters = ["plaintext"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = 3600
}
"""


def test_hcl_policy_parses_every_stanza_with_its_settings() -> None:
    policy = parse_policy("team", HCL)
    rules = {r.pattern: r for r in policy.paths}
    assert list(rules) == ["secret/data/team/*", "secret/data/team/admin", "transit/encrypt/+"]
    assert rules["secret/data/team/*"].capabilities == {"read", "list"}
    # a leading slash is stripped, as Vault does
    assert rules["secret/data/team/admin"].capabilities == {"deny"}
    transit = rules["transit/encrypt/+"]
    assert transit.allowed_parameters == {"plaintext": [], "context": ["a*", "*b"]}  # names lower-cased
    assert transit.denied_parameters == {"key_version": [1]}
    assert transit.required_parameters == ("plaintext",)
    assert (transit.min_wrapping_ttl, transit.max_wrapping_ttl) == (60, 3600)
    assert policy.raw == HCL


def test_json_policy_in_both_shapes() -> None:
    as_map = {"path": {"secret/*": {"capabilities": ["read"]}, "sys/*": {"capabilities": ["deny"]}}}
    as_list = {"path": [{"secret/*": {"capabilities": ["read"]}}, {"sys/*": {"capabilities": ["deny"]}}]}
    for doc in (as_map, as_list):
        policy = parse_policy("j", json.dumps(doc))
        assert [(r.pattern, set(r.capabilities)) for r in policy.paths] == [
            ("secret/*", {"read"}),
            ("sys/*", {"deny"}),
        ]


def test_base64_policy_text_is_decoded_like_vault() -> None:
    encoded = base64.b64encode(HCL.encode()).decode()
    assert decode_policy_text(encoded) == HCL
    assert decode_policy_text(HCL) == HCL  # plain text stays as it is
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + "\n"  # as `base64` prints it
    assert decode_policy_text(wrapped) == HCL
    assert parse_policy("b", decode_policy_text(encoded)).paths == parse_policy("b", HCL).paths


@pytest.mark.parametrize(
    ("legacy", "caps"),
    [
        ("deny", {"deny"}),
        ("read", {"read", "list"}),
        ("write", {"create", "read", "update", "delete", "list"}),
        ("sudo", {"create", "read", "update", "delete", "list", "sudo"}),
    ],
)
def test_legacy_policy_keyword_maps_to_capabilities(legacy: str, caps: set[str]) -> None:
    policy = parse_policy("old", f'path "secret/*" {{ policy = "{legacy}" }}')
    assert policy.paths[0].capabilities == caps


def test_legacy_keyword_adds_to_capabilities_and_deny_replaces_them() -> None:
    both = parse_policy("p", 'path "a" { policy = "read"\n capabilities = ["sudo"] }')
    assert both.paths[0].capabilities == {"read", "list", "sudo"}
    deny = parse_policy("p", 'path "a" { policy = "deny"\n capabilities = ["read", "sudo"] }')
    assert deny.paths[0].capabilities == {"deny"}


def test_deny_alongside_other_capabilities_is_deny_only() -> None:
    policy = parse_policy("p", 'path "a/*" { capabilities = ["read", "deny", "sudo"] }')
    assert policy.paths[0].capabilities == {"deny"}


def test_same_path_twice_in_one_policy_keeps_both_stanzas() -> None:
    policy = parse_policy("p", 'path "a" { capabilities = ["read"] }\npath "a" { capabilities = ["deny"] }')
    assert [set(r.capabilities) for r in policy.paths] == [{"read"}, {"deny"}]


def test_default_policy_parses_and_is_templated() -> None:
    policy = parse_policy("default", DEFAULT_POLICY)
    patterns = {r.pattern for r in policy.paths}
    assert {"auth/token/lookup-self", "auth/token/renew-self", "auth/token/revoke-self", "sys/capabilities-self",
            "cubbyhole/*", "sys/tools/hash", "identity/entity/id/{{identity.entity.id}}"} <= patterns
    assert policy.templated


def test_templates_are_detected_and_time_templates_flagged() -> None:
    policy = parse_policy(
        "t",
        'path "secret/{{identity.entity.name}}/*" { capabilities = ["read"] }\n'
        'path "audit/{{ time.now }}" { capabilities = ["read"] }\n'
        'path "plain" { capabilities = ["read"] }',
    )
    assert [r.templated for r in policy.paths] == [True, True, False]
    assert [r.time_templated for r in policy.paths] == [False, True, False]


def test_unknown_template_is_accepted_with_a_warning() -> None:
    policy = parse_policy("t", 'path "x/{{identity.nope}}" { capabilities = ["read"] }')
    assert any("never resolves" in w for w in policy.warnings)


def test_unenforced_enterprise_keys_are_accepted_with_a_warning() -> None:
    policy = parse_policy("t", 'path "x" {\n capabilities = ["read"]\n mfa_methods = ["duo"]\n}')
    assert any("mfa_methods" in w and "not enforced" in w for w in policy.warnings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('path "a" { capabilities = ["bogus"] }', 'invalid capability "bogus"'),
        ('path "a" { capabilities = ["root"] }', 'invalid capability "root"'),
        ('path "a" { capabilities = "read" }', "capabilities must be a list"),
        ('path "a" { policy = "admin" }', 'invalid policy "admin"'),
        ('path "a/+*" { capabilities = ["read"] }', "'+*' is forbidden"),
        ('path "a/{{identity.entity.id" { capabilities = ["read"] }', "unbalanced templating characters"),
        ('path "a/}}x" { capabilities = ["read"] }', "unbalanced templating characters"),
        ('path "a/{{x}}}}" { capabilities = ["read"] }', "unbalanced templating characters"),
        ('path "a" { capabilities = ["read"]\n colour = "red" }', 'invalid key "colour"'),
        ('colour = "red"', 'invalid key "colour"'),
        ('path "a" {', "syntax error at line"),
        ('path "a" { capabilities = [read] }', "expected a quoted string"),
        ('path "a" { capabilities = ["${var.x}"] }', "interpolation"),
        ('path { capabilities = ["read"] }', "needs a path"),
        ('path = "a"', '"path" must be a block'),
        ('path "a" { capabilities = ["read"]\n capabilities = ["deny"] }', "defined more than once"),
        ('path "a" { allowed_parameters = { "x" = [], "x" = ["y"] } }', "defined more than once"),
        ('path "a" { allowed_parameters = ["x"] }', "allowed_parameters must be a map"),
        ('path "a" { denied_parameters = { "x" = "y" } }', "must be a list"),
        ('path "a" { required_parameters = "x" }', "required_parameters must be a list"),
        ('path "a" { min_wrapping_ttl = "soon" }', "min_wrapping_ttl"),
        ('path "a" {\n min_wrapping_ttl = "1h"\n max_wrapping_ttl = "1m"\n}', "cannot be less than"),
        ('path "a" { expiration = "next tuesday" }', "invalid expiration"),
        ('{"path": {"a": {"capabilities": ["read"]}, "a": {"capabilities": ["deny"]}}}', 'duplicate key "a"'),
        ('{"path": ', "invalid JSON"),
        ("[1, 2]", "syntax error"),
        ('path "a\x00b" { capabilities = ["read"] }', "control character"),
        ('path "a" { x = ' + "[" * 5000 + "]" * 5000 + " }", "failed to parse policy"),
        ('{"path": ' + "[" * 100000 + "]" * 100000 + "}", "nested too deeply"),
    ],
)
def test_invalid_policies_are_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy("bad", text)
    assert message in str(err.value)
    assert "Traceback" not in str(err.value)


def test_an_empty_document_is_a_policy_that_grants_nothing() -> None:
    assert parse_policy("empty", "# nothing here\n").paths == ()


def test_expired_stanza_keeps_its_expiration() -> None:
    policy = parse_policy("e", 'path "a" {\n capabilities = ["read"]\n expiration = "2001-01-01T00:00:00Z"\n}')
    assert policy.paths[0].expiration == 978307200.0


def test_byte_order_mark_is_ignored() -> None:
    assert parse_policy("bom", '\ufeffpath "a" { capabilities = ["read"] }').paths[0].pattern == "a"


def test_block_form_of_parameter_maps() -> None:
    policy = parse_policy("b", 'path "a" {\n capabilities = ["update"]\n allowed_parameters {\n foo = []\n }\n}')
    assert policy.paths[0].allowed_parameters == {"foo": []}
