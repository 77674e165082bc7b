"""Issuers and keys: ``issuers`` (LIST), ``issuer/<ref>`` (read/update/delete, ``pem``/``der``/``json``,
``revoke``), ``keys``, ``key/<ref>``, ``config/issuers``, ``config/keys``, and the default issuer's ``ca``, ``ca/pem``
and ``ca_chain``.

A key is never returned by any of these: only ``*/generate/exported`` hands a private key out, once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.engines.pki import certutil
from strongroom.engines.pki.store import ALL_USAGES, CRL_LOCK, IssuerEntry, storage_serial
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.pki.backend import PKIBackend

REF = r"(?P<ref>[\w.-]+)"
REF_FIELD = Field(FieldType.STRING, "Issuer or key reference: id, name or 'default'.", in_path=True, required=True)
PEM_TYPE = "application/pem-certificate-chain"
DER_TYPE = "application/pkix-cert"

ISSUER_UPDATE_FIELDS = {
    "ref": REF_FIELD,
    "issuer_name": Field(FieldType.STRING, "A new name for the issuer."),
    "leaf_not_after_behavior": Field(FieldType.STRING, "err, truncate or permit.",
                                     allowed=("err", "truncate", "permit")),
    "usage": Field(FieldType.COMMA_STRING_LIST, "read-only, issuing-certificates, crl-signing, ocsp-signing."),
    "manual_chain": Field(FieldType.COMMA_STRING_LIST, "Issuer references making up this issuer's chain."),
    "issuing_certificates": Field(FieldType.COMMA_STRING_LIST, "AIA issuing certificate URLs for this issuer."),
    "crl_distribution_points": Field(FieldType.COMMA_STRING_LIST, "CRL distribution point URLs for this issuer."),
    "ocsp_servers": Field(FieldType.COMMA_STRING_LIST, "OCSP server URLs for this issuer."),
    "revocation_signature_algorithm": Field(FieldType.STRING, "Accepted for compatibility; the key decides."),
}


def paths(b: PKIBackend) -> list[Path]:
    store = b.store

    async def list_issuers(req: Request, fd: FieldData) -> Response | None:
        default = await store.default_issuer_id()
        info: dict[str, Any] = {}
        for e in await store.issuers():
            cert = await store.issuer_cert(e)
            info[e.id] = {"issuer_name": e.name, "is_default": e.id == default, "key_id": e.key_id,
                          "serial_number": certutil.serial_hex(cert.serial_number)}
        return Response.list_keys(sorted(info), key_info=info)

    async def read_issuer(req: Request, fd: FieldData) -> Response | None:
        entry = await store.resolve_issuer(fd.get("ref"))
        return Response(data=entry.to_api())

    async def update_issuer(req: Request, fd: FieldData) -> Response | None:
        entry = await store.resolve_issuer(fd.get("ref"))
        name, has_name = fd.get_ok("issuer_name")
        if has_name and name != entry.name:
            await store._check_name("issuer", name)
            entry.name = name
        behavior, has = fd.get_ok("leaf_not_after_behavior")
        if has:
            entry.leaf_not_after_behavior = behavior
        usage, has = fd.get_ok("usage")
        if has:
            unknown = set(usage) - set(ALL_USAGES)
            if unknown:
                raise InvalidRequest(f"unknown usage: {', '.join(sorted(unknown))}")
            entry.usage = ",".join(u for u in ALL_USAGES if u in usage)
        chain, has = fd.get_ok("manual_chain")
        if has:
            refs = [r for r in chain if r != "self"]
            entry.manual_chain = chain
            entry.ca_chain = [(await store.resolve_issuer(r)).certificate for r in refs]
        for attr in ("issuing_certificates", "crl_distribution_points", "ocsp_servers"):
            value, has = fd.get_ok(attr)
            if has:
                setattr(entry, attr, value)
        await store.put_issuer(entry)
        if has and not chain:
            await store.relink_chains()
        return Response(data=entry.to_api())

    async def delete_issuer(req: Request, fd: FieldData) -> Response | None:
        try:
            entry = await store.resolve_issuer(fd.get("ref"))
        except InvalidRequest:
            return None  # Vault: deleting what does not exist succeeds
        warnings = []
        if await store.default_issuer_id() == entry.id:
            warnings.append("Deleted issuer was the default issuer; a new default issuer has not been assigned.")
        await store.delete_issuer(entry)
        return Response(warnings=warnings) if warnings else None

    async def issuer_cert(req: Request, fd: FieldData) -> Response | None:
        entry = await store.resolve_issuer(fd.get("ref"))
        kind = fd.get("kind")
        if kind == "der":
            cert = await store.issuer_cert(entry)
            return Response(raw_body=certutil.cert_der(cert), raw_content_type=DER_TYPE)
        if kind == "pem":
            return Response(raw_body=(entry.certificate + "\n").encode(), raw_content_type=PEM_TYPE)
        return Response(data={"certificate": entry.certificate, "ca_chain": entry.full_chain(), "issuer_id": entry.id,
                              "issuer_name": entry.name})

    async def revoke_issuer(req: Request, fd: FieldData) -> Response | None:
        async with store.view.lock(CRL_LOCK):
            return await _revoke_issuer(b, await store.resolve_issuer(fd.get("ref")))

    async def list_keys(req: Request, fd: FieldData) -> Response | None:
        info = {k.id: {"key_name": k.name} for k in await store.keys()}
        return Response.list_keys(sorted(info), key_info=info)

    async def read_key(req: Request, fd: FieldData) -> Response | None:
        return Response(data=(await store.resolve_key(fd.get("ref"))).to_api())

    async def update_key(req: Request, fd: FieldData) -> Response | None:
        entry = await store.resolve_key(fd.get("ref"))
        name, has = fd.get_ok("key_name")
        if has and name != entry.name:
            await store._check_name("key", name)
            entry.name = name
            await store.put_key(entry)
        return Response(data=entry.to_api())

    async def delete_key(req: Request, fd: FieldData) -> Response | None:
        try:
            entry = await store.resolve_key(fd.get("ref"))
        except InvalidRequest:
            return None
        if any(i.key_id == entry.id for i in await store.issuers()):
            raise InvalidRequest("unable to delete key as it is in use by one or more issuers")
        await store.view.delete(f"key/{entry.id}")
        keys_config = await store.config("keys", {"default": ""})
        if keys_config.get("default") == entry.id:
            await store.put_config("keys", {"default": ""})
        return None

    async def read_config_issuers(req: Request, fd: FieldData) -> Response | None:
        return Response(data=await store.config("issuers", {"default": "", "default_follows_latest_issuer": False}))

    async def write_config_issuers(req: Request, fd: FieldData) -> Response | None:
        current = await store.config("issuers", {"default": "", "default_follows_latest_issuer": False})
        ref, has = fd.get_ok("default")
        if has:
            current["default"] = (await store.resolve_issuer(ref)).id if ref else ""
        follows, has = fd.get_ok("default_follows_latest_issuer")
        if has:
            current["default_follows_latest_issuer"] = follows
        await store.put_config("issuers", current)
        return Response(data=current)

    async def read_config_keys(req: Request, fd: FieldData) -> Response | None:
        return Response(data=await store.config("keys", {"default": ""}))

    async def write_config_keys(req: Request, fd: FieldData) -> Response | None:
        ref, has = fd.get_ok("default")
        current = {"default": (await store.resolve_key(ref)).id if has and ref else ""}
        await store.put_config("keys", current)
        return Response(data=current)

    async def ca(req: Request, fd: FieldData) -> Response | None:
        entry = await _default(b)
        if fd.get("kind") == "pem":
            return Response(raw_body=(entry.certificate + "\n").encode(), raw_content_type=PEM_TYPE)
        return Response(raw_body=certutil.cert_der(await store.issuer_cert(entry)), raw_content_type=DER_TYPE)

    async def ca_chain(req: Request, fd: FieldData) -> Response | None:
        entry = await _default(b)
        return Response(raw_body=("\n".join(entry.full_chain()) + "\n").encode(), raw_content_type=PEM_TYPE)

    kind = Field(FieldType.STRING, "Encoding.", in_path=True, default="der")
    return [
        Path(pattern=r"issuers/?", operations={Operation.LIST: list_issuers}, unauthenticated=True,
             summary="List the issuers of this mount."),
        Path(pattern=rf"issuer/{REF}", fields=ISSUER_UPDATE_FIELDS,
             operations={Operation.READ: read_issuer, Operation.UPDATE: update_issuer, Operation.PATCH: update_issuer,
                         Operation.DELETE: delete_issuer}, summary="Read, update or delete an issuer."),
        Path(pattern=rf"issuer/{REF}/(?P<kind>pem|der|json)", fields={"ref": REF_FIELD, "kind": kind},
             operations={Operation.READ: issuer_cert}, unauthenticated=True,
             summary="An issuer's certificate, unauthenticated."),
        Path(pattern=rf"issuer/{REF}/revoke", fields={"ref": REF_FIELD}, operations={Operation.UPDATE: revoke_issuer},
             summary="Revoke an issuer: it issues no more, and its parent's CRL lists it."),
        Path(pattern=r"keys/?", operations={Operation.LIST: list_keys}, summary="List the keys of this mount."),
        Path(pattern=rf"key/{REF}",
             fields={"ref": REF_FIELD, "key_name": Field(FieldType.STRING, "A new name for the key.")},
             operations={Operation.READ: read_key, Operation.UPDATE: update_key, Operation.DELETE: delete_key},
             summary="Read, rename or delete a key (never its private part)."),
        Path(pattern=r"config/issuers",
             fields={"default": Field(FieldType.STRING, "The default issuer reference."),
                     "default_follows_latest_issuer": Field(FieldType.BOOL, "Accepted; the default is explicit.")},
             operations={Operation.READ: read_config_issuers, Operation.UPDATE: write_config_issuers},
             summary="The default issuer."),
        Path(pattern=r"config/keys", fields={"default": Field(FieldType.STRING, "The default key reference.")},
             operations={Operation.READ: read_config_keys, Operation.UPDATE: write_config_keys},
             summary="The default key."),
        Path(pattern=r"ca(?:/(?P<kind>pem))?", fields={"kind": kind}, operations={Operation.READ: ca},
             unauthenticated=True, summary="The default issuer's certificate (DER, or PEM at ca/pem)."),
        Path(pattern=r"ca_chain", operations={Operation.READ: ca_chain}, unauthenticated=True,
             summary="The default issuer's chain, PEM."),
    ]


async def _default(b: PKIBackend) -> Any:
    try:
        return await b.store.resolve_issuer("default")
    except InvalidRequest:
        raise NotFound() from None


async def _revoke_issuer(b: PKIBackend, entry: IssuerEntry) -> Response:
    store = b.store
    if entry.revoked:
        return Response(data=entry.to_api())
    cert = await store.issuer_cert(entry)
    entry.revoked, entry.revocation_time = True, time.time()
    await store.put_issuer(entry)
    # on the CRL of whichever issuer held here signed it (a self-signed root has none)
    for parent in await store.issuers():
        if parent.id != entry.id and parent.key_id and certutil.signed_by(cert, await store.issuer_cert(parent)):
            await store.view.put_json(f"revoked/{storage_serial(cert.serial_number)}", {
                "certificate": entry.certificate, "issuer_id": parent.id,
                "revocation_time": entry.revocation_time})
            await b.rebuild_crl(parent)
    return Response(data=entry.to_api())
