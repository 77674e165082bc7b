"""Load benchmark mirroring vault-benchmark's kvv2_read, kvv2_write and token lookup-self workloads.

Starts a real Strongroom server (dev mode, or ``--config`` with SQLite on disk), enables one file audit device, mounts
KV v2 at a fresh path, seeds 1,000 keys ``secret-<i>`` with ``{"foo": 1}``, then drives each workload from 32
concurrent keep-alive clients on loopback for a fixed duration. Prints requests/s, mean, p50, p95, p99 and success
ratio per workload, the server's peak memory, and writes everything as JSON.

    python bench/kv_bench.py --mode dev --duration 20 --out bench/results-dev.json
    python bench/kv_bench.py --mode config --duration 20 --out bench/results-config.json
    python bench/kv_bench.py --mode config --workers 1,2 --duration 15   # a node of 1, then 2 worker processes

With ``--workers`` each workload also reports the server's CPU time (supervisor and workers, from ``/proc``), the
requests per server CPU-second, the load generator's own CPU time (it shares the machine), and each worker's memory;
with several counts, the kvv2_read ratio against the first count and the per-core efficiency are printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Result, free_port, strongroom_binary  # noqa: E402
from loadgen import drive  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _loadgen_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Server:
    def __init__(self, mode: str, workdir: Path, workers: int = 1) -> None:
        self.workers = workers
        self.mode = mode
        self.workdir = workdir
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.token = ROOT
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        log = open(self.workdir / "server.log", "wb")  # noqa: SIM115
        if self.mode == "dev":
            argv = [
                strongroom_binary(),
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
            argv = [strongroom_binary(), "server", "--config", str(cfg)]
        if self.workers > 1:
            argv += ["--workers", str(self.workers)]
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
            while self.workers > 1 and f"node of {self.workers} workers started" not in (
                self.workdir / "server.log"
            ).read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise TimeoutError("the node's workers did not all start")
                await asyncio.sleep(0.1)
            if self.mode == "config" and not status["initialized"]:
                async with s.put(f"{self.addr}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1}) as r:
                    init = await r.json()
                self.token = init["root_token"]
                async with s.put(f"{self.addr}/v1/sys/unseal", json={"key": init["keys"][0]}) as r:
                    assert (await r.json())["sealed"] is False

    def pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid, *_children(self.proc.pid)]

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(pid) for pid in self.pids())

    def worker_rss_mib(self) -> list[float]:
        assert self.proc is not None
        return [_rss_mib(pid) for pid in (_children(self.proc.pid) or [self.proc.pid])]

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


async def run(
    mode: str, duration: float, concurrency: int, keys: int, out: str, workers: int = 1
) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix=f"strongroom-bench-{mode}-"))
    server = Server(mode, workdir, workers)
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
                cpu_before, lg_before = server.cpu_seconds(), _loadgen_cpu()
                stats = await drive(server.addr, {"X-Vault-Token": server.token}, fn, concurrency, duration)
                cpu, lg_cpu = server.cpu_seconds() - cpu_before, _loadgen_cpu() - lg_before
                summary = Result(name, stats.latencies, stats.ok, stats.failed, stats.elapsed).summary()
                summary["server_cpu_s"] = round(cpu, 2)
                summary["server_cores_used"] = round(cpu / stats.elapsed, 2) if stats.elapsed else 0.0
                summary["requests_per_server_cpu_s"] = round((stats.ok + stats.failed) / cpu, 1) if cpu else 0.0
                summary["loadgen_cpu_s"] = round(lg_cpu, 2)
                results.append(summary)
            audit_lines = sum(1 for _ in open(audit_file, "rb"))
    finally:
        worker_rss = server.worker_rss_mib()
        peak = server.peak_rss_mib()
        server.stop()
    report = {
        "mode": mode,
        "workers": workers,
        "worker_rss_mib": worker_rss,
        "duration_s": duration,
        "concurrency": concurrency,
        "seeded_keys": keys,
        "audit": "file device enabled",
        "audit_lines": audit_lines,
        "server_peak_rss_mib": peak,
        "cpus": os.cpu_count(),
        "workloads": results,
    }
    print(
        f"\nStrongroom benchmark ({mode} server, {workers} worker(s), {concurrency} clients, {duration:.0f} s per "
        "workload, audit on)"
    )
    print(
        f"{'workload':<20}{'req/s':>10}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'success':>10}"
        f"{'srv cores':>10}{'req/cpu-s':>10}{'lg cpu s':>10}"
    )
    for r in results:
        print(
            f"{r['workload']:<20}{r['requests_per_s']:>10}{r['mean_ms']:>10}{r['p50_ms']:>10}{r['p95_ms']:>10}"
            f"{r['p99_ms']:>10}{r['success_ratio']:>10}{r['server_cores_used']:>10}"
            f"{r['requests_per_server_cpu_s']:>10}{r['loadgen_cpu_s']:>10}"
        )
    print(f"server peak memory: {peak} MiB; per worker: {worker_rss} MiB; audit lines written: {audit_lines}")
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
    ap.add_argument("--ceiling", action="store_true", help="also measure bench/ceiling.py (fixed-answer RSGI app)")
    ap.add_argument("--workers", default="1", help="worker processes per server; several (1,2) run one after another")
    args = ap.parse_args()
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    if args.ceiling:
        for workers in counts:
            ceiling = uvloop.run(run_ceiling(args.duration, args.concurrency, workers))
            if args.out:
                target = Path(f"{args.out.removesuffix('.json')}-ceiling-{workers}w.json")
                target.write_text(json.dumps(ceiling, indent=2))
    modes = ("dev", "config") if args.mode == "both" else (args.mode,)
    for mode in modes:
        reports = []
        for workers in counts:
            out = args.out
            if args.mode == "both" and out:
                out = f"{out.removesuffix('.json')}-{mode}.json"
            if len(counts) > 1 and out:
                out = f"{out.removesuffix('.json')}-{workers}w.json"
            reports.append(uvloop.run(run(mode, args.duration, args.concurrency, args.keys, out, workers)))
        if len(reports) > 1:
            _compare(reports)


async def run_ceiling(duration: float, concurrency: int, workers: int) -> dict[str, object]:
    """The fixed-answer Granian RSGI app (``bench/ceiling.py``), driven like kvv2_read."""
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    granian = shutil.which("granian") or os.path.join(os.path.dirname(sys.executable), "granian")
    argv = [granian, "--interface", "rsgi", "--loop", "uvloop", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-ws", "--log-level", "warning", "--working-dir",
            str(Path(__file__).resolve().parent), "ceiling:app"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as s:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with s.get(addr + "/") as r:
                        await r.read()
                        break
                except aiohttp.ClientError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)

        def cpu() -> float:
            return sum(_cpu_seconds(pid) for pid in [proc.pid, *_children(proc.pid)])

        before = cpu()
        stats = await drive(addr, {}, lambda: ("GET", "/v1/secret/data/x", None), concurrency, duration)
        used = cpu() - before
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    summary = Result("ceiling", stats.latencies, stats.ok, stats.failed, stats.elapsed).summary()
    summary["server_cores_used"] = round(used / stats.elapsed, 2) if stats.elapsed else 0.0
    summary["requests_per_server_cpu_s"] = round((stats.ok + stats.failed) / used, 1) if used else 0.0
    print(
        f"\nceiling (fixed-answer Granian RSGI app, {workers} worker(s)): {summary['requests_per_s']} req/s, "
        f"{summary['server_cores_used']} cores, {summary['requests_per_server_cpu_s']} req per CPU-second"
    )
    return summary


def _compare(reports: list[dict[str, object]]) -> None:
    """kvv2_read and the others against the first worker count: throughput ratio and requests per server core."""
    base = {r["workload"]: r for r in reports[0]["workloads"]}  # type: ignore[attr-defined]
    print(f"\nagainst {reports[0]['workers']} worker(s), same run:")
    for report in reports[1:]:
        for r in report["workloads"]:  # type: ignore[attr-defined]
            b = base[r["workload"]]
            ratio = r["requests_per_s"] / b["requests_per_s"] if b["requests_per_s"] else 0.0
            per_core = (
                r["requests_per_server_cpu_s"] / b["requests_per_server_cpu_s"] if b["requests_per_server_cpu_s"] else 0
            )
            print(
                f"  {report['workers']} workers {r['workload']:<18} throughput x{ratio:.2f}   "
                f"requests per server CPU-second x{per_core:.2f}"
            )


if __name__ == "__main__":
    main()
