"""Attestation-bound keys: decryption only for an attested build, and the answer only in an envelope for it.

Guarantee: a key with an attestation policy never returns plaintext (nor key material) to anyone, root included.
``decrypt`` needs an ``attestation_document`` (an AWS Nitro COSE_Sign1) that

1. verifies: ES384 signature by a leaf certificate whose chain ends at the policy's ``root_certificate`` (default the
   AWS Nitro root) and is valid now (:func:`strongroom.attestation.verify_nitro`);
2. is not from a debug-mode enclave (all-zero PCR0: the parent instance can read such an enclave's memory);
3. is no older than ``max_document_age`` (and not from the future beyond a minute of clock skew);
4. has PCR0 — and PCR1/PCR2/PCR8 where the policy lists them — among the allowed values;
5. names an RSA public key, to which every plaintext is encrypted (:mod:`strongroom.attestation.recipient`).

The checks run in that order, so an answer names the first failure. Anything else that would reveal plaintext or key
material (``datakey/plaintext``, ``export`` of private material, ``backup``, turning on ``exportable`` or
``allow_plaintext_backup``, restoring over the key) is refused; ``rewrap`` and ``encrypt`` stay (they return only
ciphertext). A policy can be changed but never removed: the binding is one-way, like ``exportable``.

The server's clock can be replaced for tests by ``STRONGROOM_ATTESTATION_NOW`` (RFC 3339 or Unix seconds), which only
a dev server honours; on any other server its presence makes every attested decryption fail closed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Any

from strongroom import crypto
from strongroom.attestation import AWS_NITRO_ROOT_PEM, AttestationDocument, AttestationError, verify_nitro
from strongroom.attestation.recipient import RecipientError, load_recipient_key, seal_for
from strongroom.attestation.roots import fingerprint, load_roots
from strongroom.core.logical import InvalidRequest, LogicalError

PCR_INDEXES = (0, 1, 2, 8)
DEFAULT_MAX_AGE = 300
MAX_MAX_AGE = 86400
FUTURE_SKEW = 60
TEST_CLOCK_ENV = "STRONGROOM_ATTESTATION_NOW"
_PCR_HEX = re.compile(r"(?:[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})")
_REFUSED = "attestation document refused: "


def _pcr_values(index: int, raw: list[str]) -> list[str]:
    values = sorted({str(v).strip().lower() for v in raw if str(v).strip()})
    for v in values:
        if not _PCR_HEX.fullmatch(v):
            raise InvalidRequest(f"pcr{index} values must be hex SHA-384 digests (96 hex characters)")
        if index == 0 and not any(bytes.fromhex(v)):
            raise InvalidRequest("an all-zero pcr0 is a debug-mode enclave and cannot be allowed")
    return values


@dataclass
class AttestationPolicy:
    root_certificate: str = AWS_NITRO_ROOT_PEM.decode()
    pcrs: dict[int, list[str]] = field(default_factory=dict)
    max_document_age: int = DEFAULT_MAX_AGE
    _roots: list[Any] = field(default_factory=list, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"root_certificate": self.root_certificate, "pcrs": {str(i): v for i, v in self.pcrs.items()},
                "max_document_age": self.max_document_age}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AttestationPolicy:
        return cls(root_certificate=raw["root_certificate"],
                   pcrs={int(i): list(v) for i, v in (raw.get("pcrs") or {}).items()},
                   max_document_age=int(raw["max_document_age"]))

    def update(self, fields: dict[str, Any]) -> None:
        """Apply the request's given fields; InvalidRequest (and nothing changed) for any bad one."""
        root = fields.get("root_certificate")
        if root is not None:
            root = str(root).strip() or AWS_NITRO_ROOT_PEM.decode()
            try:
                load_roots(root)
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from None
        pcrs = dict(self.pcrs)
        for i in PCR_INDEXES:
            if fields.get(f"pcr{i}") is not None:
                pcrs[i] = _pcr_values(i, fields[f"pcr{i}"])
                if not pcrs[i]:
                    del pcrs[i]
        if not pcrs.get(0):
            raise InvalidRequest("pcr0 must list at least one allowed enclave image measurement")
        age = fields.get("max_document_age")
        if age is not None and not 0 < age <= MAX_MAX_AGE:
            raise InvalidRequest(f"max_document_age must be between 1s and {MAX_MAX_AGE}s")
        if fields.get("refuse_debug_mode") is False:
            raise InvalidRequest("refuse_debug_mode cannot be disabled: a debug-mode enclave's memory is not private")
        if root is not None:
            self.root_certificate, self._roots = root, []
        self.pcrs = pcrs
        if age is not None:
            self.max_document_age = age

    def roots(self) -> list[Any]:
        if not self._roots:
            self._roots = load_roots(self.root_certificate)
        return self._roots

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {f"pcr{i}": self.pcrs.get(i, []) for i in PCR_INDEXES}
        data.update(root_certificate=self.root_certificate, max_document_age=self.max_document_age,
                    refuse_debug_mode=True, root_fingerprints_sha256=[fingerprint(c) for c in self.roots()])
        return data

    def admit(self, document: bytes, now: dt.datetime) -> AttestationDocument:
        """The verified document, if this policy accepts it; InvalidRequest naming the first failed check."""
        try:
            doc = verify_nitro(document, now=now, roots=self.roots())
        except AttestationError as exc:
            raise InvalidRequest(_REFUSED + str(exc)) from None
        if doc.debug_mode:
            raise InvalidRequest(_REFUSED + "it comes from a debug-mode enclave (all-zero PCR0), whose memory is "
                                 "readable by its parent instance")
        age = now.timestamp() - doc.timestamp_ms / 1000
        if age > self.max_document_age:
            raise InvalidRequest(_REFUSED + f"it is {int(age)}s old, more than max_document_age "
                                 f"({self.max_document_age}s)")
        if age < -FUTURE_SKEW:
            raise InvalidRequest(_REFUSED + "its timestamp is in the future")
        for i, allowed in sorted(self.pcrs.items()):
            value = doc.pcrs.get(i, b"").hex()
            if not any(crypto.constant_time_eq(value, a) for a in allowed):
                raise InvalidRequest(_REFUSED + f"PCR{i} {value or '(absent)'} is not allowed by the key's "
                                     "attestation policy")
        if not doc.public_key:
            raise InvalidRequest(_REFUSED + "it names no public key to encrypt the answer to")
        return doc


class Release:
    """Seals plaintexts for one admitted document's public key."""

    def __init__(self, doc: AttestationDocument) -> None:
        try:
            self._key = load_recipient_key(doc.public_key or b"")
        except RecipientError as exc:
            raise InvalidRequest(_REFUSED + str(exc)) from None

    def seal(self, plaintext: bytes) -> bytes:
        return seal_for(self._key, plaintext)


def clock(dev: bool) -> dt.datetime:
    """Now, or the test clock on a dev server; a production server with the test clock set fails closed."""
    raw = os.environ.get(TEST_CLOCK_ENV)
    if raw is None:
        return dt.datetime.now(dt.UTC)
    if not dev:
        raise LogicalError(f"{TEST_CLOCK_ENV} is honoured only by a dev server; attested decryption is refused")
    try:
        if re.fullmatch(r"\d+(\.\d+)?", raw):
            return dt.datetime.fromtimestamp(float(raw), dt.UTC)
        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        raise LogicalError(f"{TEST_CLOCK_ENV} is not a time; attested decryption is refused") from None
