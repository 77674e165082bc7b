"""Who is calling: the company IdP's OIDC ID token, verified against its JWKS, issuer and audience.

The checking is ``strongroom.auth.idp.IdpTokenVerifier``, shared with the staff proxy; this module turns the claims
into an ``Identity``, including the configured person claim that says which human the account belongs to.
"""

from __future__ import annotations

from strongroom.auth.idp import IdpTokenError, IdpTokenVerifier
from strongroom.broker.config import IdpConfig
from strongroom.broker.models import Identity


class AuthenticationError(Exception):
    pass


class IdpVerifier:
    def __init__(self, config: IdpConfig) -> None:
        self._config = config
        self._verifier = IdpTokenVerifier(
            issuer=config.issuer, audience=config.audience, algorithms=config.algorithms, jwks_url=config.jwks_url,
            leeway=30, required=("sub", "iat"),
        )

    def _identity(self, claims: dict[str, object]) -> Identity:
        groups = claims.get(self._config.groups_claim, [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise AuthenticationError("the identity token's groups claim is not a list of names")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("the identity token has no subject")
        person = ""
        if self._config.person_claim:
            raw = claims.get(self._config.person_claim)
            if isinstance(raw, bool) or not isinstance(raw, str | int) or not str(raw).strip():
                raise AuthenticationError(f"the identity token carries no {self._config.person_claim} claim, so the "
                                          "broker cannot tell which person it belongs to")
            person = str(raw).strip()
        email = claims.get("email") if claims.get("email_verified", True) is not False else ""
        return Identity(
            issuer=str(claims["iss"]),
            subject=subject,
            name=str(claims.get("preferred_username") or claims.get("name") or ""),
            email=str(email or ""),
            groups=tuple(groups),
            person=person,
        )

    async def identify(self, authorization: str | None) -> Identity:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthenticationError("missing bearer identity token")
        try:
            claims = await self._verifier.verify(authorization[7:].strip())
        except IdpTokenError as exc:
            if exc.reason == "keys":
                raise AuthenticationError("cannot reach the identity provider's key set") from None
            raise AuthenticationError("the identity token is not valid") from None
        return self._identity(claims)
