"""Verifies the company IdP's tokens: signature against its JWKS, issuer, audience, expiry. Nothing else passes."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from strongroom.proxy.config import IdpConfig

_REFRESH_MIN_INTERVAL = 30.0  # seconds between JWKS refetches forced by an unknown key id


class NotAuthenticated(Exception):
    """The request carries no staff token, or one that does not verify. The message is safe to return."""


@dataclass(frozen=True)
class StaffUser:
    id: str
    claims: dict[str, Any]
    expires_at: float


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


class IdpVerifier:
    def __init__(self, cfg: IdpConfig, http: httpx.AsyncClient | None = None) -> None:
        self.cfg = cfg
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._keys: dict[str, Any] = {}
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self, force: bool) -> None:
        async with self._lock:
            if self._keys and (not force or time.monotonic() - self._fetched < _REFRESH_MIN_INTERVAL):
                return
            if self.cfg.jwks_file:
                doc = json.loads(await asyncio.to_thread(_read_text, self.cfg.jwks_file))
            else:
                assert self.cfg.jwks_url
                resp = await self._http.get(self.cfg.jwks_url)
                resp.raise_for_status()
                doc = resp.json()
            keys = {}
            for k in jwt.PyJWKSet.from_dict(doc).keys:
                keys[k.key_id or ""] = k
            self._keys, self._fetched = keys, time.monotonic()

    async def _key_for(self, kid: str) -> Any:
        try:
            await self._refresh(force=False)
            if kid not in self._keys:
                await self._refresh(force=True)
        except (httpx.HTTPError, OSError, ValueError, jwt.PyJWTError):
            raise NotAuthenticated("cannot fetch the identity provider's keys") from None
        key = self._keys.get(kid) or (self._keys.get("") if len(self._keys) == 1 else None)
        if key is None:
            raise NotAuthenticated("staff token signed by an unknown key")
        return key

    async def verify(self, token: str) -> StaffUser:
        cfg = self.cfg
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise NotAuthenticated("staff token is not a JWT") from None
        if header.get("alg") not in cfg.algorithms:
            raise NotAuthenticated("staff token uses a disallowed algorithm")
        key = await self._key_for(str(header.get("kid") or ""))
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(cfg.algorithms),
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway,
                options={"require": ["exp", "iss", "aud", cfg.user_claim]},
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("staff token has expired") from None
        except jwt.InvalidIssuerError:
            raise NotAuthenticated("staff token is from a foreign issuer") from None
        except jwt.InvalidAudienceError:
            raise NotAuthenticated("staff token is not for this audience") from None
        except jwt.PyJWTError:
            raise NotAuthenticated("staff token does not verify") from None
        user = claims.get(cfg.user_claim)
        if not isinstance(user, str | int) or not str(user):
            raise NotAuthenticated("staff token names no user")
        return StaffUser(id=str(user), claims=claims, expires_at=float(claims["exp"]))

    async def aclose(self) -> None:
        await self._http.aclose()
