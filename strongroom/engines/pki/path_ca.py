"""``root/generate/<type>``, ``intermediate/generate/<type>``, ``root/sign-intermediate``, ``intermediate/set-signed``,
``root/sign-self-issued``, ``config/ca`` (import a bundle) and ``root`` (DELETE: every issuer and key).

``<type>`` is ``internal`` (the private key stays behind the barrier), ``exported`` (it is returned, once), ``existing``
(use ``key_ref``) or ``kms`` (refused: no managed keys here).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.pki import certutil, common
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.pki.backend import PKIBackend

EXPORT_TYPE = Field(FieldType.STRING, "internal, exported or existing.", in_path=True, required=True)
TYPES = r"(?P<exported>internal|exported|existing|kms)"
_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z ]*PRIVATE KEY)-----.*?-----END \1-----", re.S)


def _check_type(fd: FieldData) -> str:
    kind = fd.get("exported")
    if kind == "kms":
        raise InvalidRequest("managed keys are not supported")
    return str(kind)


async def _key_for(b: PKIBackend, fd: FieldData) -> tuple[certutil.PrivateKey, str, str]:
    """The key a new CA uses: a new one (internal/exported) or ``key_ref`` (existing). Returns (key, id, name)."""
    if fd.get("exported") == "existing":
        entry = await b.store.resolve_key(fd.get("key_ref"))
        return await b.store.private_key(entry.id), entry.id, entry.name
    key = certutil.generate_key(fd.get("key_type"), fd.get("key_bits"))
    entry = await b.store.new_key(key, fd.get("key_name"))
    return key, entry.id, entry.name


def paths(b: PKIBackend) -> list[Path]:
    store = b.store

    async def generate_root(req: Request, fd: FieldData) -> Response | None:
        kind = _check_type(fd)
        if not fd.get("common_name"):
            raise InvalidRequest("the common_name field is required")
        certutil.check_key_params(fd.get("key_type"), fd.get("key_bits"))
        warnings: list[str] = []
        key, key_id, key_name = await _key_for(b, fd)
        dns, emails = common.split_alt_names(fd.get("alt_names"))
        spec = certutil.CertSpec(
            subject=common.subject_from(fd).name(), public_key=key.public_key(),
            not_after=common.not_after(fd, 0, b.ttl_limits()[1], warnings), is_ca=True,
            max_path_length=None if fd.get("max_path_length") < 0 else fd.get("max_path_length"),
            sans=certutil.SANs(dns=dns, emails=emails, ips=fd.get("ip_sans"), uris=fd.get("uri_sans")),
            permitted_dns_domains=fd.get("permitted_dns_domains"), urls=await b.urls(),
        )
        cert = certutil.build(spec, None, key)
        issuer = await store.add_issuer(cert, key_id, [], fd.get("issuer_name"))
        await store.put_cert(cert.serial_number, issuer.certificate, issuer.id)
        await b.rebuild_crl(issuer)
        fmt = fd.get("format")
        data = {"certificate": common.encode_cert(cert, fmt), "issuing_ca": common.encode_cert(cert, fmt),
                **common.cert_fields(cert), "issuer_id": issuer.id, "issuer_name": issuer.name, "key_id": key_id,
                "key_name": key_name}
        if kind == "exported":
            data["private_key"], data["private_key_type"] = common.encode_key(key, fmt, fd.get("private_key_format"))
        return Response(data=data, warnings=warnings)

    async def generate_intermediate(req: Request, fd: FieldData) -> Response | None:
        kind = _check_type(fd)
        certutil.check_key_params(fd.get("key_type"), fd.get("key_bits"))
        key, key_id, key_name = await _key_for(b, fd)
        dns, emails = common.split_alt_names(fd.get("alt_names"))
        if fd.get("common_name") and not fd.get("exclude_cn_from_sans") and "@" not in fd.get("common_name"):
            dns = [fd.get("common_name"), *dns]
        csr = certutil.make_csr(common.subject_from(fd).name(), key,
                                certutil.SANs(dns=dns, emails=emails, ips=fd.get("ip_sans"), uris=fd.get("uri_sans")))
        data = {"csr": certutil.csr_pem(csr), "key_id": key_id, "key_name": key_name,
                "key_type": certutil.key_type_of(key)[0]}
        if kind == "exported":
            data["private_key"], data["private_key_type"] = common.encode_key(key, fd.get("format"),
                                                                              fd.get("private_key_format"))
        return Response(data=data)

    async def sign_intermediate(req: Request, fd: FieldData) -> Response | None:
        issuer = await b.signing_issuer(fd.get("issuer_ref"))
        csr = certutil.load_csr(fd.get("csr"))
        use_csr = fd.get("use_csr_values")
        common_name = fd.get("common_name") or (certutil.common_name_of(csr.subject) if use_csr else "")
        if not common_name and not use_csr:
            raise InvalidRequest("the common_name field is required")
        warnings: list[str] = []
        issuer_cert = await store.issuer_cert(issuer)
        when = common.not_after(fd, 0, b.ttl_limits()[1], warnings)
        when = common.check_within_issuer(when, issuer_cert, issuer.leaf_not_after_behavior, warnings)
        subject = csr.subject if use_csr else common.subject_from(fd, common_name).name()
        sans = certutil.csr_sans(csr) if use_csr else certutil.SANs(
            dns=common.split_alt_names(fd.get("alt_names"))[0], ips=fd.get("ip_sans"), uris=fd.get("uri_sans"))
        path_len = fd.get("max_path_length")
        spec = certutil.CertSpec(subject=subject, public_key=csr.public_key(), not_after=when, is_ca=True,  # type: ignore[arg-type]
                                 max_path_length=None if path_len < 0 else path_len, sans=sans,
                                 permitted_dns_domains=fd.get("permitted_dns_domains"), urls=await b.urls(issuer))
        cert = certutil.build(spec, issuer_cert, await store.private_key(issuer.key_id))
        pem = certutil.cert_pem(cert)
        await store.put_cert(cert.serial_number, pem, issuer.id)
        fmt = fd.get("format")
        chain = [common.encode_pem(p, fmt) for p in issuer.full_chain()]
        return Response(data={"certificate": common.encode_cert(cert, fmt), "issuing_ca": chain[0],
                              "ca_chain": chain, **common.cert_fields(cert)}, warnings=warnings)

    async def sign_self_issued(req: Request, fd: FieldData) -> Response | None:
        issuer = await b.signing_issuer(fd.get("issuer_ref"))
        cert = certutil.load_cert(fd.get("certificate"))
        if cert.subject != cert.issuer:
            raise InvalidRequest("given certificate is not self-issued")
        if not certutil.is_ca(cert) and not fd.get("require_matching_certificate_algorithms"):
            raise InvalidRequest("given certificate is not a CA certificate")
        issuer_cert = await store.issuer_cert(issuer)
        spec = certutil.CertSpec(subject=cert.subject, public_key=cert.public_key(),  # type: ignore[arg-type]
                                 not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, is_ca=True)
        signed = certutil.build(spec, issuer_cert, await store.private_key(issuer.key_id))
        return Response(data={"certificate": certutil.cert_pem(signed), "issuing_ca": issuer.certificate})

    async def set_signed(req: Request, fd: FieldData) -> Response | None:
        certs = certutil.load_certs(fd.get("certificate"))
        if not certs:
            raise InvalidRequest("no data found in PEM block")
        return Response(data=await _import(b, certs, [], require_key=True))

    async def import_bundle(req: Request, fd: FieldData) -> Response | None:
        bundle = fd.get("pem_bundle")
        if not bundle:
            raise InvalidRequest("'pem_bundle' must be set")
        keys = []
        for match in _PRIVATE_KEY.finditer(bundle):
            try:
                keys.append(certutil.load_private(match.group(0)))
            except (ValueError, TypeError):
                raise InvalidRequest("unable to parse private key in the PEM bundle") from None
        certs = certutil.load_certs(bundle) if "CERTIFICATE-----" in bundle else []
        return Response(data=await _import(b, certs, keys, require_key=False))

    async def delete_root(req: Request, fd: FieldData) -> Response | None:
        for entry in await store.issuers():
            await store.delete_issuer(entry)
        for key_id in await store.key_ids():
            await store.view.delete(f"key/{key_id}")
        await store.put_config("issuers", {"default": "", "default_follows_latest_issuer": False})
        await store.put_config("keys", {"default": ""})
        return None

    issuer_ref = Field(FieldType.STRING, "Issuer to sign with.", default="default")
    sign_fields = {
        **common.CA_FIELDS, "csr": Field(FieldType.STRING, "PEM CSR to sign.", required=True),
        "use_csr_values": Field(FieldType.BOOL, "Use the CSR's subject and SANs.", default=False),
        "issuer_ref": issuer_ref,
    }
    return [
        Path(pattern=rf"root/generate/{TYPES}", fields={**common.CA_FIELDS, "exported": EXPORT_TYPE},
             operations={Operation.UPDATE: generate_root}, summary="Generate a new root CA (a new issuer)."),
        Path(pattern=rf"issuers/generate/root/{TYPES}",
             fields={**common.CA_FIELDS, "exported": EXPORT_TYPE},
             operations={Operation.UPDATE: generate_root}, summary="Generate a new root CA (a new issuer)."),
        *(Path(pattern=rf"{prefix}/{TYPES}", fields={**common.CA_FIELDS, "exported": EXPORT_TYPE},
               operations={Operation.UPDATE: generate_intermediate}, summary="Generate a key and CSR.")
          for prefix in ("intermediate/generate", "issuers/generate/intermediate")),
        *(Path(pattern=pattern, fields=sign_fields, operations={Operation.UPDATE: sign_intermediate},
               summary="Sign an intermediate CA's CSR.")
          for pattern in ("root/sign-intermediate", r"issuer/(?P<issuer_ref>[\w.-]+)/sign-intermediate")),
        Path(pattern=r"root/sign-self-issued",
             fields={"certificate": Field(FieldType.STRING, "PEM self-issued CA certificate.", required=True),
                     "issuer_ref": issuer_ref,
                     "require_matching_certificate_algorithms": Field(FieldType.BOOL, "", default=False)},
             operations={Operation.UPDATE: sign_self_issued}, summary="Cross-sign a self-issued CA certificate."),
        Path(pattern=r"intermediate/set-signed",
             fields={"certificate": Field(FieldType.STRING, "PEM signed intermediate (and its chain).",
                                          required=True)},
             operations={Operation.UPDATE: set_signed}, summary="Import the signed intermediate certificate."),
        *(Path(pattern=pattern,
               fields={"pem_bundle": Field(FieldType.STRING, "PEM certificates and optionally keys.", default="")},
               operations={Operation.UPDATE: import_bundle}, summary="Import CA certificates and keys.")
          for pattern in ("config/ca", "issuers/import/bundle", "issuers/import/cert")),
        Path(pattern=r"root", operations={Operation.DELETE: delete_root},
             summary="Delete every issuer and key of this mount."),
    ]


async def _import(b: PKIBackend, certs: list[certutil.x509.Certificate], keys: list[certutil.PrivateKey],
                  *, require_key: bool) -> dict[str, object]:
    """Import CA certificates (and keys); each certificate whose key is held becomes an issuer with that key."""
    store = b.store
    imported_keys: list[str] = []
    existing_keys: list[str] = []
    held = {e.public_key: e.id for e in await store.keys()}  # public key PEM -> key id
    for key in keys:
        public = certutil.public_pem(key.public_key())  # type: ignore[arg-type]
        if public in held:
            existing_keys.append(held[public])
            continue
        entry = await store.new_key(key)
        held[public] = entry.id
        imported_keys.append(entry.id)
    imported: list[str] = []
    existing: list[str] = []
    mapping: dict[str, str] = {}
    pems = [certutil.cert_pem(c) for c in certs]
    before = {e.certificate: e.id for e in await store.issuers()}
    for index, cert in enumerate(certs):
        if not certutil.is_ca(cert):
            raise InvalidRequest("refusing to import non-CA certificate")
        key_id = held.get(certutil.public_pem(cert.public_key()), "")  # type: ignore[arg-type]
        if require_key and index == 0 and not key_id:
            raise InvalidRequest("the certificate's key is not held by this mount: import the key or use the CSR "
                                 "generated by intermediate/generate")
        pem = pems[index]
        if pem in before:
            existing.append(before[pem])
            mapping[before[pem]] = key_id
            continue
        issuer = await store.add_issuer(cert, key_id, pems[index + 1 :])
        imported.append(issuer.id)
        mapping[issuer.id] = key_id
        if key_id:
            await b.rebuild_crl(issuer)
    return {"imported_issuers": imported or None, "imported_keys": imported_keys or None, "mapping": mapping,
            "existing_issuers": existing or None, "existing_keys": existing_keys or None}
