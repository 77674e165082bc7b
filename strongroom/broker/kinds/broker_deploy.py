"""broker-deploy: permission to add a new build measurement to the list the key-release component accepts.

The credential is a grant token signed by the broker's own (attested, sealed) OIDC key naming the measurement and its
approvers; ``seed.allow_measurement`` re-seals the seed for the new build only when shown such a grant. So the build
that is trusted today must approve, through two reviewers, the build that will be trusted tomorrow.
"""

from __future__ import annotations

import re
from typing import Any

from strongroom.broker.kinds.base import KindError, Minted, approver_names
from strongroom.broker.models import MpaRequest
from strongroom.broker.oidc import OidcIssuer

GRANT_AUDIENCE = "strongroom-broker-deploy"
GRANT_SUBJECT = "mpa:broker-deploy"
_SHA384_HEX = re.compile(r"[0-9a-f]{96}")


class BrokerDeployKind:
    def __init__(self, issuer: OidcIssuer, options: dict[str, Any]) -> None:
        self._issuer = issuer

    def validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        measurement = str(params.get("measurement", "")).strip().lower()
        if not _SHA384_HEX.fullmatch(measurement):
            raise KindError("broker-deploy needs measurement = the build's SHA-384 (96 hex characters)")
        if set(params) - {"measurement"}:
            raise KindError("broker-deploy takes only a measurement")
        return {"measurement": measurement}

    async def mint(self, req: MpaRequest, ttl: int, now: float) -> Minted:
        # Two people, not two accounts: the person claim (when configured) identifies the human behind an account.
        approvers = {f"person:{a['person']}" if a.get("person") else f"{a['issuer']}#{a['subject']}"
                     for a in req.approvers}
        if len(approvers) < 2:
            raise KindError("a broker deploy needs two distinct approvers")
        claims = {"sub": GRANT_SUBJECT, "aud": GRANT_AUDIENCE, "measurement": req.params["measurement"],
                  "mpa_request_id": req.id, "mpa_approvers": approver_names(req),
                  "mpa_approver_ids": sorted(approvers),
                  "mpa_requester": req.requester.get("email") or req.requester["subject"]}
        token, exp = self._issuer.mint(claims, ttl, now=now)
        return Minted(credential={"type": "broker-deploy-grant", "grant": token, "measurement":
                                  req.params["measurement"], "expires_at": exp}, expires_at=exp)

    async def revoke(self, ref: dict[str, Any]) -> None:
        return None
