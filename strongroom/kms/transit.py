"""The plugin's side of the transit API: one named key, reached with a token the plugin keeps valid.

Authentication, token renewal, retries and error mapping are the ``strongroom.secretstore`` client's (one mechanism
for every Strongroom client): a Kubernetes login with the plugin's ServiceAccount token, re-done when the token nears
its end, or a token read from a file (re-read whenever the server refuses the one held, so a rotated file is picked up).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import httpx

from strongroom.secretstore.client import Client
from strongroom.secretstore.engine import Engine, HttpCall, _CachedToken
from strongroom.secretstore.errors import PermissionDenied, Unavailable
from strongroom.secretstore.identity import read_token
from strongroom.secretstore.settings import Settings

# Vault's transit ciphertext: "vault:v<version>:<base64>"
_CIPHERTEXT = re.compile(r"vault:v([1-9][0-9]{0,9}):[A-Za-z0-9+/]+={0,2}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class KeyIdError(ValueError):
    """A key ID or ciphertext that this plugin did not produce for its configured key."""


def check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}: use letters, digits, '.', '_' and '-'")
    return value


@dataclass(frozen=True)
class KeyRef:
    """The transit key the plugin encrypts with; its key IDs are ``strongroom:<mount>:<key>:v<version>``."""

    mount: str
    name: str

    def key_id(self, version: int) -> str:
        return f"strongroom:{self.mount}:{self.name}:v{version}"

    def version_of(self, key_id: str) -> int:
        prefix = f"strongroom:{self.mount}:{self.name}:v"
        digits = key_id[len(prefix):] if key_id.startswith(prefix) else ""
        if not digits.isdigit() or digits.startswith("0"):
            raise KeyIdError(f"key ID {key_id[:80]!r} does not name transit key {self.mount}/{self.name}")
        return int(digits)


def ciphertext_version(ciphertext: str) -> int:
    m = _CIPHERTEXT.fullmatch(ciphertext)
    if m is None:
        raise KeyIdError("ciphertext is not a transit ciphertext (vault:v<N>:<base64>)")
    return int(m.group(1))


def _server_errors(resp: httpx.Response) -> str:
    try:
        errors = (resp.json() or {}).get("errors") or []
    except ValueError:
        errors = []
    return "; ".join(str(e) for e in errors)[:200] or f"HTTP {resp.status_code}"


class _TokenFileEngine(Engine):
    """The library's engine with its login replaced by reading a token file and looking the token up."""

    def __init__(self, settings: Settings, token_file: str) -> None:
        super().__init__(settings)
        self._token_file = token_file

    def _login(self, describe: str) -> Generator[HttpCall, Any, str]:
        token = read_token(self._token_file)
        out = yield HttpCall("GET", "auth/token/lookup-self", None, token)
        if not isinstance(out, httpx.Response):
            raise Unavailable(describe, f"{type(out).__name__} talking to {self.settings.addr}")
        if out.status_code == 403:
            raise PermissionDenied(describe, f"the token in {self._token_file} is not valid")
        if out.status_code != 200:
            raise Unavailable(describe, f"token lookup failed: {_server_errors(out)}")
        data = (out.json() or {}).get("data") or {}
        self._token = _CachedToken(token, time.monotonic(), int(data.get("ttl") or 0), bool(data.get("renewable")))
        return token


class TransitKey:
    """Encrypt, decrypt and read the latest version of one transit key; every failure raises, nothing falls back."""

    def __init__(self, key: KeyRef, settings: Settings, token_file: str | None = None) -> None:
        self.key = key
        self._client = Client(settings)
        if token_file is not None:
            self._client._engine = _TokenFileEngine(self._client.settings, token_file)

    def close(self) -> None:
        self._client.close()

    def keep_token_fresh(self) -> None:
        """Renew (or log in again) if the held token is near its end; called periodically so it never lapses."""
        self._client.token()

    def latest_version(self) -> int:
        body = self._client.request("GET", f"{self.key.mount}/keys/{self.key.name}")
        version = ((body or {}).get("data") or {}).get("latest_version")
        if not isinstance(version, int) or version < 1:
            raise Unavailable(f"{self.key.mount}/keys/{self.key.name}", "the key has no latest_version")
        return version

    def encrypt(self, plaintext: bytes) -> tuple[str, int]:
        """The transit ciphertext of ``plaintext`` and the key version that produced it (read from the ciphertext)."""
        path = f"{self.key.mount}/encrypt/{self.key.name}"
        # transit's encrypt creates a missing key for a token that may: the plugin must never invent a KEK
        self.latest_version()
        body = self._client.request("POST", path, {"plaintext": base64.b64encode(plaintext).decode()})
        ciphertext = ((body or {}).get("data") or {}).get("ciphertext")
        if not isinstance(ciphertext, str):
            raise Unavailable(path, "the answer holds no ciphertext")
        return ciphertext, ciphertext_version(ciphertext)

    def decrypt(self, ciphertext: str) -> bytes:
        path = f"{self.key.mount}/decrypt/{self.key.name}"
        body = self._client.request("POST", path, {"ciphertext": ciphertext})
        encoded = ((body or {}).get("data") or {}).get("plaintext")
        if not isinstance(encoded, str):
            raise Unavailable(path, "the answer holds no plaintext")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise Unavailable(path, "the answer's plaintext is not base64") from None


__all__ = ["KeyIdError", "KeyRef", "TransitKey", "check_name", "ciphertext_version"]
