"""Roles that are not stored: ``k8s_<base>_<service-account>_<namespace>`` built from a ServiceAccount annotation.

A request for ``creds/k8s_app_s-ledger_default`` with no stored role of that exact name (a stored role always wins)
takes the stored base role ``app`` (credential_type ``assumed_role``), reads ServiceAccount ``default/s-ledger``'s
``<prefix>/aws-role-arn`` annotation and assumes that role, with the base role's session policy, tags and TTLs. The
ARN must match one of ``config/dynamic-roles``' ``allowed_role_arns`` globs, in which ``{{namespace}}`` and
``{{service_account}}`` stand for the ServiceAccount's own (``arn:aws:iam::123456789012:role/k8s/{{namespace}}/*``
lets a team name only its own roles). With no pattern configured no dynamic role resolves: an annotation alone
never grants a role. ServiceAccounts come from the same sources as the database engine's
(``serviceaccounts/config``).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import replace

from strongroom.core.logical import InvalidRequest
from strongroom.engines.aws.entries import ASSUMED_ROLE, DynamicRolesConfig, Role
from strongroom.engines.database.dynamic_roles import PREFIX, UnknownRole, parse
from strongroom.engines.database.serviceaccounts import ServiceAccountCache

ANNOTATION = "aws-role-arn"
_ROLE_ARN = re.compile(r"arn:[\w-]+:iam::\d{12}:role/[\w+=,.@/-]{1,512}")

__all__ = ["ANNOTATION", "PREFIX", "is_dynamic", "parse", "resolve"]


def is_dynamic(name: str) -> bool:
    return name.startswith(PREFIX)


def allowed(arn: str, patterns: list[str], namespace: str, service_account: str) -> bool:
    for pattern in patterns:
        filled = pattern.replace("{{namespace}}", namespace).replace("{{service_account}}", service_account)
        if fnmatch.fnmatchcase(arn, filled):
            return True
    return False


async def resolve(
    name: str, base_role: Role | None, config: DynamicRolesConfig, source: ServiceAccountCache
) -> Role:
    base_name, sa, namespace = parse(name)
    if base_role is None:
        raise UnknownRole(f"unknown role: {name} (no base role {base_name!r})")
    if base_role.credential_type != ASSUMED_ROLE:
        raise InvalidRequest(f"role {base_name!r} cannot be used for ServiceAccounts: its credential_type is not "
                             f"{ASSUMED_ROLE}")
    prefix = source.config.annotation_prefix.rstrip("/")
    found = await source.lookup(namespace, sa)
    if found is None:
        raise UnknownRole(f"unknown role: {name} (ServiceAccount {namespace}/{sa} is not known)")
    arn = found.annotations.get(f"{prefix}/{ANNOTATION}", "").strip()
    if not arn:
        raise UnknownRole(
            f"unknown role: {name} (ServiceAccount {namespace}/{sa} has no {prefix}/{ANNOTATION} annotation)"
        )
    if not _ROLE_ARN.fullmatch(arn):
        raise InvalidRequest(f"ServiceAccount {namespace}/{sa} has an invalid {prefix}/{ANNOTATION} annotation")
    if not allowed(arn, config.allowed_role_arns, namespace, sa):
        raise InvalidRequest(
            f"ServiceAccount {namespace}/{sa} names role {arn}, which config/dynamic-roles does not allow"
        )
    return replace(base_role, name=name, role_arns=[arn], dynamic_from=f"{base_name}:{namespace}/{sa}:{arn}")
