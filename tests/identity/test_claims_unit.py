"""Unit tests: ServiceAccount claim shapes, signature and claim checks, globs, token fields, the TokenReview client."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from base64 import urlsafe_b64encode

import pytest

from strongroom.auth.jwtutil import TokenError, glob_match, parse_unverified, validate_times, verify_signature
from strongroom.auth.kubernetes.jwt_claims import service_account
from strongroom.auth.kubernetes.path_login import check_claims
from strongroom.auth.kubernetes.token_review import ReviewError, review
from strongroom.auth.token_fields import TOKEN_FIELDS, TokenParams, remote_addr_allowed
from strongroom.core.logical import Auth, InvalidRequest, PermissionDenied
from strongroom.framework import FieldData

from .k8s_tokens import ServiceAccountRef, ec_key, legacy_claims, projected_claims, rsa_key, unsigned

ROLE = {"bound_service_account_names": ["s-emoji"], "bound_service_account_namespaces": ["default"],
        "audience": ""}
CONFIG = {"disable_iss_validation": True}


def test_both_claim_shapes_read_the_same_service_account() -> None:
    sa = ServiceAccountRef("default", "s-emoji")
    legacy = service_account(legacy_claims(sa))
    assert (legacy.name, legacy.namespace, legacy.uid, legacy.secret_name) == ("s-emoji", "default", sa.uid,
                                                                                sa.secret_name)
    assert legacy.audiences == []
    projected = service_account(projected_claims(sa, audiences=["a", "b"]))
    assert (projected.name, projected.namespace, projected.uid, projected.secret_name) == ("s-emoji", "default",
                                                                                           sa.uid, "")
    assert projected.audiences == ["a", "b"] and projected.pod_name.startswith("s-emoji-")
    # projected claims win when a token carries both
    mixed = {**legacy_claims(ServiceAccountRef("other", "x")), **projected_claims(sa)}
    assert service_account(mixed).uid == sa.uid
    with pytest.raises(TokenError, match="could not parse UID"):
        service_account({"sub": "system:serviceaccount:default:s-emoji"})


def test_check_claims_refusals() -> None:
    sa = ServiceAccountRef("default", "s-emoji")
    assert check_claims(projected_claims(sa), ROLE, CONFIG).name == "s-emoji"
    cases = [
        (projected_claims(sa, ttl=-600), ROLE, "token is expired"),
        (projected_claims(sa, nbf_offset=600), ROLE, "not valid yet"),
        ({k: v for k, v in projected_claims(sa, now=time.time() + 600).items() if k != "nbf"}, ROLE,
         "issued in the future"),
        (projected_claims(sa, audiences=["x"]), {**ROLE, "audience": "vault"}, "invalid audience"),
        (projected_claims(ServiceAccountRef("default", "s-ledger")), ROLE, "service account name not authorized"),
        (projected_claims(ServiceAccountRef("prod", "s-emoji")), ROLE, "namespace not authorized"),
        (projected_claims(ServiceAccountRef("", "s-emoji")), {**ROLE, "bound_service_account_namespaces": ["*"]},
         "namespace not authorized"),
        (projected_claims(ServiceAccountRef("..", "s-emoji")), {**ROLE, "bound_service_account_namespaces": ["*"]},
         "namespace not authorized"),
    ]
    for claims, role, message in cases:
        with pytest.raises(PermissionDenied) as err:
            check_claims(claims, role, CONFIG)
        assert message in err.value.messages[0]
    # within the leeway a slightly early or late clock is fine
    check_claims(projected_claims(sa, ttl=-30), ROLE, CONFIG)
    # issuer checked only when validation is enabled
    with pytest.raises(PermissionDenied, match="issuer"):
        check_claims(projected_claims(sa), ROLE, {"disable_iss_validation": False})
    check_claims(legacy_claims(sa), ROLE, {"disable_iss_validation": False})


def test_role_globs() -> None:
    role = {**ROLE, "bound_service_account_names": ["s-*"], "bound_service_account_namespaces": ["team-*-prod"]}
    assert check_claims(projected_claims(ServiceAccountRef("team-a-prod", "s-emoji")), role, CONFIG)
    with pytest.raises(PermissionDenied):
        check_claims(projected_claims(ServiceAccountRef("team-a-dev", "s-emoji")), role, CONFIG)
    assert glob_match("a*b*c", "axxbyyc") and not glob_match("a*b*c", "axxbyy")
    assert glob_match("*", "") and glob_match("ab", "ab") and not glob_match("ab", "abc")
    assert not glob_match("a*a", "a")


@pytest.mark.parametrize("make", [rsa_key, ec_key])
def test_signatures(make) -> None:  # noqa: ANN001
    key = make()
    sa = ServiceAccountRef("default", "s-emoji")
    token = key.sign(projected_claims(sa))
    public = key.private.public_key()
    assert verify_signature(token, [public], ["RS256", "ES256"])["sub"] == "system:serviceaccount:default:s-emoji"
    with pytest.raises(TokenError):
        verify_signature(token, [make().private.public_key()], ["RS256", "ES256"])
    with pytest.raises(TokenError):
        verify_signature(unsigned(projected_claims(sa)), [public], ["RS256", "ES256"])
    with pytest.raises(TokenError):  # the algorithm must be allowed
        verify_signature(token, [public], ["PS256"])


def test_hmac_with_the_public_key_as_secret_is_refused() -> None:
    """The classic algorithm-confusion forgery: HS256 'signed' with the published public key."""
    key = rsa_key()
    sa = ServiceAccountRef("default", "s-emoji")

    def b64(data: bytes) -> str:
        return urlsafe_b64encode(data).decode().rstrip("=")
    signing_input = b64(json.dumps({"alg": "HS256"}).encode()) + "." + b64(json.dumps(projected_claims(sa)).encode())
    sig = hmac.new(key.public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + b64(sig)
    with pytest.raises(TokenError):
        verify_signature(forged, [key.private.public_key()], ["RS256", "HS256"])


def test_parse_and_times() -> None:
    with pytest.raises(TokenError, match="three parts"):
        parse_unverified("a.b")
    with pytest.raises(TokenError):
        parse_unverified("!!!.###.$$$")
    with pytest.raises(TokenError, match="invalid exp"):
        validate_times({"exp": "tomorrow"})
    with pytest.raises(TokenError, match="invalid exp"):
        validate_times({"exp": True})
    validate_times({})  # legacy tokens carry no times at all
    with pytest.raises(TokenError):
        validate_times({}, require_exp=True)


def test_token_fields() -> None:
    params = TokenParams()
    params.update(FieldData(TOKEN_FIELDS, {"policies": "A, b", "ttl": "1h", "token_bound_cidrs": ["10.0.0.0/8"],
                                           "token_type": "service"}, {}))
    assert params.token_policies == ["a", "b"] and params.token_ttl == 3600
    assert params.token_bound_cidrs == ["10.0.0.0/8"]
    auth = Auth()
    params.populate(auth)
    assert auth.policies == ["a", "b"] and auth.ttl == 3600 and auth.token_type == "service"
    assert remote_addr_allowed("10.1.2.3", params.token_bound_cidrs)
    assert not remote_addr_allowed("192.168.1.1", params.token_bound_cidrs)
    assert not remote_addr_allowed("garbage", params.token_bound_cidrs)
    for bad in ({"policies": ["a"], "token_policies": ["b"]}, {"token_bound_cidrs": ["nope"]},
                {"token_type": "weird"}, {"token_ttl": "2h", "token_max_ttl": "1h"}):
        with pytest.raises(InvalidRequest):
            TokenParams().update(FieldData(TOKEN_FIELDS, bad, {}))
    assert TokenParams.from_dict(params.to_dict()) == params


async def test_token_review_client_against_the_stand_in(cluster) -> None:  # noqa: ANN001
    sa = cluster.service_account("default", "s-emoji")
    token = cluster.projected_token(sa)
    got = await review(cluster.url, cluster.ca_pem, cluster.reviewer_token, token, [])
    assert (got.name, got.namespace, got.uid) == ("s-emoji", "default", sa.uid)
    assert cluster.reviews[-1]["spec"]["token"] == token
    with pytest.raises(ReviewError, match="lookup failed"):
        await review(cluster.url, cluster.ca_pem, cluster.reviewer_token, token, ["other-audience"])
    with pytest.raises(ReviewError, match="unauthorized"):
        await review(cluster.url, cluster.ca_pem, "not-a-token", token, [])
    with pytest.raises(ReviewError):  # TLS: an unknown CA is not trusted
        await review(cluster.url, "", cluster.reviewer_token, token, [])
    cluster.delete(sa)
    with pytest.raises(ReviewError, match="lookup failed"):
        await review(cluster.url, cluster.ca_pem, cluster.reviewer_token, token, [])
