"""The broker's calls to the Strongroom server's Vault-compatible API, made with the broker's own token."""

from __future__ import annotations

from typing import Any

import httpx


class StrongroomError(RuntimeError):
    """The Strongroom server refused or failed; the message carries the status, never a token."""


class StrongroomClient:
    def __init__(self, addr: str, token: str, *, client: httpx.AsyncClient | None = None) -> None:
        self._addr = addr.rstrip("/")
        self._token = token
        self._client = client or httpx.AsyncClient(timeout=15.0)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self._client.request(
                method, f"{self._addr}/v1/{path}", json=body, headers={"X-Vault-Token": self._token}
            )
        except httpx.HTTPError as exc:
            raise StrongroomError(f"Strongroom server unreachable ({type(exc).__name__})") from None
        if response.status_code >= 400:
            try:
                errors = response.json().get("errors", [])
            except ValueError:
                errors = []
            raise StrongroomError(f"Strongroom {method} {path} answered {response.status_code}: {'; '.join(errors)}")
        return response.json() if response.content else {}

    async def create_token(self, *, policies: list[str], ttl: int, meta: dict[str, str], display_name: str,
                           role: str | None = None) -> tuple[str, str]:
        """An orphan token: it must not die with (or keep alive) the broker's own token; it is revoked by accessor.

        With a token role (``allowed_policies`` = the privileged policy, ``orphan = true``) the broker's own token
        needs only ``update`` on ``auth/token/create/<role>``; without one it needs root or sudo for ``no_parent``.
        """
        body: dict[str, Any] = {"policies": policies, "ttl": f"{ttl}s", "explicit_max_ttl": f"{ttl}s",
                                "renewable": False, "meta": meta, "display_name": display_name}
        if role:
            body = await self._call("POST", f"auth/token/create/{role}", body)
        else:
            body = await self._call("POST", "auth/token/create", {**body, "no_parent": True})
        auth = body.get("auth") or {}
        if not auth.get("client_token") or not auth.get("accessor"):
            raise StrongroomError("Strongroom did not return a token")
        return auth["client_token"], auth["accessor"]

    async def revoke_accessor(self, accessor: str) -> None:
        await self._call("POST", "auth/token/revoke-accessor", {"accessor": accessor})

    async def database_creds(self, mount: str, role: str) -> dict[str, Any]:
        return await self._call("GET", f"{mount.strip('/')}/creds/{role}")

    async def revoke_lease(self, lease_id: str) -> None:
        await self._call("PUT", "sys/leases/revoke", {"lease_id": lease_id})

    async def send_audit_events(self, events: list[dict[str, Any]]) -> None:
        await self._call("POST", "sys/audit-events", {"source": "mpa-broker", "events": events})

    async def aclose(self) -> None:
        await self._client.aclose()
