"""broker-deploy: permission to add a new build measurement to the seed key's attestation policy.

The broker's seed is transit ciphertext under a key bound to an attestation policy on the Strongroom server; which
builds may open it is that policy's ``pcr0`` list. Fetching an approved broker-deploy request (two distinct approvers)
mints an orphan Strongroom token carrying one configured policy (``policy``, default ``broker-deploy``) that grants
``update`` — and ``read``, to see the current list — on exactly ``<mount>/keys/<key>/attestation``, for the approved
window only; ``strongroom broker allow-measurement`` then adds the approved measurement with it. Neither the broker
nor any single engineer can bless a new build alone, and the token can decrypt nothing.

Options: ``policy`` (the Strongroom policy the token carries), ``token_role`` (as for strongroom-admin: lets the
broker's own token mint it with only ``update`` on ``auth/token/create/<role>``).
"""

from __future__ import annotations

import re
from typing import Any

from strongroom.broker.kinds.base import KindError, Minted, approver_names
from strongroom.broker.models import MpaRequest
from strongroom.broker.strongroom_client import StrongroomClient, StrongroomError

_SHA384_HEX = re.compile(r"[0-9a-f]{96}")
DEFAULT_POLICY = "broker-deploy"


def deploy_policy(mount: str, key: str) -> str:
    """The Strongroom policy the configured ``policy`` should hold: this key's attestation policy, PCR lists only."""
    return (f'path "{mount.strip("/")}/keys/{key}/attestation" {{\n  capabilities = ["read", "update"]\n'
            '  denied_parameters = { "root_certificate" = [] }\n}\n')


class BrokerDeployKind:
    def __init__(self, client: StrongroomClient | None, options: dict[str, Any], *, mount: str = "transit",
                 key: str = "broker-seed") -> None:
        self._client = client
        self._policy = options.get("policy") or DEFAULT_POLICY
        self._role = options.get("token_role") or None
        self._path = f"{mount.strip('/')}/keys/{key}/attestation"

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
        if self._client is None:
            raise KindError("no Strongroom server is configured")
        meta = {"mpa_request_id": req.id, "mpa_requester": req.requester.get("email") or req.requester["subject"],
                "mpa_approvers": ",".join(approver_names(req)), "mpa_measurement": req.params["measurement"]}
        try:
            token, accessor = await self._client.create_token(
                policies=[self._policy], ttl=ttl, meta=meta, display_name=f"mpa-{req.id}", role=self._role
            )
        except StrongroomError as exc:
            raise KindError(str(exc)) from None
        exp = int(now) + ttl
        credential = {"type": "broker-deploy-token", "token": token, "accessor": accessor, "path": self._path,
                      "measurement": req.params["measurement"], "expires_at": exp}
        return Minted(credential=credential, expires_at=exp, ref={"accessor": accessor})

    async def revoke(self, ref: dict[str, Any]) -> None:
        if self._client is None:
            raise KindError("no Strongroom server is configured")
        try:
            await self._client.revoke_accessor(ref["accessor"])
        except StrongroomError as exc:
            raise KindError(str(exc)) from None
