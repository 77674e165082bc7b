"""Ask the Kubernetes API server whether a ServiceAccount token is genuine and current (the TokenReview API).

``POST <kubernetes_host>/apis/authentication.k8s.io/v1/tokenreviews`` authenticated with the reviewer JWT (or, when
none is configured, the login JWT itself), trusting only the configured CA. The API server answers with the
ServiceAccount the token belongs to; the caller compares it with the token's claims.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

import httpx

log = logging.getLogger("strongroom.auth.kubernetes")

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
TIMEOUT = 10.0


class ReviewError(Exception):
    """The review failed or said no. The message is for the server log; the client only sees 'permission denied'."""


@dataclass(slots=True)
class Reviewed:
    name: str
    namespace: str
    uid: str


def base_url(host: str) -> str:
    host = host.strip().rstrip("/")
    return host if "://" in host else f"https://{host}"


def make_client(ca_pem: str) -> httpx.AsyncClient:
    """A connection pool trusting only ``ca_pem`` (or the system roots when none is configured)."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cadata=ca_pem) if ca_pem else True
    return httpx.AsyncClient(verify=verify, timeout=TIMEOUT, follow_redirects=False)


async def review(host: str, ca_pem: str, bearer: str, token: str, audiences: list[str],
                 client: httpx.AsyncClient | None = None) -> Reviewed:
    """One TokenReview. Pass a long-lived ``client`` (made by :func:`make_client` for the same CA) to reuse
    connections; without one, a client is made for this call."""
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, **({"audiences": audiences} if audiences else {})},
    }
    headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json"}
    try:
        if client is not None:
            resp = await client.post(base_url(host) + REVIEW_PATH, json=body, headers=headers)
        else:
            async with make_client(ca_pem) as own:
                resp = await own.post(base_url(host) + REVIEW_PATH, json=body, headers=headers)
    except (httpx.HTTPError, ssl.SSLError, ValueError) as exc:
        raise ReviewError(f"lookup failed: {type(exc).__name__}") from None
    if resp.status_code in (401, 403):
        raise ReviewError("lookup failed: service account unauthorized; this could mean it has been deleted or "
                          "recreated with the same name")
    if resp.status_code not in (200, 201):
        raise ReviewError(f"lookup failed: unexpected status {resp.status_code} from the TokenReview API")
    try:
        doc = resp.json()
        status = doc.get("status") or {}
    except (ValueError, AttributeError):
        raise ReviewError("lookup failed: TokenReview response is not JSON") from None
    if status.get("error"):
        raise ReviewError("lookup failed: the TokenReview API reported an error")
    if status.get("authenticated") is not True:
        raise ReviewError("lookup failed: service account jwt not valid")
    user = status.get("user") or {}
    parts = str(user.get("username", "")).split(":")
    if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
        raise ReviewError("lookup failed: unexpected username format")
    if audiences and not set(audiences) & set(status.get("audiences") or []):
        raise ReviewError("lookup failed: token audiences do not match the requested audiences")
    return Reviewed(name=parts[3], namespace=parts[2], uid=str(user.get("uid", "")))
