"""``keys/<name>/attestation``: bind a key to an attestation policy, change it, read it (never remove it).

Binding creates the policy (the ``create`` capability, with ``pcr0`` required); changing the allowed measurements of a
bound key is an ``update`` — the one capability the broker-deploy grant's token holds on exactly this path. A key that
is exportable, allows plaintext backup or was imported (BYOK) cannot be bound: its material may already be
outside; for the same reason a bound key takes no ``import_version``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.engines.transit.attestation import PCR_INDEXES, AttestationPolicy
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.transit.backend import TransitBackend

FIELDS = {
    "name": Field(FieldType.STRING, "Name of the key", in_path=True, required=True),
    "root_certificate": Field(FieldType.STRING, "PEM trust anchor(s) for the document's certificate chain "
                              "(default: the AWS Nitro Enclaves root)."),
    **{f"pcr{i}": Field(FieldType.COMMA_STRING_LIST, f"Allowed PCR{i} values (hex); "
                        + ("required." if i == 0 else "empty: not checked.")) for i in PCR_INDEXES},
    "max_document_age": Field(FieldType.DURATION, "The oldest attestation document accepted (default 5m, at most "
                              "24h)."),
    "refuse_debug_mode": Field(FieldType.BOOL, "Always true: debug-mode documents are refused."),
}


def paths(b: TransitBackend) -> list[Path]:
    store = b.keys

    async def bound(req: Request, fd: FieldData) -> bool:
        p = await store.get(fd.get("name"))
        return p is not None and p.attestation is not None

    async def read(req: Request, fd: FieldData) -> Response | None:
        p = await store.get(fd.get("name"))
        if p is None or p.attestation is None:
            raise NotFound()
        return Response(data=p.attestation.to_api())

    async def write(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        given = {k: fd.get(k) for k in FIELDS if k != "name" and fd.has(k)}
        async with store.lock(name):
            p = await store.get(name, for_update=True)
            if p is None:
                raise InvalidRequest(f"no existing key named {name} could be found")
            if p.attestation is None:
                if not p.supports_encryption:
                    raise InvalidRequest(f"attestation policies apply to encryption keys, not {p.type}")
                if p.exportable or p.allow_plaintext_backup or p.imported or p.allow_imported_key_rotation:
                    raise InvalidRequest("a key that is exportable, allows plaintext backup or was imported cannot be "
                                         "bound to an attestation policy: its material may already be outside")
            policy = p.attestation or AttestationPolicy()
            policy.update(given)
            p.attestation = policy
            await store.put(p)
        return Response(data=policy.to_api())

    return [
        Path(pattern=rf"keys/{generic_name('name')}/attestation", fields=FIELDS, existence_check=bound,
             operations={Operation.READ: read, Operation.CREATE: write, Operation.UPDATE: write},
             summary="Bind a key to an attestation policy (allowed PCRs, root, document age), or change it."),
    ]
