"""The kubernetes auth method backend: config, roles and login (see the path modules)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import httpx

from strongroom.auth.jwtutil import load_public_key
from strongroom.auth.kubernetes import path_config, path_login, path_role
from strongroom.auth.kubernetes.token_review import ReviewError, make_client
from strongroom.auth.token_fields import TokenParams
from strongroom.core.logical import InvalidRequest, Request, Response
from strongroom.framework import Backend, BackendContext

LOCAL_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
LOCAL_JWT = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _read_local(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


class KubernetesBackend(Backend):
    type = "kubernetes"
    is_auth = True

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self._keys: tuple[tuple[str, ...], list[Any]] = ((), [])
        self._http: tuple[str, httpx.AsyncClient] | None = None  # (CA digest, pooled client) for TokenReview
        self.paths = [*path_login.paths(self), *path_config.paths(self), *path_role.paths(self)]

    def invalidate(self) -> None:
        self._keys = ((), [])

    async def cleanup(self) -> None:
        await self.close_http()

    async def close_http(self) -> None:
        if self._http is not None:
            client, self._http = self._http[1], None
            await client.aclose()

    async def http_client(self, ca_pem: str) -> httpx.AsyncClient:
        """A pooled client for the API server, rebuilt when the trusted CA changes."""
        digest = hashlib.sha256(ca_pem.encode()).hexdigest()
        if self._http is None or self._http[0] != digest:
            await self.close_http()
            try:
                self._http = (digest, make_client(ca_pem))
            except Exception:  # an unusable CA must fail the login, not the server
                raise ReviewError("lookup failed: the configured CA cannot be used") from None
        return self._http[1]

    async def config(self) -> dict[str, Any] | None:
        return await self.ctx.storage.get_json(path_config.CONFIG_KEY)

    async def role(self, name: str) -> dict[str, Any] | None:
        return await self.ctx.storage.get_json(f"role/{name}")

    def public_keys(self, config: dict[str, Any]) -> list[Any]:
        pems = tuple(config.get("pem_keys") or ())
        if self._keys[0] != pems:
            self._keys = (pems, [load_public_key(p) for p in pems])
        return self._keys[1]

    @staticmethod
    def local_defaults(config: dict[str, Any]) -> tuple[str, str]:
        """(CA PEM, reviewer JWT): the configured ones, else — inside a pod — the pod's own."""
        ca, reviewer = config.get("kubernetes_ca_cert", ""), config.get("token_reviewer_jwt", "")
        if not config.get("disable_local_ca_jwt") and os.path.exists(LOCAL_JWT):
            ca = ca or _read_local(LOCAL_CA)
            reviewer = reviewer or _read_local(LOCAL_JWT)
        return ca, reviewer

    async def auth_renew(self, req: Request) -> Response | None:
        if req.auth is None:
            return None
        name = str(req.auth.internal_data.get("role", ""))
        role = await self.role(name) if name and "/" not in name and name not in (".", "..") else None
        if role is None:
            raise InvalidRequest(f"role {name} does not exist during renewal")
        return Response(auth=TokenParams.from_dict(role.get("token")).renew(req.auth))
