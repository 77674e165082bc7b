"""The reference's naming rule: ``service.emoji`` runs as ServiceAccount ``s-emoji`` (namespace ``default``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Kubernetes object names: a DNS-1123 label
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_KINDS = {"service": "s", "cron": "c", "web": "w"}
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class ServiceRef:
    service: str
    namespace: str
    service_account: str

    @property
    def secret_root(self) -> str:
        """Where this service's secrets live, as a person writes it: ``secret/k8s/<ns>/<sa>``."""
        return f"secret/k8s/{self.namespace}/{self.service_account}"


def service_account_for(service: str) -> str:
    """``service.emoji`` → ``s-emoji``; a name already in ServiceAccount form (``s-emoji``) is taken as it is."""
    kind, dot, rest = service.partition(".")
    if dot:
        prefix = _KINDS.get(kind)
        if prefix is None:
            raise ValueError(f"unknown service kind {kind!r} in {service!r}: expected one of {', '.join(_KINDS)}")
        account = f"{prefix}-{rest}"
    else:
        account = service
    if not _LABEL.fullmatch(account):
        raise ValueError(f"{service!r} does not map to a valid ServiceAccount name")
    return account


def resolve(service: str, namespace: str | None = None) -> ServiceRef:
    ns = namespace or DEFAULT_NAMESPACE
    if not _LABEL.fullmatch(ns):
        raise ValueError(f"invalid namespace {ns!r}")
    return ServiceRef(service=service, namespace=ns, service_account=service_account_for(service))
