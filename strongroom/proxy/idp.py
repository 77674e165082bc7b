"""Verifies the company IdP's tokens: signature against its JWKS, issuer, audience, expiry. Nothing else passes.

The checking itself is ``strongroom.auth.idp.IdpTokenVerifier``, shared with the MPA broker; this module words its
refusals for staff and turns the claims into a ``StaffUser``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from strongroom.auth.idp import IdpTokenError, IdpTokenVerifier
from strongroom.proxy.config import IdpConfig

_MESSAGES = {
    "malformed": "staff token is not a JWT",
    "algorithm": "staff token uses a disallowed algorithm",
    "keys": "cannot fetch the identity provider's keys",
    "unknown-key": "staff token signed by an unknown key",
    "expired": "staff token has expired",
    "issuer": "staff token is from a foreign issuer",
    "audience": "staff token is not for this audience",
    "claims": "staff token names no user",
}


class NotAuthenticated(Exception):
    """The request carries no staff token, or one that does not verify. The message is safe to return."""


@dataclass(frozen=True)
class StaffUser:
    id: str
    claims: dict[str, Any]
    expires_at: float


class IdpVerifier:
    def __init__(self, cfg: IdpConfig, http: httpx.AsyncClient | None = None) -> None:
        self.cfg = cfg
        self._verifier = IdpTokenVerifier(
            issuer=cfg.issuer, audience=cfg.audience, algorithms=cfg.algorithms, jwks_url=cfg.jwks_url,
            jwks_file=cfg.jwks_file, leeway=cfg.leeway, required=(cfg.user_claim,),
        )
        self._http = http  # kept for callers that hand one in; key fetching uses the shared verifier's own client

    async def verify(self, token: str) -> StaffUser:
        try:
            claims = await self._verifier.verify(token)
        except IdpTokenError as exc:
            raise NotAuthenticated(_MESSAGES.get(exc.reason, "staff token does not verify")) from None
        user = claims.get(self.cfg.user_claim)
        if not isinstance(user, str | int) or isinstance(user, bool) or not str(user):
            raise NotAuthenticated("staff token names no user")
        return StaffUser(id=str(user), claims=claims, expires_at=float(claims["exp"]))

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
