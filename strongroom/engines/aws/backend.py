"""The ``aws`` secrets engine: short-lived AWS credentials, Vault-compatible.

Paths (one module each, after OpenBao's ``builtin/logical/aws``):

- ``config/root``            the engine's own credentials, region, endpoints, retries (path_config_root)
- ``config/rotate-root``     a new access key for the engine's own IAM user, old one deleted (path_config_rotate_root)
- ``config/lease``           lease and maximum lease of IAM-user credentials (path_config_lease)
- ``config/dynamic-roles``   role ARNs ServiceAccount annotations may name (path_config_dynamic_roles)
- ``roles/<name>``           ``iam_user``, ``assumed_role``, ``federation_token``, ``session_token`` (path_roles)
- ``creds|sts/<name>``       new credentials as a lease (path_user; the lease type lives in secret_access_keys)
- ``serviceaccounts/*``      where dynamic ``k8s_<base>_<sa>_<namespace>`` roles get their ``aws-role-arn``
                             annotation: the database engine's ServiceAccount sources, reused (dynamic_roles)

All AWS calls go through boto3 in worker threads (client); IAM users half-made by a crashed request are deleted by
a background task (rollback).
"""

from __future__ import annotations

import asyncio
import contextlib

from strongroom.core.logical import Request
from strongroom.engines.aws import (
    dynamic_roles,
    path_config_dynamic_roles,
    path_config_lease,
    path_config_root,
    path_config_rotate_root,
    path_roles,
    path_user,
    rollback,
    secret_access_keys,
)
from strongroom.engines.aws.client import ClientCache
from strongroom.engines.aws.entries import Role, get_dynamic, get_role
from strongroom.engines.database import path_serviceaccounts
from strongroom.engines.database.serviceaccounts import ServiceAccountBackend
from strongroom.framework import BackendContext


class AWSBackend(ServiceAccountBackend):
    type = "aws"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.clients = ClientCache()
        self._rollback: asyncio.Task[None] | None = None
        self.paths = [
            *path_config_root.paths(self),
            *path_config_rotate_root.paths(self),
            *path_config_lease.paths(self),
            *path_config_dynamic_roles.paths(self),
            *path_roles.paths(self),
            *path_user.paths(self),
            *path_serviceaccounts.paths(self),
        ]
        self.secret_types = {secret_access_keys.SECRET_TYPE: secret_access_keys.secret_type(self)}

    async def initialize(self) -> None:
        # backends are built on the active node only, so exactly one node rolls back
        self._rollback = asyncio.create_task(rollback.run_forever(self), name=f"aws-rollback-{self.ctx.mount_path}")
        await super().initialize()

    async def cleanup(self) -> None:
        if self._rollback is not None:
            self._rollback.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rollback
            self._rollback = None
        await super().cleanup()

    async def role(self, req: Request, name: str) -> Role | None:
        """The stored role ``name``, else the dynamic role it stands for; None when it is neither."""
        role = await get_role(self.storage(req), name)
        if role is not None or not dynamic_roles.is_dynamic(name):
            return role
        base_name, _, _ = dynamic_roles.parse(name)
        base = await get_role(self.storage(req), base_name)
        config = await get_dynamic(self.storage(req))
        return await dynamic_roles.resolve(name, base, config, self.service_accounts)
