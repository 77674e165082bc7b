"""The one IdP token verifier (staff proxy, UI, MPA broker) on the jwt auth method's key source: what it refuses, and
that key rotation at the IdP is picked up whether the keys come from a URL or a file."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest

from strongroom.auth.idp import IdpTokenError, IdpTokenVerifier

from .idp import AUDIENCE, Idp, IdpDocuments


@pytest.fixture(scope="module")
def idp_docs():
    idp = Idp()
    docs = IdpDocuments(idp)
    yield idp, docs
    docs.stop()


def _verifier(idp: Idp, **kw) -> IdpTokenVerifier:
    kw.setdefault("jwks_url", None)
    return IdpTokenVerifier(issuer=idp.issuer, audience=AUDIENCE, algorithms=("RS256", "ES256"), **kw)


async def _reason(verifier: IdpTokenVerifier, token: str) -> str:
    with pytest.raises(IdpTokenError) as caught:
        await verifier.verify(token)
    assert token not in str(caught.value)
    return caught.value.reason


async def test_good_token_and_every_refusal(idp_docs):
    idp, docs = idp_docs
    v = _verifier(idp, jwks_url=f"{docs.url}/keys", required=("groups",))
    claims = await v.verify(idp.token("alice", ["eng"]))
    assert claims["sub"] == "alice" and claims["groups"] == ["eng"]
    assert await _reason(v, idp.token("alice", ["eng"], ttl=-300)) == "expired"
    assert await _reason(v, idp.token("alice", ["eng"], now=time.time() + 3600)) == "time"
    assert await _reason(v, idp.token("alice", ["eng"], issuer="https://evil.example")) == "issuer"
    assert await _reason(v, idp.token("alice", ["eng"], audience="someone-else")) == "audience"
    assert await _reason(v, idp.token("alice")) == "claims"  # no groups claim
    assert await _reason(v, "not-a-jwt") == "malformed"
    hs = jwt.encode({"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "exp": time.time() + 60}, "k" * 32,
                    algorithm="HS256")
    assert await _reason(v, hs) == "algorithm"  # a symmetric algorithm is never accepted
    head, body, sig = idp.token("alice", ["eng"]).split(".")
    forged = jwt.utils.base64url_encode(json.dumps(
        jwt.decode(f"{head}.{body}.{sig}", options={"verify_signature": False}) | {"sub": "admin"}).encode()).decode()
    assert await _reason(v, f"{head}.{forged}.{sig}") == "signature"


async def test_rotation_is_picked_up_from_a_url_and_from_a_file(idp_docs, tmp_path):
    idp, docs = idp_docs
    keys_file = tmp_path / "jwks.json"
    keys_file.write_text(json.dumps(idp.jwks()))
    by_url, by_file = _verifier(idp, jwks_url=f"{docs.url}/keys"), _verifier(idp, jwks_file=str(keys_file))
    for v in (by_url, by_file):
        assert (await v.verify(idp.token("bob")))["sub"] == "bob"
    old = idp.token("bob")
    idp.rotate()
    keys_file.write_text(json.dumps(idp.jwks()))
    fresh = idp.token("carol")
    for v in (by_url, by_file):
        # An unknown kid makes the source refetch, at most once a second: poll until the new key is in.
        assert (await _eventually(v, fresh))["sub"] == "carol"
        assert await _reason(v, old) == "unknown-key"


async def _eventually(v: IdpTokenVerifier, token: str) -> dict:
    deadline = time.monotonic() + 10.0
    while True:
        try:
            return await v.verify(token)
        except IdpTokenError as exc:
            if exc.reason != "unknown-key" or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


async def test_unreachable_key_set_is_its_own_reason(tmp_path):
    v = _verifier(Idp(), jwks_file=str(tmp_path / "missing.json"))
    assert await _reason(v, Idp().token("alice")) == "keys"
    with pytest.raises(ValueError):
        IdpTokenVerifier(issuer="i", audience="a", algorithms=("RS256",))
