"""The contract every credential kind implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from strongroom.broker.models import MpaRequest


class KindError(Exception):
    """Minting or revoking failed; the message is safe to show (it never holds a secret)."""


@dataclass
class Minted:
    credential: dict[str, Any]  # handed to the requester once, never stored
    expires_at: int
    ref: dict[str, Any] | None = None  # what revocation needs (an accessor, a lease id), never a secret


class CredentialKind(Protocol):
    def validate_params(self, params: dict[str, Any]) -> dict[str, Any]: ...

    async def mint(self, req: MpaRequest, ttl: int, now: float) -> Minted: ...

    async def revoke(self, ref: dict[str, Any]) -> None: ...


def approver_names(req: MpaRequest) -> list[str]:
    return [a.get("email") or a.get("name") or a.get("subject", "") for a in req.approvers]


def no_params(params: dict[str, Any]) -> dict[str, Any]:
    if params:
        raise KindError("this kind takes no parameters")
    return {}
