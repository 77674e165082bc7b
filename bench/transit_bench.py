"""Transit benchmark: encrypt and decrypt of 1 KiB plaintexts, single and in batches of 100.

Starts its own Strongroom server (dev mode, or ``--config`` with SQLite on disk), enables one file audit device,
mounts transit at a fresh path with one ``aes256-gcm96`` key, encrypts a pool of ciphertexts to decrypt, then drives
each workload from keep-alive clients (``loadgen``) on loopback for a fixed duration. Prints requests/s (and items/s
for batches), mean, p50, p95, p99 and success ratio per workload, and writes everything as JSON.

    python bench/transit_bench.py --duration 20 --out bench/results/transit-dev.json

Target on the 2-core machine: >= 3,000 single encrypts/s with p99 <= 20 ms, audit on.
"""

from __future__ import annotations

import base64
import json
import os
import random
import sys
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import COLUMNS, Bench, arguments, report  # noqa: E402

KIB = 1024
BATCH = 100
POOL = 256


async def run(mode: str, duration: float, concurrency: int, out: str) -> dict[str, object]:
    async with Bench(mode, "strongroom-transit-bench", concurrency, duration) as bench:
        mount = await bench.mount("transit")
        await bench.expect("POST", f"{mount}/keys/bench", {})

        plaintexts = [base64.b64encode(os.urandom(KIB)).decode() for _ in range(POOL)]
        single_bodies = [json.dumps({"plaintext": p}).encode() for p in plaintexts]
        batch_bodies = [
            json.dumps({"batch_input": [{"plaintext": random.choice(plaintexts)} for _ in range(BATCH)]}).encode()
            for _ in range(16)
        ]
        encrypted = await bench.expect("POST", f"{mount}/encrypt/bench",
                                       {"batch_input": [{"plaintext": p} for p in plaintexts]})  # fmt: skip
        ciphertexts: list[str] = [item["ciphertext"] for item in encrypted["data"]["batch_results"]]
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
        results: list[dict[str, object]] = []
        for name, fn, items in workloads:
            summary = await bench.measure(name, fn)
            summary["items_per_s"] = round(float(summary["requests_per_s"]) * items, 1)
            results.append(summary)
    return report(
        bench, "Strongroom transit benchmark", results, out, facts={"plaintext_bytes": KIB, "batch_size": BATCH},
        load_average=True, width=22, columns=(COLUMNS[0], ("items/s", "items_per_s", 11), *COLUMNS[1:]),
    )


def main() -> None:
    args = arguments(__doc__).parse_args()
    uvloop.run(run(args.mode, args.duration, args.concurrency, args.out))


if __name__ == "__main__":
    main()
