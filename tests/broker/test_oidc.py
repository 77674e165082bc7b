"""The Kubernetes-admin kind: tokens a Kubernetes API server configured with the broker as OIDC issuer accepts."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest


def _verify_like_kube_apiserver(addr: str, token: str, issuer: str, client_id: str) -> dict:
    """What kube-apiserver does with --oidc-issuer-url/--oidc-client-id: discovery → jwks_uri → verify iss/aud/exp."""
    discovery = httpx.get(f"{addr}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == issuer
    assert discovery["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    # the public URL is not resolvable here, so fetch the same path from the broker's loopback address
    jwks = httpx.get(f"{addr}/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(token)
    assert header["alg"] in discovery["id_token_signing_alg_values_supported"]
    (key,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    public = jwt.PyJWK(key).key
    return jwt.decode(token, public, algorithms=[header["alg"]], audience=client_id, issuer=issuer,
                      options={"require": ["exp", "iat", "sub", "iss", "aud"]})


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_minted_token_verifies_against_published_jwks(make_broker, alg):
    broker = make_broker(alg=alg)
    req = broker.request("alice", duration="10m")
    broker.review("bob", req["id"])
    cred = broker.fetch("alice", req["id"]).json()["credential"]
    claims = _verify_like_kube_apiserver(broker.addr, cred["id_token"], "https://mpa.bank.test", "kubernetes")
    assert jwt.get_unverified_header(cred["id_token"])["alg"] == alg
    assert claims["sub"] == "alice@bank.test"
    assert claims["groups"] == ["mpa:cluster-admin"]
    assert claims["mpa_request_id"] == req["id"]
    assert claims["mpa_approvers"] == ["bob@bank.test"]
    assert claims["exp"] - claims["iat"] <= 600
    assert claims["exp"] <= time.time() + 600 + 2


def test_token_signed_by_another_key_is_not_accepted(make_broker):
    from strongroom.broker.oidc import OidcIssuer, generate_signing_key

    broker = make_broker()
    rogue = OidcIssuer(generate_signing_key("RS256"), "https://mpa.bank.test")
    rogue.kid = httpx.get(f"{broker.addr}/.well-known/jwks.json").json()["keys"][0]["kid"]  # claim to be the broker
    token, _ = rogue.mint({"sub": "mallory@bank.test", "aud": "kubernetes", "groups": ["mpa:cluster-admin"]}, 600)
    with pytest.raises(jwt.InvalidSignatureError):
        _verify_like_kube_apiserver(broker.addr, token, "https://mpa.bank.test", "kubernetes")
