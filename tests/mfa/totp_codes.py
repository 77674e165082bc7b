"""An independent TOTP calculator for the tests: what an authenticator app would show for an ``otpauth://`` URL."""

from __future__ import annotations

import base64
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.totp import TOTP

_HASHES = {"SHA1": hashes.SHA1, "SHA256": hashes.SHA256, "SHA512": hashes.SHA512}


def code_from_url(url: str, at: float | None = None) -> str:
    parsed = urllib.parse.urlparse(url)
    query = dict(urllib.parse.parse_qsl(parsed.query))
    secret = query["secret"]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(
        key,
        int(query.get("digits", "6")),
        _HASHES[query.get("algorithm", "SHA1")](),
        int(query.get("period", "30")),
        enforce_key_length=False,
    )
    return totp.generate(int(time.time() if at is None else at)).decode()
