"""Who is calling: the company IdP's OIDC ID token, verified against its JWKS, issuer and audience."""

from __future__ import annotations

import asyncio

import jwt

from strongroom.broker.config import IdpConfig
from strongroom.broker.models import Identity


class AuthenticationError(Exception):
    pass


class IdpVerifier:
    def __init__(self, config: IdpConfig) -> None:
        self._config = config
        self._jwks = jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=300, timeout=10)

    def _verify(self, token: str) -> Identity:
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(self._config.algorithms),
                audience=self._config.audience,
                issuer=self._config.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.PyJWKClientConnectionError:
            raise AuthenticationError("cannot reach the identity provider's key set") from None
        except jwt.PyJWTError:
            raise AuthenticationError("the identity token is not valid") from None
        groups = claims.get(self._config.groups_claim, [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise AuthenticationError("the identity token's groups claim is not a list of names")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("the identity token has no subject")
        email = claims.get("email") if claims.get("email_verified", True) is not False else ""
        return Identity(
            issuer=claims["iss"],
            subject=subject,
            name=str(claims.get("preferred_username") or claims.get("name") or ""),
            email=str(email or ""),
            groups=tuple(groups),
        )

    async def identify(self, authorization: str | None) -> Identity:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthenticationError("missing bearer identity token")
        token = authorization[7:].strip()
        if not token or len(token) > 16_384:
            raise AuthenticationError("the identity token is not valid")
        return await asyncio.to_thread(self._verify, token)
