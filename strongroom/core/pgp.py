"""OpenPGP encryption of key material to operators' keys (Vault's ``pgp_keys``, ``root_token_pgp_key``, ``pgp_key``).

Guarantee: a key share or root token encrypted here can be read only with the private key of the public key it was
given for; Strongroom never holds a private key. The OpenPGP work is done by Debian's ``gpg`` (through python-gnupg),
each operation in its own temporary, private GNUPGHOME that is removed afterwards, with ``--no-autostart`` so that no
agent is left running. Keys arrive as Vault takes them: base64 of the binary (non-armored) public key.

The API is two calls: :func:`parse_public_keys` (validate, learn fingerprints: before anything changes) and
:func:`encrypt` (one binary OpenPGP message per key). Both raise :class:`PGPError`, whose text never holds a secret.
"""

from __future__ import annotations

import base64
import binascii
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import gnupg  # type: ignore[import-untyped]  # python-gnupg ships no type information

KEYBASE_PREFIX = "keybase:"
# python-gnupg narrates each gpg run at debug/info level; nothing of that belongs in the server's log
logging.getLogger("gnupg").setLevel(logging.WARNING)
# a public key bigger than this is not an operator's key; keeps a request from feeding gpg arbitrary blobs
_MAX_KEY_BYTES = 64 * 1024


class PGPError(ValueError):
    """A public key that cannot be used, or an encryption that failed."""


@dataclass(frozen=True)
class PublicKey:
    fingerprint: str  # lowercase hex of the primary key's fingerprint, as Vault reports it
    data: bytes  # the binary public key as given


def gpg_available() -> bool:
    return shutil.which("gpg") is not None


def _decode(value: object) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise PGPError("error decoding given PGP key: expected a non-empty base64 string")
    if value.strip().lower().startswith(KEYBASE_PREFIX):
        raise PGPError(
            "keybase: PGP keys are not supported by this server: give the base64-encoded public key itself"
        )
    try:
        data = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PGPError("error decoding given PGP key: not valid base64") from None
    if not data or len(data) > _MAX_KEY_BYTES:
        raise PGPError("error parsing given PGP key: empty or too large")
    tag = _first_packet_tag(data)
    if tag in (_TAG_SECRET_KEY, _TAG_SECRET_SUBKEY):
        # refused rather than quietly used: a private key has no business in a request, or in the server's memory
        raise PGPError("error parsing given PGP key: a private key was given; give the public key only")
    if tag != _TAG_PUBLIC_KEY:
        raise PGPError("error parsing given PGP key: no OpenPGP public key found")
    return data


_TAG_SECRET_KEY, _TAG_PUBLIC_KEY, _TAG_SECRET_SUBKEY = 5, 6, 7


def _first_packet_tag(data: bytes) -> int:
    """The tag of the first OpenPGP packet (RFC 4880 section 4.2: new and old header formats); -1 if not a packet."""
    first = data[0]
    if not first & 0x80:
        return -1
    return first & 0x3F if first & 0x40 else (first >> 2) & 0x0F


class _Home:
    """A private, throw-away GNUPGHOME for one operation."""

    def __enter__(self) -> gnupg.GPG:
        if not gpg_available():
            raise PGPError("PGP encryption is unavailable: the gpg program is not installed on the server")
        self._dir = tempfile.mkdtemp(prefix="strongroom-gpg-")
        try:
            return gnupg.GPG(gnupghome=self._dir, options=["--no-autostart", "--no-options", "--quiet"])
        except (OSError, ValueError):
            shutil.rmtree(self._dir, ignore_errors=True)
            raise PGPError("PGP encryption is unavailable: gpg could not be started on the server") from None

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def _import_one(gpg: gnupg.GPG, data: bytes) -> str:
    result = gpg.import_keys(data)
    fingerprints = list(dict.fromkeys(result.fingerprints or []))
    if len(fingerprints) != 1:
        raise PGPError(
            "error parsing given PGP key: "
            + ("no OpenPGP public key found" if not fingerprints else "more than one key given where one is expected")
        )
    return fingerprints[0]


def _encrypt_one(gpg: gnupg.GPG, fingerprint: str, message: bytes) -> bytes:
    out = gpg.encrypt(message, fingerprint, always_trust=True, armor=False)
    if not out.ok or not out.data:
        # gpg's status names the reason (e.g. no encryption-capable subkey, expired); it never holds the message
        raise PGPError(f"error encrypting PGP message for key {fingerprint.lower()}: {out.status or 'failed'}")
    return bytes(out.data)


def parse_public_keys(values: Sequence[object]) -> list[PublicKey]:
    """Decode and check each key (one OpenPGP public key that can encrypt); nothing is kept afterwards."""
    decoded = [_decode(v) for v in values]
    keys: list[PublicKey] = []
    for data in decoded:
        with _Home() as gpg:
            fingerprint = _import_one(gpg, data)
            _encrypt_one(gpg, fingerprint, b"probe")  # an unusable key is refused before anything changes
            keys.append(PublicKey(fingerprint.lower(), data))
    return keys


def encrypt(keys: Sequence[PublicKey], messages: Sequence[bytes]) -> list[bytes]:
    """Encrypt ``messages[i]`` to ``keys[i]``; binary OpenPGP messages, as Vault returns them (before encoding)."""
    if len(keys) != len(messages):
        raise PGPError("mismatch between number items to encrypt and number of PGP keys")
    out: list[bytes] = []
    for key, message in zip(keys, messages, strict=True):
        with _Home() as gpg:
            fingerprint = _import_one(gpg, key.data)
            if fingerprint.lower() != key.fingerprint:
                raise PGPError("PGP key changed between validation and encryption")
            out.append(_encrypt_one(gpg, fingerprint, message))
    return out
