"""Named transit keys: the :class:`Policy` (a key ring of versions plus its settings) and the :class:`KeyStore`.

Both are usable without HTTP: anything that needs transit's key store or its encrypt/decrypt core (the KMS plugin,
attestation-bound decryption) loads a policy from a mount's storage view and calls :meth:`Policy.encrypt`,
:meth:`Policy.decrypt` and friends. Key material lives only in the mount's barrier view (``policy/<name>``); the
wrapping key for BYOK imports lives at ``import/key``. Errors are :class:`InvalidRequest` with Vault's wording.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from strongroom.core.logical import InvalidRequest, LogicalError
from strongroom.engines.transit import ciphertext, crypto
from strongroom.engines.transit.attestation import AttestationPolicy

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView

SYMMETRIC = ("aes128-gcm96", "aes256-gcm96", "chacha20-poly1305")
ASYMMETRIC = ("ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048", "rsa-3072", "rsa-4096")
KEY_TYPES = (*SYMMETRIC, *ASYMMETRIC, "hmac")
CURVE_TYPES = ("ecdsa-p256", "ecdsa-p384", "ecdsa-p521")
HMAC_MIN, HMAC_MAX = 32, 512
CONVERGENT_VERSION = 3
KDF_HKDF = 1
ERR_TOO_OLD = "ciphertext or signature version is disallowed by policy (too old)"
ERR_NO_CONTEXT = (
    "missing 'context' for key derivation; the key was created using a derived key, which means additional, "
    "per-request information must be included in order to perform operations with the key"
)
ERR_BOUND = (
    "key {name} is bound to an attestation policy: it decrypts only for an attestation_document that the policy "
    "accepts, and only into an envelope for the key in that document"
)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


@dataclass
class KeyEntry:
    """One version of a key. ``key``: raw symmetric/HMAC bytes, Go's 64-byte Ed25519 key, or PKCS#8 DER."""

    key: bytes = b""
    hmac_key: bytes = b""
    time: float = 0.0
    public_key: str = ""
    convergent_version: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"key": _b64(self.key), "hmac_key": _b64(self.hmac_key), "time": self.time,
                "public_key": self.public_key, "convergent_version": self.convergent_version}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> KeyEntry:
        return cls(key=base64.b64decode(raw.get("key") or ""), hmac_key=base64.b64decode(raw.get("hmac_key") or ""),
                   time=float(raw.get("time") or 0), public_key=raw.get("public_key") or "",
                   convergent_version=int(raw.get("convergent_version") or 0))


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


@dataclass
class Policy:
    """A named key ring with Vault's keysutil semantics."""

    name: str
    type: str = "aes256-gcm96"
    keys: dict[int, KeyEntry] = field(default_factory=dict)
    derived: bool = False
    kdf: int = KDF_HKDF
    convergent_encryption: bool = False
    convergent_version: int = -1
    exportable: bool = False
    allow_plaintext_backup: bool = False
    deletion_allowed: bool = False
    min_decryption_version: int = 1
    min_encryption_version: int = 0
    min_available_version: int = 0
    latest_version: int = 0
    auto_rotate_period: int = 0
    key_size: int = 0
    imported: bool = False
    allow_imported_key_rotation: bool = False
    backup_info: dict[str, Any] | None = None
    restore_info: dict[str, Any] | None = None
    attestation: AttestationPolicy | None = None
    _objects: dict[tuple[int, str], Any] = field(default_factory=dict, repr=False, compare=False)

    # --- construction and persistence -----------------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, key_type: str, *, derived: bool = False, convergent: bool = False,
               exportable: bool = False, allow_plaintext_backup: bool = False, auto_rotate_period: int = 0,
               key_size: int = 0, generate: bool = True) -> Policy:
        if key_type not in KEY_TYPES:
            raise InvalidRequest(f"unknown key type {key_type}")
        if convergent and not derived:
            raise InvalidRequest("convergent encryption requires derivation to be enabled")
        if derived and key_type not in (*SYMMETRIC, "ed25519"):
            raise InvalidRequest(f"key derivation and convergent encryption not supported for keys of type {key_type}")
        if key_type == "hmac":
            key_size = key_size or 32
            if not HMAC_MIN <= key_size <= HMAC_MAX:
                raise InvalidRequest(f"invalid key_size {key_size}")
        elif key_size:
            raise InvalidRequest(f"key_size is not valid for algorithm {key_type}")
        p = cls(name=name, type=key_type, derived=derived, convergent_encryption=convergent,
                convergent_version=CONVERGENT_VERSION if convergent else -1, exportable=exportable,
                allow_plaintext_backup=allow_plaintext_backup, auto_rotate_period=auto_rotate_period,
                key_size=key_size)
        if generate:
            p.rotate()
        return p

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "keys": {str(v): e.to_json() for v, e in self.keys.items()},
            "derived": self.derived, "kdf": self.kdf, "convergent_encryption": self.convergent_encryption,
            "convergent_version": self.convergent_version, "exportable": self.exportable,
            "allow_plaintext_backup": self.allow_plaintext_backup, "deletion_allowed": self.deletion_allowed,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "min_available_version": self.min_available_version, "latest_version": self.latest_version,
            "auto_rotate_period": self.auto_rotate_period, "key_size": self.key_size, "imported": self.imported,
            "allow_imported_key_rotation": self.allow_imported_key_rotation, "backup_info": self.backup_info,
            "restore_info": self.restore_info,
            "attestation": self.attestation.to_json() if self.attestation else None,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Policy:
        p = cls(name=raw["name"], type=raw["type"])
        for attr in ("derived", "kdf", "convergent_encryption", "convergent_version", "exportable",
                     "allow_plaintext_backup", "deletion_allowed", "min_decryption_version", "min_encryption_version",
                     "min_available_version", "latest_version", "auto_rotate_period", "key_size", "imported",
                     "allow_imported_key_rotation", "backup_info", "restore_info"):
            if attr in raw and raw[attr] is not None:
                setattr(p, attr, raw[attr])
        p.keys = {int(v): KeyEntry.from_json(e) for v, e in (raw.get("keys") or {}).items()}
        if raw.get("attestation"):
            p.attestation = AttestationPolicy.from_json(raw["attestation"])
        if p.type not in KEY_TYPES or (p.keys and max(p.keys) != p.latest_version):
            raise ValueError("inconsistent key policy")
        return p

    def check(self) -> None:
        """Refuse a policy from outside (a restored backup) whose key material would fail at first use."""
        if not self.keys or self.latest_version not in self.keys:
            raise ValueError("no key versions")
        size = {"aes128-gcm96": 16}.get(self.type, 32)
        for entry in self.keys.values():
            if not entry.hmac_key:
                raise ValueError("missing HMAC key")
            if self.type in SYMMETRIC and len(entry.key) != size:
                raise ValueError("wrong key size")
            if self.type == "hmac" and not HMAC_MIN <= len(entry.key) <= HMAC_MAX:
                raise ValueError("wrong key size")
            if self.type in ASYMMETRIC:
                try:
                    crypto.load_private(self.type, entry.key)
                except Exception as exc:  # any parse failure of foreign material is a bad backup, not a 500
                    raise ValueError("unreadable private key") from exc

    # --- versions ---------------------------------------------------------------------------------------------------

    def rotate(self, material: bytes | None = None) -> None:
        """Add a version: fresh key material, or ``material`` (raw symmetric/HMAC bytes, PKCS#8 DER) on import."""
        now = time.time()
        entry = KeyEntry(time=now, hmac_key=crypto.random_bytes(32))
        if self.type in SYMMETRIC or self.type == "hmac":
            size = {"aes128-gcm96": 16, "hmac": self.key_size or 32}.get(self.type, 32)
            if material is not None and (len(material) != size if self.type != "hmac"
                                         else not HMAC_MIN <= len(material) <= HMAC_MAX):
                raise InvalidRequest(f"invalid key size {len(material)} bytes for key type {self.type}")
            entry.key = material if material is not None else crypto.random_bytes(size)
            if self.type == "hmac":
                entry.hmac_key = entry.key
                self.key_size = len(entry.key)
        else:
            try:
                stored, public = (crypto.import_private(self.type, material) if material is not None
                                  else crypto.generate(self.type))
            except crypto.CryptoError as exc:
                raise InvalidRequest(str(exc)) from None
            entry.key, entry.public_key = stored, public
        if self.convergent_encryption:
            entry.convergent_version = CONVERGENT_VERSION
        self.latest_version += 1
        self.keys[self.latest_version] = entry
        self.min_decryption_version = max(self.min_decryption_version, 1)

    def entry(self, version: int) -> KeyEntry:
        e = self.keys.get(version)
        if e is None:
            raise InvalidRequest("no such key version")
        return e

    def _encryption_version(self, version: int, what: str = "encryption") -> int:
        if version == 0:
            return self.latest_version
        if version < 0:
            raise InvalidRequest(f"requested version for {what} is negative")
        if version > self.latest_version:
            raise InvalidRequest(f"requested version for {what} is higher than the latest key version")
        if self.min_encryption_version > 0 and version < self.min_encryption_version:
            raise InvalidRequest(f"requested version for {what} is less than the minimum encryption key version")
        return version

    def _decryption_version(self, version: int, kind: str) -> int:
        if version > self.latest_version:
            raise InvalidRequest(f"invalid {kind}: version is too new")
        if self.min_decryption_version > 0 and version < self.min_decryption_version:
            raise InvalidRequest(ERR_TOO_OLD)
        return version

    def _cached(self, version: int, what: str, make: Any) -> Any:
        obj = self._objects.get((version, what))
        if obj is None:
            obj = self._objects[(version, what)] = make()
        return obj

    # --- symmetric and RSA encryption --------------------------------------------------------------------------------

    @property
    def supports_encryption(self) -> bool:
        return self.type in SYMMETRIC or self.type.startswith("rsa-")

    @property
    def supports_signing(self) -> bool:
        return self.type in ASYMMETRIC

    def _symmetric_key(self, version: int, context: bytes, extra: int = 0) -> bytes:
        size = 16 if self.type == "aes128-gcm96" else 32
        entry = self.entry(version)
        if not self.derived:
            return entry.key
        if not context:
            raise InvalidRequest(ERR_NO_CONTEXT)
        return crypto.hkdf(entry.key, context, size + extra)

    def encrypt(self, plaintext: bytes, *, context: bytes = b"", key_version: int = 0,
                associated_data: bytes = b"") -> tuple[str, int]:
        """Vault's ``EncryptWithFactory``: the ``vault:vN:`` ciphertext and the version used."""
        if not self.supports_encryption:
            raise InvalidRequest(f"message encryption not supported for key type {self.type}")
        version = self._encryption_version(key_version)
        if self.type.startswith("rsa-"):
            if associated_data:
                raise InvalidRequest(f"associated_data provided for non-AEAD cipher suite {self.type}")
            pub = self._cached(version, "pub", lambda: self._public_object(version))
            try:
                return ciphertext.encode(version, crypto.rsa_encrypt(pub, plaintext)), version
            except crypto.CryptoError as exc:
                raise InvalidRequest(str(exc)) from None
        size = 16 if self.type == "aes128-gcm96" else 32
        nonce = None
        if self.convergent_encryption:
            material = self._symmetric_key(version, context, 32)
            key, nonce = material[:size], crypto.convergent_nonce(material[size:size + 32], plaintext)
        else:
            key = self._symmetric_key(version, context)[:size]
        return ciphertext.encode(version, crypto.seal(self.type, key, plaintext, associated_data, nonce)), version

    def refuse_if_bound(self) -> None:
        if self.attestation is not None:
            raise InvalidRequest(ERR_BOUND.format(name=self.name))

    def decrypt(self, value: str, *, context: bytes = b"", associated_data: bytes = b"",
                plaintext_stays_inside: bool = False) -> bytes:
        """The plaintext. An attestation-bound key refuses unless the caller vouches that the plaintext never
        leaves the server in clear (``rewrap``, or the attested path that seals it for the document's key)."""
        if not plaintext_stays_inside:
            self.refuse_if_bound()
        if not self.supports_encryption:
            raise InvalidRequest(f"message decryption not supported for key type {self.type}")
        version, body = ciphertext.split(value)
        self._decryption_version(version, "ciphertext")
        blob = ciphertext.decode_body(body)
        try:
            if self.type.startswith("rsa-"):
                priv = self._cached(version, "priv", lambda: crypto.load_private(self.type, self.entry(version).key))
                return crypto.rsa_decrypt(priv, blob)
            size = 16 if self.type == "aes128-gcm96" else 32
            key = self._symmetric_key(version, context)[:size]
            return crypto.open_(self.type, key, blob, associated_data)
        except crypto.CryptoError as exc:
            raise InvalidRequest(str(exc)) from None

    # --- HMAC -----------------------------------------------------------------------------------------------------

    def hmac_key(self, version: int) -> bytes:
        if version < 0:
            raise InvalidRequest("key version does not exist (cannot be negative)")
        if version > self.latest_version:
            raise InvalidRequest(f"key version does not exist; latest key version is {self.latest_version}")
        return self.entry(version).hmac_key

    def hmac(self, data: bytes, algorithm: str, key_version: int = 0) -> str:
        version = key_version or self.latest_version
        if self.min_encryption_version > 0 and version < self.min_encryption_version:
            raise InvalidRequest("cannot generate HMAC: version is too old (disallowed by policy)")
        try:
            mac = crypto.hmac(algorithm, self.hmac_key(version), data)
        except crypto.CryptoError as exc:
            raise InvalidRequest(str(exc)) from None
        return ciphertext.encode(version, mac)

    def verify_hmac(self, data: bytes, value: str, algorithm: str) -> bool:
        version, _ = ciphertext.split(value, "hmac")
        self._decryption_version(version, "hmac")
        try:
            expected = ciphertext.encode(version, crypto.hmac(algorithm, self.hmac_key(version), data))
        except crypto.CryptoError as exc:
            raise InvalidRequest(str(exc)) from None
        return crypto.equal(expected, value)

    # --- signatures ---------------------------------------------------------------------------------------------

    def _public_object(self, version: int) -> Any:
        entry = self.entry(version)
        if self.type == "ed25519":
            return crypto.load_private(self.type, entry.key).public_key()
        return crypto.load_public_pem(entry.public_key)

    def _signing_key(self, version: int, context: bytes) -> Any:
        if self.type == "ed25519" and self.derived:
            if not context:
                raise InvalidRequest(ERR_NO_CONTEXT)
            return crypto.derive_ed25519(self.entry(version).key, context)
        return self._cached(version, "priv", lambda: crypto.load_private(self.type, self.entry(version).key))

    def sign(self, data: bytes, *, key_version: int = 0, context: bytes = b"", hash_algorithm: str = "sha2-256",
             prehashed: bool = False, signature_algorithm: str = "pss", marshaling: str = "asn1",
             salt_length: str = "auto") -> dict[str, Any]:
        if not self.supports_signing:
            raise InvalidRequest(f"message signing not supported for key type {self.type}")
        version = self._encryption_version(key_version, "signing")
        if marshaling not in ("asn1", "jws"):
            raise InvalidRequest("requested marshaling type is invalid")
        priv = self._signing_key(version, context)
        try:
            sig = crypto.sign(self.type, priv, data, hash_algorithm=hash_algorithm, prehashed=prehashed,
                              signature_algorithm=signature_algorithm, marshaling=marshaling, salt_length=salt_length)
        except crypto.CryptoError as exc:
            raise InvalidRequest(str(exc)) from None
        out: dict[str, Any] = {"signature": ciphertext.encode(version, sig, urlsafe=marshaling == "jws"),
                               "key_version": version}
        if self.type == "ed25519" and self.derived:
            out["public_key"] = crypto.ed25519_public_b64(priv)
        return out

    def verify(self, data: bytes, signature: str, *, context: bytes = b"", hash_algorithm: str = "sha2-256",
               prehashed: bool = False, signature_algorithm: str = "pss", marshaling: str = "asn1",
               salt_length: str = "auto") -> bool:
        if not self.supports_signing:
            raise InvalidRequest(f"message verification not supported for key type {self.type}")
        if marshaling not in ("asn1", "jws"):
            raise InvalidRequest("requested marshaling type is invalid")
        version, body = ciphertext.split(signature, "signature")
        self._decryption_version(version, "signature")
        sig = ciphertext.decode_body(body, urlsafe=marshaling == "jws", kind="signature")
        if self.type == "ed25519" and self.derived:
            pub = self._signing_key(version, context).public_key()
        else:
            pub = self._cached(version, "pub", lambda: self._public_object(version))
        try:
            return crypto.verify(self.type, pub, data, sig, hash_algorithm=hash_algorithm, prehashed=prehashed,
                                 signature_algorithm=signature_algorithm, marshaling=marshaling,
                                 salt_length=salt_length)
        except crypto.CryptoError as exc:
            raise InvalidRequest(str(exc)) from None

    # --- export and the API view --------------------------------------------------------------------------------

    def export(self, export_type: str, version: int) -> str:
        if export_type != "public-key":
            self.refuse_if_bound()
        entry = self.entry(version)
        if export_type == "hmac-key":
            return _b64(entry.hmac_key)
        if export_type == "encryption-key":
            if self.type in SYMMETRIC:
                return _b64(entry.key)
            if self.type.startswith("rsa-"):
                return crypto.export_private(self.type, entry.key)
        elif export_type == "signing-key":
            if self.type in ASYMMETRIC:
                return crypto.export_private(self.type, entry.key)
        elif export_type == "public-key":
            if self.type in ASYMMETRIC:
                return entry.public_key
        raise InvalidRequest(f"{export_type} not supported for key type {self.type}" if export_type in EXPORT_TYPES
                             else f"invalid export type: {export_type}")

    def to_api(self, context: bytes = b"") -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name, "type": self.type, "derived": self.derived,
            "deletion_allowed": self.deletion_allowed, "min_available_version": self.min_available_version,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version, "latest_version": self.latest_version,
            "exportable": self.exportable, "allow_plaintext_backup": self.allow_plaintext_backup,
            "supports_encryption": self.supports_encryption, "supports_decryption": self.supports_encryption,
            "supports_signing": self.supports_signing, "supports_derivation": self.type in (*SYMMETRIC, "ed25519"),
            "auto_rotate_period": self.auto_rotate_period, "imported_key": self.imported,
        }
        if self.key_size:
            data["key_size"] = self.key_size
        if self.attestation is not None:
            data["attestation_bound"] = True
        if self.imported:
            data["imported_key_allow_rotation"] = self.allow_imported_key_rotation
        if self.backup_info:
            data["backup_info"] = self.backup_info
        if self.restore_info:
            data["restore_info"] = self.restore_info
        if self.derived:
            data["kdf"] = "hkdf_sha256"
            data["convergent_encryption"] = self.convergent_encryption
            if self.convergent_encryption:
                data["convergent_encryption_version"] = self.convergent_version
        visible = {v: e for v, e in self.keys.items() if v >= self.min_decryption_version}
        if self.type in SYMMETRIC or self.type == "hmac":
            data["keys"] = {str(v): int(e.time) for v, e in visible.items()}
        else:
            keys: dict[str, Any] = {}
            for v, e in visible.items():
                public = e.public_key
                if self.type == "ed25519" and self.derived:
                    public = crypto.ed25519_public_b64(crypto.derive_ed25519(e.key, context)) if context else ""
                name = {"ecdsa-p256": "P-256", "ecdsa-p384": "P-384", "ecdsa-p521": "P-521"}.get(self.type, self.type)
                keys[str(v)] = {"name": name, "public_key": public, "creation_time": rfc3339(e.time)}
            data["keys"] = keys
        return data


EXPORT_TYPES = ("encryption-key", "signing-key", "hmac-key", "public-key")


class KeyStore:
    """The mount's policies in its barrier view. Parsed policies are reused while their stored bytes are unchanged,
    so a cache can never disagree with storage (a discarded request's writes never reach it)."""

    def __init__(self, view: BarrierView) -> None:
        self.view = view
        self._parsed: dict[str, tuple[bytes, Policy]] = {}

    async def get(self, name: str, *, for_update: bool = False) -> Policy | None:
        """The named policy. ``for_update`` gives a private copy to change: a shared one must never be mutated,
        or a request that is later discarded would leave its change behind in memory."""
        raw = await self.view.get(f"policy/{name}")
        if raw is None:
            return None
        hit = self._parsed.get(name)
        if hit is not None and hit[0] == raw and not for_update:
            return hit[1]
        try:
            policy = Policy.from_json(orjson.loads(raw))
        except (ValueError, KeyError, TypeError):
            raise LogicalError("stored transit key is unreadable", status=500) from None
        if for_update:
            return policy
        if len(self._parsed) > 4096:
            self._parsed.clear()
        self._parsed[name] = (raw, policy)
        return policy

    async def put(self, policy: Policy) -> None:
        await self.view.put(f"policy/{policy.name}", orjson.dumps(policy.to_json()))

    async def delete(self, name: str) -> None:
        await self.view.delete(f"policy/{name}")
        self._parsed.pop(name, None)

    async def names(self) -> list[str]:
        return await self.view.list_all("policy/")

    def lock(self, name: str) -> Any:
        """Held for a read-modify-write of one key until the request commits."""
        return self.view.lock(f"transit-key/{name}")

    async def wrapping_key(self) -> bytes:
        async with self.view.lock("transit-wrapping-key"):
            raw = await self.view.get("import/key")
            if raw is None:
                raw = crypto.new_wrapping_key()
                await self.view.put("import/key", raw)
            return raw
