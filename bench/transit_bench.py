"""Transit benchmark: encrypt and decrypt of 1 KiB plaintexts, single and in batches of 100.

Starts its own Strongroom server (dev mode, or ``--config`` with SQLite on disk), enables one file audit device,
mounts transit at a fresh path with one ``aes256-gcm96`` key, encrypts a pool of ciphertexts to decrypt, then drives
each workload from keep-alive clients (``loadgen``) on loopback for a fixed duration. Prints requests/s (and items/s
for batches), mean, p50, p95, p99 and success ratio per workload, and writes everything as JSON.

    python bench/transit_bench.py --duration 20 --out bench/results/transit-dev.json

Target on the 2-core machine: >= 3,000 single encrypts/s with p99 <= 20 ms, audit on.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kv_bench import Result, Server  # noqa: E402
from loadgen import drive  # noqa: E402

KIB = 1024
BATCH = 100
POOL = 256


async def run(mode: str, duration: float, concurrency: int, out: str) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix=f"strongroom-transit-bench-{mode}-"))
    server = Server(mode, workdir)
    await server.start()
    results: list[dict[str, object]] = []
    audit_lines = 0
    try:
        conn = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
        headers = {"X-Vault-Token": server.token}
        async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
            audit_file = workdir / "audit.log"
            async with s.put(f"{server.addr}/v1/sys/audit/bench-file",
                             json={"type": "file", "options": {"file_path": str(audit_file)}}) as r:
                assert r.status in (200, 204), await r.text()
            mount = f"transit-{random.getrandbits(32):08x}"
            async with s.post(f"{server.addr}/v1/sys/mounts/{mount}", json={"type": "transit"}) as r:
                assert r.status in (200, 204), await r.text()
            async with s.post(f"{server.addr}/v1/{mount}/keys/bench", json={}) as r:
                assert r.status == 200, await r.text()

            plaintexts = [base64.b64encode(os.urandom(KIB)).decode() for _ in range(POOL)]
            single_bodies = [json.dumps({"plaintext": p}).encode() for p in plaintexts]
            batch_bodies = [
                json.dumps({"batch_input": [{"plaintext": random.choice(plaintexts)} for _ in range(BATCH)]}).encode()
                for _ in range(16)
            ]
            ciphertexts: list[str] = []
            async with s.post(f"{server.addr}/v1/{mount}/encrypt/bench",
                              json={"batch_input": [{"plaintext": p} for p in plaintexts]}) as r:
                assert r.status == 200, await r.text()
                ciphertexts = [item["ciphertext"] for item in (await r.json())["data"]["batch_results"]]
            decrypt_bodies = [json.dumps({"ciphertext": c}).encode() for c in ciphertexts]
            decrypt_batches = [
                json.dumps({"batch_input": [{"ciphertext": random.choice(ciphertexts)} for _ in range(BATCH)]}).encode()
                for _ in range(16)
            ]

            def pick(path: str, bodies: list[bytes]):  # noqa: ANN202
                return lambda: ("POST", path, random.choice(bodies))

            workloads = (
                ("encrypt_1k", pick(f"/v1/{mount}/encrypt/bench", single_bodies), 1),
                ("decrypt_1k", pick(f"/v1/{mount}/decrypt/bench", decrypt_bodies), 1),
                ("encrypt_1k_batch100", pick(f"/v1/{mount}/encrypt/bench", batch_bodies), BATCH),
                ("decrypt_1k_batch100", pick(f"/v1/{mount}/decrypt/bench", decrypt_batches), BATCH),
            )
            for name, fn, items in workloads:
                stats = await drive(server.addr, headers, fn, concurrency, duration)
                summary = Result(name, stats.latencies, stats.ok, stats.failed, stats.elapsed).summary()
                summary["items_per_s"] = round(float(summary["requests_per_s"]) * items, 1)
                results.append(summary)
            audit_lines = sum(1 for _ in open(audit_file, "rb"))
    finally:
        peak = server.peak_rss_mib()
        server.stop()
    report = {
        "mode": mode,
        "duration_s": duration,
        "concurrency": concurrency,
        "plaintext_bytes": KIB,
        "batch_size": BATCH,
        "audit": "file device enabled",
        "audit_lines": audit_lines,
        "server_peak_rss_mib": peak,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "workloads": results,
    }
    print(f"\nStrongroom transit benchmark ({mode} server, {concurrency} clients, {duration:.0f} s per workload, "
          "audit on)")
    print(f"{'workload':<22}{'req/s':>10}{'items/s':>11}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
          f"{'success':>10}")
    for r in results:
        print(f"{r['workload']:<22}{r['requests_per_s']:>10}{r['items_per_s']:>11}{r['mean_ms']:>10}{r['p50_ms']:>10}"
              f"{r['p95_ms']:>10}{r['p99_ms']:>10}{r['success_ratio']:>10}")
    print(f"server peak memory: {peak} MiB; audit lines written: {audit_lines}; load average: {os.getloadavg()}")
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
        print(f"wrote {out}")
    shutil.rmtree(workdir, ignore_errors=True)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("dev", "config"), default="dev")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--out", default="", help="JSON output file")
    args = ap.parse_args()
    uvloop.run(run(args.mode, args.duration, args.concurrency, args.out))


if __name__ == "__main__":
    main()
