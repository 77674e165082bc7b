"""What the pki engine keeps in its barrier view, and the parsed forms it works with.

Layout (every value is barrier-encrypted, bound to its path):

- ``key/<id>``: an issuer's private key (PEM) with its name and type — never returned unless generated ``exported``;
- ``issuer/<id>``: an issuer: its certificate, the chain above it, the key it signs with, its name and settings;
- ``config/issuers``, ``config/keys``: the default issuer and key; ``config/urls``, ``config/crl``: Vault's configs;
- ``certs/<serial>``: issued certificates (serials spelled ``aa-bb-…``) unless the role said ``no_store``;
- ``revoked/<serial>``: revocations (with the certificate, so a ``no_store`` certificate can be revoked too);
- ``crl/<issuer id>``: the current signed CRL of each issuer and its number;
- ``role/<name>``: roles.

Parsed keys and certificates are cached by the exact stored bytes, so a changed record is never served stale.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from cryptography import x509

from strongroom.core.logical import InvalidRequest
from strongroom.engines.pki import certutil

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView

ALL_USAGES = ("read-only", "issuing-certificates", "crl-signing", "ocsp-signing")
_CACHE_MAX = 256
# taken (until the request commits) by whatever changes revocations or CRLs
CRL_LOCK = "pki-crl"


@dataclass
class KeyEntry:
    id: str
    name: str
    type: str
    bits: int
    private_key: str  # PEM
    public_key: str = ""  # PEM, so matching a certificate to its key needs no private key loaded

    def to_api(self) -> dict[str, Any]:
        return {"key_id": self.id, "key_name": self.name, "key_type": self.type,
                "key_bits": self.bits, "managed_key_id": "", "managed_key_name": ""}


@dataclass
class IssuerEntry:
    id: str
    name: str
    key_id: str
    certificate: str  # PEM
    ca_chain: list[str] = field(default_factory=list)  # PEMs of the issuers above, nearest first
    manual_chain: list[str] = field(default_factory=list)
    leaf_not_after_behavior: str = "err"
    usage: str = ",".join(ALL_USAGES)
    revoked: bool = False
    revocation_time: float = 0.0
    issuing_certificates: list[str] = field(default_factory=list)
    crl_distribution_points: list[str] = field(default_factory=list)
    ocsp_servers: list[str] = field(default_factory=list)

    def has_usage(self, usage: str) -> bool:
        return usage in self.usage.split(",")

    def full_chain(self) -> list[str]:
        return [self.certificate, *self.ca_chain]

    def to_api(self) -> dict[str, Any]:
        return {
            "issuer_id": self.id, "issuer_name": self.name, "key_id": self.key_id,
            "certificate": self.certificate, "ca_chain": self.full_chain(), "manual_chain": self.manual_chain,
            "leaf_not_after_behavior": self.leaf_not_after_behavior, "usage": self.usage,
            "revocation_signature_algorithm": "", "revoked": self.revoked,
            "revocation_time": int(self.revocation_time), "revocation_time_rfc3339": rfc3339(self.revocation_time)
            if self.revoked else "",
            "issuing_certificates": self.issuing_certificates,
            "crl_distribution_points": self.crl_distribution_points, "ocsp_servers": self.ocsp_servers,
        }


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def storage_serial(serial: int) -> str:
    return certutil.serial_hex(serial).replace(":", "-")


def _is_uuid(ref: str) -> bool:
    try:
        uuid.UUID(ref)
        return True
    except ValueError:
        return False


class PKIStore:
    def __init__(self, view: BarrierView) -> None:
        self.view = view
        self._parsed: dict[bytes, Any] = {}

    def _remember(self, raw: bytes, value: Any) -> Any:
        if len(self._parsed) >= _CACHE_MAX:
            self._parsed.clear()
        self._parsed[raw] = value
        return value

    # --- keys ------------------------------------------------------------------------------------------------------

    async def key(self, key_id: str) -> KeyEntry | None:
        raw = await self.view.get(f"key/{key_id}")
        if raw is None:
            return None
        return KeyEntry(**orjson.loads(raw))

    async def private_key(self, key_id: str) -> certutil.PrivateKey:
        raw = await self.view.get(f"key/{key_id}")
        if raw is None:
            raise InvalidRequest(f"unable to fetch key {key_id}: no such key")
        cached = self._parsed.get(raw)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        return self._remember(raw, certutil.load_private(orjson.loads(raw)["private_key"]))  # type: ignore[no-any-return]

    async def put_key(self, entry: KeyEntry) -> None:
        await self.view.put_json(f"key/{entry.id}", asdict(entry))

    async def key_ids(self) -> list[str]:
        return await self.view.list_all("key/")

    async def keys(self) -> list[KeyEntry]:
        return [k for k in [await self.key(i) for i in await self.key_ids()] if k is not None]

    async def resolve_key(self, ref: str) -> KeyEntry:
        ref = ref or "default"
        if ref == "default":
            ref = (await self.view.get_json("config/keys") or {}).get("default", "")
            if not ref:
                raise InvalidRequest("no default key currently configured")
        if _is_uuid(ref):
            entry = await self.key(ref)
            if entry is not None:
                return entry
        for entry in await self.keys():
            if entry.name and entry.name == ref:
                return entry
        raise InvalidRequest(f"unable to resolve key reference {ref!r}: no such key")

    async def new_key(self, key: certutil.PrivateKey, name: str = "") -> KeyEntry:
        await self._check_name("key", name)
        key_type, bits = certutil.key_type_of(key)
        entry = KeyEntry(id=str(uuid.uuid4()), name=name, type=key_type, bits=bits,
                         private_key=certutil.private_pem(key, "pkcs8"),
                         public_key=certutil.public_pem(key.public_key()))  # type: ignore[arg-type]
        await self.put_key(entry)
        config = await self.view.get_json("config/keys") or {}
        if not config.get("default"):
            await self.view.put_json("config/keys", {"default": entry.id})
        return entry

    async def _check_name(self, kind: str, name: str) -> None:
        if not name:
            return
        if name == "default" or _is_uuid(name):
            raise InvalidRequest(f"reserved {kind} name: {name}")
        existing = await (self.keys() if kind == "key" else self.issuers())
        if any(e.name == name for e in existing):
            raise InvalidRequest(f"{kind} name already in use")

    # --- issuers ---------------------------------------------------------------------------------------------------

    async def issuer(self, issuer_id: str) -> IssuerEntry | None:
        raw = await self.view.get(f"issuer/{issuer_id}")
        return None if raw is None else IssuerEntry(**orjson.loads(raw))

    async def issuer_cert(self, entry: IssuerEntry) -> x509.Certificate:
        raw = entry.certificate.encode()
        cached = self._parsed.get(raw)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        return self._remember(raw, certutil.load_cert(entry.certificate))  # type: ignore[no-any-return]

    async def put_issuer(self, entry: IssuerEntry) -> None:
        await self.view.put_json(f"issuer/{entry.id}", asdict(entry))

    async def issuer_ids(self) -> list[str]:
        return await self.view.list_all("issuer/")

    async def issuers(self) -> list[IssuerEntry]:
        return [e for e in [await self.issuer(i) for i in await self.issuer_ids()] if e is not None]

    async def default_issuer_id(self) -> str:
        return str((await self.view.get_json("config/issuers") or {}).get("default", ""))

    async def resolve_issuer(self, ref: str) -> IssuerEntry:
        ref = ref or "default"
        if ref == "default":
            ref = await self.default_issuer_id()
            if not ref:
                raise InvalidRequest("no default issuer currently configured")
        if _is_uuid(ref):
            entry = await self.issuer(ref)
            if entry is not None:
                return entry
        for entry in await self.issuers():
            if entry.name and entry.name == ref:
                return entry
        raise InvalidRequest(f"unable to resolve issuer reference {ref!r}: no such issuer")

    async def add_issuer(self, cert: x509.Certificate, key_id: str, chain: list[str], name: str = "") -> IssuerEntry:
        """Store a new issuer (or return the existing one with the same certificate); the first becomes default."""
        pem = certutil.cert_pem(cert)
        for existing in await self.issuers():
            if existing.certificate == pem:
                return existing
        await self._check_name("issuer", name)
        entry = IssuerEntry(id=str(uuid.uuid4()), name=name, key_id=key_id, certificate=pem, ca_chain=chain)
        await self.put_issuer(entry)
        if not await self.default_issuer_id():
            await self.view.put_json("config/issuers", {"default": entry.id, "default_follows_latest_issuer": False})
        await self.relink_chains()
        return entry

    async def relink_chains(self) -> None:
        """Rebuild every issuer's chain from the issuers this mount holds (Vault's automatic chain building)."""
        entries = await self.issuers()
        certs = {e.id: await self.issuer_cert(e) for e in entries}
        for e in entries:
            if e.manual_chain:
                continue
            chain: list[str] = []
            current = certs[e.id]
            seen = {e.id}
            while current.issuer != current.subject:
                parent = next((p for p in entries if p.id not in seen and certs[p.id].subject == current.issuer
                               and certutil.signed_by(current, certs[p.id])), None)
                if parent is None:
                    break
                seen.add(parent.id)
                chain.append(parent.certificate)
                current = certs[parent.id]
            if not chain and e.ca_chain:
                continue  # keep the chain supplied with a signed intermediate whose parents are not held here
            if chain != e.ca_chain:
                e.ca_chain = chain
                await self.put_issuer(e)

    async def delete_issuer(self, entry: IssuerEntry) -> None:
        await self.view.delete(f"issuer/{entry.id}")
        await self.view.delete(f"crl/{entry.id}")
        if await self.default_issuer_id() == entry.id:
            await self.view.put_json("config/issuers", {"default": "", "default_follows_latest_issuer": False})

    # --- certificates ------------------------------------------------------------------------------------------------

    async def put_cert(self, serial: int, pem: str, issuer_id: str) -> None:
        await self.view.put_json(f"certs/{storage_serial(serial)}", {"certificate": pem, "issuer_id": issuer_id})

    async def cert(self, serial: int) -> dict[str, Any] | None:
        return await self.view.get_json(f"certs/{storage_serial(serial)}")  # type: ignore[no-any-return]

    async def revoked(self, serial: int) -> dict[str, Any] | None:
        return await self.view.get_json(f"revoked/{storage_serial(serial)}")  # type: ignore[no-any-return]

    async def revoked_serials(self) -> list[str]:
        return await self.view.list_all("revoked/")

    # --- configuration and roles -----------------------------------------------------------------------------------

    async def config(self, name: str, defaults: dict[str, Any]) -> dict[str, Any]:
        stored = await self.view.get_json(f"config/{name}") or {}
        return {**defaults, **stored}

    async def put_config(self, name: str, value: dict[str, Any]) -> None:
        await self.view.put_json(f"config/{name}", value)

    async def role(self, name: str) -> dict[str, Any] | None:
        return await self.view.get_json(f"role/{name}")  # type: ignore[no-any-return]
