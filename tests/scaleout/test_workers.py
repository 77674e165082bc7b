"""A node of four workers (``--workers 4``) behaves as one server: reads follow writes across workers, policy changes
and revocations hold on every worker at once, limited-use tokens count exactly, background work survives the death of
its worker, and one unseal unseals the node."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import StrongroomServer, wait_for

WORKERS = 4


class NodeServer(StrongroomServer):
    """A dev server started as a node of ``WORKERS`` workers; ready once the supervisor announced all of them."""

    def _argv(self) -> list[str]:
        return [*super()._argv(), "--workers", str(WORKERS)]

    def start(self) -> NodeServer:
        super().start()
        wait_for(lambda: f"node of {WORKERS} workers started" in self.log_path.read_text(), message="node start")
        return self


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeServer]:
    server = NodeServer(tmp_path_factory.mktemp("node"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def worker_of(resp: httpx.Response) -> str:
    worker = resp.headers.get("x-strongroom-worker")
    assert worker is not None, "a dev node's answers name their worker"
    return worker


def clients_by_worker(node: NodeServer, token: str | None = None) -> dict[str, httpx.Client]:
    """One keep-alive client per worker: each client's connection was accepted by a different worker."""
    found: dict[str, httpx.Client] = {}
    spare: list[httpx.Client] = []

    def more() -> bool:
        client = node.http(token)
        worker = worker_of(client.get("/v1/sys/health"))
        (spare if worker in found else found.setdefault(worker, client) and []).append(client)
        return len(found) == WORKERS

    wait_for(more, timeout=60, interval=0, message="a connection to every worker")
    for client in spare:
        if client not in found.values():
            client.close()
    return found


def test_a_write_on_one_worker_is_read_by_another_a_thousand_times(node: NodeServer) -> None:
    clients = list(clients_by_worker(node).values())
    for i in range(1000):
        writer, reader = clients[i % WORKERS], clients[(i + 1) % WORKERS]
        written = writer.post("/v1/secret/data/pair", json={"data": {"n": i}})
        assert written.status_code == 200, written.text
        read = reader.get("/v1/secret/data/pair")
        assert worker_of(written) != worker_of(read)
        assert read.json()["data"]["data"] == {"n": i}
        assert read.json()["data"]["metadata"]["version"] == written.json()["data"]["version"]


def test_a_mount_made_on_one_worker_serves_on_every_worker(node: NodeServer) -> None:
    clients = list(clients_by_worker(node).values())
    assert clients[0].post("/v1/sys/mounts/team", json={"type": "kv", "options": {"version": "2"}}).status_code == 204
    for i, client in enumerate(clients):
        assert client.post("/v1/team/data/k", json={"data": {"w": i}}).status_code == 200
        assert clients[(i + 1) % WORKERS].get("/v1/team/data/k").json()["data"]["data"] == {"w": i}


def test_a_policy_change_holds_on_every_worker_for_the_next_request(node: NodeServer) -> None:
    root = list(clients_by_worker(node).values())
    root[0].post("/v1/secret/data/shared", json={"data": {"x": 1}})
    allow = 'path "secret/data/shared" { capabilities = ["read"] }'
    assert root[0].put("/v1/sys/policies/acl/reader", json={"policy": allow}).status_code == 204
    token = root[1].post("/v1/auth/token/create", json={"policies": ["reader"]}).json()["auth"]["client_token"]
    users = list(clients_by_worker(node, token).values())
    for user in users:  # every worker has now compiled and cached the policy
        assert user.get("/v1/secret/data/shared").status_code == 200
    deny = 'path "secret/data/other" { capabilities = ["read"] }'
    assert root[2].put("/v1/sys/policies/acl/reader", json={"policy": deny}).status_code == 204
    for user in users:
        assert user.get("/v1/secret/data/shared").status_code == 403
    assert root[3].put("/v1/sys/policies/acl/reader", json={"policy": allow}).status_code == 204
    for user in users:
        assert user.get("/v1/secret/data/shared").status_code == 200


def test_a_revoked_token_is_refused_by_every_worker_at_once(node: NodeServer) -> None:
    root = list(clients_by_worker(node).values())
    token = root[0].post("/v1/auth/token/create", json={"policies": ["default"]}).json()["auth"]["client_token"]
    users = list(clients_by_worker(node, token).values())
    for user in users:  # cached by every worker
        assert user.get("/v1/auth/token/lookup-self").status_code == 200
    assert root[1].post("/v1/auth/token/revoke", json={"token": token}).status_code == 204
    for user in users:
        assert user.get("/v1/auth/token/lookup-self").status_code == 403


def test_num_uses_3_under_60_concurrent_requests_over_4_workers_gives_exactly_3(node: NodeServer) -> None:
    root = list(clients_by_worker(node).values())
    for attempt in range(3):
        token = root[attempt].post("/v1/auth/token/create", json={"policies": ["default"], "num_uses": 3}).json()
        users = list(clients_by_worker(node, token["auth"]["client_token"]).values())

        def one(i: int) -> tuple[int, str]:
            resp = users[i % WORKERS].get("/v1/auth/token/lookup-self")
            return resp.status_code, worker_of(resp)

        with ThreadPoolExecutor(max_workers=60) as pool:
            results = list(pool.map(one, range(60)))
        assert sum(1 for status, _ in results if status == 200) == 3, results
        assert len({w for _, w in results}) == WORKERS  # the requests really were spread over the workers
        assert all(status in (200, 403, 500) for status, _ in results)


def test_killing_the_background_worker_moves_expiration_and_nothing_is_left_unrevoked(node: NodeServer) -> None:
    root = next(iter(clients_by_worker(node).values()))
    pattern = re.compile(r"worker (\d+) \(pid (\d+)\) now runs background work")
    elected = pattern.findall(node.log_path.read_text())
    assert elected, "one worker runs background work"
    pid = int(elected[-1][1])
    # a short-lived parent with a long-lived child: only the expiration manager revoking the parent revokes the child
    assert root.post("/v1/secret/data/survivor", json={"data": {"x": 1}}).status_code == 200
    maker = 'path "auth/token/create" { capabilities = ["update"] }'
    assert root.put("/v1/sys/policies/acl/maker", json={"policy": maker}).status_code == 204
    children = []
    for _ in range(3):
        parent = root.post("/v1/auth/token/create", json={"policies": ["maker"], "ttl": "6s"}).json()
        child = httpx.post(
            f"{node.addr}/v1/auth/token/create",
            headers={"X-Vault-Token": parent["auth"]["client_token"]},
            json={"policies": ["maker"], "ttl": "1h"},
            timeout=10,
        )
        assert child.status_code == 200, child.text
        children.append(child.json()["auth"]["client_token"])
    for child in children:  # alive until their parents expire, which is after the kill
        assert httpx.get(f"{node.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": child}).status_code == 200
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(pattern.findall(node.log_path.read_text())) > len(elected), message="a new elected worker")
    assert int(pattern.findall(node.log_path.read_text())[-1][1]) != pid

    def all_revoked() -> bool:
        return all(
            httpx.get(f"{node.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": c}, timeout=5).status_code
            == 403
            for c in children
        )

    wait_for(all_revoked, timeout=30, message="the children revoked with their expired parents")
    # the killed worker was replaced, and the replacement serves unsealed
    wait_for(lambda: len(clients_by_worker(node)) == WORKERS, timeout=30, message="the replacement worker")
    for client in clients_by_worker(node).values():
        assert client.get("/v1/secret/data/survivor").status_code == 200


def test_seal_any_worker_seals_all_and_unseal_once_unseals_all(node: NodeServer) -> None:
    clients = list(clients_by_worker(node).values())
    assert clients[0].put("/v1/sys/seal").status_code == 204
    for client in clients:
        wait_for(lambda c=client: c.get("/v1/sys/seal-status").json()["sealed"], message="every worker sealed")
        assert client.get("/v1/secret/data/survivor").status_code == 503
    assert clients[2].put("/v1/sys/unseal", json={"key": node.unseal_key}).json()["sealed"] is False
    for client in clients:
        wait_for(lambda c=client: not c.get("/v1/sys/seal-status").json()["sealed"], message="every worker unsealed")
        assert client.get("/v1/secret/data/survivor").status_code == 200


def test_the_worker_header_is_dev_mode_only(tmp_path: Path) -> None:
    server = StrongroomServer(
        tmp_path,
        config_text='storage "sqlite" { path = "{storage}" }\n'
        'listener "tcp" { address = "127.0.0.1:{port}"\n tls_disable = true }\nworkers = 2\n',
    )
    server.start()
    try:
        wait_for(lambda: "node of 2 workers started" in server.log_path.read_text(), message="node start")
        for _ in range(5):
            assert "x-strongroom-worker" not in httpx.get(f"{server.addr}/v1/sys/seal-status").headers
    finally:
        server.stop()


def test_an_audit_device_enabled_on_one_worker_records_every_worker_in_one_verifiable_chain(
    node: NodeServer, tmp_path: Path
) -> None:
    import subprocess
    import sys

    import orjson

    clients = list(clients_by_worker(node).values())
    log = tmp_path / "audit.log"
    enabled = clients[0].put("/v1/sys/audit/file", json={"type": "file", "options": {"file_path": str(log)}})
    assert enabled.status_code == 204, enabled.text
    workers: set[str] = set()
    sent = 0

    def write_through_every_worker() -> bool:
        nonlocal sent
        for client in clients_by_worker(node).values():
            for _ in range(50):
                resp = client.post("/v1/secret/data/audited", json={"data": {"n": sent}})
                assert resp.status_code == 200
                workers.add(worker_of(resp))
                sent += 1
        return len(workers) == WORKERS

    wait_for(write_through_every_worker, timeout=60, interval=0, message="audited writes through every worker")
    lines = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    writes = [e for e in lines if e.get("type") == "response" and e["request"]["path"] == "secret/data/audited"]
    assert len(writes) == sent  # every worker audits from the first request after the device was enabled
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    result = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "audit", "verify", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert clients[1].delete("/v1/sys/audit/file").status_code == 204
    size = log.stat().st_size
    for client in clients:
        assert client.get("/v1/secret/data/audited").status_code == 200
    assert log.stat().st_size == size  # disabled on every worker


def test_one_worker_stopping_alone_leaves_the_node_unsealed_and_is_replaced(node: NodeServer) -> None:
    assert node.proc is not None
    supervisor = node.proc.pid
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    assert len(children) == WORKERS
    os.kill(int(children[0]), signal.SIGTERM)  # its own shutdown seals only itself
    wait_for(
        lambda: children[0] not in Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split(),
        message="the worker to exit",
    )
    for client in clients_by_worker(node).values():  # the replacement included: it gets the root key from the node
        wait_for(lambda c=client: not c.get("/v1/sys/seal-status").json()["sealed"], message="the worker unsealed")
        assert client.get("/v1/secret/data/survivor").status_code == 200
