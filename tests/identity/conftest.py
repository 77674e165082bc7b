"""Fixtures for identity tests: the TokenReview stand-in cluster and a server whose kubernetes mount trusts it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import hvac
import pytest

from .k8s_tokens import FakeCluster


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    c = FakeCluster().start()
    yield c
    c.stop()


@dataclass
class K8sEnv:
    server: object
    cluster: FakeCluster
    root: hvac.Client
    accessor: str

    def login(self, token: str, role: str = "default") -> hvac.Client:
        client = self.server.client(token="")  # type: ignore[attr-defined]
        client.auth.kubernetes.login(role, token)
        return client

    def login_http(self, token: str, role: str = "default"):  # noqa: ANN201
        with self.server.http(token="") as http:  # type: ignore[attr-defined]
            return http.post("/v1/auth/kubernetes/login", json={"role": role, "jwt": token})


@pytest.fixture
def k8s(server, cluster: FakeCluster) -> K8sEnv:  # noqa: ANN001
    """Dev server (bootstrap installed auth/kubernetes, kubernetes-reader and role default) + the stand-in cluster."""
    root = server.client()
    root.auth.kubernetes.configure(kubernetes_host=cluster.url, kubernetes_ca_cert=cluster.ca_pem,
                                   token_reviewer_jwt=cluster.reviewer_token)
    accessor = root.sys.list_auth_methods()["data"]["kubernetes/"]["accessor"]
    return K8sEnv(server=server, cluster=cluster, root=root, accessor=accessor)
