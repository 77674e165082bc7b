"""What the load benchmarks share: a real server to measure, its audited set-up, and the report they print.

Each benchmark starts its own Strongroom server (dev mode, or ``--config`` with SQLite on disk) through
:class:`Bench`, which also enables one file audit device (every figure is measured with audit on) and hands out a
keep-alive session and fresh mounts; :func:`report` prints the table and writes the JSON.
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
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import RequestFactory, drive  # noqa: E402

ROOT = "bench-root-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def strongroom_binary() -> str:
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


def arguments(doc: str | None, *, both: bool = False) -> argparse.ArgumentParser:
    """The options every benchmark takes; ``both`` adds ``--mode both`` (its default), one run per server mode."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = ("dev", "config", "both") if both else ("dev", "config")
    ap.add_argument("--mode", choices=modes, default=modes[-1] if both else "dev")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per workload")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--out", default="", help="JSON output file" + (" (with --mode both: a prefix)" if both else ""))
    return ap


class Bench:
    """A started server with one file audit device and an authenticated keep-alive session, for ``async with``."""

    def __init__(self, mode: str, prefix: str, concurrency: int, duration: float) -> None:
        self.mode = mode
        self.duration = duration  # per workload, in seconds
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-{mode}-"))
        self.server = Server(mode, self.workdir)
        self.concurrency = concurrency
        self.audit_file = self.workdir / "audit.log"
        self.peak_rss_mib = 0.0
        self._session: aiohttp.ClientSession | None = None

    @property
    def addr(self) -> str:
        return self.server.addr

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Vault-Token": self.server.token}

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use Bench in async with"
        return self._session

    async def __aenter__(self) -> Bench:
        await self.server.start()
        try:
            conn = aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=conn, headers=self.headers)
            await self.expect("PUT", "sys/audit/bench-file", {"type": "file",
                              "options": {"file_path": str(self.audit_file)}}, (200, 204))  # fmt: skip
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        self.peak_rss_mib = self.server.peak_rss_mib()
        self.server.stop()

    async def expect(self, method: str, path: str, body: Any, ok: tuple[int, ...] = (200,)) -> Any:
        """Send one set-up request; anything but an ``ok`` status aborts the benchmark. Returns the JSON body."""
        async with self.session.request(method, f"{self.addr}/v1/{path}", json=body) as r:
            assert r.status in ok, await r.text()
            return await r.json() if r.status != 204 else None

    async def mount(self, kind: str, options: dict[str, str] | None = None, prefix: str = "") -> str:
        """Mount ``kind`` at a fresh path (``<prefix or kind>-<random>``) and return that path."""
        path = f"{prefix or kind}-{random.getrandbits(32):08x}"
        await self.expect("POST", f"sys/mounts/{path}", {"type": kind, **({"options": options} if options else {})},
                          (200, 204))  # fmt: skip
        return path

    async def measure(self, name: str, make_request: RequestFactory) -> dict[str, Any]:
        stats = await drive(self.addr, self.headers, make_request, self.concurrency, self.duration)
        return Result(name, stats.latencies, stats.ok, stats.failed, stats.elapsed).summary()

    def audit_lines(self) -> int:
        with open(self.audit_file, "rb") as f:
            return sum(1 for _ in f)


COLUMNS = (("req/s", "requests_per_s", 10), ("mean ms", "mean_ms", 10), ("p50 ms", "p50_ms", 10),
           ("p95 ms", "p95_ms", 10), ("p99 ms", "p99_ms", 10), ("success", "success_ratio", 10))  # fmt: skip


def report(
    bench: Bench,
    name: str,
    results: list[dict[str, Any]],
    out: str,
    *,
    facts: dict[str, Any] | None = None,
    load_average: bool = False,
    width: int = 20,
    columns: tuple[tuple[str, str, int], ...] = COLUMNS,
) -> dict[str, Any]:
    """Print the results table, write the JSON to ``out`` (when given) and remove the work folder. ``facts`` describe
    the workload set-up; ``load_average`` adds the machine's, for figures taken on a shared machine."""
    audit_lines = bench.audit_lines()
    data: dict[str, Any] = {
        "mode": bench.mode,
        "duration_s": bench.duration,
        "concurrency": bench.concurrency,
        **(facts or {}),
        "audit": "file device enabled",
        "audit_lines": audit_lines,
        "server_peak_rss_mib": bench.peak_rss_mib,
        "cpus": os.cpu_count(),
        **({"load_average": os.getloadavg()} if load_average else {}),
        "workloads": results,
    }
    print(f"\n{name} ({bench.mode} server, {bench.concurrency} clients, {bench.duration:.0f} s per workload, audit on)")
    print(f"{'workload':<{width}}" + "".join(f"{head:>{w}}" for head, _, w in columns))
    for r in results:
        print(f"{r['workload']:<{width}}" + "".join(f"{r[key]:>{w}}" for _, key, w in columns))
    footer = f"server peak memory: {bench.peak_rss_mib} MiB; audit lines written: {audit_lines}"
    if load_average:
        footer += (f"; load average: {os.getloadavg()} on {os.cpu_count()} CPUs (a shared machine: other work running "
                   "lowers these figures)")  # fmt: skip
    print(footer)
    if out:
        Path(out).write_text(json.dumps(data, indent=2))
        print(f"wrote {out}")
    shutil.rmtree(bench.workdir, ignore_errors=True)
    return data
