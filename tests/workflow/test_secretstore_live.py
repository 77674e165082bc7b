"""``strongroom.secretstore`` inside a simulated pod (token and namespace files in a temp dir) against a live server.

The dev server's bootstrap installs ``auth/kubernetes``, role ``default`` and ``kubernetes-reader``; the test only
tells the mount which key signs ServiceAccount tokens (``pem_keys``), as an operator would for a cluster.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import pytest

from strongroom import secretstore

from .pod import PUBLIC_PEM, make_pod


@pytest.fixture
def cluster(server):  # noqa: ANN001, ANN201
    root = server.client()
    with server.http() as http:
        r = http.post(
            "/v1/auth/kubernetes/config", json={"kubernetes_host": "https://k8s.invalid", "pem_keys": [PUBLIC_PEM]}
        )
        assert r.status_code in (200, 204), r.text
    values = {}
    for ns, sa in (("default", "s-emoji"), ("default", "s-ledger")):
        values[sa] = v = secrets.token_urlsafe(24)
        root.secrets.kv.v2.create_or_update_secret(
            path=f"k8s/{ns}/{sa}/canary/2019-05-11", secret={"data": v}, cas=0, mount_point="secret"
        )
    root.secrets.kv.v2.create_or_update_secret(
        path="k8s/default/s-emoji/config/v1", secret={"data": '{"pool": 5, "host": "db"}'}, cas=0, mount_point="secret"
    )
    return values


def _client(server, pod, **kw: object) -> secretstore.Client:  # noqa: ANN001
    return secretstore.Client(
        addr=server.addr, token_file=str(pod.token_file), namespace_file=str(pod.namespace_file), **kw
    )


def test_reads_its_own_secret_with_no_setup(server, cluster, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    pod = make_pod(tmp_path, "default", "s-emoji")
    for k, v in pod.env(server.addr).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(secretstore, "_default", None)
    # the one line a service writes
    assert secretstore.path("canary", "2019-05-11").string() == cluster["s-emoji"]
    assert secretstore.path("canary", "2019-05-11").bytes() == cluster["s-emoji"].encode()
    assert secretstore.path("config", "v1").json() == {"pool": 5, "host": "db"}
    assert secretstore.ready() is True


def test_another_services_secret_is_denied(server, cluster, tmp_path: Path) -> None:  # noqa: ANN001
    c = _client(server, make_pod(tmp_path, "default", "s-emoji"))
    with pytest.raises(secretstore.PermissionDenied) as denied:
        c.request("GET", "secret/data/k8s/default/s-ledger/canary/2019-05-11")
    assert cluster["s-ledger"] not in str(denied.value)
    # a pod that lies about its namespace (file says another one) still only gets what its token proves
    liar = make_pod(tmp_path, "default", "s-emoji")
    liar.namespace_file.write_text("payments")
    with pytest.raises(secretstore.PermissionDenied, match="secret/k8s/payments/s-emoji/canary/2019-05-11"):
        _client(server, liar).path("canary", "2019-05-11").string()


def test_missing_secret_is_typed_and_names_the_path(server, cluster, tmp_path: Path) -> None:  # noqa: ANN001
    c = _client(server, make_pod(tmp_path, "default", "s-emoji"))
    with pytest.raises(secretstore.SecretNotFound, match="secret/k8s/default/s-emoji/canary/1999-01-01"):
        c.path("canary", "1999-01-01").string()


def test_unavailable_server_raises_unavailable(tmp_path: Path) -> None:
    pod = make_pod(tmp_path, "default", "s-emoji")
    c = secretstore.Client(
        addr="http://127.0.0.1:9", token_file=str(pod.token_file), namespace_file=str(pod.namespace_file),
        max_attempts=3, backoff_base=0.01,
    )  # fmt: skip
    with pytest.raises(secretstore.Unavailable, match="secret/k8s/default/s-emoji/canary/2019-05-11"):
        c.path("canary", "2019-05-11").string()
    assert c.ready() is False


def test_recovers_after_the_server_restarts(server, cluster, tmp_path: Path) -> None:  # noqa: ANN001
    c = _client(server, make_pod(tmp_path, "default", "s-emoji"), max_attempts=12, backoff_cap=2.0)
    assert c.path("canary", "2019-05-11").string() == cluster["s-emoji"]
    server.stop()
    result: dict[str, object] = {}

    def read() -> None:
        try:
            result["value"] = c.path("canary", "2019-05-11").string()
        except Exception as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    reader = threading.Thread(target=read)
    reader.start()  # retries while the server is down
    server.start()
    reader.join(timeout=60)
    assert result.get("value") == cluster["s-emoji"], result.get("error")
    assert c.ready() is True


async def test_async_api(server, cluster, tmp_path: Path) -> None:  # noqa: ANN001
    pod = make_pod(tmp_path, "default", "s-emoji")
    async with secretstore.aio.AsyncClient(
        addr=server.addr, token_file=str(pod.token_file), namespace_file=str(pod.namespace_file)
    ) as c:
        assert await c.path("canary", "2019-05-11").string() == cluster["s-emoji"]
        assert await c.ready() is True
        with pytest.raises(secretstore.PermissionDenied):
            await c.request("GET", "secret/data/k8s/default/s-ledger/canary/2019-05-11")
