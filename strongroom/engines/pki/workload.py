"""Workload certificate identities, installed by ``bootstrap`` (and dev mode): every pod can get a short-lived
certificate naming exactly its own ServiceAccount, with no human step and nothing per service to configure.

Bootstrap mounts ``pki/`` (if absent), gives it a root CA (if it has no issuer) and writes the role ``workload``
(if absent, so an operator's changes stand). The role's only allowed name is the SPIFFE ID
``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``, filled from the caller's Kubernetes login alias by the
ACL's own template resolver; ``kubernetes-reader`` may ``update`` ``pki/issue/workload``. A pod that asks for another
ServiceAccount's URI, or whose identity does not fill the template (missing, empty, ``*``, ``+``, ``/``), gets a 400.

The trust domain is ``STRONGROOM_TRUST_DOMAIN`` (default ``cluster.local``, Kubernetes' and Istio's default).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING

from strongroom.engines.pki import certutil, path_roles

if TYPE_CHECKING:
    from strongroom.core.core import Core

MOUNT = "pki/"
ROLE = "workload"
DEFAULT_TRUST_DOMAIN = "cluster.local"
ROOT_TTL = dt.timedelta(days=3650)
CERT_TTL = 3600
CERT_MAX_TTL = 24 * 3600


def trust_domain() -> str:
    return os.environ.get("STRONGROOM_TRUST_DOMAIN", "").strip().lower() or DEFAULT_TRUST_DOMAIN


def spiffe_template(domain: str, kubernetes_accessor: str) -> str:
    meta = f"identity.entity.aliases.{kubernetes_accessor}.metadata"
    return f"spiffe://{domain}/ns/{{{{{meta}.service_account_namespace}}}}/sa/{{{{{meta}.service_account_name}}}}"


def issue_policy_stanza() -> str:
    return (f'# Its own workload certificate: the role "{ROLE}" names only the caller\'s own SPIFFE ID.\n'
            f'path "{MOUNT}issue/{ROLE}" {{\n  capabilities = ["update"]\n}}\n')


async def install(core: Core, kubernetes_accessor: str) -> list[str]:
    """Idempotently mount ``pki/`` with a root CA and the ``workload`` role; returns what was installed."""
    from strongroom.core.mounts import new_mount
    from strongroom.engines.pki.backend import PKIBackend

    installed: list[str] = []
    route = core.router.get(MOUNT)
    if route is None:
        route = await core.mount(new_mount(MOUNT, "pki", is_auth=False,
                                           description="workload certificates (SPIFFE IDs from Kubernetes logins)"))
        installed.append(MOUNT.rstrip("/"))
    backend = route.backend
    if not isinstance(backend, PKIBackend):
        return installed  # something else is mounted at pki/: leave it alone
    store = backend.store
    domain = trust_domain()
    if not await store.issuer_ids():
        key = certutil.generate_key("ec", 256)
        key_entry = await store.new_key(key, "workload-root")
        spec = certutil.CertSpec(
            subject=certutil.Subject(common_name=f"Strongroom workload CA ({domain})").name(),
            public_key=key.public_key(), not_after=certutil.now() + ROOT_TTL, is_ca=True,
            sans=certutil.SANs(uris=[f"spiffe://{domain}"]),
        )
        cert = certutil.build(spec, None, key)
        issuer = await store.add_issuer(cert, key_entry.id, [], "workload-root")
        await store.put_cert(cert.serial_number, issuer.certificate, issuer.id)
        await backend.rebuild_crl(issuer)
        installed.append(f"{MOUNT}root")
    if await store.role(ROLE) is None:
        role = {**path_roles.defaults(),
                "allowed_uri_sans": [spiffe_template(domain, kubernetes_accessor)],
                "allowed_uri_sans_template": True, "require_cn": False, "allow_localhost": False,
                "allow_ip_sans": False, "key_type": "ec", "key_bits": 256, "ttl": CERT_TTL, "max_ttl": CERT_MAX_TTL,
                "server_flag": True, "client_flag": True, "key_usage": ["DigitalSignature", "KeyAgreement"],
                "no_store": True}
        await store.view.put_json(f"role/{ROLE}", role)
        installed.append(f"{MOUNT}roles/{ROLE}")
    return installed
