"""Zero-configuration settings: everything has a default that is right inside a Kubernetes pod."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_ADDR = "https://strongroom.strongroom.svc:8200"


@dataclass(frozen=True)
class Settings:
    addr: str = DEFAULT_ADDR
    role: str = "default"
    auth_mount: str = "kubernetes"
    kv_mount: str = "secret"
    token_file: str = f"{SA_DIR}/token"
    namespace_file: str = f"{SA_DIR}/namespace"
    # a CA bundle path, or None for the system trust store
    ca_cert: str | None = None
    timeout: float = 10.0
    # retries of transient failures (connection errors, 5xx, 429) before Unavailable is raised
    max_attempts: int = 6
    backoff_base: float = 0.2
    backoff_cap: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def pick(*names: str) -> str | None:
            for n in names:
                v = e.get(n)
                if v:
                    return v
            return None

        d = cls()
        return cls(
            addr=(pick("STRONGROOM_ADDR", "VAULT_ADDR") or d.addr).rstrip("/"),
            role=pick("STRONGROOM_K8S_ROLE") or d.role,
            auth_mount=(pick("STRONGROOM_K8S_MOUNT") or d.auth_mount).strip("/"),
            kv_mount=(pick("STRONGROOM_KV_MOUNT") or d.kv_mount).strip("/"),
            token_file=pick("STRONGROOM_SA_TOKEN_FILE") or d.token_file,
            namespace_file=pick("STRONGROOM_NAMESPACE_FILE") or d.namespace_file,
            ca_cert=pick("STRONGROOM_CACERT", "VAULT_CACERT"),
            timeout=float(pick("STRONGROOM_TIMEOUT") or d.timeout),
            max_attempts=max(1, int(pick("STRONGROOM_MAX_ATTEMPTS") or d.max_attempts)),
        )
