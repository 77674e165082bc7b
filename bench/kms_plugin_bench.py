"""KMS v2 plugin benchmark: the round trip kube-apiserver makes for every DEK, through ``strongroom kms-plugin``.

Starts its own Strongroom server (dev mode, file audit on, transit key ``kubernetes-kms``), a real
``strongroom kms-plugin`` on a Unix socket authenticated with a ``kms-plugin``-policy token, and drives gRPC
``Encrypt`` (32-byte DEKs, as kube-apiserver's KMS v2 sends them) and ``Decrypt`` from client threads for a fixed
duration. Prints requests/s and latency percentiles.

    python bench/kms_plugin_bench.py --duration 10
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Bench, Result, arguments, strongroom_binary  # noqa: E402

from strongroom.kms.proto import api_pb2, api_pb2_grpc  # noqa: E402

KEY = "kubernetes-kms"


def _drive(name: str, call: object, threads: int, duration: float) -> dict[str, object]:
    result = Result(name)
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def worker() -> None:
        local: list[float] = []
        ok = failed = 0
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                call()  # type: ignore[operator]
                ok += 1
            except grpc.RpcError:
                failed += 1
            local.append(time.perf_counter() - start)
        with lock:
            result.latencies.extend(local)
            result.ok += ok
            result.failed += failed

    began = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    result.elapsed = time.monotonic() - began
    return result.summary()


async def run(duration: float, threads: int) -> list[dict[str, object]]:
    async with Bench("dev", "strongroom-kms-bench", 4, duration) as bench:
        await bench.expect("POST", "sys/mounts/transit", {"type": "transit"}, (200, 204, 400))
        await bench.expect("POST", f"transit/keys/{KEY}", {}, (200, 204))
        token = (await bench.expect("POST", "auth/token/create", {"policies": ["kms-plugin"], "ttl": "1h"}))
        token_file = bench.workdir / "plugin-token"
        token_file.write_text(token["auth"]["client_token"])
        os.chmod(token_file, 0o600)
        socket_path = bench.workdir / "kms.sock"
        log = open(bench.workdir / "plugin.log", "ab")  # noqa: SIM115 - kept open for the plugin's life
        plugin = subprocess.Popen(
            [strongroom_binary(), "kms-plugin", "--listen", f"unix://{socket_path}", "--key", KEY,
             "--addr", bench.addr, "--token-file", str(token_file)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        channel = grpc.insecure_channel(f"unix://{socket_path}")
        stub = api_pb2_grpc.KeyManagementServiceStub(channel)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    stub.Status(api_pb2.StatusRequest(), timeout=2)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline or plugin.poll() is not None:
                        raise SystemExit("the kms plugin did not come up; see plugin.log") from None
                    await asyncio.sleep(0.1)
            sample = stub.Encrypt(api_pb2.EncryptRequest(plaintext=secrets.token_bytes(32), uid="warm"), timeout=10)

            def encrypt() -> None:
                stub.Encrypt(api_pb2.EncryptRequest(plaintext=secrets.token_bytes(32), uid="bench"), timeout=10)

            def decrypt() -> None:
                stub.Decrypt(api_pb2.DecryptRequest(ciphertext=sample.ciphertext, key_id=sample.key_id, uid="bench",
                                                    annotations=dict(sample.annotations)), timeout=10)

            return [_drive("kms_encrypt_dek", encrypt, threads, duration),
                    _drive("kms_decrypt_dek", decrypt, threads, duration)]
        finally:
            channel.close()
            plugin.terminate()
            plugin.wait(timeout=15)


def main() -> None:
    args = arguments(__doc__).parse_args()  # --concurrency: gRPC client threads
    rows = asyncio.run(run(args.duration, args.concurrency))
    print(f"\nStrongroom KMS v2 plugin benchmark ({args.concurrency} client threads, {args.duration:g} s each,"
          " audit on)")
    print(f"{'workload':<20}{'req/s':>10}{'mean ms':>10}{'p50 ms':>10}{'p99 ms':>10}{'success':>10}")
    for r in rows:
        print(f"{r['workload']:<20}{r['requests_per_s']:>10}{r['mean_ms']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}"
              f"{r['success_ratio']:>10}")


if __name__ == "__main__":
    main()
