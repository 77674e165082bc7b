"""The one verifier for the company IdP's ID tokens, shared by the staff proxy, the UI and the MPA broker.

It is the jwt auth method's machinery with a fixed policy: keys from the same ``KeySource`` (JWKS URL or file,
cached, refetched for an unknown ``kid`` at most once a second), the signature checked by the same
``verify_signature`` (asymmetric algorithms only), then issuer, audience, expiry (required) and any claims the caller
requires. The jwt auth method applies a Vault role's rules on top of the same two building blocks instead.
Failures raise ``IdpTokenError`` whose ``reason`` lets each caller word its own message; none includes the token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strongroom.auth.jwt.keys import KeyFetchError, KeySource
from strongroom.auth.jwtutil import TokenError, audiences, parse_unverified, validate_times, verify_signature

MAX_TOKEN_BYTES = 16_384


class IdpTokenError(TokenError):
    """Why a token was refused: ``reason`` is one of malformed, algorithm, keys, unknown-key, signature, issuer,
    audience, expired, time (not yet valid, no expiry), claims."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class IdpTokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str],
        jwks_url: str | None = None,
        jwks_file: str | None = None,
        jwks_ca_pem: str = "",
        leeway: int = 30,
        required: Sequence[str] = (),
    ) -> None:
        if not (jwks_url or jwks_file):
            raise ValueError("an IdP verifier needs jwks_url or jwks_file")
        self.issuer = issuer
        self.audience = audience
        self.algorithms = tuple(algorithms)
        self.leeway = leeway
        self.required = tuple(required)
        self._source = {"jwks_url": jwks_url or "", "jwks_file": jwks_file or "", "jwks_ca_pem": jwks_ca_pem}
        self._keys = KeySource()

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, if it is a current token of this IdP for this audience; else IdpTokenError."""
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise IdpTokenError("malformed", "the token is empty or too long")
        try:
            header, _ = parse_unverified(token)
        except TokenError as exc:
            raise IdpTokenError("malformed", str(exc)) from None
        if header.get("alg") not in self.algorithms:
            raise IdpTokenError("algorithm", "the token uses a disallowed algorithm")
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        try:
            keys, _ = await self._keys.keys(self._source, kid)
        except KeyFetchError as exc:
            raise IdpTokenError("keys", str(exc)) from None
        if not keys:
            raise IdpTokenError("unknown-key", "the token is signed by an unknown key")
        try:
            claims = verify_signature(token, keys, self.algorithms)
        except TokenError as exc:
            raise IdpTokenError("signature", str(exc)) from None
        if claims.get("iss") != self.issuer:
            raise IdpTokenError("issuer", "the token is from a foreign issuer")
        try:
            auds = audiences(claims)
        except TokenError:
            auds = []
        if self.audience not in auds:
            raise IdpTokenError("audience", "the token is not for this audience")
        try:
            validate_times(claims, leeway=self.leeway, require_exp=True)
        except TokenError as exc:
            raise IdpTokenError("expired" if "expired" in str(exc) else "time", str(exc)) from None
        missing = [name for name in self.required if claims.get(name) in (None, "")]
        if missing:
            raise IdpTokenError("claims", f"the token lacks the {', '.join(missing)} claim")
        return claims
