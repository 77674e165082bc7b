"""The pki secrets engine: a certificate authority behind the barrier, speaking Vault's PKI API.

Paths (one module per group): CA lifecycle in ``path_ca`` (root/intermediate generation, signing, import), issuers and
keys in ``path_issuers``, ``roles`` in ``path_roles``, ``issue``/``sign``/``sign-verbatim`` in ``path_issue``, and
revocation, CRLs, OCSP, URLs and tidy in ``path_revoke``. All X.509 work is in :mod:`strongroom.engines.pki.certutil`.

Guarantees: an issuer's private key is stored only in this mount's barrier view and leaves it only as the answer to
``*/generate/exported`` (nothing else returns a key, and ``issue`` never stores the keys it generates); a revocation
is on the issuer's CRL — and answered "revoked" by OCSP — in the same request that acknowledges it. ``ca``, ``crl``,
``cert/<serial>``, ``issuer/<ref>/pem|der|json|crl`` and ``ocsp`` answer without a token, as in Vault.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from strongroom.core.acl import IdentityContext
from strongroom.core.logical import InvalidRequest, Request, Response
from strongroom.engines.pki import certutil, common, path_ca, path_issue, path_issuers, path_revoke, path_roles
from strongroom.engines.pki.store import CRL_LOCK, IssuerEntry, PKIStore
from strongroom.framework import Backend, BackendContext, SecretType
from strongroom.framework.durations import parse_duration

LEASE_TYPE = "pki"


class PKIBackend(Backend):
    type = "pki"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.store = PKIStore(ctx.storage)
        self.paths = [
            *path_ca.paths(self),
            *path_issuers.paths(self),
            *path_roles.paths(self),
            *path_issue.paths(self),
            *path_revoke.paths(self),
        ]
        self.secret_types = {LEASE_TYPE: SecretType(LEASE_TYPE, revoke=self._revoke_lease)}

    # --- helpers the paths share --------------------------------------------------------------------------------

    async def urls(self, issuer: IssuerEntry | None = None) -> certutil.Urls:
        """The AIA/CRL/OCSP URLs to write into a certificate: the issuer's own if it has any, else config/urls."""
        config = await self.store.config("urls", path_revoke.URL_DEFAULTS)
        urls = certutil.Urls(list(config["issuing_certificates"]), list(config["crl_distribution_points"]),
                             list(config["ocsp_servers"]))
        if issuer is not None:
            urls.issuing_certificates = issuer.issuing_certificates or urls.issuing_certificates
            urls.crl_distribution_points = issuer.crl_distribution_points or urls.crl_distribution_points
            urls.ocsp_servers = issuer.ocsp_servers or urls.ocsp_servers
        return urls

    def ttl_limits(self) -> tuple[int, int]:
        """The mount's (default, max) lease TTLs, as tuned with ``sys/mounts/<path>/tune`` (Vault caps by these)."""
        core = self.ctx.services.get("core")
        route = core.router.get(self.ctx.mount_path) if core is not None else None
        config = route.entry.config if route is not None else {}
        max_ttl = int(config.get("max_lease_ttl") or 0) or common.SYSTEM_MAX_TTL
        default = int(config.get("default_lease_ttl") or 0) or max_ttl
        return min(default, max_ttl), max_ttl

    async def signing_issuer(self, ref: str) -> IssuerEntry:
        issuer = await self.store.resolve_issuer(ref or "default")
        if not issuer.key_id:
            raise InvalidRequest(f"issuer {issuer.id} has no key and cannot sign")
        if not issuer.has_usage("issuing-certificates"):
            raise InvalidRequest(f"issuer {issuer.id} is not allowed to issue certificates (usage)")
        if issuer.revoked:
            raise InvalidRequest(f"issuer {issuer.id} is revoked")
        return issuer

    async def identity_of(self, req: Request) -> IdentityContext | None:
        identity = self.ctx.services.get("identity")
        if identity is None or not req.caller.entity_id:
            return None
        return await identity.template_context(req.caller.entity_id)  # type: ignore[no-any-return]

    # --- revocation and CRLs ------------------------------------------------------------------------------------

    async def revoke(self, serial: int | None, pem: str | None) -> float:
        """Revoke by serial (a stored certificate) or by PEM (one this mount issued); returns the revocation time."""
        # held until the request commits: two revocations at once must not each publish a CRL without the other
        async with self.store.view.lock(CRL_LOCK):
            return await self._revoke(serial, pem)

    async def _revoke(self, serial: int | None, pem: str | None) -> float:
        store = self.store
        if pem is not None:
            cert = certutil.load_cert(pem)
            serial = cert.serial_number
            issuer = None
            for candidate in await store.issuers():
                if certutil.signed_by(cert, await store.issuer_cert(candidate)):
                    issuer = candidate
                    break
            if issuer is None:
                raise InvalidRequest("unable to verify that the certificate was issued by this mount")
            record: dict[str, Any] = {"certificate": certutil.cert_pem(cert), "issuer_id": issuer.id}
        else:
            assert serial is not None
            stored = await store.cert(serial)
            if stored is None:
                existing = await store.revoked(serial)
                if existing is not None:
                    return float(existing["revocation_time"])
                raise InvalidRequest(f"certificate with serial {certutil.serial_hex(serial)} not found.")
            record = stored
        existing = await store.revoked(serial)
        if existing is not None:
            return float(existing["revocation_time"])
        own = next((i for i in await store.issuers() if i.certificate == record["certificate"]), None)
        if own is not None:
            raise InvalidRequest(f"adding issuer (id: {own.id}) to its own CRL is not allowed")
        cert = certutil.load_cert(record["certificate"])
        if cert.not_valid_after_utc < certutil.now():
            raise InvalidRequest("certificate is already expired; it need not be revoked")
        now = time.time()
        await store.view.put_json(f"revoked/{path_revoke.storage_serial(serial)}",
                                  {**record, "revocation_time": now})
        issuer_entry = await store.issuer(record.get("issuer_id", ""))
        if issuer_entry is not None and issuer_entry.key_id:
            await self.rebuild_crl(issuer_entry)
        return now

    async def _revoke_lease(self, req: Request) -> Response | None:
        assert req.secret is not None
        data = req.secret.internal_data
        try:
            await self.revoke(None, str(data.get("certificate", "")))
        except InvalidRequest as exc:
            if "expired" not in "; ".join(exc.messages):
                raise
        return None

    async def rebuild_crl(self, issuer: IssuerEntry) -> bytes:
        async with self.store.view.lock(CRL_LOCK):
            return await self._rebuild_crl(issuer)

    async def rebuild_crls(self) -> None:
        """Rebuild the CRL of every issuer that holds a key here (the others have no CRL of ours)."""
        for issuer in await self.store.issuers():
            if issuer.key_id:
                await self.rebuild_crl(issuer)

    async def _rebuild_crl(self, issuer: IssuerEntry) -> bytes:
        config = await self.store.config("crl", path_revoke.CRL_DEFAULTS)
        current = await self.store.view.get_json(f"crl/{issuer.id}") or {}
        revoked: list[certutil.Revoked] = []
        if not config["disable"]:
            for key in await self.store.revoked_serials():
                entry = await self.store.view.get_json(f"revoked/{key}")
                if entry is not None and entry.get("issuer_id") == issuer.id:
                    revoked.append(certutil.Revoked(
                        certutil.parse_serial(key), dt.datetime.fromtimestamp(float(entry["revocation_time"]), dt.UTC)))
        number = int(current.get("number", 0)) + 1
        expiry = dt.timedelta(seconds=parse_duration(config["expiry"]))
        crl = certutil.build_crl(await self.store.issuer_cert(issuer), await self.store.private_key(issuer.key_id),
                                 revoked, number, expiry)
        der = certutil.crl_der(crl)
        await self.store.view.put_json(f"crl/{issuer.id}", {
            "number": number, "der": der.hex(), "next_update": crl.next_update_utc.timestamp()
            if crl.next_update_utc else 0})
        return der

    async def crl_der(self, issuer: IssuerEntry) -> bytes:
        """The issuer's current CRL, rebuilt first when there is none yet or it has passed its next update."""
        current = await self.store.view.get_json(f"crl/{issuer.id}")
        if current and float(current.get("next_update", 0)) > time.time():
            return bytes.fromhex(current["der"])
        if not issuer.key_id:
            raise InvalidRequest(f"issuer {issuer.id} has no key, so it has no CRL here")
        return await self.rebuild_crl(issuer)
