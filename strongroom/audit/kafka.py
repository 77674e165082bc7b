"""The ``kafka`` audit device: each entry is one message on a Kafka topic, acknowledged by every in-sync replica.

Client: ``confluent-kafka`` (librdkafka) rather than ``aiokafka``: librdkafka's idempotent producer is the reference
implementation of KIP-98 (``enable.idempotence`` implies ``acks=all`` and ordered, de-duplicated retries), it does
TLS and every SASL mechanism natively, and its consumer is fast enough for ``detect`` to keep up with a busy server.

Fail closed, like every device: a write returns only once Kafka acknowledged the message (its delivery report
arrived without error) within ``write_timeout``; otherwise it raises and the broker refuses the request. The
producer's own ``message.timeout.ms`` is the same bound, so a message that was refused is never delivered later.

Partitions. The device-wide chain (``seq``/``prev_hash``, MAC'd) is kept as for every device; since a consumer group
reads partitions independently, each entry also carries its place in a per-partition chain (``partition``,
``pseq``, ``pprev``: the SHA-256 of the previous line in that partition), inside the MAC'd line, so ``detect``
checks each partition on its own. Entries are keyed by the caller (entity, else token HMAC): one identity's entries
stay in one partition, in order, which per-identity rules need. On open the device reads the last message of every
partition to continue both chains.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import zlib
from typing import Any

import orjson

from strongroom.audit.device import Device, DeviceConfigError, DeviceWriteError
from strongroom.framework.durations import parse_duration

log = logging.getLogger(__name__)

_DEFAULT_TIMEOUT = 5.0
_SECURITY = {
    "security_protocol": "security.protocol",
    "tls_ca_file": "ssl.ca.location",
    "tls_cert_file": "ssl.certificate.location",
    "tls_key_file": "ssl.key.location",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_username": "sasl.username",
    "sasl_password": "sasl.password",
}
_PROTOCOLS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")


class KafkaDevice(Device):
    type = "kafka"
    options_allowed = frozenset({"brokers", "topic", "write_timeout", *_SECURITY})

    def __init__(self, path: str, options: dict[str, str]) -> None:
        super().__init__(path, options)
        self.brokers = options.get("brokers", "").strip()
        self.topic = options.get("topic", "").strip()
        if not self.brokers:
            raise DeviceConfigError("brokers is required")
        if not self.topic:
            raise DeviceConfigError("topic is required")
        raw_timeout = options.get("write_timeout", "")
        try:
            self.write_timeout = float(parse_duration(raw_timeout)) if raw_timeout else _DEFAULT_TIMEOUT
        except ValueError:
            raise DeviceConfigError("invalid value for option 'write_timeout': expected a duration") from None
        if self.write_timeout <= 0:
            self.write_timeout = _DEFAULT_TIMEOUT
        proto = options.get("security_protocol", "plaintext").lower()
        if proto not in _PROTOCOLS:
            raise DeviceConfigError(
                f"invalid value for option 'security_protocol': must be one of {', '.join(_PROTOCOLS)}"
            )
        self._security = {theirs: options[ours] for ours, theirs in _SECURITY.items() if options.get(ours)}
        self._producer: Any = None
        self._poller: threading.Thread | None = None
        self._running = False
        self._lock = asyncio.Lock()
        self._partitions = 0
        self._pchain: dict[int, tuple[int, str]] = {}

    def _conf(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.brokers, **self._security}

    async def open(self) -> None:
        from confluent_kafka import KafkaException, Producer

        try:
            producer = Producer({
                **self._conf(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "message.timeout.ms": int(self.write_timeout * 1000),
                "request.timeout.ms": max(1000, int(self.write_timeout * 1000)),
            })
            meta = await asyncio.to_thread(producer.list_topics, self.topic, self.write_timeout)
            topic = meta.topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                raise DeviceWriteError(0, f"Kafka topic {self.topic} is not available")
            self._partitions = len(topic.partitions)
            await asyncio.to_thread(self._resume)
        except KafkaException as e:
            raise DeviceWriteError(0, f"cannot reach Kafka at {self.brokers}: {e}") from None
        self._producer = producer
        self._running = True
        self._poller = threading.Thread(target=self._poll, name=f"kafka-audit-{self.path}", daemon=True)
        self._poller.start()

    def _resume(self) -> None:
        """Continue both chains after the last message of each partition (a restart must not restart them)."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({**self._conf(), "group.id": f"strongroom-audit-resume-{self.path}",
                             "enable.auto.commit": False})
        try:
            best: tuple[int, str] = (0, self.chain.prev_hash)
            for p in range(self._partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), self.write_timeout)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(self.topic, p, high - 1)])
                msg = consumer.consume(1, self.write_timeout)
                if not msg or msg[0].error() is not None or not msg[0].value():
                    raise DeviceWriteError(0, f"cannot read the end of Kafka partition {p} to continue the chain")
                line = msg[0].value() or b""
                doc = orjson.loads(line)
                line_hash = hashlib.sha256(line).hexdigest()
                self._pchain[p] = (int(doc.get("pseq", 0)), line_hash)
                if int(doc.get("seq", 0)) > best[0]:
                    best = (int(doc["seq"]), line_hash)
            if best[0] > self.chain.seq:
                self.chain.seq, self.chain.prev_hash = best
            self.chain.apply_floor(bool(self._pchain))
        finally:
            consumer.close()

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.05)

    async def close(self) -> None:
        self._running = False
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
            self._poller = None
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, self.write_timeout)
            self._producer = None

    def _partition_for(self, entry: dict[str, Any]) -> tuple[int, bytes]:
        raw_auth = entry.get("auth")
        auth: dict[str, Any] = raw_auth if isinstance(raw_auth, dict) else {}
        key = str(auth.get("entity_id") or auth.get("client_token") or entry.get("source") or "")
        return zlib.crc32(key.encode()) % self._partitions, key.encode()

    async def write(self, entry: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def delivered(err: Any, _msg: Any) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is None:
                    done.set_result(None)
                else:
                    done.set_exception(DeviceWriteError(0, f"Kafka did not take the audit entry: {err}"))

            loop.call_soon_threadsafe(settle)

        async with self._lock:
            if self._producer is None:
                await self.open()  # not reachable at unseal: every entry retries, and fails closed meanwhile
            # ordered under the lock (the chains), awaited outside it: entries of many requests are in flight at once
            partition, key = self._partition_for(entry)
            pseq, pprev = self._pchain.get(partition, (0, "0" * 64))
            line = self.chain.line({**entry, "partition": partition, "pseq": pseq + 1, "pprev": pprev})
            try:
                self._producer.produce(self.topic, value=line, key=key, partition=partition, on_delivery=delivered)
            except (BufferError, Exception) as e:  # noqa: BLE001 - any refusal fails this write closed
                raise DeviceWriteError(0, f"Kafka did not take the audit entry: {e}") from None
            # the seq is spent once produced: a failed delivery leaves a gap detect reports, never a reused seq
            self.chain.advance(line)
            self._pchain[partition] = (pseq + 1, hashlib.sha256(line).hexdigest())
        try:
            await asyncio.wait_for(done, self.write_timeout)
        except TimeoutError:
            raise DeviceWriteError(
                0, f"Kafka did not acknowledge the audit entry within {self.write_timeout}s"
            ) from None
