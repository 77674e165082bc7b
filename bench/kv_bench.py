"""Load benchmark mirroring vault-benchmark's kvv2_read, kvv2_write and token lookup-self workloads.

Starts a real Strongroom server (dev mode, or ``--config`` with SQLite on disk), enables one file audit device, mounts
KV v2 at a fresh path, seeds 1,000 keys ``secret-<i>`` with ``{"foo": 1}``, then drives each workload from 32
concurrent keep-alive clients on loopback for a fixed duration. Prints requests/s, mean, p50, p95, p99 and success
ratio per workload, the server's peak memory, and writes everything as JSON.

    python bench/kv_bench.py --mode dev --duration 20 --out bench/results-dev.json
    python bench/kv_bench.py --mode config --duration 20 --out bench/results-config.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import drive  # noqa: E402

ROOT = "bench-root-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _strongroom() -> str:
    return shutil.which("strongroom") or os.path.join(os.path.dirname(sys.executable), "strongroom")


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    elapsed: float = 0.0

    def summary(self) -> dict[str, float | int | str]:
        lat = sorted(self.latencies)
        total = self.ok + self.failed

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0

        return {
            "workload": self.name,
            "requests": total,
            "requests_per_s": round(total / self.elapsed, 1) if self.elapsed else 0.0,
            "mean_ms": round(statistics.fmean(lat) * 1000, 3) if lat else 0.0,
            "p50_ms": round(pct(0.50), 3),
            "p95_ms": round(pct(0.95), 3),
            "p99_ms": round(pct(0.99), 3),
            "success_ratio": round(self.ok / total, 5) if total else 0.0,
        }


class Server:
    def __init__(self, mode: str, workdir: Path) -> None:
        self.mode = mode
        self.workdir = workdir
        self.port = _free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.token = ROOT
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        log = open(self.workdir / "server.log", "wb")  # noqa: SIM115
        if self.mode == "dev":
            argv = [
                _strongroom(),
                "server",
                "--dev",
                "--dev-listen-address",
                f"127.0.0.1:{self.port}",
                "--dev-root-token-id",
                ROOT,
                "--dev-storage",
                str(self.workdir / "dev.db"),
            ]
        else:
            cfg = self.workdir / "server.hcl"
            cfg.write_text(
                f'storage "sqlite" {{ path = "{self.workdir / "data.db"}" }}\n'
                f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n  tls_disable = true\n}}\n'
                'log_level = "warn"\n'
            )
            argv = [_strongroom(), "server", "--config", str(cfg)]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        async with aiohttp.ClientSession() as s:
            deadline = time.monotonic() + 60
            while True:
                try:
                    async with s.get(f"{self.addr}/v1/sys/seal-status") as r:
                        status = await r.json()
                        break
                except aiohttp.ClientError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            if self.mode == "config" and not status["initialized"]:
                async with s.put(f"{self.addr}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1}) as r:
                    init = await r.json()
                self.token = init["root_token"]
                async with s.put(f"{self.addr}/v1/sys/unseal", json={"key": init["keys"][0]}) as r:
                    assert (await r.json())["sealed"] is False

    def peak_rss_mib(self) -> float:
        assert self.proc is not None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return 0.0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


async def run(mode: str, duration: float, concurrency: int, keys: int, out: str) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix=f"strongroom-bench-{mode}-"))
    server = Server(mode, workdir)
    await server.start()
    results: list[dict[str, object]] = []
    try:
        conn = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
        headers = {"X-Vault-Token": server.token}
        async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
            audit_file = workdir / "audit.log"
            async with s.put(
                f"{server.addr}/v1/sys/audit/bench-file",
                json={"type": "file", "options": {"file_path": str(audit_file)}},
            ) as r:
                assert r.status in (200, 204), await r.text()
            mount = f"kvv2-{random.getrandbits(32):08x}"
            async with s.post(
                f"{server.addr}/v1/sys/mounts/{mount}", json={"type": "kv", "options": {"version": "2"}}
            ) as r:
                assert r.status in (200, 204), await r.text()
            sem = asyncio.Semaphore(concurrency)

            async def seed(i: int) -> None:
                async with sem, s.post(f"{server.addr}/v1/{mount}/data/secret-{i}", json={"data": {"foo": 1}}) as r:
                    assert r.status == 200, await r.text()

            await asyncio.gather(*(seed(i) for i in range(keys)))

            def kvv2_read() -> tuple[str, str, bytes | None]:
                return "GET", f"/v1/{mount}/data/secret-{random.randrange(keys)}", None

            def kvv2_write() -> tuple[str, str, bytes | None]:
                value = "".join(random.choices("abcdefghij", k=10))
                return "POST", f"/v1/{mount}/data/secret-{random.randrange(keys)}", (
                    b'{"data": {"foo": "' + value.encode() + b'"}}')

            def token_lookup_self() -> tuple[str, str, bytes | None]:
                return "GET", "/v1/auth/token/lookup-self", None

            workloads = (("kvv2_read", kvv2_read), ("kvv2_write", kvv2_write), ("token_lookup_self", token_lookup_self))
            for name, fn in workloads:
                stats = await drive(server.addr, {"X-Vault-Token": server.token}, fn, concurrency, duration)
                results.append(Result(name, stats.latencies, stats.ok, stats.failed, stats.elapsed).summary())
            audit_lines = sum(1 for _ in open(audit_file, "rb"))
    finally:
        peak = server.peak_rss_mib()
        server.stop()
    report = {
        "mode": mode,
        "duration_s": duration,
        "concurrency": concurrency,
        "seeded_keys": keys,
        "audit": "file device enabled",
        "audit_lines": audit_lines,
        "server_peak_rss_mib": peak,
        "cpus": os.cpu_count(),
        "workloads": results,
    }
    print(f"\nStrongroom benchmark ({mode} server, {concurrency} clients, {duration:.0f} s per workload, audit on)")
    print(f"{'workload':<20}{'req/s':>10}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'success':>10}")
    for r in results:
        print(
            f"{r['workload']:<20}{r['requests_per_s']:>10}{r['mean_ms']:>10}{r['p50_ms']:>10}{r['p95_ms']:>10}"
            f"{r['p99_ms']:>10}{r['success_ratio']:>10}"
        )
    print(f"server peak memory: {peak} MiB; audit lines written: {audit_lines}")
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
        print(f"wrote {out}")
    shutil.rmtree(workdir, ignore_errors=True)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("dev", "config", "both"), default="both")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--out", default="", help="JSON output file (with --mode both: a prefix)")
    args = ap.parse_args()
    modes = ("dev", "config") if args.mode == "both" else (args.mode,)
    for mode in modes:
        out = args.out
        if args.mode == "both" and out:
            out = f"{out.removesuffix('.json')}-{mode}.json"
        uvloop.run(run(mode, args.duration, args.concurrency, args.keys, out))


if __name__ == "__main__":
    main()
