"""Roles that are not stored: ``k8s_<base>_<service-account>_<namespace>`` built from a ServiceAccount's annotations.

A request for ``creds/k8s_rw_s-ledger_default`` with no stored role of that exact name (a stored role always wins)
takes the stored base role ``rw``, reads ServiceAccount ``default/s-ledger``'s ``<prefix>/keyspace`` annotation,
substitutes it for ``{{keyspace}}`` (or Monzo's ``{{annotation}}``) in the base role's creation and rollback
statements, and, when ``<prefix>/cluster`` is set, uses it as the connection name instead of the base role's
``db_name``. TTLs come from the base role. The keyspace must be a plain Cassandra name (``^[A-Za-z0-9_]{1,48}$``):
it is pasted into statements, so anything else is refused rather than escaped. A base role whose creation statements
do not mention the keyspace cannot be used this way (it would hand every ServiceAccount the same access).

Role names split on ``_`` into exactly four parts; Kubernetes names cannot contain ``_``, so the base role's name
must not either.
"""

from __future__ import annotations

import re
from dataclasses import replace

from strongroom.core.logical import InvalidRequest
from strongroom.engines.database.entries import Role
from strongroom.engines.database.serviceaccounts import ServiceAccountCache

PREFIX = "k8s_"
KEYSPACE = re.compile(r"[A-Za-z0-9_]{1,48}")
# DNS-1123 label (namespaces) and subdomain (ServiceAccount names)
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SA_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_CONNECTION = re.compile(r"\w(([\w-]|\.)*\w)?")


class UnknownRole(InvalidRequest):
    pass


def is_dynamic(name: str) -> bool:
    return name.startswith(PREFIX)


def parse(name: str) -> tuple[str, str, str]:
    """``k8s_rw_s-ledger_default`` -> (``rw``, ``s-ledger``, ``default``)."""
    parts = name.split("_", 3)
    if len(parts) != 4 or not all(parts[1:]):
        raise InvalidRequest(
            f"k8s role name {name!r} is malformed; must be in format k8s_<role>_<service-account-name>_<namespace>"
        )
    _, base, sa, namespace = parts
    if not _SA_NAME.fullmatch(sa) or not _NAMESPACE.fullmatch(namespace):
        raise InvalidRequest(f"k8s role name {name!r} does not name a valid ServiceAccount and namespace")
    return base, sa, namespace


def substitute(statements: list[str], keyspace: str) -> list[str]:
    return [s.replace("{{keyspace}}", keyspace).replace("{{annotation}}", keyspace) for s in statements]


async def resolve(name: str, base_role: Role | None, source: ServiceAccountCache) -> Role:
    """The role ``name`` stands for, given its stored base role; raises with a message a service owner can act on."""
    base_name, sa, namespace = parse(name)
    if base_role is None:
        raise UnknownRole(f"unknown role: {name} (no base role {base_name!r})")
    if not any("{{keyspace}}" in s or "{{annotation}}" in s for s in base_role.creation_statements):
        # otherwise every ServiceAccount would get the base role's access, whatever its keyspace
        raise InvalidRequest(
            f"role {base_name!r} cannot be used for ServiceAccounts: its creation statements do not mention "
            "{{keyspace}}"
        )
    prefix = source.config.annotation_prefix.rstrip("/")
    found = await source.lookup(namespace, sa)
    if found is None:
        raise UnknownRole(f"unknown role: {name} (ServiceAccount {namespace}/{sa} is not known)")
    keyspace = found.annotations.get(f"{prefix}/keyspace", "")
    if not keyspace:
        raise UnknownRole(f"unknown role: {name} (ServiceAccount {namespace}/{sa} has no {prefix}/keyspace annotation)")
    if not KEYSPACE.fullmatch(keyspace):
        raise InvalidRequest(
            f"ServiceAccount {namespace}/{sa} has an invalid {prefix}/keyspace annotation: "
            "a keyspace is 1 to 48 letters, digits or underscores"
        )
    db_name = base_role.db_name
    cluster = found.annotations.get(f"{prefix}/cluster", "")
    if cluster:
        if not _CONNECTION.fullmatch(cluster):
            raise InvalidRequest(f"ServiceAccount {namespace}/{sa} has an invalid {prefix}/cluster annotation")
        db_name = cluster
    return replace(
        base_role,
        name=name,
        db_name=db_name,
        creation_statements=substitute(base_role.creation_statements, keyspace),
        rollback_statements=substitute(base_role.rollback_statements, keyspace),
        dynamic_from=f"{base_name}:{namespace}/{sa}:{keyspace}",
    )
