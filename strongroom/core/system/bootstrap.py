"""Defaults a new Strongroom needs: workload login with its reader policy, and the people policies."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strongroom.core.core import Core


async def bootstrap(core: Core) -> list[str]:
    from strongroom.core.system.default_policies import bootstrap as install_workload_defaults
    from strongroom.core.system.people_policies import SECRET_WRITER_POLICY

    installed = list(await install_workload_defaults(core) or [])
    await core.policies.set("secret-writer", SECRET_WRITER_POLICY)
    installed.append("policy secret-writer")
    return installed
