"""Strongroom admin: an orphan Strongroom token carrying one named privileged policy, living exactly the approved time.

Orphan so it neither dies with nor extends the broker's own token; ``mpa revoke`` ends it by accessor at once.
"""

from __future__ import annotations

from typing import Any

from strongroom.broker.kinds.base import KindError, Minted, approver_names, no_params
from strongroom.broker.models import MpaRequest
from strongroom.broker.strongroom_client import StrongroomClient, StrongroomError


class StrongroomAdminKind:
    def __init__(self, client: StrongroomClient | None, options: dict[str, Any]) -> None:
        policy = options.get("policy")
        if not isinstance(policy, str) or not policy:
            raise KindError("a strongroom-admin kind needs policy = \"<privileged policy>\"")
        self._client = client
        self._policy = policy
        self._role = options.get("token_role") or None

    def validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return no_params(params)

    async def mint(self, req: MpaRequest, ttl: int, now: float) -> Minted:
        if self._client is None:
            raise KindError("no Strongroom server is configured")
        meta = {"mpa_request_id": req.id, "mpa_requester": req.requester.get("email") or req.requester["subject"],
                "mpa_approvers": ",".join(approver_names(req)), "mpa_break_glass": str(req.break_glass).lower()}
        try:
            token, accessor = await self._client.create_token(
                policies=[self._policy], ttl=ttl, meta=meta, display_name=f"mpa-{req.id}", role=self._role
            )
        except StrongroomError as exc:
            raise KindError(str(exc)) from None
        exp = int(now) + ttl
        credential = {"type": "strongroom-token", "token": token, "accessor": accessor, "policies": [self._policy],
                      "ttl": ttl, "expires_at": exp}
        return Minted(credential=credential, expires_at=exp, ref={"accessor": accessor})

    async def revoke(self, ref: dict[str, Any]) -> None:
        if self._client is None:
            raise KindError("no Strongroom server is configured")
        try:
            await self._client.revoke_accessor(ref["accessor"])
        except StrongroomError as exc:
            raise KindError(str(exc)) from None
