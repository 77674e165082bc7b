"""TOTP (RFC 6238) for the ``totp`` engine and login MFA: one place that computes, checks and describes codes.

Codes come from ``cryptography``'s TOTP primitive; a passcode is compared against every accepted time step with
:func:`hmac.compare_digest`, and the caller learns *which* step matched so it can refuse that step a second time.
"""

from __future__ import annotations

import base64
import hmac
import io
import secrets
import urllib.parse
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.totp import TOTP

ALGORITHMS = ("SHA1", "SHA256", "SHA512")
_HASHES: dict[str, type[hashes.SHA1 | hashes.SHA256 | hashes.SHA512]] = {
    "SHA1": hashes.SHA1,
    "SHA256": hashes.SHA256,
    "SHA512": hashes.SHA512,
}


@dataclass(frozen=True, slots=True)
class TotpKey:
    key: bytes
    period: int = 30
    digits: int = 6
    algorithm: str = "SHA1"

    def _totp(self) -> TOTP:
        # imported keys may be shorter than RFC 4226's recommendation; Vault accepts them, so do we
        return TOTP(self.key, self.digits, _HASHES[self.algorithm](), self.period, enforce_key_length=False)

    def step(self, at: float) -> int:
        return int(at) // self.period

    def code(self, at: float) -> str:
        return self._totp().generate(int(at)).decode()

    def matching_step(self, passcode: str, at: float, skew: int) -> int | None:
        """The time step ``passcode`` belongs to (within ``skew`` steps of ``at``), or None. Every candidate is
        compared in constant time, so the answer's timing does not tell which step (if any) was close."""
        totp = self._totp()
        given = passcode.encode()
        found: int | None = None
        now_step = self.step(at)
        for delta in range(-skew, skew + 1):
            step = now_step + delta
            expected = totp.generate(step * self.period)
            if hmac.compare_digest(expected, given) and found is None:
                found = step
        return found


def new_key(size: int) -> bytes:
    return secrets.token_bytes(size)


def b32(key: bytes) -> str:
    return base64.b32encode(key).decode().rstrip("=")


def parse_b32(text: str) -> bytes:
    cleaned = text.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def otpauth_url(key: TotpKey, issuer: str, account: str) -> str:
    label = urllib.parse.quote(f"{issuer}:{account}" if issuer else account, safe=":@")
    query = urllib.parse.urlencode(
        {
            "algorithm": key.algorithm,
            "digits": str(key.digits),
            "issuer": issuer,
            "period": str(key.period),
            "secret": b32(key.key),
        },
        quote_via=urllib.parse.quote,
    )
    return f"otpauth://totp/{label}?{query}"


def parse_otpauth_url(url: str) -> tuple[TotpKey, str, str]:
    """(key, issuer, account) from an ``otpauth://totp/…`` URL; ValueError with a safe message otherwise."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "otpauth" or parsed.netloc != "totp":
        raise ValueError("url must be an otpauth://totp/ URL")
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
    label = urllib.parse.unquote(parsed.path.lstrip("/"))
    issuer, _, account = label.rpartition(":")
    issuer = query.get("issuer", issuer)
    try:
        secret = parse_b32(query["secret"])
    except (KeyError, ValueError, base64.binascii.Error):  # type: ignore[attr-defined]
        raise ValueError("url has no valid base32 secret") from None
    algorithm = query.get("algorithm", "SHA1").upper()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported algorithm {algorithm!r}")
    try:
        digits = int(query.get("digits", "6"))
        period = int(query.get("period", "30"))
    except ValueError:
        raise ValueError("digits and period must be integers") from None
    if digits not in (6, 8):
        raise ValueError("the digits value can only be 6 or 8")
    if period <= 0:
        raise ValueError("the period value must be greater than zero")
    return TotpKey(secret, period, digits, algorithm), issuer, account


def qr_png_b64(text: str, size: int) -> str:
    """A PNG QR code of ``text``, base64-encoded as Vault's ``barcode``; ``size`` is the width in pixels (approx)."""
    import segno

    qr = segno.make(text, error="m")
    modules = qr.symbol_size(scale=1, border=4)[0]
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=max(1, size // modules), border=4)
    return base64.b64encode(buf.getvalue()).decode()
