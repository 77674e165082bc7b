"""The broker's seed keys, released only to an attested, allowed build — by Strongroom's transit engine.

The seed (the OIDC signing key, the broker's Strongroom token, the key that MACs the broker's audit log) is transit
ciphertext under a key bound to an attestation policy (``transit/keys/<key>/attestation``: the allowed PCR0 values,
the trusted root, the maximum document age). The sealed file is ``{"version": 2, "mount", "key", "ciphertext"}``. Only
``transit/decrypt/<key>`` with an attestation document the policy accepts opens it, and the server then answers with
the seed encrypted to the public key inside that document (:mod:`strongroom.attestation.recipient`), which only the
attested process holds. So the sealed file, the token the broker decrypts with, and even a root token open nothing
without an accepted attestation. The allowed list changes only through the key's policy, which a broker-deploy
request's token (two distinct approvers) may update — see ``kinds/broker_deploy.py``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from strongroom import crypto
from strongroom.attestation.recipient import Recipient, RecipientError


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


_AAD = base64.b64encode(b"strongroom-broker-seed/v2").decode()
SEALED_VERSION = 2


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class SeedServer:
    """The Strongroom server's transit key that holds the seed; every call is a plain Vault-shaped HTTP request."""

    def __init__(self, addr: str | None, token: str, mount: str, key: str, *, timeout: float = 15.0) -> None:
        if not addr:
            raise SeedSealed("no Strongroom server is configured ([strongroom] addr): the seed is transit ciphertext")
        self.addr = addr.rstrip("/")
        self.mount = mount.strip("/")
        self.key = key
        self._token = token
        self._timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            r = httpx.request(method, f"{self.addr}/v1/{self.mount}/{path}", json=body, timeout=self._timeout,
                              headers={"X-Vault-Token": self._token})
        except httpx.HTTPError as exc:
            raise SeedSealed(f"Strongroom server unreachable ({type(exc).__name__})") from None
        if r.status_code >= 400:
            try:
                errors = r.json().get("errors") or []
            except ValueError:
                errors = []
            raise SeedSealed(f"Strongroom refused {path.split('/')[0]} ({r.status_code}): {'; '.join(errors)}")
        return (r.json() if r.content else {}).get("data") or {}

    def bind(self, measurements: Sequence[str], root_pem: str | None) -> None:
        """Create the key if need be and bind it to the allowed measurements (first-time setup, an operator's token).

        An already bound key keeps its policy: changing the measurements is a broker-deploy request's job."""
        self._call("POST", f"keys/{self.key}", {"type": "aes256-gcm96"})
        try:
            self._call("GET", f"keys/{self.key}/attestation")
            return
        except SeedSealed:
            pass
        body: dict[str, Any] = {"pcr0": _measurements(measurements)}
        if root_pem:
            body["root_certificate"] = root_pem
        self._call("POST", f"keys/{self.key}/attestation", body)

    def seal(self, seed: SeedKeys) -> dict[str, Any]:
        data = self._call("POST", f"encrypt/{self.key}", {"plaintext": _b64(orjson.dumps(asdict(seed))),
                                                         "associated_data": _AAD})
        return {"version": SEALED_VERSION, "mount": self.mount, "key": self.key, "ciphertext": data["ciphertext"]}

    def release(self, sealed: dict[str, Any], document: bytes, recipient: Recipient) -> SeedKeys:
        """The seed, decrypted by the server for an accepted document and opened with the enclave-held key."""
        data = self._call("POST", f"decrypt/{self.key}", {"ciphertext": sealed["ciphertext"], "associated_data": _AAD,
                                                         "attestation_document": _b64(document)})
        try:
            return seed_from(orjson.loads(recipient.open(base64.b64decode(data["ciphertext_for_recipient"]))))
        except (KeyError, ValueError, RecipientError):
            raise SeedSealed("the server's answer does not open with this enclave's recipient key") from None

    def allow_measurement(self, measurement: str) -> list[str]:
        """Add one build to the key's allowed PCR0 list, with a broker-deploy token; the new list."""
        current = self._call("GET", f"keys/{self.key}/attestation").get("pcr0") or []
        allowed = _measurements([*current, measurement])
        return list(self._call("POST", f"keys/{self.key}/attestation", {"pcr0": allowed}).get("pcr0") or allowed)


def _measurements(values: Sequence[str]) -> list[str]:
    clean = sorted({m.strip().lower() for m in values})
    if not clean or any(len(m) != 96 or any(c not in "0123456789abcdef" for c in m) for m in clean):
        raise ValueError("allowed measurements are SHA-384 digests (96 hex characters)")
    return clean


def read_token(path: str | Path) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError:
        raise SeedSealed("cannot read the seed token file") from None
    if not token:
        raise SeedSealed("the seed token file is empty")
    return token


def read_sealed(path: str | Path) -> dict[str, Any]:
    try:
        sealed = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SeedSealed(f"cannot read the sealed seed: {exc}") from None
    if not isinstance(sealed, dict) or sealed.get("version") != SEALED_VERSION or not isinstance(
            sealed.get("ciphertext"), str):
        raise SeedSealed("the sealed seed file is not in the expected format (version 2: transit ciphertext)")
    return sealed


def write_sealed(path: str | Path, sealed: dict[str, Any]) -> None:
    p = Path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_bytes(orjson.dumps(sealed, option=orjson.OPT_INDENT_2))
    tmp.chmod(0o600)
    tmp.replace(p)
