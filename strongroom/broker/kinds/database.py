"""Database superuser: a dynamic credential from the Strongroom database engine's privileged role.

The engine's lease may outlive the approved window, so the broker revokes the lease when the window closes (see the
sweeper in ``service.py``) and on ``mpa revoke``.
"""

from __future__ import annotations

from typing import Any

from strongroom.broker.kinds.base import KindError, Minted, no_params
from strongroom.broker.models import MpaRequest
from strongroom.broker.strongroom_client import StrongroomClient, StrongroomError


class DatabaseKind:
    def __init__(self, client: StrongroomClient | None, options: dict[str, Any]) -> None:
        role = options.get("role")
        if not isinstance(role, str) or not role:
            raise KindError("a database kind needs role = \"<privileged role>\"")
        self._client = client
        self._mount = str(options.get("mount", "database"))
        self._role = role

    def validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return no_params(params)

    async def mint(self, req: MpaRequest, ttl: int, now: float) -> Minted:
        if self._client is None:
            raise KindError("no Strongroom server is configured")
        try:
            body = await self._client.database_creds(self._mount, self._role)
        except StrongroomError as exc:
            raise KindError(str(exc)) from None
        lease_id = body.get("lease_id")
        data = body.get("data") or {}
        if not lease_id or not data:
            raise KindError("the database engine returned no credential")
        exp = int(now) + min(ttl, int(body.get("lease_duration") or ttl))
        credential = {"type": "database", **data, "lease_id": lease_id, "expires_at": exp}
        return Minted(credential=credential, expires_at=exp, ref={"lease_id": lease_id})

    async def revoke(self, ref: dict[str, Any]) -> None:
        if self._client is None:
            raise KindError("no Strongroom server is configured")
        try:
            await self._client.revoke_lease(ref["lease_id"])
        except StrongroomError as exc:
            raise KindError(str(exc)) from None
