"""A simulated pod: ServiceAccount token and namespace files in a temp dir, with tokens minted the way Kubernetes does.

Uses ``tests/identity/k8s_tokens.py`` when the identity tests provide it; otherwise mints here with a test RSA key.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = (
    _KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
)
ISSUER = "https://kubernetes.default.svc.cluster.local"


def projected_token(namespace: str, name: str, *, ttl: int = 3600, audience: str = "strongroom") -> str:
    now = int(time.time())
    claims = {
        "aud": [audience],
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "iss": ISSUER,
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io": {
            "namespace": namespace,
            "pod": {"name": f"{name}-abc", "uid": str(uuid.uuid4())},
            "serviceaccount": {"name": name, "uid": str(uuid.uuid4())},
        },
    }
    return jwt.encode(claims, _KEY, algorithm="RS256", headers={"kid": "test"})


def legacy_token(namespace: str, name: str) -> str:
    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": f"{name}-token-x1y2z",
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": str(uuid.uuid4()),
    }
    return jwt.encode(claims, _KEY, algorithm="RS256")


@dataclass
class Pod:
    dir: Path
    namespace: str
    service_account: str

    @property
    def token_file(self) -> Path:
        return self.dir / "token"

    @property
    def namespace_file(self) -> Path:
        return self.dir / "namespace"

    def env(self, addr: str) -> dict[str, str]:
        return {
            "STRONGROOM_ADDR": addr,
            "STRONGROOM_SA_TOKEN_FILE": str(self.token_file),
            "STRONGROOM_NAMESPACE_FILE": str(self.namespace_file),
        }


def make_pod(tmp: Path, namespace: str, name: str, *, legacy: bool = False) -> Pod:
    d = tmp / f"pod-{namespace}-{name}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "token").write_text(legacy_token(namespace, name) if legacy else projected_token(namespace, name))
    (d / "namespace").write_text(namespace)
    return Pod(d, namespace, name)
