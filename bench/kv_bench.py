"""Load benchmark mirroring vault-benchmark's kvv2_read, kvv2_write and token lookup-self workloads.

Starts a real Strongroom server (dev mode, or ``--config`` with SQLite on disk), enables one file audit device, mounts
KV v2 at a fresh path, seeds 1,000 keys ``secret-<i>`` with ``{"foo": 1}``, then drives each workload from 32
concurrent keep-alive clients on loopback for a fixed duration. Prints requests/s, mean, p50, p95, p99 and success
ratio per workload, the server's peak memory, and writes everything as JSON.

    python bench/kv_bench.py --mode dev --duration 20 --out bench/results-dev.json
    python bench/kv_bench.py --mode config --duration 20 --out bench/results-config.json
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Bench, arguments, report  # noqa: E402


async def run(mode: str, duration: float, concurrency: int, keys: int, out: str) -> dict[str, object]:
    async with Bench(mode, "strongroom-bench", concurrency, duration) as bench:
        mount = await bench.mount("kv", {"version": "2"}, prefix="kvv2")
        sem = asyncio.Semaphore(concurrency)

        async def seed(i: int) -> None:
            async with sem:
                await bench.expect("POST", f"{mount}/data/secret-{i}", {"data": {"foo": 1}})

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
        results = [await bench.measure(name, fn) for name, fn in workloads]
    return report(bench, "Strongroom benchmark", results, out, facts={"seeded_keys": keys})


def main() -> None:
    ap = arguments(__doc__, both=True)
    ap.add_argument("--keys", type=int, default=1000)
    args = ap.parse_args()
    modes = ("dev", "config") if args.mode == "both" else (args.mode,)
    for mode in modes:
        out = args.out
        if args.mode == "both" and out:
            out = f"{out.removesuffix('.json')}-{mode}.json"
        uvloop.run(run(mode, args.duration, args.concurrency, args.keys, out))


if __name__ == "__main__":
    main()
