"""The ``sys/`` backend, assembled from one module per group of paths."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from strongroom.framework.backend import Backend, BackendContext

if TYPE_CHECKING:
    from strongroom.core.core import Core

_PATH_MODULES = (
    "path_mounts",
    "path_capabilities",
    "path_tools",
    "path_policies",
    "path_leases",
    "path_audit",
    "path_transport",
    "path_rekey",
    "path_generate_root_token",
    "path_openapi",
    "path_internal_ui",
    "path_remount",
    "path_host",
    "path_wrapping",
    "path_metrics",
    "path_snapshot",
    "path_mfa",
    "path_access",
)


class SystemBackend(Backend):
    type = "system"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        core: Core = ctx.services["core"]
        for name in _PATH_MODULES:
            module = importlib.import_module(f"strongroom.core.system.{name}")
            self.paths.extend(module.paths(core))
