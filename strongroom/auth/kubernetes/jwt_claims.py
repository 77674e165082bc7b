"""The two ServiceAccount token shapes Kubernetes mints, read into one :class:`ServiceAccount`.

Legacy secret-based tokens (``iss: kubernetes/serviceaccount``) carry ``kubernetes.io/serviceaccount/*`` claims at the
top level; projected (bound) tokens carry ``kubernetes.io: {namespace, pod, serviceaccount{name, uid}}`` and a
``sub`` of ``system:serviceaccount:<namespace>:<name>``. Where both appear, the projected claims win (as in Vault).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strongroom.auth.jwtutil import TokenError, audiences

LEGACY_ISSUER = "kubernetes/serviceaccount"
_LEGACY = "kubernetes.io/serviceaccount/"


@dataclass(slots=True)
class ServiceAccount:
    name: str
    namespace: str
    uid: str
    secret_name: str = ""
    pod_name: str = ""
    audiences: list[str] = field(default_factory=list)

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def service_account(claims: dict[str, Any]) -> ServiceAccount:
    name = _str(claims.get(_LEGACY + "service-account.name"))
    uid = _str(claims.get(_LEGACY + "service-account.uid"))
    namespace = _str(claims.get(_LEGACY + "namespace"))
    secret_name = _str(claims.get(_LEGACY + "secret.name"))
    pod_name = ""
    projected = claims.get("kubernetes.io")
    if isinstance(projected, dict):
        namespace = _str(projected.get("namespace"))
        sa = projected.get("serviceaccount")
        if isinstance(sa, dict):
            name, uid = _str(sa.get("name")), _str(sa.get("uid"))
        pod = projected.get("pod")
        if isinstance(pod, dict):
            pod_name = _str(pod.get("name"))
    if not uid:
        raise TokenError("could not parse UID from claims")
    return ServiceAccount(name=name, namespace=namespace, uid=uid, secret_name=secret_name, pod_name=pod_name,
                          audiences=audiences(claims))
