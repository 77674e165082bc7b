"""``roles`` (LIST) and ``roles/<name>``: what ``issue``/``sign`` may put in a certificate, with Vault's fields and
defaults. The checks a role makes on requested names live in :mod:`strongroom.engines.pki.names`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.engines.pki import certutil
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.pki.backend import PKIBackend

_L = FieldType.COMMA_STRING_LIST
_B = FieldType.BOOL
# name -> (type, default, description); the default is what a role read shows for a field never set
ROLE_FIELDS: dict[str, tuple[FieldType, Any, str]] = {
    "ttl": (FieldType.DURATION, 0, "Default lifetime of issued certificates (0: the system default)."),
    "max_ttl": (FieldType.DURATION, 0, "Maximum lifetime of issued certificates (0: the system maximum)."),
    "allow_localhost": (_B, True, "Allow 'localhost' and 'localdomain' names."),
    "allowed_domains": (_L, [], "Domains the role may issue for (see allow_* flags)."),
    "allowed_domains_template": (_B, False, "allowed_domains may hold identity templates."),
    "allow_bare_domains": (_B, False, "Allow the allowed domains themselves."),
    "allow_subdomains": (_B, False, "Allow subdomains of the allowed domains."),
    "allow_glob_domains": (_B, False, "allowed_domains entries may be globs."),
    "allow_wildcard_certificates": (_B, True, "Allow wildcard names such as *.example.com."),
    "allow_any_name": (_B, False, "Allow any name."),
    "enforce_hostnames": (_B, True, "Only hostnames are valid DNS names."),
    "allow_ip_sans": (_B, True, "Allow IP SANs."),
    "allowed_uri_sans": (_L, [], "URI SANs the role allows (globs)."),
    "allowed_uri_sans_template": (_B, False, "allowed_uri_sans may hold identity templates ({{identity...}})."),
    "allowed_other_sans": (_L, [], "Not supported: must stay empty."),
    "allowed_serial_numbers": (_L, [], "Subject serialNumber values the role allows (globs)."),
    "server_flag": (_B, True, "Add the serverAuth extended key usage."),
    "client_flag": (_B, True, "Add the clientAuth extended key usage."),
    "code_signing_flag": (_B, False, "Add the codeSigning extended key usage."),
    "email_protection_flag": (_B, False, "Add the emailProtection extended key usage."),
    "key_type": (FieldType.STRING, "rsa", "rsa, ec, ed25519 (or any: sign only)."),
    "key_bits": (FieldType.INT, 0, "Key size (0: the type's default)."),
    "signature_bits": (FieldType.INT, 0, "Accepted for compatibility; the issuer key decides."),
    "key_usage": (_L, ["DigitalSignature", "KeyAgreement", "KeyEncipherment"], "Key usages of issued certificates."),
    "ext_key_usage": (_L, [], "Extra extended key usages."),
    "ext_key_usage_oids": (_L, [], "Extra extended key usages as OIDs."),
    "use_csr_common_name": (_B, True, "sign: take the common name from the CSR when none is given."),
    "use_csr_sans": (_B, True, "sign: take the SANs from the CSR."),
    "ou": (_L, [], "OU of issued certificates."),
    "organization": (_L, [], "O of issued certificates."),
    "country": (_L, [], "C of issued certificates."),
    "locality": (_L, [], "L of issued certificates."),
    "province": (_L, [], "ST of issued certificates."),
    "street_address": (_L, [], "Street of issued certificates."),
    "postal_code": (_L, [], "Postal code of issued certificates."),
    "generate_lease": (_B, False, "Return a lease with each certificate (revoking it revokes the certificate)."),
    "no_store": (_B, False, "Do not store issued certificates (they cannot be listed or revoked by serial)."),
    "require_cn": (_B, True, "A common name is required."),
    "issuer_ref": (FieldType.STRING, "default", "The issuer that signs for this role."),
    "not_before_duration": (FieldType.DURATION, 30, "How far back notBefore is set."),
    "basic_constraints_valid_for_non_ca": (_B, False, "Accepted for compatibility."),
    "policy_identifiers": (_L, [], "Not supported: must stay empty."),
    "cn_validations": (_L, ["email", "hostname"], "How the common name is validated."),
}
ROLE_NAME = Field(FieldType.STRING, "Name of the role.", in_path=True, required=True)


def defaults() -> dict[str, Any]:
    return {k: (list(v[1]) if isinstance(v[1], list) else v[1]) for k, v in ROLE_FIELDS.items()}


def validate(role: dict[str, Any]) -> None:
    if role["key_type"] != "any":
        role["key_bits"] = certutil.check_key_params(role["key_type"], role["key_bits"])
    if role["max_ttl"] and role["ttl"] > role["max_ttl"]:
        raise InvalidRequest('"ttl" value must be less than "max_ttl" value')
    if role["allowed_other_sans"]:
        raise InvalidRequest("other SANs are not supported")
    if role["policy_identifiers"]:
        raise InvalidRequest("policy identifiers are not supported")
    certutil.ext_key_usage_oids(role["ext_key_usage"], role["ext_key_usage_oids"])
    unknown = {u.lower().removeprefix("keyusage") for u in role["key_usage"]} - set(certutil.KEY_USAGES)
    if unknown:
        raise InvalidRequest(f"unknown key usage: {', '.join(sorted(unknown))}")
    if role["not_before_duration"] < 0:
        raise InvalidRequest("not_before_duration must be positive")


def paths(b: PKIBackend) -> list[Path]:
    store = b.store

    async def list_roles(req: Request, fd: FieldData) -> Response | None:
        return Response.list_keys(await store.view.list_all("role/"))

    async def read(req: Request, fd: FieldData) -> Response | None:
        role = await store.role(fd.get("name"))
        if role is None:
            raise NotFound()
        return Response(data={**defaults(), **role})

    async def write(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        existing = await store.role(name)
        if req.operation is Operation.PATCH:
            if existing is None:
                raise NotFound()
            base = {**defaults(), **existing}
        else:
            # as in Vault, a write replaces the role: what it does not name takes the default
            base = defaults()
        role = {**base, **{k: fd.get(k) for k in ROLE_FIELDS if fd.has(k)}}
        validate(role)
        if role["issuer_ref"] != "default":
            await store.resolve_issuer(role["issuer_ref"])
        await store.view.put_json(f"role/{name}", role)
        return Response(data=role)

    async def delete(req: Request, fd: FieldData) -> Response | None:
        await store.view.delete(f"role/{fd.get('name')}")
        return None

    async def exists(req: Request, fd: FieldData) -> bool:
        return await store.role(fd.get("name")) is not None

    fields = {"name": ROLE_NAME, **{k: Field(t, d) for k, (t, _, d) in ROLE_FIELDS.items()}}
    fields["key_type"] = Field(FieldType.STRING, ROLE_FIELDS["key_type"][2], allowed=("rsa", "ec", "ed25519", "any"))
    return [
        Path(pattern=r"roles/?", operations={Operation.LIST: list_roles}, summary="List the roles."),
        Path(pattern=rf"roles/{generic_name('name')}", fields=fields, existence_check=exists,
             operations={Operation.READ: read, Operation.CREATE: write, Operation.UPDATE: write,
                         Operation.PATCH: write, Operation.DELETE: delete},
             summary="Create, read, update or delete a role."),
    ]
