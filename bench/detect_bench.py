"""Throughput of ``strongroom detect`` with the default rules, from a file and from Kafka.

Audit lines are built by the server's own code (``strongroom.audit.entry`` entries, HMAC'd, on a MAC'd
``strongroom.audit.device.Chain``; for Kafka also the per-partition chain fields the ``kafka`` device adds), for
``--subjects`` identities reading secrets of ``--services`` services, a request and a response entry per read. Then a
real ``strongroom detect`` process is started on them and ``/metrics`` is polled until every entry is read: the rate
is entries over the time from its first to its last entry read, and the largest backlog (bytes for a file, messages
for Kafka) and lag seen on the way are reported.

    python bench/detect_bench.py --entries 200000                       # file, then Kafka (a node of its own)
    python bench/detect_bench.py --entries 200000 --kafka 127.0.0.1:9092 --only kafka --out bench/results/detect.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import httpx
import yaml

from strongroom.audit import entry as entries
from strongroom.audit.device import Chain

REPO = Path(__file__).resolve().parents[1]
STRONGROOM = str(Path(sys.executable).with_name("strongroom"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_lines(n: int, subjects: int, services: int, partitions: int = 0) -> list[tuple[int, bytes]]:
    """(partition, line) pairs; partition 0 and no partition fields when ``partitions`` is 0 (a file)."""
    rnd = random.Random(7)
    key = hashlib.sha256(b"bench").digest()
    h = entries.hmac_hasher(key)
    chain = Chain()
    chain.mac_key = hashlib.sha256(b"bench-mac").digest()
    pchain: dict[int, tuple[int, str]] = {}
    out: list[tuple[int, bytes]] = []
    # stamped from now on, 10 µs apart: the lag detect reports is then roughly how far behind the writer it is
    base_ns = time.time_ns()
    for i in range(n // 2):
        who = rnd.randrange(subjects)
        svc = rnd.randrange(services)
        ctx = entries.AuditContext(
            request_id=f"req-{i}", operation="read", path=f"secret/data/k8s/prod/svc-{svc}/db-password",
            mount_point="secret/", mount_type="kv", mount_accessor="kv_1234", remote_addr="10.1.2.3",
            client_token=f"s.token{who}", accessor=f"acc{who}", display_name=f"kubernetes-prod-svc-{who}",
            policies=["default", "kubernetes-reader"], entity_id=f"entity-{who:05d}", token_type="service",
        )
        now = entries.rfc3339_nano(base_ns + i * 10_000)
        for doc in (entries.request_entry(ctx, h, True, now, "m"),
                    entries.response_entry(ctx, {"data": {"data": {"password": "x"}}}, None, h, True, now, "m")):
            p = 0
            if partitions:
                p = zlib.crc32(ctx.entity_id.encode()) % partitions
                pseq, pprev = pchain.get(p, (0, "0" * 64))
                doc = {**doc, "partition": p, "pseq": pseq + 1, "pprev": pprev}
            line = chain.line(doc)
            chain.advance(line)
            if partitions:
                pchain[p] = (pchain.get(p, (0, ""))[0] + 1, hashlib.sha256(line).hexdigest())
            out.append((p, line))
    return out


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_detect(workdir: Path, source: dict, total: int, timeout: float) -> dict:
    port = _free_port()
    cfg = {"instance": "bench", "state": str(workdir / f"state-{port}.db"), "metrics_address": f"127.0.0.1:{port}",
           "sources": [source]}
    path = workdir / f"detect-{port}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = open(workdir / f"detect-{port}.log", "wb")  # noqa: SIM115 - for the process's life
    started = time.monotonic()
    proc = subprocess.Popen([STRONGROOM, "detect", "--config", str(path), "--log-level", "error"], stdout=log,
                            stderr=subprocess.STDOUT)
    first = last = None
    peak_backlog = peak_lag = 0.0
    try:
        while time.monotonic() - started < timeout:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            done = _metric(text, "strongroom_detect_events_total")
            peak_backlog = max(peak_backlog, _metric(text, "strongroom_detect_backlog"))
            peak_lag = max(peak_lag, _metric(text, "strongroom_detect_lag_seconds"))
            now = time.monotonic()
            if done > 0 and first is None:
                first = (now, done)
            if done >= total:
                last = now
                break
            time.sleep(0.05)
        cpu = _cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    if first is None or last is None:
        raise SystemExit(f"detect did not read all {total} entries within {timeout}s (see {workdir})")
    span = max(last - first[0], 1e-3)
    return {"entries": total, "seconds": round(span, 3), "events_per_second": round((total - first[1]) / span),
            "startup_seconds": round(first[0] - started, 2), "peak_backlog": peak_backlog,
            # CPU the detect process used (startup included): on a shared, busy machine this, not the wall clock,
            # shows what one core would sustain
            "cpu_seconds": round(cpu, 2), "events_per_cpu_second": round(total / max(cpu, 1e-3)),
            "peak_lag_seconds": round(peak_lag, 2)}


def bench_file(workdir: Path, n: int, subjects: int, services: int) -> dict:
    lines = build_lines(n, subjects, services)
    audit = workdir / "audit.log"
    audit.write_bytes(b"".join(line + b"\n" for _, line in lines))
    return run_detect(workdir, {"name": "file", "type": "file", "path": str(audit)}, len(lines), 600)


def bench_kafka(workdir: Path, brokers: str, n: int, subjects: int, services: int) -> dict:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench-{os.getpid()}-{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": brokers})  # kept referenced until the topic exists
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    lines = build_lines(n, subjects, services, partitions=2)
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "linger.ms": 20,
                         "queue.buffering.max.messages": 1_000_000})
    for p, line in lines:
        producer.produce(topic, value=line, partition=p)
        producer.poll(0)
    producer.flush(120)
    source = {"name": "kafka", "type": "kafka", "brokers": brokers, "topic": topic, "group": topic}
    return run_detect(workdir, source, len(lines), 600)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--subjects", type=int, default=500)
    ap.add_argument("--services", type=int, default=2000)
    ap.add_argument("--kafka", default="", help="host:port of a Kafka broker (default: start one of its own)")
    ap.add_argument("--only", choices=("file", "kafka"), default=None)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="detect-bench-"))
    results: dict = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    if args.only in (None, "file"):
        results["file"] = bench_file(workdir, args.entries, args.subjects, args.services)
        print("file ", results["file"], flush=True)
    if args.only in (None, "kafka"):
        brokers, node = args.kafka, None
        if not brokers:
            node = workdir / "kafka"
            brokers = subprocess.run([sys.executable, str(REPO / "scripts" / "kafka-node"), "start", str(node)],
                                     check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        try:
            results["kafka"] = bench_kafka(workdir, brokers, args.entries, args.subjects, args.services)
            print("kafka", results["kafka"], flush=True)
        finally:
            if node is not None:
                subprocess.run([sys.executable, str(REPO / "scripts" / "kafka-node"), "stop", str(node)], check=False)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
