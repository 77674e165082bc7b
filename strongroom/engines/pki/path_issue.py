"""``issue/<role>``, ``sign/<role>``, ``sign-verbatim[/<role>]`` and their ``issuer/<ref>/…`` forms.

A role decides what may be in a certificate; ``issue`` also generates the key (returned once, never stored).
Workload identity: a role with ``allowed_uri_sans_template`` names each caller's own URI (say
``spiffe://cluster.local/ns/<namespace>/sa/<service account>`` from its Kubernetes login); a request that names no
``uri_sans`` and no ``common_name`` gets exactly that URI, and a request for any other URI is refused (400).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from cryptography import x509

from strongroom.core.logical import InvalidRequest, Operation, Request, Response, Secret
from strongroom.engines.pki import certutil, common, names
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.pki.backend import PKIBackend

ROLE = Field(FieldType.STRING, "The role to issue under.", in_path=True, required=True)
ISSUER_REF = Field(FieldType.STRING, "Issuer to sign with (overrides the role's).", in_path=True)
ISSUE_FIELDS: dict[str, Field] = {
    **common.SUBJECT_FIELDS,
    "role": ROLE,
    "issuer_ref": ISSUER_REF,
    "remove_roots_from_chain": Field(FieldType.BOOL, "Leave self-signed roots out of ca_chain.", default=False),
    "user_ids": Field(FieldType.COMMA_STRING_LIST, "Not supported.", default=[]),
}
SIGN_FIELDS: dict[str, Field] = {**ISSUE_FIELDS, "csr": Field(FieldType.STRING, "PEM CSR to sign.", required=True)}
VERBATIM_FIELDS: dict[str, Field] = {
    **SIGN_FIELDS,
    "role": Field(FieldType.STRING, "Optional role whose limits apply.", in_path=True, default=""),
    "key_usage": Field(FieldType.COMMA_STRING_LIST, "Key usages.",
                       default=["DigitalSignature", "KeyAgreement", "KeyEncipherment"]),
    "ext_key_usage": Field(FieldType.COMMA_STRING_LIST, "Extended key usages.", default=[]),
    "ext_key_usage_oids": Field(FieldType.COMMA_STRING_LIST, "Extended key usages as OIDs.", default=[]),
}


def _role_ekus(role: dict[str, Any]) -> list[str]:
    eku = list(role["ext_key_usage"])
    for flag, name in (("server_flag", "ServerAuth"), ("client_flag", "ClientAuth"),
                       ("code_signing_flag", "CodeSigning"), ("email_protection_flag", "EmailProtection")):
        if role[flag]:
            eku.append(name)
    return eku


def paths(b: PKIBackend) -> list[Path]:
    store = b.store

    async def load_role(fd: FieldData) -> dict[str, Any]:
        from strongroom.engines.pki.path_roles import defaults

        name = fd.get("role")
        role = await store.role(name)
        if role is None:
            raise InvalidRequest(f"unknown role: {name}")
        return {**defaults(), **role}

    async def issue_like(req: Request, fd: FieldData, role: dict[str, Any], csr: x509.CertificateSigningRequest | None,
                         verbatim: bool) -> Response:
        issuer = await b.signing_issuer(fd.get("issuer_ref") or role["issuer_ref"])
        ident = await b.identity_of(req)
        warnings: list[str] = []

        common_name = fd.get("common_name")
        dns, emails = common.split_alt_names(fd.get("alt_names"))
        ips, uris = list(fd.get("ip_sans")), list(fd.get("uri_sans"))
        if fd.get("other_sans") or fd.get("user_ids"):
            raise InvalidRequest("other_sans and user_ids are not supported")
        if csr is not None and (verbatim or role["use_csr_common_name"]) and not common_name:
            common_name = certutil.common_name_of(csr.subject)
        if csr is not None and (verbatim or role["use_csr_sans"]):
            from_csr = certutil.csr_sans(csr)
            dns, emails, ips, uris = dns + from_csr.dns, emails + from_csr.emails, ips + from_csr.ips, \
                uris + from_csr.uris
        if not verbatim and not uris and not common_name and role["allowed_uri_sans_template"]:
            own = names.own_uri(role, ident)
            if not own:
                raise InvalidRequest("the caller's identity does not name a URI this role allows (a template value "
                                     "is missing, empty, or holds '*', '+' or '/')")
            uris = [own]
        if not common_name and role["require_cn"] and not verbatim:
            raise InvalidRequest('the common_name field is required, or must be provided in a CSR with '
                                 '"use_csr_common_name" set to true, unless "require_cn" is set to false')
        if common_name and not fd.get("exclude_cn_from_sans") and not verbatim:
            if "@" in common_name:
                emails = [common_name, *emails]
            elif names.is_hostname(common_name, True) or not role["enforce_hostnames"]:
                dns = [common_name, *dns]
        if not verbatim:
            names.check(role, common_name, dns, emails, ips, uris, ident)
            serial_attr = fd.get("serial_number")
            # as in Vault, an empty allowed_serial_numbers forbids asking for a subject serialNumber at all
            if serial_attr and not any(
                    names.glob_match(p, serial_attr) for p in role["allowed_serial_numbers"]):
                raise InvalidRequest(f"serial_number {serial_attr} not allowed by this role")

        issuer_cert = await store.issuer_cert(issuer)
        mount_default, mount_max = b.ttl_limits()
        max_ttl = role["max_ttl"] or mount_max  # as in Vault, a role's own max_ttl is not capped by the mount
        when = common.not_after(fd, role["ttl"] or mount_default, max_ttl, warnings)
        when = common.check_within_issuer(when, issuer_cert, issuer.leaf_not_after_behavior, warnings)

        key: certutil.PrivateKey | None = None
        if csr is None:
            if role["key_type"] == "any":
                raise InvalidRequest('role key type "any" not allowed for issuing certificates, only signing')
            key = certutil.generate_key(role["key_type"], role["key_bits"])
            public = key.public_key()
        else:
            public = csr.public_key()  # type: ignore[assignment]
            if not verbatim and role["key_type"] != "any":
                kind, bits = certutil.key_type_of(public)  # type: ignore[arg-type]
                if kind != role["key_type"]:
                    raise InvalidRequest(f"role requires keys of type {role['key_type']}")
                if role["key_bits"] and bits and bits < role["key_bits"]:
                    raise InvalidRequest(f"role requires a minimum of a {role['key_bits']}-bit key")

        subject_from_csr = csr is not None and verbatim
        subject = csr.subject if subject_from_csr and csr is not None else certutil.Subject(
            common_name=common_name, ou=role["ou"], organization=role["organization"], country=role["country"],
            locality=role["locality"], province=role["province"], street_address=role["street_address"],
            postal_code=role["postal_code"], serial_number=fd.get("serial_number")).name()
        spec = certutil.CertSpec(
            subject=subject, public_key=public, not_after=when,  # type: ignore[arg-type]
            not_before=certutil.now() - dt.timedelta(seconds=role["not_before_duration"]),
            sans=certutil.SANs(dns=dns, emails=emails, ips=ips, uris=uris),
            key_usage=fd.get("key_usage") if verbatim else role["key_usage"],
            ext_key_usage=fd.get("ext_key_usage") if verbatim else _role_ekus(role),
            ext_key_usage_oids=fd.get("ext_key_usage_oids") if verbatim else role["ext_key_usage_oids"],
            urls=await b.urls(issuer),
        )
        cert = certutil.build(spec, issuer_cert, await store.private_key(issuer.key_id))
        pem = certutil.cert_pem(cert)
        if not role["no_store"]:
            await store.put_cert(cert.serial_number, pem, issuer.id)

        fmt = fd.get("format")
        chain = issuer.full_chain()
        if fd.get("remove_roots_from_chain"):
            chain = [p for p in chain if (c := certutil.load_cert(p)).subject != c.issuer]
        data: dict[str, Any] = {
            "certificate": common.encode_cert(cert, fmt), "issuing_ca": common.encode_pem(issuer.certificate, fmt),
            "ca_chain": [common.encode_pem(p, fmt) for p in chain], **common.cert_fields(cert),
        }
        if key is not None:
            data["private_key"], data["private_key_type"] = common.encode_key(key, fmt, fd.get("private_key_format"))
            if fmt == "pem_bundle":
                data["certificate"] = data["private_key"] + "\n" + data["certificate"]
        secret = None
        if role["generate_lease"]:
            remaining = max(1, int((cert.not_valid_after_utc - certutil.now()).total_seconds()))
            secret = Secret(lease_type="pki", ttl=remaining, max_ttl=remaining, renewable=False,
                            internal_data={"serial_number": data["serial_number"], "certificate": pem,
                                           "issuer_id": issuer.id})
        return Response(data=data, secret=secret, warnings=warnings)

    async def issue(req: Request, fd: FieldData) -> Response | None:
        return await issue_like(req, fd, await load_role(fd), None, verbatim=False)

    async def sign(req: Request, fd: FieldData) -> Response | None:
        role = await load_role(fd)
        return await issue_like(req, fd, role, certutil.load_csr(fd.get("csr")), verbatim=False)

    async def sign_verbatim(req: Request, fd: FieldData) -> Response | None:
        from strongroom.engines.pki.path_roles import defaults

        role = await load_role(fd) if fd.get("role") else defaults()
        # a verbatim signature keeps the CSR's names; the role (if any) still bounds lifetime, storage and lease
        role = {**role, "key_type": "any"}
        return await issue_like(req, fd, role, certutil.load_csr(fd.get("csr")), verbatim=True)

    name = generic_name("role")
    issuer = r"issuer/(?P<issuer_ref>[\w.-]+)/"
    return [
        Path(pattern=rf"(?:{issuer})?issue/{name}", fields=ISSUE_FIELDS, operations={Operation.UPDATE: issue},
             summary="Issue a certificate and its new private key under a role."),
        Path(pattern=rf"(?:{issuer})?sign/{name}", fields=SIGN_FIELDS, operations={Operation.UPDATE: sign},
             summary="Sign a CSR under a role."),
        Path(pattern=rf"(?:{issuer})?sign-verbatim(?:/{name})?", fields=VERBATIM_FIELDS,
             operations={Operation.UPDATE: sign_verbatim}, summary="Sign a CSR as it is."),
    ]
