"""Who this pod is: its ServiceAccount token, namespace and ServiceAccount name, read from the standard files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from strongroom.secretstore.errors import ConfigurationError


@dataclass(frozen=True)
class PodIdentity:
    namespace: str
    service_account: str


def read_token(token_file: str) -> str:
    # Re-read on every login: projected tokens are rotated by the kubelet while the pod runs.
    try:
        with open(token_file, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the ServiceAccount token file {token_file}: {exc.strerror}") from None
    if not token:
        raise ConfigurationError(f"the ServiceAccount token file {token_file} is empty")
    return token


def read_namespace(namespace_file: str) -> str | None:
    try:
        with open(namespace_file, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def claims_identity(token: str) -> tuple[str | None, str | None]:
    """(namespace, service account name) from the token's claims, legacy or projected shape.

    The signature is not checked here: the server verifies the token at login; the client only needs to know which
    path is its own.
    """
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise ConfigurationError("the ServiceAccount token is not a JWT") from None
    k8s = claims.get("kubernetes.io")
    if isinstance(k8s, dict):  # projected (bound) token
        sa = k8s.get("serviceaccount") or {}
        ns, name = k8s.get("namespace"), sa.get("name") if isinstance(sa, dict) else None
    else:  # legacy secret-based token
        ns = claims.get("kubernetes.io/serviceaccount/namespace")
        name = claims.get("kubernetes.io/serviceaccount/service-account.name")
    sub = claims.get("sub")
    if (not ns or not name) and isinstance(sub, str) and sub.startswith("system:serviceaccount:"):
        parts = sub.split(":")
        if len(parts) == 4:
            ns, name = ns or parts[2], name or parts[3]
    return (ns if isinstance(ns, str) else None, name if isinstance(name, str) else None)


def pod_identity(token_file: str, namespace_file: str) -> PodIdentity:
    token = read_token(token_file)
    ns_claim, name = claims_identity(token)
    namespace = read_namespace(namespace_file) or ns_claim
    if not name:
        raise ConfigurationError("the ServiceAccount token names no ServiceAccount")
    if not namespace:
        raise ConfigurationError(f"no namespace: {namespace_file} is missing and the token names none")
    return PodIdentity(namespace=namespace, service_account=name)
