"""auth/<mount>/login: exchange a ServiceAccount JWT for a token, as Vault's kubernetes auth method does.

The token's signature is checked locally when ``pem_keys`` are configured; otherwise (and, even with ``pem_keys``,
for tokens without an expiry — legacy secret tokens live until their Secret is deleted, and only the API server
knows whether it still exists) the TokenReview API at ``kubernetes_host`` must confirm the token and return the same
ServiceAccount name, namespace and UID. Expiry, not-before, issued-at, audience, name and namespace are always
checked locally. Refusals use Vault's messages: 400 for a malformed request or unknown role, 403 otherwise.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from strongroom.auth.jwtutil import (
    KUBERNETES_ALGS,
    TokenError,
    glob_match,
    parse_unverified,
    validate_times,
    verify_signature,
)
from strongroom.auth.kubernetes.jwt_claims import LEGACY_ISSUER, ServiceAccount, service_account
from strongroom.auth.kubernetes.token_review import ReviewError, review
from strongroom.auth.token_fields import TokenParams, remote_addr_allowed
from strongroom.core.logical import Auth, EntityAlias, InvalidRequest, Operation, PermissionDenied, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import NAME

if TYPE_CHECKING:
    from strongroom.auth.kubernetes.backend import KubernetesBackend

log = logging.getLogger("strongroom.auth.kubernetes")

FIELDS = {
    "role": Field(FieldType.STRING, "Name of the role against which the login is being attempted."),
    "jwt": Field(FieldType.STRING, "A signed JWT for authenticating a service account."),
}
_ROLE_NAME = re.compile(NAME)
# names that cannot be a real ServiceAccount or namespace and would only ever serve to bend a templated path
_NEVER_VALID = ("", ".", "..")


def _allowed(patterns: list[str], value: str) -> bool:
    if value in _NEVER_VALID:
        return False
    return patterns == ["*"] or any(glob_match(p, value) for p in patterns)


def check_claims(claims: dict[str, Any], role: dict[str, Any], config: dict[str, Any]) -> ServiceAccount:
    """Issuer, times, audience, then the ServiceAccount's name and namespace against the role (403 on failure)."""
    try:
        if not config.get("disable_iss_validation", True):
            expected = config.get("issuer") or LEGACY_ISSUER
            if claims.get("iss") != expected:
                raise TokenError("invalid issuer (iss) claim")
        validate_times(claims)
        sa = service_account(claims)
        if role.get("audience") and role["audience"] not in sa.audiences:
            raise TokenError("invalid audience (aud) claim: audience claim does not match any expected audience")
    except TokenError as exc:
        raise PermissionDenied(str(exc)) from None
    if not _allowed(role["bound_service_account_names"], sa.name):
        raise PermissionDenied("service account name not authorized")
    if not _allowed(role["bound_service_account_namespaces"], sa.namespace):
        raise PermissionDenied("namespace not authorized")
    return sa


def paths(b: KubernetesBackend) -> list[Path]:
    async def login(req: Request, fd: FieldData) -> Response:
        role_name = fd.get("role") or ""
        if not role_name:
            raise InvalidRequest("missing role")
        token = fd.get("jwt") or ""
        if not token:
            raise InvalidRequest("missing jwt")
        role = await b.role(role_name) if _ROLE_NAME.fullmatch(role_name) else None
        if role is None:
            raise InvalidRequest(f'invalid role name "{role_name}"')
        params = TokenParams.from_dict(role.get("token"))
        if not remote_addr_allowed(req.remote_addr, params.token_bound_cidrs):
            raise PermissionDenied()
        config = await b.config()
        if config is None:
            raise InvalidRequest("could not load backend configuration")

        try:
            header, claims = parse_unverified(token)
            if header.get("alg") not in KUBERNETES_ALGS:
                raise TokenError("unsupported signing algorithm")
            keys = b.public_keys(config)
            if keys:
                claims = verify_signature(token, keys, KUBERNETES_ALGS)
        except TokenError as exc:
            log.info("kubernetes login refused: %s", exc)
            raise PermissionDenied() from None
        sa = check_claims(claims, role, config)
        alias_name = sa.uid if role.get("alias_name_source", "serviceaccount_uid") == "serviceaccount_uid" \
            else f"{sa.namespace}/{sa.name}"

        if not keys or claims.get("exp") is None:
            await _review(b, config, token, role, sa)

        identity = {
            "service_account_uid": sa.uid,
            "service_account_name": sa.name,
            "service_account_namespace": sa.namespace,
            "service_account_secret_name": sa.secret_name,
        }
        auth = Auth(
            display_name=f"{sa.namespace}-{sa.name}",
            alias=EntityAlias(name=alias_name, metadata=dict(identity)),
            internal_data={"role": role_name},
            metadata={**identity, "role": role_name},
        )
        params.populate(auth)
        return Response(auth=auth)

    return [Path(r"login", {Operation.UPDATE: login}, FIELDS, unauthenticated=True,
                 summary="Authenticate a Kubernetes ServiceAccount with its JWT.")]


async def _review(b: KubernetesBackend, config: dict[str, Any], token: str, role: dict[str, Any],
                  sa: ServiceAccount) -> None:
    ca, reviewer = b.local_defaults(config)
    wanted = [role["audience"]] if role.get("audience") else sa.audiences
    try:
        client = await b.http_client(ca)
        reviewed = await review(config["kubernetes_host"], ca, reviewer or token, token, wanted, client=client)
    except ReviewError as exc:
        log.info("kubernetes login refused for %s/%s: %s", sa.namespace, sa.name, exc)
        raise PermissionDenied() from None
    if (reviewed.name, reviewed.namespace, reviewed.uid) != (sa.name, sa.namespace, sa.uid):
        log.info("kubernetes login refused for %s/%s: TokenReview names a different ServiceAccount",
                 sa.namespace, sa.name)
        raise PermissionDenied()

