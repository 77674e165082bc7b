"""Where the IdP's signing keys come from: static PEM keys, a JWKS URL or file, or OIDC discovery (then its JWKS).

Fetched keys are cached per URL for a few minutes; a token whose ``kid`` is not in the cached set triggers at most
one refetch a second, so key rotation at the IdP is picked up without letting bad tokens hammer it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson

from strongroom.auth.jwtutil import TokenError, load_public_key

CACHE_SECONDS = 300
REFETCH_MIN_SECONDS = 1
TIMEOUT = 10.0


class KeyFetchError(Exception):
    pass


@dataclass
class _Cached:
    fetched: float
    keys: list[tuple[str, Any]]  # (kid, public key)
    issuer: str = ""


@dataclass
class KeySource:
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _static: tuple[tuple[str, ...], list[Any]] = ((), [])
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def clear(self) -> None:
        self._cache.clear()
        self._static = ((), [])

    def static_keys(self, pems: list[str]) -> list[Any]:
        if self._static[0] != tuple(pems):
            self._static = (tuple(pems), [load_public_key(p) for p in pems])
        return self._static[1]

    async def keys(self, config: dict[str, Any], kid: str | None) -> tuple[list[Any], str]:
        """(candidate keys for ``kid``, the discovered issuer or '')."""
        if config.get("jwt_validation_pubkeys"):
            return self.static_keys(config["jwt_validation_pubkeys"]), ""
        jwks_file = config.get("jwks_file") or ""
        url = config.get("jwks_url") or config.get("oidc_discovery_url") or ""
        discovery = not config.get("jwks_url") and not jwks_file
        source = f"file:{jwks_file}" if jwks_file else url
        ca = (config.get("jwks_ca_pem") if not discovery else config.get("oidc_discovery_ca_pem")) or ""
        cached = self._cache.get(source)
        now = time.monotonic()
        stale = cached is None or now - cached.fetched > CACHE_SECONDS
        unknown_kid = cached is not None and kid is not None and all(k != kid for k, _ in cached.keys)
        if cached is None or stale or (unknown_kid and now - cached.fetched > REFETCH_MIN_SECONDS):
            async with self._lock:
                cached = self._cache.get(source)
                if cached is None or time.monotonic() - cached.fetched > REFETCH_MIN_SECONDS:
                    cached = await (read_file(jwks_file) if jwks_file else fetch(url, ca, discovery))
                    self._cache[source] = cached
        assert cached is not None
        matching = [key for k, key in cached.keys if kid is None or k == kid or not k]
        return matching, cached.issuer


def _verify(ca_pem: str) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else True


async def _get_json(client: httpx.AsyncClient, url: str) -> Any:
    resp = await client.get(url, headers={"Accept": "application/json"})
    if resp.status_code != 200:
        raise KeyFetchError(f"{url} answered {resp.status_code}")
    try:
        return resp.json()
    except ValueError:
        raise KeyFetchError(f"{url} did not return JSON") from None


async def fetch(url: str, ca_pem: str, discovery: bool) -> _Cached:
    try:
        async with httpx.AsyncClient(verify=_verify(ca_pem), timeout=TIMEOUT, follow_redirects=False) as client:
            issuer = ""
            jwks_url = url
            if discovery:
                doc = await _get_json(client, url.rstrip("/") + "/.well-known/openid-configuration")
                if not isinstance(doc, dict) or not isinstance(doc.get("jwks_uri"), str):
                    raise KeyFetchError("discovery document has no jwks_uri")
                issuer = str(doc.get("issuer", ""))
                if issuer.rstrip("/") != url.rstrip("/"):
                    raise KeyFetchError(f"oidc: issuer did not match the issuer returned by provider, expected "
                                        f"{url!r} got {issuer!r}")
                jwks_url = doc["jwks_uri"]
            jwks = await _get_json(client, jwks_url)
    except (httpx.HTTPError, ssl.SSLError, ValueError) as exc:
        raise KeyFetchError(f"fetching keys from {url} failed: {type(exc).__name__}") from None
    return _Cached(fetched=time.monotonic(), keys=_usable_keys(jwks), issuer=issuer)


async def read_file(path: str) -> _Cached:
    """A JWKS document kept on disk (an IdP whose keys are distributed out of band)."""
    try:
        jwks = orjson.loads(await asyncio.to_thread(Path(path).read_bytes))
    except (OSError, orjson.JSONDecodeError) as exc:
        raise KeyFetchError(f"reading keys from {path} failed: {type(exc).__name__}") from None
    return _Cached(fetched=time.monotonic(), keys=_usable_keys(jwks))


def _usable_keys(jwks: Any) -> list[tuple[str, Any]]:
    keys: list[tuple[str, Any]] = []
    for raw in (jwks.get("keys") if isinstance(jwks, dict) else None) or []:
        try:
            pyjwk = jwt.PyJWK(raw)
        except (jwt.PyJWTError, TokenError, ValueError, TypeError, KeyError):
            continue  # unusable or symmetric keys are skipped, as go-jose does
        if isinstance(pyjwk.key, bytes):
            continue
        keys.append((str(raw.get("kid", "")), pyjwk.key))
    if not keys:
        raise KeyFetchError("no usable keys in the JWKS")
    return keys
