"""A test-only secrets engine that hands out leases, so the lease API can be driven over HTTP before (and apart from)
the database engine. It is mounted only in test servers (see ``site/sitecustomize.py``), never shipped.

``creds/<name>`` issues a "user" recorded under ``live/``; revoking the lease removes it. ``config`` sets the TTLs and
can make the next N revocations fail (-1: all), to exercise retries and revoke-force.
"""

from __future__ import annotations

import secrets

from strongroom.core.logical import LogicalError, Operation, Request, Response, Secret
from strongroom.framework import Backend, BackendContext, Field, FieldData, FieldType, Path, SecretType


class LeaseTestBackend(Backend):
    type = "lease-test"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.paths = [
            Path(
                pattern=r"config",
                fields={
                    "ttl": Field(FieldType.DURATION, default=60),
                    "max_ttl": Field(FieldType.DURATION, default=600),
                    "renewable": Field(FieldType.BOOL, default=True),
                    "fail_revokes": Field(FieldType.INT, default=0),
                },
                operations={Operation.UPDATE: self._write_config, Operation.READ: self._read_config},
            ),
            Path(
                pattern=r"creds/(?P<name>\w+)",
                fields={"name": Field(in_path=True)},
                operations={Operation.READ: self._creds},
            ),
            Path(pattern=r"live", operations={Operation.READ: self._live}),
        ]
        self.secret_types = {"creds": SecretType("creds", revoke=self._revoke, renew=self._renew)}

    async def _config(self) -> dict:
        return await self.ctx.storage.get_json("config") or {
            "ttl": 60,
            "max_ttl": 600,
            "renewable": True,
            "fail_revokes": 0,
        }

    async def _write_config(self, req: Request, fd: FieldData) -> None:
        await self.ctx.storage.put_json(
            "config", {k: fd.get(k) for k in ("ttl", "max_ttl", "renewable", "fail_revokes")}
        )

    async def _read_config(self, req: Request, fd: FieldData) -> Response:
        return Response(data=await self._config())

    async def _creds(self, req: Request, fd: FieldData) -> Response:
        cfg = await self._config()
        username = f"u-{fd.get('name')}-{secrets.token_hex(4)}"
        await self.ctx.storage.put_json(f"live/{username}", {})
        secret = Secret(
            "creds",
            ttl=cfg["ttl"],
            max_ttl=cfg["max_ttl"],
            renewable=cfg["renewable"],
            internal_data={"username": username},
        )
        return Response(data={"username": username}, secret=secret)

    async def _live(self, req: Request, fd: FieldData) -> Response:
        return Response(data={"users": await self.ctx.storage.list_all("live/")})

    async def _revoke(self, req: Request) -> None:
        cfg = await self._config()
        if cfg["fail_revokes"]:
            if cfg["fail_revokes"] > 0:
                cfg["fail_revokes"] -= 1
                await self.ctx.storage.put_json("config", cfg)
            raise LogicalError("test database unreachable")
        assert req.secret is not None
        await self.ctx.storage.delete(f"live/{req.secret.internal_data['username']}")

    async def _renew(self, req: Request) -> Response:
        cfg = await self._config()
        return Response(secret=Secret("creds", ttl=cfg["ttl"], max_ttl=cfg["max_ttl"]))
