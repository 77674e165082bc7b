"""The audit broker: the table of enabled devices, their HMAC keys, and fail-closed fan-out of every entry.

Storage (the broker's barrier view, so everything is encrypted): ``table`` holds the device table as Vault shows it,
``keys/<id>`` holds each device's HMAC key (32 bytes from ``secrets``), ``heads/<id>`` each device's chain position,
saved about once a second. Keys never leave the broker: callers get HMACs (``hash``), never the key.

Fail closed: with at least one device enabled, an entry that no device recorded raises :class:`AuditFailure`, and the
pipeline refuses the request. A device that cannot be opened at unseal stays in the table and keeps failing (retrying
on every entry), so a broken audit destination blocks requests instead of silently dropping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.audit import entry as entries
from strongroom.audit.device import MAC_PURPOSE, Device, DeviceConfigError, DeviceWriteError
from strongroom.audit.file import FileDevice
from strongroom.audit.kafka import KafkaDevice
from strongroom.audit.socket import SocketDevice
from strongroom.core.logical import InvalidRequest
from strongroom.core.metrics import DETACHED, Metrics

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView

log = logging.getLogger(__name__)

DEVICE_TYPES: dict[str, Callable[[str, dict[str, str]], Device]] = {
    "file": FileDevice, "socket": SocketDevice, "kafka": KafkaDevice
}
_TABLE = "table"
# how often each device's chain position is saved behind the barrier
_HEAD_SAVE_INTERVAL = 1.0
_PATH_RE = re.compile(r"[\w.-]+(/[\w.-]+)*/")


class AuditFailure(Exception):
    """No enabled audit device recorded an entry. The message is safe to show a client."""

    def __init__(self, message: str = "no audit device could record the request") -> None:
        super().__init__(message)


@dataclass
class _Enabled:
    config: dict[str, Any]
    device: Device
    key: bytes

    def __post_init__(self) -> None:
        self.hasher = entries.hmac_hasher(self.key)
        self.memo_key = f"{self.config.get('key_id', '')}:{self.device.hmac_accessor}"
        # a separate key, so sys/audit-hash (an HMAC oracle for anyone allowed to call it) cannot forge chain MACs
        self.mac_key = crypto.derive_key(self.key, MAC_PURPOSE) if self.key else b""
        self.device.chain.mac_key = self.mac_key


class AuditBroker:
    def __init__(self, view: BarrierView, metrics: Metrics = DETACHED) -> None:
        self.view = view
        self.metrics = metrics
        self._devices: dict[str, _Enabled] = {}
        self._lock = asyncio.Lock()
        self._saved: dict[str, Any] = {}
        self._saver: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._devices)

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Re-open every device of the stored table (one small document and two keys per device; no scan)."""
        table = await self.view.get_json(_TABLE) or {}
        devices: dict[str, _Enabled] = {}
        for path, config in table.items():
            devices[path] = await self._open_stored(path, config)
        self._devices = devices
        if self._saver is not None:
            self._saver.cancel()
        self._saver = asyncio.create_task(self._save_heads_forever())

    async def reconcile(self) -> None:
        """Follow the stored table after another worker of the node enabled or disabled a device (change log)."""
        async with self._lock:
            table = await self.view.get_json(_TABLE) or {}
            for path in [p for p, e in self._devices.items() if table.get(p) != e.config]:
                enabled = self._devices.pop(path)
                with contextlib.suppress(Exception):
                    await enabled.device.close()
            for path, config in table.items():
                if path not in self._devices:
                    self._devices[path] = await self._open_stored(path, config)

    async def _open_stored(self, path: str, config: dict[str, Any]) -> _Enabled:
        key = await self.view.get(f"keys/{config['key_id']}")
        if key is None:
            log.error("audit device %s has no HMAC key in storage; it will refuse every entry", path)
            key = b""
        try:
            device = DEVICE_TYPES[config["type"]](path, config["options"])
        except (KeyError, DeviceConfigError):
            log.error("audit device %s has an unusable stored configuration; it will refuse every entry", path)
            device, key = Device(path, {}), b""
        head = await self.view.get_json(f"heads/{config['key_id']}")
        if isinstance(head, dict) and head.get("seq"):
            device.chain.floor = (int(head["seq"]), str(head["hash"]))
            self._saved[config["key_id"]] = head
        enabled = _Enabled(config, device, key)
        try:
            await enabled.device.open()
        except DeviceWriteError as e:
            log.error("audit device %s could not be opened (%s); requests fail until it can", path, e.strerror)
        return enabled

    async def stop(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            self._saver = None
        try:
            await self._save_heads()
        except Exception:  # noqa: BLE001 - the barrier may already be sealed; the file tails still hold the chain
            log.warning("could not save the audit chain heads on stop")
        devices, self._devices = self._devices, {}
        for enabled in devices.values():
            try:
                await enabled.device.close()
            except Exception:  # noqa: BLE001 - closing must never stop a seal
                log.exception("closing audit device %s failed", enabled.device.path)

    async def _save_heads_forever(self) -> None:
        while True:
            await asyncio.sleep(_HEAD_SAVE_INTERVAL)
            try:
                await self._save_heads()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - retried next interval
                log.warning("could not save the audit chain heads; retrying")

    async def _save_heads(self) -> None:
        """Record each device's chain position behind the barrier (see ``Chain.floor`` for what it is good for)."""
        async with self._lock:
            for enabled in list(self._devices.values()):
                key_id = enabled.config["key_id"]
                head = enabled.device.head()
                if head["seq"] and self._saved.get(key_id) != head:
                    await self.view.put_json(f"heads/{key_id}", head)
                    self._saved[key_id] = head

    # --- table --------------------------------------------------------------------------------------------------

    async def enable(
        self, path: str, type: str, description: str = "", options: dict[str, Any] | None = None, local: bool = False
    ) -> None:
        path = _normalize(path)
        factory = DEVICE_TYPES.get(type)
        if factory is None:
            raise InvalidRequest(f"unknown audit backend {type!r}")
        opts = {str(k): _option_text(v) for k, v in (options or {}).items()}
        async with self._lock:
            for existing in self._devices:
                if existing.startswith(path) or path.startswith(existing):
                    raise InvalidRequest(f"path already in use: {existing}")
            try:
                device = factory(path, opts)
            except DeviceConfigError as e:
                raise InvalidRequest(str(e)) from None
            self._refuse_shared_destination(device)
            try:
                await device.open()
            except DeviceWriteError as e:
                raise InvalidRequest(f"audit device could not be enabled: {e.strerror}") from None
            key_id = crypto.random_hex(16)
            key = secrets.token_bytes(32)
            config = {
                "type": type,
                "description": description,
                "options": opts,
                "local": bool(local),
                "path": path,
                "key_id": key_id,
            }
            table = {p: e.config for p, e in self._devices.items()}
            table[path] = config
            try:
                await self.view.transaction({_TABLE: table, f"keys/{key_id}": key})
            except BaseException:
                await device.close()
                raise
            self._devices[path] = _Enabled(config, device, key)

    def _refuse_shared_destination(self, device: Device) -> None:
        # two chains interleaved in one file would make every verify fail
        target = _destination(device)
        for other in self._devices.values():
            if target is not None and _destination(other.device) == target:
                raise InvalidRequest(f"audit device {other.device.path} already writes to {target[1]}")

    async def disable(self, path: str) -> bool:
        path = _normalize(path)
        async with self._lock:
            enabled = self._devices.get(path)
            if enabled is None:
                return False
            table = {p: e.config for p, e in self._devices.items() if p != path}
            key_id = enabled.config["key_id"]
            await self.view.transaction({_TABLE: table, f"keys/{key_id}": None, f"heads/{key_id}": None})
            self._saved.pop(key_id, None)
            del self._devices[path]
        await enabled.device.close()
        return True

    def list(self) -> dict[str, dict[str, Any]]:
        return {
            path: {
                "type": e.config["type"],
                "description": e.config["description"],
                "options": dict(e.config["options"]),
                "local": e.config["local"],
                "path": path,
            }
            for path, e in self._devices.items()
        }

    def head(self, path: str) -> dict[str, Any]:
        """Sequence number and hash of the last line a device wrote (an anchor for ``audit verify --device``)."""
        return self._get(path).device.head()

    def check_line(self, path: str, line_sha256: str, mac: str) -> bool:
        """Whether ``mac`` is what the device wrote for a line whose unsigned form hashes to ``line_sha256``."""
        enabled = self._get(path)
        if not enabled.mac_key:
            return False
        expected = "hmac-sha256:" + crypto.hmac_sha256_hex(enabled.mac_key, line_sha256.encode())
        return crypto.constant_time_eq(expected, mac)

    def hash(self, path: str, input: str) -> str:
        return self._get(path).hasher(input)

    def _get(self, path: str) -> _Enabled:
        enabled = self._devices.get(_normalize(path))
        if enabled is None:
            raise InvalidRequest(f"unknown audit device: {path.rstrip('/')}")
        return enabled

    # --- logging ------------------------------------------------------------------------------------------------

    async def log_request(self, ctx: entries.AuditContext) -> None:
        if not self._devices:
            return
        now = entries.rfc3339_nano()
        await self._fan_out(lambda e: entries.request_entry(ctx, e.hasher, e.device.hmac_accessor, now, e.memo_key))

    async def log_response(self, ctx: entries.AuditContext, response: dict[str, Any] | None, error: str | None) -> None:
        if not self._devices:
            return
        now = entries.rfc3339_nano()
        await self._fan_out(
            lambda e: entries.response_entry(ctx, response, error, e.hasher, e.device.hmac_accessor, now, e.memo_key),
            response=True,
        )

    async def log_event(self, source: str, event: dict[str, Any], request_id: str = "") -> None:
        if not self._devices:
            return
        doc = entries.event_entry(source, event, request_id)
        await self._fan_out(lambda _e: doc)

    async def _fan_out(self, build: Callable[[_Enabled], dict[str, Any]], response: bool = False) -> None:
        started = perf_counter()
        recorded = 0
        for enabled in list(self._devices.values()):
            if not enabled.key:
                self.metrics.audit_device_failed(enabled.device.path)
                continue
            try:
                await enabled.device.write(build(enabled))
                recorded += 1
            except DeviceWriteError as e:
                log.error("audit device %s failed to record an entry: %s", enabled.device.path, e.strerror)
                self.metrics.audit_device_failed(enabled.device.path)
            except Exception:  # noqa: BLE001 - any device failure must surface as AuditFailure, never skip audit
                log.exception("audit device %s failed to record an entry", enabled.device.path)
                self.metrics.audit_device_failed(enabled.device.path)
        self.metrics.audit_logged(response, started, recorded > 0)
        if not recorded:
            raise AuditFailure()


def _destination(device: Device) -> tuple[str, str] | None:
    if isinstance(device, FileDevice):
        return ("file", device.file_path if device.file_path == "stdout" else os.path.realpath(device.file_path))
    if isinstance(device, SocketDevice):
        return ("socket", f"{device.socket_type}:{device.address}")
    if isinstance(device, KafkaDevice):
        return ("kafka", f"{device.brokers}/{device.topic}")
    return None


def _normalize(path: str) -> str:
    # whitespace is refused, not trimmed: the ACL authorised the path as sent (a deny on "sock" must hold for "sock ")
    path = path.strip("/") + "/"
    if not _PATH_RE.fullmatch(path):
        raise InvalidRequest("invalid audit device path")
    return path


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list) or value is None:
        raise InvalidRequest("audit device options must be strings")
    return str(value)
