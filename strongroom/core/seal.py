"""The Shamir seal: unseal keys combine into the unseal key, which decrypts the root key, which opens the keyring.

Stored (outside the keyring, because they are needed before it can be opened):
- ``core/seal-config``: share count and threshold (public parameters, no secret);
- ``core/root-key``: the root key, AES-256-GCM encrypted by the unseal key.
Nothing else is readable without the root key, which lives only in memory while unsealed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from strongroom import crypto
from strongroom.core import pgp
from strongroom.core.logical import InvalidRequest
from strongroom.storage.base import Storage, TxnOp

SEAL_CONFIG_PATH = "core/seal-config"
ROOT_KEY_PATH = "core/root-key"
_MIN_KEY_BYTES = 16  # Vault's minimum barrier key length; a share is at most the key plus its x byte

# Turns the new shares into what the operators receive (PGP-encrypted, for instance) before anything is stored, so a
# failure there leaves the seal as it was.
ShareWrapper = Callable[[list[bytes]], Awaitable[list[bytes]]]


@dataclass
class SealConfig:
    secret_shares: int
    secret_threshold: int
    cluster_id: str
    cluster_name: str


def split_unseal_key(unseal_key: bytes, shares: int, threshold: int) -> list[bytes]:
    if shares == 1:
        return [unseal_key]
    return crypto.shamir_split(unseal_key, shares, threshold)


def combine_unseal_key(parts: list[bytes]) -> bytes:
    if len(parts) == 1:
        return parts[0]
    return crypto.shamir_combine(parts)


def decode_key(text: object) -> bytes:
    """Unseal keys arrive hex-encoded or base64. As Vault: hex first, kept only when its length is a key's or share's
    (so base64 that happens to be all hex digits is still read as base64)."""
    if not isinstance(text, str) or not text:
        raise InvalidRequest("'key' must be a valid hex or base64 string")
    try:
        key = bytes.fromhex(text)
        if _MIN_KEY_BYTES <= len(key) <= crypto.KEY_BYTES + 1:
            return key
    except ValueError:
        pass
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("'key' must be a valid hex or base64 string") from None


def validate_shares(shares: object, threshold: object) -> tuple[int, int]:
    if (
        isinstance(shares, bool)
        or not isinstance(shares, int)
        or isinstance(threshold, bool)
        or not isinstance(threshold, int)
    ):
        raise InvalidRequest("secret_shares and secret_threshold must be integers")
    if shares < 1:
        raise InvalidRequest("shares must be at least one")
    if threshold < 1:
        raise InvalidRequest("threshold must be at least one")
    if shares > 1 and threshold == 1:
        raise InvalidRequest("threshold must be greater than one for multiple shares")
    if shares > 255:
        raise InvalidRequest("shares must be less than 256")
    if threshold > shares:
        raise InvalidRequest("threshold cannot be larger than shares")
    return shares, threshold


# --- PGP-wrapped key material (Vault's pgp_keys / root_token_pgp_key / pgp_key) ---------------------------------


def _pgp_list(value: object, name: str) -> list[object]:
    if value is None or value == "" or value == []:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"'{name}' must be a list of base64-encoded PGP public keys")
    return value


async def parse_pgp_keys(
    value: object, shares: int, *, name: str, count_error: str, context: str
) -> list[pgp.PublicKey]:
    """Validate ``pgp_keys`` (one per share) before anything changes; [] when none were given."""
    values = _pgp_list(value, name)
    if not values:
        return []
    if len(values) != shares:
        raise InvalidRequest(count_error)
    try:
        return await asyncio.to_thread(pgp.parse_public_keys, values)
    except pgp.PGPError as exc:
        raise InvalidRequest(f"{context}: {exc}") from None


async def parse_pgp_key(value: object, *, name: str) -> pgp.PublicKey | None:
    """Validate a single key (``root_token_pgp_key``, generate-root's ``pgp_key``); None when not given."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a base64-encoded PGP public key")
    try:
        return (await asyncio.to_thread(pgp.parse_public_keys, [value]))[0]
    except pgp.PGPError as exc:
        raise InvalidRequest(f"error parsing PGP key: {exc}") from None


async def pgp_encrypt(keys: list[pgp.PublicKey], messages: list[bytes]) -> list[bytes]:
    try:
        return await asyncio.to_thread(pgp.encrypt, keys, messages)
    except pgp.PGPError as exc:
        raise InvalidRequest(f"failed to encrypt with PGP: {exc}") from None


def pgp_share_wrapper(keys: list[pgp.PublicKey]) -> ShareWrapper:
    """Encrypt each share, hex-encoded as Vault does, to its operator's key (share i to key i)."""

    async def wrap(shares: list[bytes]) -> list[bytes]:
        return await pgp_encrypt(keys, [s.hex().encode() for s in shares])

    return wrap


@dataclass
class KeyCollector:
    """Progress of a multi-party key operation (unseal, generate-root, rekey): distinct shares until the threshold."""

    threshold: int
    nonce: str = ""
    parts: list[bytes] = field(default_factory=list)

    @property
    def progress(self) -> int:
        return len(self.parts)

    def add(self, part: bytes) -> bool:
        """Add a share; True once the threshold is reached. A wrong-sized key is refused before it counts (Vault)."""
        if len(part) < _MIN_KEY_BYTES:
            raise InvalidRequest(f"key is shorter than minimum {_MIN_KEY_BYTES} bytes")
        if len(part) > crypto.KEY_BYTES + 1:
            raise InvalidRequest(f"key is longer than maximum {crypto.KEY_BYTES + 1} bytes")
        if any(crypto.constant_time_eq(p, part) for p in self.parts):
            return False  # Vault ignores a repeated key without counting it
        self.parts.append(part)
        return len(self.parts) >= self.threshold

    def reset(self) -> None:
        self.parts.clear()


class ShamirSeal:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def config(self) -> SealConfig | None:
        raw = await self.storage.get(SEAL_CONFIG_PATH)
        return None if raw is None else SealConfig(**orjson.loads(raw))

    async def initialize(
        self, shares: int, threshold: int, root_key: bytes, wrap: ShareWrapper | None = None
    ) -> list[bytes]:
        unseal_key = crypto.new_key()
        keys = split_unseal_key(unseal_key, shares, threshold)
        if wrap is not None:
            keys = await wrap(keys)
        cfg = SealConfig(shares, threshold, crypto.new_uuid(), "strongroom-cluster-" + crypto.random_hex(4))
        await self.storage.put(SEAL_CONFIG_PATH, orjson.dumps(cfg.__dict__))
        await self._store_root_key(unseal_key, root_key)
        return keys

    async def _store_root_key(self, unseal_key: bytes, root_key: bytes) -> None:
        await self.storage.put(ROOT_KEY_PATH, crypto.seal(unseal_key, root_key, ROOT_KEY_PATH.encode()))

    async def recover_root_key(self, parts: list[bytes]) -> bytes:
        """Combine shares and decrypt the root key; a wrong combination fails authentication."""
        try:
            unseal_key = combine_unseal_key(parts)
        except ValueError as exc:
            raise InvalidRequest(f"failed to combine key shares: {exc}") from None
        blob = await self.storage.get(ROOT_KEY_PATH)
        if blob is None:
            raise InvalidRequest("Vault is not initialized")
        if len(unseal_key) != crypto.KEY_BYTES:
            raise InvalidRequest("failed to decrypt the root key: invalid key length")
        try:
            return crypto.open_sealed(unseal_key, blob, ROOT_KEY_PATH.encode())
        except crypto.DecryptionError:
            raise InvalidRequest("failed to decrypt the root key: the unseal keys are wrong") from None

    async def rekey(
        self, root_key: bytes, shares: int, threshold: int, wrap: ShareWrapper | None = None
    ) -> list[bytes]:
        """New unseal key and shares for the same root key; the old shares stop working."""
        cfg = await self.config()
        assert cfg is not None
        unseal_key = crypto.new_key()
        keys = split_unseal_key(unseal_key, shares, threshold)
        if wrap is not None:
            keys = await wrap(keys)
        cfg.secret_shares, cfg.secret_threshold = shares, threshold
        # one transaction: a crash must never leave new shares' config beside the old wrapped root key
        await self.storage.transaction(
            [
                TxnOp("put", ROOT_KEY_PATH, crypto.seal(unseal_key, root_key, ROOT_KEY_PATH.encode())),
                TxnOp("put", SEAL_CONFIG_PATH, orjson.dumps(cfg.__dict__)),
            ]
        )
        return keys
