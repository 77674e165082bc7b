"""The Shamir seal: unseal keys combine into the unseal key, which decrypts the root key, which opens the keyring.

Stored (outside the keyring, because they are needed before it can be opened):
- ``core/seal-config``: share count and threshold (public parameters, no secret);
- ``core/root-key``: the root key, AES-256-GCM encrypted by the unseal key.
Nothing else is readable without the root key, which lives only in memory while unsealed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import orjson

from strongroom import crypto
from strongroom.core.logical import InvalidRequest
from strongroom.storage.base import Storage, TxnOp

SEAL_CONFIG_PATH = "core/seal-config"
ROOT_KEY_PATH = "core/root-key"


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
    """Unseal keys arrive hex-encoded or base64 (Vault tries hex first)."""
    if not isinstance(text, str) or not text:
        raise InvalidRequest("'key' must be a valid hex or base64 string")
    try:
        return bytes.fromhex(text)
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
        """Add a share; True once the threshold is reached."""
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

    async def initialize(self, shares: int, threshold: int, root_key: bytes) -> list[bytes]:
        unseal_key = crypto.new_key()
        keys = split_unseal_key(unseal_key, shares, threshold)
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

    async def rekey(self, root_key: bytes, shares: int, threshold: int) -> list[bytes]:
        """New unseal key and shares for the same root key; the old shares stop working."""
        cfg = await self.config()
        assert cfg is not None
        unseal_key = crypto.new_key()
        keys = split_unseal_key(unseal_key, shares, threshold)
        cfg.secret_shares, cfg.secret_threshold = shares, threshold
        # one transaction: a crash must never leave new shares' config beside the old wrapped root key
        await self.storage.transaction(
            [
                TxnOp("put", ROOT_KEY_PATH, crypto.seal(unseal_key, root_key, ROOT_KEY_PATH.encode())),
                TxnOp("put", SEAL_CONFIG_PATH, orjson.dumps(cfg.__dict__)),
            ]
        )
        return keys
