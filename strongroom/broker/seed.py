"""The broker's seed keys, sealed so that only an attested, allowed build can open them.

The sealed file holds a policy (the allowed image measurements) and the seed (the OIDC signing key, the broker's
Strongroom token, the key that MACs the broker's audit log) encrypted with AES-256-GCM under a key-encryption key,
with the policy as associated data: editing the allowed list on disk breaks decryption. ``KeyRelease`` plays the
part KMS plays for a Nitro enclave: it holds the key-encryption key and opens the seed only for a verified
attestation document whose PCR0 is allowed and whose nonce is the one it issued. The list changes only through
``allow_measurement`` with a broker-deploy grant — a token signed by the sealed OIDC key itself, naming two distinct
approvers — so no single engineer can bless a new build.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography import x509

from strongroom import crypto
from strongroom.broker.attestation.document import AttestationDocument, AttestationError
from strongroom.broker.attestation.nitro import verify_nitro
from strongroom.broker.kinds.broker_deploy import GRANT_AUDIENCE, GRANT_SUBJECT
from strongroom.broker.oidc import OidcIssuer
from strongroom.broker.recipient import RecipientError, wrap_for

_AAD = b"strongroom-broker-seed/v1\n"


def seed_from(data: object) -> SeedKeys:
    if not isinstance(data, dict) or not isinstance(data.get("oidc_private_key_pem"), str):
        raise SeedSealed("the released seed is not in the expected format")
    audit_key = data.get("audit_key")
    if audit_key is not None and (not isinstance(audit_key, str) or len(audit_key) != 2 * crypto.KEY_BYTES):
        raise SeedSealed("the released seed's audit key is not in the expected format")
    return SeedKeys(oidc_private_key_pem=data["oidc_private_key_pem"], strongroom_token=data.get("strongroom_token"),
                    audit_key=audit_key)


class SeedSealed(Exception):
    """The seed stays sealed: the attestation was not acceptable. The message says why, never anything secret."""


@dataclass(frozen=True)
class SeedKeys:
    oidc_private_key_pem: str
    strongroom_token: str | None = None
    audit_key: str | None = None  # hex; MACs the broker's audit log

    def __repr__(self) -> str:
        return "SeedKeys(<sealed material>)"

    @property
    def audit_mac_key(self) -> bytes:
        """The audit log's key; a seed sealed before it had one derives it from its (equally sealed) OIDC key."""
        if self.audit_key:
            return bytes.fromhex(self.audit_key)
        return crypto.derive_key(self.oidc_private_key_pem.encode(), "strongroom broker audit key")


def new_seed(oidc_private_key_pem: str, strongroom_token: str | None = None) -> SeedKeys:
    return SeedKeys(oidc_private_key_pem, strongroom_token, crypto.random_hex(crypto.KEY_BYTES))


def _aad(policy: dict[str, Any]) -> bytes:
    return _AAD + orjson.dumps(policy, option=orjson.OPT_SORT_KEYS)


def _policy(measurements: Sequence[str]) -> dict[str, Any]:
    clean = sorted({m.strip().lower() for m in measurements})
    if any(len(m) != 96 or any(c not in "0123456789abcdef" for c in m) for m in clean):
        raise ValueError("allowed measurements are SHA-384 digests (96 hex characters)")
    return {"allowed_measurements": clean}


def seal_seed(kek: bytes, seed: SeedKeys, allowed: Sequence[str]) -> dict[str, Any]:
    policy = _policy(allowed)
    blob = crypto.seal(kek, orjson.dumps(asdict(seed)), _aad(policy))
    return {"version": 1, "policy": policy, "ciphertext": base64.b64encode(blob).decode()}


def read_sealed(path: str | Path) -> dict[str, Any]:
    try:
        sealed = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SeedSealed(f"cannot read the sealed seed: {exc}") from None
    if not isinstance(sealed, dict) or sealed.get("version") != 1 or not isinstance(sealed.get("policy"), dict):
        raise SeedSealed("the sealed seed file is not in the expected format")
    return sealed


def write_sealed(path: str | Path, sealed: dict[str, Any]) -> None:
    p = Path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_bytes(orjson.dumps(sealed, option=orjson.OPT_INDENT_2))
    tmp.chmod(0o600)
    tmp.replace(p)


def read_kek(path: str | Path) -> bytes:
    try:
        kek = bytes.fromhex(Path(path).read_text().strip())
    except (OSError, ValueError):
        raise SeedSealed("cannot read the key-encryption key") from None
    if len(kek) != crypto.KEY_BYTES:
        raise SeedSealed("the key-encryption key must be 32 bytes of hex")
    return kek


class KeyRelease:
    def __init__(self, kek: bytes, roots: Sequence[x509.Certificate], *,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._kek = kek
        self._roots = list(roots)
        self._clock = clock

    @staticmethod
    def challenge() -> bytes:
        return secrets.token_bytes(32)

    def _open_bytes(self, sealed: dict[str, Any]) -> bytes:
        try:
            blob = base64.b64decode(sealed["ciphertext"], validate=True)
            return crypto.open_sealed(self._kek, blob, _aad(sealed["policy"]))
        except (KeyError, ValueError, TypeError, crypto.DecryptionError):
            raise SeedSealed("the sealed seed does not open: wrong key, or the file or policy was altered") from None

    def _open(self, sealed: dict[str, Any]) -> SeedKeys:
        return seed_from(orjson.loads(self._open_bytes(sealed)))

    def verify(self, document: bytes, nonce: bytes) -> AttestationDocument:
        try:
            return verify_nitro(document, now=self._clock(), roots=self._roots, expected_nonce=nonce)
        except AttestationError as exc:
            raise SeedSealed(f"attestation rejected: {exc}") from None

    def release(self, sealed: dict[str, Any], document: bytes, nonce: bytes) -> tuple[bytes, AttestationDocument]:
        """The seed encrypted to the document's public key, for an allowed, fresh, genuine attestation only."""
        doc = self.verify(document, nonce)
        if doc.debug_mode:
            raise SeedSealed("attestation is from a debug-mode enclave (all-zero PCR0); its memory is not private")
        allowed = sealed["policy"].get("allowed_measurements", [])
        if not any(crypto.constant_time_eq(doc.measurement, m) for m in allowed):
            raise SeedSealed(f"image measurement {doc.measurement} is not on the allowed list")
        if doc.public_key is None:
            raise SeedSealed("the attestation names no public key to release the seed to")
        plain = self._open_bytes(sealed)
        try:
            return wrap_for(doc.public_key, plain), doc
        except RecipientError as exc:
            raise SeedSealed(str(exc)) from None

    def allow_measurement(self, sealed: dict[str, Any], grant: str, issuer_url: str, *,
                          now: float | None = None) -> dict[str, Any]:
        """Re-seal with one more allowed measurement, given a broker-deploy grant signed by the sealed OIDC key."""
        seed = self._open(sealed)
        issuer = OidcIssuer(seed.oidc_private_key_pem, issuer_url)
        try:
            claims = issuer.verify(grant, GRANT_AUDIENCE)
        except jwt.PyJWTError:
            raise SeedSealed("the deploy grant is not valid") from None
        approvers = claims.get("mpa_approver_ids") or []
        if claims.get("sub") != GRANT_SUBJECT or not isinstance(approvers, list) or len(set(approvers)) < 2:
            raise SeedSealed("the deploy grant does not carry two distinct approvers")
        if now is not None and claims["exp"] < now:
            raise SeedSealed("the deploy grant has expired")
        allowed = [*sealed["policy"]["allowed_measurements"], str(claims["measurement"])]
        return seal_seed(self._kek, seed, allowed)

