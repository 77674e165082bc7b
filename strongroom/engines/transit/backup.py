"""Vault's transit backup format, both ways: ``base64(JSON KeyData{policy, archived_keys})``.

The JSON is what Vault's ``keysutil`` writes with Go's ``encoding/json``: key types as numbers, times as RFC 3339,
byte slices as base64, EC keys as the big integers ``ec_x``/``ec_y``/``ec_d``, RSA keys as Go's ``rsa.PrivateKey``
(N, E, D, Primes), durations in nanoseconds; versions below ``min_decryption_version`` sit in ``archived_keys`` at
index ``version - min_available_version``. A Vault backup restores here and ours restores on Vault. Big integers are
why this module uses the standard ``json`` (orjson stops at 64 bits).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from strongroom.engines.transit import crypto
from strongroom.engines.transit.keys import CURVE_TYPES, SYMMETRIC, KeyEntry, Policy, rfc3339

TYPE_IDS = {"aes256-gcm96": 0, "ecdsa-p256": 1, "ed25519": 2, "rsa-2048": 3, "rsa-4096": 4, "chacha20-poly1305": 5,
            "ecdsa-p384": 6, "ecdsa-p521": 7, "aes128-gcm96": 8, "rsa-3072": 9, "hmac": 10}
TYPE_NAMES = {v: k for k, v in TYPE_IDS.items()}
NS = 1_000_000_000


class BackupError(ValueError):
    """A backup that cannot be restored; the message is safe to show."""


def _b64(data: bytes) -> str | None:
    return base64.b64encode(data).decode() if data else None


def _entry_to_vault(p: Policy, e: KeyEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": None, "hmac_key": _b64(e.hmac_key), "time": rfc3339(e.time), "ec_x": None, "ec_y": None,
        "ec_d": None, "rsa_key": None, "rsa_public_key": None, "public_key": "",
        "convergent_version": e.convergent_version, "creation_time": int(e.time), "certificate_chain": None,
    }
    if p.type in CURVE_TYPES:
        out["ec_x"], out["ec_y"], out["ec_d"] = crypto.ec_numbers(e.key)
        out["public_key"] = e.public_key
    elif p.type.startswith("rsa-"):
        out["rsa_key"] = crypto.rsa_numbers(e.key)
    else:
        out["key"] = _b64(e.key)
        if p.type == "ed25519":
            out["public_key"] = e.public_key
    return out


def to_vault(p: Policy) -> str:
    base = p.min_available_version
    # Go's zero KeyEntry for slots without a key (version 0 of a key never trimmed)
    empty = {"key": None, "hmac_key": None, "time": "0001-01-01T00:00:00Z", "ec_x": None, "ec_y": None, "ec_d": None,
             "rsa_key": None, "rsa_public_key": None, "public_key": "", "convergent_version": 0, "creation_time": 0,
             "certificate_chain": None}
    archive = [_entry_to_vault(p, p.keys[v]) if v in p.keys else empty for v in range(base, p.latest_version + 1)]
    policy = {
        "name": p.name,
        "keys": {str(v): _entry_to_vault(p, e) for v, e in sorted(p.keys.items()) if v >= p.min_decryption_version},
        "derived": p.derived, "kdf": p.kdf, "convergent_encryption": p.convergent_encryption,
        "exportable": p.exportable, "min_decryption_version": p.min_decryption_version,
        "min_encryption_version": p.min_encryption_version, "latest_version": p.latest_version,
        "archive_version": p.latest_version, "archive_min_version": base, "min_available_version": base,
        "deletion_allowed": p.deletion_allowed, "convergent_version": p.convergent_version,
        "type": TYPE_IDS[p.type], "backup_info": p.backup_info, "restore_info": p.restore_info,
        "allow_plaintext_backup": p.allow_plaintext_backup, "version_template": "", "storage_prefix": "",
        "auto_rotate_period": p.auto_rotate_period * NS, "Imported": p.imported,
        "AllowImportedKeyRotation": p.allow_imported_key_rotation, "soft_deleted": False,
    }
    if p.key_size:
        policy["key_size"] = p.key_size
    doc = {"policy": policy, "archived_keys": {"keys": archive}}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _time(raw: dict[str, Any]) -> float:
    value = raw.get("time")
    if isinstance(value, str) and value and not value.startswith("0001-"):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return float(raw.get("creation_time") or 0)


def _bytes(value: Any) -> bytes:
    return base64.b64decode(value, validate=True) if value else b""


def _entry_from_vault(key_type: str, raw: dict[str, Any]) -> KeyEntry | None:
    """None for an empty archive slot (Vault's version 0, or a trimmed version)."""
    e = KeyEntry(hmac_key=_bytes(raw.get("hmac_key")), time=_time(raw),
                 convergent_version=int(raw.get("convergent_version") or 0))
    if key_type in CURVE_TYPES:
        if raw.get("ec_d") is None:
            return None
        e.key, e.public_key = crypto.ec_from_numbers(key_type, int(raw["ec_d"]))
    elif key_type.startswith("rsa-"):
        if not raw.get("rsa_key"):
            if raw.get("rsa_public_key"):
                raise BackupError("keys without their private part cannot be restored")
            return None
        e.key, e.public_key = crypto.rsa_from_numbers(raw["rsa_key"])
    else:
        e.key = _bytes(raw.get("key"))
        if not e.key:
            return None
        if key_type == "ed25519":
            e.key, e.public_key = crypto.ed25519_storage(e.key[:32])
        if key_type == "hmac":
            e.hmac_key = e.key
    return e


def from_vault(blob: str) -> Policy:
    try:
        doc = json.loads(base64.b64decode(blob, validate=True))
        raw = doc.get("policy") if isinstance(doc, dict) else None
        if not isinstance(raw, dict):
            raise BackupError("backup data does not contain a policy")
        key_type = TYPE_NAMES.get(raw.get("type"))  # type: ignore[arg-type]
        if key_type is None:
            raise BackupError(f"unsupported key type in backup: {raw.get('type')}")
        if raw.get("derived") and raw.get("kdf") != 1:
            raise BackupError("keys using the legacy hmac-sha256-counter KDF cannot be restored")
        if raw.get("convergent_encryption") and int(raw.get("convergent_version") or 0) not in (-1, 3):
            raise BackupError("keys with an old convergent encryption version cannot be restored")
        p = Policy(name=str(raw.get("name") or ""), type=key_type)
        p.derived = bool(raw.get("derived"))
        p.convergent_encryption = bool(raw.get("convergent_encryption"))
        p.convergent_version = int(raw.get("convergent_version") or -1)
        p.exportable = bool(raw.get("exportable"))
        p.allow_plaintext_backup = bool(raw.get("allow_plaintext_backup"))
        p.deletion_allowed = bool(raw.get("deletion_allowed"))
        p.min_decryption_version = max(1, int(raw.get("min_decryption_version") or 1))
        p.min_encryption_version = int(raw.get("min_encryption_version") or 0)
        p.min_available_version = int(raw.get("min_available_version") or 0)
        p.latest_version = int(raw.get("latest_version") or 0)
        p.auto_rotate_period = int(raw.get("auto_rotate_period") or 0) // NS
        p.key_size = int(raw.get("key_size") or 0)
        p.imported = bool(raw.get("Imported"))
        p.allow_imported_key_rotation = bool(raw.get("AllowImportedKeyRotation"))
        p.backup_info = raw.get("backup_info")
        archive = ((doc.get("archived_keys") or {}).get("keys")) or []
        for index, entry_raw in enumerate(archive):
            version = index + p.min_available_version
            if version >= 1 and isinstance(entry_raw, dict):
                entry = _entry_from_vault(key_type, entry_raw)
                if entry is not None:
                    p.keys[version] = entry
        for version_text, entry_raw in (raw.get("keys") or {}).items():
            entry = _entry_from_vault(key_type, entry_raw)
            if entry is not None:
                p.keys[int(version_text)] = entry
        p.keys = {v: e for v, e in p.keys.items() if v >= max(1, p.min_available_version)}
        if p.type in SYMMETRIC and not p.convergent_encryption:
            p.convergent_version = -1
        p.check()
        return p
    except BackupError:
        raise
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, crypto.CryptoError):
        raise BackupError("invalid backup") from None
