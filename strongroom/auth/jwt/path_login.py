"""auth/<mount>/login: exchange an IdP JWT for a token tied to the staff user (the user claim) and their groups.

Order and messages follow Vault's jwt plugin: signature (static keys, JWKS or discovery) → time claims with leeway →
issuer → subject → audience → bound claims → user claim → groups → metadata. Every refusal is a 400 with Vault's
message (403 for a login from outside the role's bound CIDRs); the token itself never appears in a message or log.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from strongroom.auth.jwt.claims import extract_metadata, get_claim, groups_from, validate_bound_claims
from strongroom.auth.jwt.keys import KeyFetchError
from strongroom.auth.jwtutil import (
    ASYMMETRIC_ALGS,
    TokenError,
    audiences,
    parse_unverified,
    validate_times,
    verify_signature,
)
from strongroom.auth.token_fields import TokenParams, remote_addr_allowed
from strongroom.core.logical import Auth, EntityAlias, InvalidRequest, Operation, PermissionDenied, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.auth.jwt.backend import JWTBackend

FIELDS = {
    "role": Field(FieldType.STRING, "The role to log in against (default: the config's default_role)."),
    "jwt": Field(FieldType.STRING, "The signed JWT to validate."),
}


def _leeway(role: dict[str, Any], name: str, default: int) -> int:
    value = int(role.get(name, default))
    return 0 if value < 0 else (value or default)


def _fill_times(claims: dict[str, Any], role: dict[str, Any]) -> dict[str, Any]:
    """Vault's rule: a token needs at least one of iat/nbf/exp; missing exp or nbf are derived with leeway."""
    iat, nbf, exp = claims.get("iat"), claims.get("nbf"), claims.get("exp")
    if iat is None and nbf is None and exp is None:
        raise TokenError("no issue time, notbefore, or expiration time encoded in token")
    out = dict(claims)
    for name in ("iat", "nbf", "exp"):
        value = out.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TokenError(f"invalid {name} claim")
    if exp is None:
        start = max(v for v in (iat, nbf) if v is not None)
        out["exp"] = start + _leeway(role, "expiration_leeway", 150)
    if nbf is None:
        out["nbf"] = iat if iat is not None else out["exp"] - _leeway(role, "not_before_leeway", 150)
    return out


async def verify(b: JWTBackend, config: dict[str, Any], role: dict[str, Any], token: str) -> dict[str, Any]:
    """Signature and standard claims; returns all claims. Raises InvalidRequest with Vault's messages."""
    try:
        header, _ = parse_unverified(token)
    except TokenError as exc:
        raise InvalidRequest(f"error parsing token: {exc}") from None
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    try:
        keys, discovered_issuer = await b.keys.keys(config, kid)
    except KeyFetchError as exc:
        raise InvalidRequest(f"error fetching jwks keyset: {exc}") from None
    algs = config.get("jwt_supported_algs") or (["RS256"] if config.get("oidc_discovery_url") else ASYMMETRIC_ALGS)
    try:
        claims = verify_signature(token, keys, algs)
    except TokenError as exc:
        if config.get("jwt_validation_pubkeys"):
            raise InvalidRequest("no known key successfully validated the token signature") from None
        raise InvalidRequest(f"error verifying token: {exc}") from None

    try:
        timed = _fill_times(claims, role)
    except TokenError as exc:
        raise InvalidRequest(str(exc)) from None
    aud = audiences(claims) if isinstance(claims.get("aud"), str | list) else []
    bound_aud = role.get("bound_audiences") or []
    if aud and not bound_aud:
        raise InvalidRequest("audience claim found in JWT but no audiences bound to the role")
    expected_iss = config.get("bound_issuer") or discovered_issuer
    if expected_iss and claims.get("iss") != expected_iss:
        raise InvalidRequest("error validating claims: go-jose/go-jose/jwt: validation failed, invalid issuer "
                             "claim (iss)")
    if role.get("bound_subject") and claims.get("sub") != role["bound_subject"]:
        raise InvalidRequest("error validating claims: go-jose/go-jose/jwt: validation failed, invalid subject "
                             "claim (sub)")
    try:
        validate_times(timed, leeway=_leeway(role, "clock_skew_leeway", 60), now=time.time())
    except TokenError as exc:
        raise InvalidRequest(f"error validating claims: {exc}") from None
    if bound_aud and not set(bound_aud) & set(aud):
        raise InvalidRequest("error validating claims: aud claim does not match any bound audience")
    try:
        validate_bound_claims(role.get("bound_claims") or {}, claims, role.get("bound_claims_type") == "glob")
    except TokenError as exc:
        raise InvalidRequest(f"error validating claims: {exc}") from None
    return claims


def paths(b: JWTBackend) -> list[Path]:
    async def login(req: Request, fd: FieldData) -> Response:
        config = await b.config()
        if config is None:
            raise InvalidRequest("could not load configuration")
        role_name = (fd.get("role") or config.get("default_role") or "").lower()
        if not role_name:
            raise InvalidRequest("missing role")
        role = await b.role(role_name)
        if role is None:
            raise InvalidRequest(f'role "{role_name}" could not be found')
        if role.get("role_type") == "oidc":
            raise InvalidRequest("role with oidc role_type is not allowed")
        token = fd.get("jwt") or ""
        if not token:
            raise InvalidRequest("missing token")
        params = TokenParams.from_dict(role.get("token"))
        if not remote_addr_allowed(req.remote_addr, params.token_bound_cidrs):
            raise PermissionDenied()

        claims = await verify(b, config, role, token)
        try:
            user = get_claim(claims, role["user_claim"], bool(role.get("user_claim_json_pointer")) or None)
            if user is None:
                raise TokenError(f'claim "{role["user_claim"]}" not found in token')
            if not isinstance(user, str) or not user:
                raise TokenError(f'claim "{role["user_claim"]}" could not be converted to string')
            metadata = extract_metadata(claims, role.get("claim_mappings") or {})
            groups = groups_from(claims, role["groups_claim"]) if role.get("groups_claim") else []
        except TokenError as exc:
            raise InvalidRequest(str(exc)) from None

        auth = Auth(
            display_name=user,
            alias=EntityAlias(name=user, metadata=dict(metadata)),
            group_aliases=groups,
            internal_data={"role": role_name},
            metadata={"role": role_name, **metadata},
        )
        params.populate(auth)
        return Response(auth=auth)

    return [Path(r"login", {Operation.UPDATE: login}, FIELDS, unauthenticated=True,
                 summary="Authenticate with a JWT from the configured IdP.")]
