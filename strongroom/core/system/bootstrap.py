"""Defaults a new Strongroom needs: workload login with its reader policy, the people policies, and ``kms-plugin``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strongroom.core.core import Core


async def bootstrap(core: Core) -> list[str]:
    from strongroom.core.system.default_policies import (
        DETECTION_POLICY,
        DETECTION_POLICY_TEXT,
        KMS_PLUGIN_POLICY,
        kms_plugin_policy,
    )
    from strongroom.core.system.default_policies import bootstrap as install_workload_defaults
    from strongroom.core.system.people_policies import POLICIES

    installed = list(await install_workload_defaults(core) or [])
    defaults = {KMS_PLUGIN_POLICY: kms_plugin_policy(), DETECTION_POLICY: DETECTION_POLICY_TEXT}
    for name, text in {**POLICIES, **defaults}.items():
        await core.policies.set(name, text)
        installed.append(f"policy {name}")
    return installed
