"""Kubernetes admin: an OIDC ID token from the broker's own issuer, which an API server started with
``--oidc-issuer-url=<broker public_url> --oidc-client-id=<audience> --oidc-groups-claim=groups`` accepts.

OIDC tokens cannot be revoked, so ``exp`` never exceeds what is left of the approved access window.
"""

from __future__ import annotations

from typing import Any

from strongroom.broker.kinds.base import Minted, approver_names, no_params
from strongroom.broker.models import MpaRequest
from strongroom.broker.oidc import OidcIssuer


class KubernetesKind:
    def __init__(self, issuer: OidcIssuer, options: dict[str, Any]) -> None:
        self._issuer = issuer
        self._audience = str(options.get("audience", "kubernetes"))
        self._groups = [str(g) for g in options.get("groups", ["mpa:cluster-admin"])]

    def validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return no_params(params)

    async def mint(self, req: MpaRequest, ttl: int, now: float) -> Minted:
        who = req.requester
        claims = {
            "sub": who.get("email") or who["subject"],
            "aud": self._audience,
            "groups": self._groups,
            "mpa_request_id": req.id,
            "mpa_approvers": approver_names(req),
            "mpa_break_glass": req.break_glass,
            "idp_subject": who["subject"],
        }
        token, exp = self._issuer.mint(claims, ttl, now=now)
        credential = {"type": "kubernetes-oidc", "id_token": token, "issuer": self._issuer.issuer,
                      "audience": self._audience, "expires_at": exp}
        return Minted(credential=credential, expires_at=exp, ref=None)

    async def revoke(self, ref: dict[str, Any]) -> None:
        return None
