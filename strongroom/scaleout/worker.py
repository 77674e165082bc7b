"""One worker of a node (see :mod:`strongroom.scaleout.node`): a full core with its own caches, serving the node's
inherited socket, following the node's seal state over its channel to the supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import threading

from strongroom.config import PROMETHEUS_DEFAULT_RETENTION, ConfigError, Telemetry
from strongroom.core.core import Core
from strongroom.scaleout.node import NodeSpec, _Decoder, encode
from strongroom.storage.sqlite import SQLiteStorage

log = logging.getLogger("strongroom.worker")

# how often an idle worker looks at the change log (a busy one does before every request) and reports its position
_SYNC_EVERY = 0.25
_REPORT_EVERY = 5.0


def worker_main(spec: NodeSpec, index: int, sock: socket.socket, channel: socket.socket) -> None:
    from strongroom import server as server_mod

    server_mod.run(_worker(spec, index, sock, channel))


async def _worker(spec: NodeSpec, index: int, sock: socket.socket, channel: socket.socket) -> None:
    from strongroom import server as server_mod
    from strongroom.audit import file as audit_file

    audit_file.NODE_SHARED = True  # the node's workers append to the same audit files, one chain per device
    cfg = spec.cfg
    path = cfg.storage["path"]
    dev = spec.dev is not None
    core = Core(SQLiteStorage(path, claim=False), storage_type="sqlite", dev=dev)
    core.worker = index  # type: ignore[attr-defined]
    if dev:
        core.metrics.configure(
            Telemetry(prometheus_retention_time=PROMETHEUS_DEFAULT_RETENTION, disable_hostname=True)
        )
    else:
        core.metrics.configure(cfg.telemetry)
    channel.setblocking(False)
    reader, writer = await asyncio.open_unix_connection(sock=channel)

    def send(kind: bytes, payload: bytes = b"") -> None:
        writer.write(encode(kind, payload))

    core.seal_listener = lambda root_key: send(b"U", root_key) if root_key else send(b"S")
    elected = _Election(path + ".background.lock", core)
    banner = ""
    if dev and index == 0 and not spec.started:
        if await core.initialized():
            raise ConfigError(f"dev storage {path} is already initialized; dev mode needs a fresh file")
        secrets_ = await server_mod.setup_dev(core, spec.dev)
        banner = server_mod.dev_banner(cfg, secrets_, path)
    elif index == 0 and not spec.started:
        listener = cfg.listeners[0]
        scheme = "http" if listener.tls_disable else "https"
        host, port = listener.host_port
        state = "sealed" if await core.initialized() else "uninitialized"
        banner = f"==> Strongroom server started on {scheme}://{host}:{port} ({state})"

    async def follow_node() -> None:
        decoder = _Decoder()
        while data := await reader.read(65536):
            for kind, payload in decoder.feed(data):
                if kind == b"U":
                    await core.apply_node_seal_state(payload)
                    send(b"u")
                    elected.changed()
                elif kind == b"S":
                    await core.apply_node_seal_state(None)
                elif kind == b"Q":
                    send(b"K", core.node_root_key() or b"")
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor is gone: so is the node

    async def keep_in_sync() -> None:
        loop = asyncio.get_running_loop()
        reported = loop.time()
        while True:
            await asyncio.sleep(_SYNC_EVERY)
            with contextlib.suppress(Exception):
                await core.barrier.sync()
                if loop.time() - reported > _REPORT_EVERY:
                    reported = loop.time()
                    await core.barrier.report_position()
            elected.changed()

    tasks = [asyncio.create_task(follow_node()), asyncio.create_task(keep_in_sync())]
    elected.start(asyncio.get_running_loop())
    try:
        await server_mod._serve_on(
            core, cfg.listeners[0], sock, "", announce=lambda: send(b"R", banner.encode()), worker=index
        )
    finally:
        for t in tasks:
            t.cancel()


class _Election:
    """Which worker of the node runs background work (the expiration manager's schedule): the one holding an
    ``flock`` on ``<db>.background.lock``. The others wait for it in a thread; the kernel hands the lock on when its
    holder dies, however it dies, and the new holder restores the whole schedule from storage."""

    def __init__(self, path: str, core: Core) -> None:
        self.path = path
        self.core = core
        self.held = False
        self._fd = -1

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        threading.Thread(target=self._wait, name="background-election", daemon=True).start()
        self.changed()

    def _wait(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until this worker is the one
        self._fd = fd
        self.loop.call_soon_threadsafe(self._won)

    def _won(self) -> None:
        self.held = True
        log.info("worker %s (pid %d) now runs background work", getattr(self.core, "worker", "?"), os.getpid())
        self.changed()

    def changed(self) -> None:
        """Apply the election to the core's services (they are rebuilt on every unseal)."""
        core = self.core
        expiration = core.expiration
        if expiration is not None and expiration.elected != self.held:
            expiration.set_elected(self.held)
        core.background_elected = self.held  # type: ignore[attr-defined]
