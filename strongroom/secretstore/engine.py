"""The library's logic without I/O: login, token cache and renewal, retries, error mapping.

Each operation is a generator that yields the I/O it needs (an HTTP request or a sleep) and receives the result, so
the synchronous and the asyncio clients run exactly the same logic with their own ``httpx`` client and sleep.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import httpx

from strongroom.backoff import FULL_JITTER, delay
from strongroom.secretstore.errors import (
    ConfigurationError,
    PermissionDenied,
    SecretNotFound,
    SecretStoreError,
    Unavailable,
)
from strongroom.secretstore.identity import PodIdentity, pod_identity, read_token
from strongroom.secretstore.settings import Settings

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_jitter = random.SystemRandom()
# renew the cached token once this share of its TTL has passed
_RENEW_AT = 0.8


@dataclass(frozen=True)
class HttpCall:
    method: str
    path: str  # under /v1/
    json: dict[str, Any] | None = None
    token: str | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


Action = HttpCall | Sleep
# what an HttpCall yields back: the response, or the transport error that stopped it
Outcome = httpx.Response | httpx.TransportError
Op = Generator[Action, Any, Any]


@dataclass
class _CachedToken:
    value: str
    obtained: float
    ttl: int
    renewable: bool

    def fresh(self, now: float) -> bool:
        return self.ttl == 0 or now < self.obtained + self.ttl * _RENEW_AT

    def alive(self, now: float) -> bool:
        return self.ttl == 0 or now < self.obtained + self.ttl - 2


def check_name(name: str, what: str = "name") -> str:
    parts = name.split("/")
    if not name or any(not _SEGMENT.fullmatch(p) for p in parts):
        raise ValueError(f"invalid secret {what} {name!r}: use letters, digits, '.', '_', '-' and '/' between parts")
    return name


def backoff(attempt: int, base: float, cap: float) -> float:
    """Full-jitter exponential backoff: spreads the retries of many pods after an outage."""
    return delay(attempt, base=base, cap=cap, jitter=FULL_JITTER, uniform=_jitter.uniform)


def _errors(resp: httpx.Response) -> str:
    try:
        errs = resp.json().get("errors") or []
        return "; ".join(str(e).strip() for e in errs)[:200] or f"HTTP {resp.status_code}"
    except ValueError:
        return f"HTTP {resp.status_code}"


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._token: _CachedToken | None = None
        self._identity: PodIdentity | None = None

    # --- identity ----------------------------------------------------------------------------------------------

    @property
    def identity(self) -> PodIdentity:
        if self._identity is None:
            self._identity = pod_identity(self.settings.token_file, self.settings.namespace_file)
        return self._identity

    def secret_path(self, name: str, version: str) -> str:
        """The logical path a person reads in the docs: ``secret/k8s/<ns>/<sa>/<name>/<version>``."""
        check_name(name)
        if "/" in version:
            raise ValueError(f"invalid version {version!r}: a version is one path segment")
        check_name(version, "version")
        ident = self.identity
        return f"{self.settings.kv_mount}/k8s/{ident.namespace}/{ident.service_account}/{name}/{version}"

    def api_path(self, name: str, version: str) -> str:
        logical = self.secret_path(name, version)
        mount, rest = logical.split("/", 1)
        return f"{mount}/data/{rest}"

    # --- tokens ------------------------------------------------------------------------------------------------

    def forget_token(self) -> None:
        self._token = None

    def _login(self, describe: str) -> Op:
        s = self.settings
        jwt_token = read_token(s.token_file)
        for attempt in range(s.max_attempts):
            out: Outcome = yield HttpCall("POST", f"auth/{s.auth_mount}/login", {"role": s.role, "jwt": jwt_token})
            if isinstance(out, httpx.Response):
                if out.status_code == 200:
                    auth = (out.json() or {}).get("auth") or {}
                    if not auth.get("client_token"):
                        raise Unavailable(describe, "login returned no token")
                    self._token = _CachedToken(
                        auth["client_token"],
                        time.monotonic(),
                        int(auth.get("lease_duration") or 0),
                        bool(auth.get("renewable")),
                    )
                    return self._token.value
                if not _transient(out.status_code):
                    raise PermissionDenied(describe, f"kubernetes login refused ({_errors(out)})")
                detail = f"login failed: {_errors(out)}"
            else:
                detail = f"login failed: {type(out).__name__}"
            if attempt + 1 < s.max_attempts:
                yield Sleep(backoff(attempt, s.backoff_base, s.backoff_cap))
        raise Unavailable(describe, detail)

    def _renew(self, cached: _CachedToken) -> Op:
        out: Outcome = yield HttpCall("POST", "auth/token/renew-self", {}, cached.value)
        if isinstance(out, httpx.Response) and out.status_code == 200:
            auth = (out.json() or {}).get("auth") or {}
            ttl = int(auth.get("lease_duration") or 0)
            # a renewal that gains little (max TTL reached) is not worth keeping; log in again instead
            if ttl > 60:
                self._token = _CachedToken(cached.value, time.monotonic(), ttl, bool(auth.get("renewable")))
                return True
        return False

    def token(self, describe: str = "login") -> Op:
        now = time.monotonic()
        cached = self._token
        if cached is not None and cached.fresh(now):
            return cached.value
        if cached is not None and cached.alive(now) and cached.renewable and (yield from self._renew(cached)):
            return cached.value
        return (yield from self._login(describe))

    # --- requests ----------------------------------------------------------------------------------------------

    def call(self, method: str, path: str, json: dict[str, Any] | None = None, describe: str | None = None) -> Op:
        """An authenticated request with retries; returns the decoded body (or None for 204)."""
        s = self.settings
        describe = describe or path
        relogged = False
        detail = "no attempt made"
        attempt = 0
        while attempt < s.max_attempts:
            had_token = self._token is not None
            token = yield from self.token(describe)
            out: Outcome = yield HttpCall(method, path, json, token)
            if isinstance(out, httpx.Response):
                status = out.status_code
                if status == 204:
                    return None
                if status < 300:
                    try:
                        return out.json()
                    except ValueError:
                        raise Unavailable(describe, "the server sent a body that is not JSON") from None
                if status == 404:
                    raise SecretNotFound(describe)
                if status == 403:
                    # A cached token may have expired or been revoked: log in once more before calling it a denial.
                    if had_token and not relogged:
                        relogged = True
                        self.forget_token()
                        continue
                    raise PermissionDenied(describe)
                if not _transient(status):
                    raise SecretStoreError(f"request for {describe} refused: {_errors(out)}")
                detail = _errors(out)
            else:
                detail = f"{type(out).__name__} talking to {s.addr}"
            attempt += 1
            if attempt < s.max_attempts:
                yield Sleep(backoff(attempt - 1, s.backoff_base, s.backoff_cap))
        raise Unavailable(describe, detail)

    def read(self, name: str, version: str) -> Op:
        describe = self.secret_path(name, version)
        body = yield from self.call("GET", self.api_path(name, version), describe=describe)
        data = ((body or {}).get("data") or {}).get("data")
        if not isinstance(data, dict) or "data" not in data:
            raise SecretNotFound(describe)
        return data["data"]

    def ready(self) -> Op:
        try:
            yield from self.call("GET", "auth/token/lookup-self", describe="auth/token/lookup-self")
        except (SecretStoreError, ValueError):
            return False
        return True


def as_bytes(value: Any, describe: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    raise SecretStoreError(f"secret at {describe} is not a string")


def as_string(value: Any, describe: str) -> str:
    if isinstance(value, str):
        return value
    raise SecretStoreError(f"secret at {describe} is not a string")


def as_json(value: Any, describe: str) -> Any:
    import json

    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            # never echo the value: the parser's message would quote it
            raise SecretStoreError(f"secret at {describe} is not valid JSON") from None
    return value


__all__ = ["ConfigurationError", "Engine", "HttpCall", "Sleep", "check_name"]
