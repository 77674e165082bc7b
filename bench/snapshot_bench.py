"""Snapshot and restore time for a store of many secrets (target: under 60 s each for 100,000 on 2 cores).

Starts a real server from a configuration file (SQLite on disk, one file audit device), initialises and unseals it,
writes ``--secrets`` KV v2 secrets over HTTP from 32 concurrent clients, then measures:

- ``snapshot``: ``GET /v1/sys/storage/snapshot`` until the whole archive has arrived;
- ``restore``: ``POST /v1/sys/storage/snapshot`` of that archive until the server answers (checked, audited, storage
  replaced, sealed), then the unseal with the same key until the node serves again;

and checks a sample of secrets afterwards. Prints and writes JSON.

    python bench/snapshot_bench.py --secrets 100000 --out bench/results/snapshot.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, strongroom_binary  # noqa: E402


def _wait(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


async def _seed(addr: str, token: str, count: int, concurrency: int = 32) -> float:
    started = time.perf_counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            async with session.post(
                f"{addr}/v1/secret/data/bench/s{i:06d}", json={"data": {"data": f"value-{i}"}}
            ) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"write {i} failed: {resp.status} {await resp.text()}")

    async with aiohttp.ClientSession(headers={"X-Vault-Token": token}) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secrets", type=int, default=100_000)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="strongroom-snapbench-"))
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    cfg = work / "server.hcl"
    cfg.write_text(
        f'storage "sqlite" {{ path = "{work / "strongroom.db"}" }}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n'
        "  max_request_size = 4294967296\n}\n"
    )
    log = open(work / "server.log", "wb")  # noqa: SIM115 - for the server's life
    proc = subprocess.Popen([strongroom_binary(), "server", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    result: dict[str, object] = {"secrets": args.secrets, "cpus": os.cpu_count()}
    try:
        _wait(lambda: httpx.get(f"{addr}/v1/sys/seal-status", timeout=1).status_code == 200, 30, "the server")
        init = httpx.put(f"{addr}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1}, timeout=60).json()
        key, token = init["keys_base64"][0], init["root_token"]

        def unsealed() -> bool:
            return httpx.get(f"{addr}/v1/sys/seal-status", timeout=2).json()["sealed"] is False

        httpx.put(f"{addr}/v1/sys/unseal", json={"key": key}, timeout=60)
        _wait(unsealed, 60, "unsealed")
        http = httpx.Client(base_url=addr, headers={"X-Vault-Token": token}, timeout=900)
        http.post("/v1/sys/mounts/secret", json={"type": "kv", "options": {"version": "2"}}).raise_for_status()
        http.put("/v1/sys/audit/file", json={"type": "file", "options": {"file_path": str(work / "audit.log")}})
        result["seed_seconds"] = round(asyncio.run(_seed(addr, token, args.secrets)), 1)

        started = time.perf_counter()
        snap = http.get("/v1/sys/storage/snapshot")
        snap.raise_for_status()
        result["snapshot_seconds"] = round(time.perf_counter() - started, 2)
        result["snapshot_bytes"] = len(snap.content)

        started = time.perf_counter()
        restored = http.post("/v1/sys/storage/snapshot", content=snap.content)
        if restored.status_code != 204:
            raise RuntimeError(f"restore failed: {restored.status_code} {restored.text}")
        result["restore_seconds"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        httpx.put(f"{addr}/v1/sys/unseal", json={"key": key}, timeout=120)
        _wait(unsealed, 120, "unsealed after the restore")
        result["unseal_after_restore_seconds"] = round(time.perf_counter() - started, 2)
        for i in random.sample(range(args.secrets), min(200, args.secrets)):
            got = http.get(f"/v1/secret/data/bench/s{i:06d}").json()["data"]["data"]
            if got != {"data": f"value-{i}"}:
                raise RuntimeError(f"secret {i} came back wrong")
        result["sample_checked"] = min(200, args.secrets)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
