"""Revocation and what the world reads without a token: ``revoke``, ``cert/<serial>``, ``certs`` (LIST),
``certs/revoked``, ``crl`` and ``crl/pem`` (and per issuer), ``crl/rotate``, ``ocsp`` (RFC 6960, GET and POST),
``config/crl``, ``config/urls``, ``tidy`` and ``tidy-status``.

Every revocation rebuilds its issuer's CRL in the same request, so ``openssl crl`` and the OCSP responder see it as
soon as the revocation is acknowledged.
"""

from __future__ import annotations

import base64
import binascii
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.engines.pki import certutil
from strongroom.engines.pki.store import rfc3339, storage_serial
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.durations import format_duration

if TYPE_CHECKING:
    from strongroom.engines.pki.backend import PKIBackend

CRL_DER_TYPE = "application/pkix-crl"
PEM_TYPE = "application/x-pem-file"
OCSP_TYPE = "application/ocsp-response"
CRL_DEFAULTS: dict[str, Any] = {"expiry": "72h", "disable": False, "ocsp_disable": False, "ocsp_expiry": "12h",
                                "auto_rebuild": False, "auto_rebuild_grace_period": "12h", "enable_delta": False,
                                "delta_rebuild_interval": "15m", "cross_cluster_revocation": False,
                                "unified_crl": False, "unified_crl_on_existing_paths": False}
URL_DEFAULTS: dict[str, Any] = {"issuing_certificates": [], "crl_distribution_points": [], "ocsp_servers": [],
                                "enable_templating": False}
TIDY_DEFAULT_BUFFER = 72 * 3600


def paths(b: PKIBackend) -> list[Path]:
    store = b.store

    async def revoke(req: Request, fd: FieldData) -> Response | None:
        serial_text, pem = fd.get("serial_number"), fd.get("certificate")
        if bool(serial_text) == bool(pem):
            raise InvalidRequest("must specify exactly one of 'serial_number' or 'certificate'")
        revoked_at = await b.revoke(certutil.parse_serial(serial_text) if serial_text else None, pem or None)
        return Response(data={"revocation_time": int(revoked_at), "revocation_time_rfc3339": rfc3339(revoked_at),
                              "state": "revoked"})

    async def read_cert(req: Request, fd: FieldData) -> Response | None:
        serial = fd.get("serial")
        if serial in ("ca", "ca_chain", "crl", "delta-crl"):
            try:
                issuer = await store.resolve_issuer("default")
            except InvalidRequest:
                raise NotFound() from None
            if serial == "ca":
                return Response(data={"certificate": issuer.certificate, "ca_chain": issuer.full_chain(),
                                      "revocation_time": 0, "issuer_id": issuer.id})
            if serial == "ca_chain":
                return Response(data={"certificate": "\n".join(issuer.full_chain()), "ca_chain": issuer.full_chain(),
                                      "revocation_time": 0})
            der = await b.crl_der(issuer)
            return Response(data={"certificate": certutil.der_to_pem(der, "X509 CRL"), "revocation_time": 0})
        number = certutil.parse_serial(serial)
        entry = await store.cert(number)
        revoked = await store.revoked(number)
        if entry is None and revoked is None:
            raise NotFound()
        when = float(revoked["revocation_time"]) if revoked else 0.0
        record = entry or revoked or {}
        return Response(data={"certificate": record["certificate"], "revocation_time": int(when),
                              "revocation_time_rfc3339": rfc3339(when) if revoked else "",
                              "issuer_id": record.get("issuer_id", "")})

    async def list_certs(req: Request, fd: FieldData) -> Response | None:
        return Response.list_keys([k.replace("-", ":") for k in await store.view.list_all("certs/")])

    async def list_revoked(req: Request, fd: FieldData) -> Response | None:
        return Response.list_keys([k.replace("-", ":") for k in await store.revoked_serials()])

    async def crl(req: Request, fd: FieldData) -> Response | None:
        ref = fd.get("ref") or "default"
        try:
            issuer = await store.resolve_issuer(ref)
        except InvalidRequest:
            if ref == "default":
                raise NotFound() from None
            raise
        der = await b.crl_der(issuer)
        if fd.get("kind") == "pem":
            return Response(raw_body=certutil.der_to_pem(der, "X509 CRL").encode(), raw_content_type=PEM_TYPE)
        return Response(raw_body=der, raw_content_type=CRL_DER_TYPE)

    async def rotate(req: Request, fd: FieldData) -> Response | None:
        await b.rebuild_crls()
        return Response(data={"success": True})

    async def read_crl_config(req: Request, fd: FieldData) -> Response | None:
        return Response(data=await store.config("crl", CRL_DEFAULTS))

    async def write_crl_config(req: Request, fd: FieldData) -> Response | None:
        current = await store.config("crl", CRL_DEFAULTS)
        for name in CRL_DEFAULTS:
            value, has = fd.get_ok(name)
            if has:
                if isinstance(CRL_DEFAULTS[name], str):
                    given = fd.raw.get(name)  # shown back as written ("48h"), as Vault does
                    value = given.strip() if isinstance(given, str) else format_duration(value)
                current[name] = value
        if current["enable_delta"] and not current["auto_rebuild"]:
            raise InvalidRequest("delta CRLs have been enabled, but auto_rebuild is disabled")
        before = await store.config("crl", CRL_DEFAULTS)
        await store.put_config("crl", current)
        if (before["expiry"], before["disable"]) != (current["expiry"], current["disable"]):
            await b.rebuild_crls()
        return Response(data=current)

    async def read_urls(req: Request, fd: FieldData) -> Response | None:
        return Response(data=await store.config("urls", URL_DEFAULTS))

    async def write_urls(req: Request, fd: FieldData) -> Response | None:
        current = await store.config("urls", URL_DEFAULTS)
        for name in URL_DEFAULTS:
            value, has = fd.get_ok(name)
            if has:
                current[name] = value
        for name in ("issuing_certificates", "crl_distribution_points", "ocsp_servers"):
            for url in current[name]:
                parsed = urllib.parse.urlparse(url)
                if not parsed.scheme or not parsed.netloc:
                    raise InvalidRequest(f"invalid URL found in {name}: {url}")
        await store.put_config("urls", current)
        return Response(data=current)

    async def ocsp_get(req: Request, fd: FieldData) -> Response | None:
        encoded = urllib.parse.unquote(fd.get("req"))
        try:
            der = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            return _ocsp(certutil.ocsp_error("malformed"), 400)
        return await answer_ocsp(der)

    async def ocsp_post(req: Request, fd: FieldData) -> Response | None:
        raw = req.data.get("http_raw_body")
        if not isinstance(raw, str):
            return _ocsp(certutil.ocsp_error("malformed"), 400)
        try:
            der = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return _ocsp(certutil.ocsp_error("malformed"), 400)
        return await answer_ocsp(der)

    async def answer_ocsp(der: bytes) -> Response:
        config = await store.config("crl", CRL_DEFAULTS)
        if config["ocsp_disable"]:
            return _ocsp(certutil.ocsp_error("unauthorized"), 401)
        try:
            request = certutil.load_ocsp_request(der)
        except InvalidRequest:
            return _ocsp(certutil.ocsp_error("malformed"), 400)
        for issuer in await store.issuers():
            if not issuer.key_id or not issuer.has_usage("ocsp-signing"):
                continue
            issuer_cert = await store.issuer_cert(issuer)
            if not certutil.ocsp_issuer_matches(request, issuer_cert):
                continue
            serial = request.serial_number
            revoked = await store.revoked(serial)
            if revoked is not None:
                status, when = "revoked", certutil.dt.datetime.fromtimestamp(float(revoked["revocation_time"]),
                                                                              certutil.dt.UTC)
            elif await store.cert(serial) is not None:
                status, when = "good", None
            else:
                status, when = "unknown", None
            expiry = certutil.dt.timedelta(seconds=_seconds(config["ocsp_expiry"]))
            body = certutil.ocsp_response(request, issuer_cert, await store.private_key(issuer.key_id), status, when,
                                          expiry)
            return _ocsp(body, 200)
        return _ocsp(certutil.ocsp_error("unauthorized"), 401)

    async def tidy(req: Request, fd: FieldData) -> Response | None:
        buffer = fd.get("safety_buffer")
        cutoff = time.time() - buffer
        removed_certs = removed_revoked = 0
        if fd.get("tidy_cert_store"):
            for key in await store.view.list_all("certs/"):
                entry = await store.view.get_json(f"certs/{key}")
                if entry is None or _expired_before(entry["certificate"], cutoff):
                    await store.view.delete(f"certs/{key}")
                    removed_certs += 1
        if fd.get("tidy_revoked_certs"):
            for key in await store.revoked_serials():
                entry = await store.view.get_json(f"revoked/{key}")
                if entry is None or _expired_before(entry["certificate"], cutoff):
                    await store.view.delete(f"revoked/{key}")
                    removed_revoked += 1
            if removed_revoked:
                await b.rebuild_crls()
        status = {"state": "Finished", "error": None, "time_started": rfc3339(time.time()),
                  "time_finished": rfc3339(time.time()), "safety_buffer": buffer,
                  "tidy_cert_store": fd.get("tidy_cert_store"), "tidy_revoked_certs": fd.get("tidy_revoked_certs"),
                  "cert_store_deleted_count": removed_certs, "revoked_cert_deleted_count": removed_revoked}
        await store.view.put_json("tidy-status", status)
        # Vault answers 202 and tidies in the background; here the work is done by the time the answer is sent
        return Response(data=None, status=202, warnings=[
            "Tidy operation successfully started. Any information from the operation will be printed to Vault's "
            "server logs."])

    async def tidy_status(req: Request, fd: FieldData) -> Response | None:
        status = await store.view.get_json("tidy-status")
        return Response(data=status or {"state": "Inactive"})

    serial_field = Field(FieldType.STRING, "Serial number, hex with ':' or '-' separators.", in_path=True,
                         required=True)
    kind = Field(FieldType.STRING, "Encoding.", in_path=True, default="der")
    ref = Field(FieldType.STRING, "Issuer reference.", in_path=True, default="default")
    crl_fields: dict[str, Field] = {
        name: Field(FieldType.DURATION if isinstance(v, str) else FieldType.BOOL, "See Vault's config/crl.")
        for name, v in CRL_DEFAULTS.items()
    }
    url_fields: dict[str, Field] = {
        name: Field(FieldType.COMMA_STRING_LIST if isinstance(v, list) else FieldType.BOOL, "See Vault's config/urls.")
        for name, v in URL_DEFAULTS.items()
    }
    return [
        Path(pattern=r"revoke",
             fields={"serial_number": Field(FieldType.STRING, "Serial of the certificate to revoke.", default=""),
                     "certificate": Field(FieldType.STRING, "PEM of the certificate to revoke.", default="")},
             operations={Operation.UPDATE: revoke}, summary="Revoke a certificate."),
        Path(pattern=r"cert/(?P<serial>[0-9A-Za-z:_-]+)", fields={"serial": serial_field},
             operations={Operation.READ: read_cert}, unauthenticated=True,
             summary="Read a certificate by serial (or ca, ca_chain, crl)."),
        Path(pattern=r"certs/?", operations={Operation.LIST: list_certs}, summary="List stored certificates."),
        Path(pattern=r"certs/revoked/?", operations={Operation.LIST: list_revoked},
             summary="List revoked certificates."),
        Path(pattern=r"(?:issuer/(?P<ref>[\w.-]+)/)?crl(?:/(?P<kind>pem|der))?", fields={"kind": kind, "ref": ref},
             operations={Operation.READ: crl}, unauthenticated=True, summary="The CRL (DER, or PEM at crl/pem)."),
        Path(pattern=r"crl/rotate", operations={Operation.READ: rotate, Operation.UPDATE: rotate},
             summary="Rebuild every issuer's CRL."),
        Path(pattern=r"config/crl", fields=crl_fields,
             operations={Operation.READ: read_crl_config, Operation.UPDATE: write_crl_config},
             summary="CRL and OCSP settings."),
        Path(pattern=r"config/urls", fields=url_fields,
             operations={Operation.READ: read_urls, Operation.UPDATE: write_urls},
             summary="URLs written into issued certificates (AIA, CRL distribution points, OCSP)."),
        Path(pattern=r"ocsp", operations={Operation.UPDATE: ocsp_post}, unauthenticated=True,
             summary="OCSP responder: POST a DER request (application/ocsp-request)."),
        Path(pattern=r"ocsp/(?P<req>.+)", fields={"req": Field(FieldType.STRING, "Base64 DER request.", in_path=True)},
             operations={Operation.READ: ocsp_get}, unauthenticated=True,
             summary="OCSP responder: GET with the base64 request in the path."),
        Path(pattern=r"tidy",
             fields={"tidy_cert_store": Field(FieldType.BOOL, "Remove expired stored certificates.", default=False),
                     "tidy_revoked_certs": Field(FieldType.BOOL, "Remove expired revocations.", default=False),
                     "safety_buffer": Field(FieldType.DURATION, "Keep what expired less than this ago.",
                                            default=TIDY_DEFAULT_BUFFER)},
             operations={Operation.UPDATE: tidy}, summary="Remove expired certificates and revocations."),
        Path(pattern=r"tidy-status", operations={Operation.READ: tidy_status}, summary="The last tidy's results."),
    ]


def _ocsp(body: bytes, status: int) -> Response:
    return Response(raw_body=body, raw_content_type=OCSP_TYPE, status=status)


def _seconds(text: str) -> int:
    from strongroom.framework.durations import parse_duration

    return parse_duration(text)


def _expired_before(pem: str, cutoff: float) -> bool:
    return certutil.load_cert(pem).not_valid_after_utc.timestamp() < cutoff


__all__ = ["paths", "storage_serial"]
