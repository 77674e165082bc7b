"""A node: one supervisor process and ``workers`` request processes.

The supervisor claims the storage (the ``flock`` on ``<db>.lock``; the workers open the database without claiming,
under the claim it keeps while any of them runs), binds the one listening socket (:func:`strongroom.server
.bind_listener`), then forks the workers, which inherit both and each serve the socket with their own event loop and
caches. Coherence between them comes from the storage's change log (``Barrier.sync``), never from this process.

Seal state is per node. Each worker has an inherited Unix socketpair to the supervisor; a worker that is unsealed
through its API sends the recovered root key over it, and the supervisor relays it to the other workers at once;
sealing any worker seals all. The supervisor keeps no copy: a restarted worker gets the key from a live one on request.
The root key therefore never touches storage, a file or the network.

Messages on a channel are ``type (1 byte) | length (4 bytes, big endian) | payload``:

    worker → supervisor   U key   unsealed through my API: relay       S   sealed through my API: relay
                          u       unsealed by relay (status)            R text   serving (``text``: my banner line)
                          K key   the root key, answering Q (empty: sealed)
    supervisor → worker   U key   unseal with this root key             S   seal
                          Q       send me the root key (a worker restarted)
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strongroom.config import ConfigError, ServerConfig

log = logging.getLogger("strongroom.node")

_FRAME = struct.Struct(">cI")
_MAX_FRAME = 1 << 16


def default_workers() -> int:
    return os.cpu_count() or 1


# --- framing ------------------------------------------------------------------------------------------------------


def encode(kind: bytes, payload: bytes = b"") -> bytes:
    return _FRAME.pack(kind, len(payload)) + payload


class _Decoder:
    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= _FRAME.size:
            kind, size = _FRAME.unpack_from(self._buf)
            if size > _MAX_FRAME:
                raise ValueError("oversized frame on a node channel")
            if len(self._buf) < _FRAME.size + size:
                break
            out.append((kind, self._buf[_FRAME.size : _FRAME.size + size]))
            self._buf = self._buf[_FRAME.size + size :]
        return out


# --- the supervisor -----------------------------------------------------------------------------------------------


@dataclass
class _Worker:
    index: int
    pid: int
    channel: socket.socket
    decoder: _Decoder = field(default_factory=_Decoder)
    ready: bool = False
    unsealed: bool = False
    banner: str = ""


@dataclass
class NodeSpec:
    """What every worker needs to start: the configuration, or dev options (worker 0 initialises dev storage)."""

    cfg: ServerConfig
    dev: Any = None  # strongroom.server.DevOptions in dev mode
    workers: int = 1
    started: bool = False  # set once the node has announced itself: a worker forked later is a restart


class Supervisor:
    def __init__(self, spec: NodeSpec, worker_main: Callable[[NodeSpec, int, socket.socket, socket.socket], None]):
        self.spec = spec
        self.worker_main = worker_main
        self.workers: dict[int, _Worker] = {}
        self.sel = selectors.DefaultSelector()
        self.stopping = False
        self.announced = False
        self.exit_code = 0
        self._claim_fd = -1
        self._sock: socket.socket | None = None

    def run(self) -> int:
        from strongroom.server import bind_listener

        cfg = self.spec.cfg
        if cfg.storage_type != "sqlite":
            raise ConfigError("workers > 1 needs SQLite storage for now (PostgreSQL: run one worker per node)")
        from strongroom.storage.sqlite import _claim

        self._claim_fd = _claim(cfg.storage["path"])  # the node's claim, held while any worker runs
        self._sock = bind_listener(cfg.listeners[0])
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wake select() when a worker dies
        for index in range(self.spec.workers):
            self._spawn(index)
        try:
            while not self.stopping or self.workers:
                for key, _ in self.sel.select(timeout=0.2):
                    self._on_readable(key.data)
                self._reap()
                if self.stopping:
                    self._stop_all()
        finally:
            self._sock.close()
            os.close(self._claim_fd)
        return self.exit_code

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _stop_all(self) -> None:
        for w in list(self.workers.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.pid, signal.SIGTERM)

    def _spawn(self, index: int) -> None:
        assert self._sock is not None
        parent_end, child_end = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                parent_end.close()
                for w in self.workers.values():
                    w.channel.close()
                self.sel.close()
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                os.close(self._claim_fd)  # the supervisor's descriptor keeps the claim; see the module docstring
                self.worker_main(self.spec, index, self._sock, child_end)
            except ConfigError as exc:
                print(f"Error: {exc}", file=sys.stderr, flush=True)
                code = 1
            except BaseException:  # noqa: BLE001 - a worker's failure is reported and ends only that worker
                log.exception("worker %d failed", index)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        child_end.close()
        parent_end.setblocking(False)
        worker = _Worker(index, pid, parent_end)
        self.workers[index] = worker
        self.sel.register(parent_end, selectors.EVENT_READ, worker)

    def _reap(self) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for index, w in list(self.workers.items()):
                if w.pid == pid:
                    self._drop(w)
                    if self.stopping:
                        continue
                    if not self.announced:  # a worker that cannot start would fail again: the node does not start
                        log.error("worker %d (pid %d) exited before the node started; stopping", index, pid)
                        self.stopping, self.exit_code = True, 1
                        continue
                    log.warning("worker %d (pid %d) exited; starting a new one", index, pid)
                    time.sleep(0.2)  # a worker that dies at once must not make this a busy loop
                    self._spawn(index)

    def _drop(self, w: _Worker) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(w.channel)
        w.channel.close()
        self.workers.pop(w.index, None)

    def _send(self, w: _Worker, kind: bytes, payload: bytes = b"") -> None:
        try:
            w.channel.setblocking(True)
            w.channel.sendall(encode(kind, payload))
        except OSError:
            pass  # it died: _reap restarts it
        finally:
            with contextlib.suppress(OSError):
                w.channel.setblocking(False)

    def _on_readable(self, w: _Worker) -> None:
        try:
            data = w.channel.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(w.channel)
            return
        for kind, payload in w.decoder.feed(data):
            self._on_message(w, kind, payload)

    def _on_message(self, w: _Worker, kind: bytes, payload: bytes) -> None:
        others = [o for o in self.workers.values() if o is not w]
        if kind == b"U":
            w.unsealed = True
            for o in others:
                self._send(o, b"U", payload)
        elif kind == b"u":
            w.unsealed = True
        elif kind == b"S":
            w.unsealed = False
            for o in others:
                o.unsealed = False
                self._send(o, b"S")
        elif kind == b"R":
            w.ready = True
            w.banner = payload.decode()
            if self.announced:  # a restarted worker: bring it to the node's seal state
                donor = next((o for o in others if o.unsealed), None)
                if donor is not None:
                    self._send(donor, b"Q")
        elif kind == b"K" and payload:
            for o in self.workers.values():
                if not o.unsealed:
                    self._send(o, b"U", payload)
        self._maybe_announce()

    def _maybe_announce(self) -> None:
        if self.announced or len(self.workers) < self.spec.workers:
            return
        workers = list(self.workers.values())
        if not all(w.ready for w in workers):
            return
        if self.spec.dev is not None and not all(w.unsealed for w in workers):
            return
        self.announced = True
        self.spec.started = True
        banner = next((w.banner for w in sorted(workers, key=lambda w: w.index) if w.banner), "")
        print(f"{banner}\n==> node of {len(workers)} workers started", flush=True)


def run_node(spec: NodeSpec) -> None:
    from strongroom.scaleout.worker import worker_main

    sys.exit(Supervisor(spec, worker_main).run())

