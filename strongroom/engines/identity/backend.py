"""The identity backend, mounted once at ``identity/``. It holds no state: everything lives in the identity store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.engines.identity import (
    path_entity,
    path_entity_alias,
    path_group,
    path_group_alias,
    path_lookup,
    path_mfa_enforcement,
    path_mfa_method,
)
from strongroom.framework import Backend, BackendContext

if TYPE_CHECKING:
    from strongroom.core.identity import IdentityStore


class IdentityBackend(Backend):
    type = "identity"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.paths = [
            *path_entity.paths(self),
            *path_entity_alias.paths(self),
            *path_group.paths(self),
            *path_group_alias.paths(self),
            *path_lookup.paths(self),
            *path_mfa_method.paths(self),
            *path_mfa_enforcement.paths(self),
        ]

    @property
    def store(self) -> IdentityStore:
        return self.ctx.services["identity"]
