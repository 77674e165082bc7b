"""The ``file`` audit device: one JSON line per entry appended to a file (or ``stdout``).

Each entry is a single ``os.write`` on an ``O_APPEND`` descriptor, so it reaches the kernel before the request goes on
(no user-space buffer to lose in a process crash). ``fsync`` is governed by the ``fsync`` option: ``interval``
(default: at most once a second, in a worker thread so the event loop never waits on the disk; a power cut loses at
most about a second of lines, and a failed sync fails the next write), ``always`` (every entry, before the request
goes on; durable and slower) or ``never``.

Writes happen on the event loop without awaiting, under a thread lock, so two requests can never interleave their
``seq``/``prev_hash`` assignment. Before each write the device checks that its path still names the file it holds
open: a rotated or deleted file is reopened (the chain continues), and a path that can no longer be opened (replaced
by a directory, parent removed, disk full, read-only) makes the write fail, so the broker fails closed.

Several workers of one node write the same file with one chain (``NODE_SHARED``): each write takes an exclusive
``flock`` on the file, and a worker that finds the file grown past its own last line resumes the chain from the file's
tail before writing (the other workers' lines), so ``strongroom audit verify`` sees one unbroken chain.

A torn last line (a crash or a full disk mid-write) is found whenever the file is opened: the chain continues from
the last good line, and the first line written is a ``chain-resumed`` entry naming the torn seq (see ``device.py``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import sys
import threading
import time
from typing import Any

from strongroom.audit.device import Device, DeviceConfigError, DeviceWriteError, resumed_entry, seq_of
from strongroom.audit.entry import rfc3339_nano

log = logging.getLogger(__name__)

_FSYNC_MODES = ("interval", "always", "never")
_FSYNC_INTERVAL = 1.0
_TAIL_CHUNK = 8192
# set by a node's worker (strongroom/scaleout/worker.py): other processes append to the same files
NODE_SHARED = False


class FileDevice(Device):
    type = "file"
    options_allowed = frozenset({"file_path", "path", "mode", "fsync"})

    def __init__(self, path: str, options: dict[str, str]) -> None:
        super().__init__(path, options)
        file_path = options.get("file_path") or options.get("path") or ""
        if not file_path:
            raise DeviceConfigError("file_path is required")
        if file_path != "stdout" and not os.path.isabs(file_path):
            raise DeviceConfigError("file_path must be an absolute path or 'stdout'")
        self.file_path = file_path
        self.mode = _parse_mode(options.get("mode", "0600"))
        self.fsync = options.get("fsync", "interval")
        if self.fsync not in _FSYNC_MODES:
            raise DeviceConfigError(f"invalid value for option 'fsync': must be one of {', '.join(_FSYNC_MODES)}")
        self._fd = -1
        self._ident: tuple[int, int] | None = None
        self._regular = False
        self._resumed = False
        self._last_sync = time.monotonic()
        self._sync_running = False
        self._sync_error: OSError | None = None
        self._lock = threading.Lock()
        self._end = -1  # the file's size after this process's last line (NODE_SHARED)

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def open(self) -> None:
        with self._lock:
            self._open()

    async def close(self) -> None:
        with self._lock:
            self._close_fd()

    def _open(self) -> None:
        if self.file_path == "stdout":
            self._fd = 1
            self.chain.apply_floor()
            return
        try:
            fd = os.open(self.file_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.mode or 0o600)
        except OSError as e:
            raise DeviceWriteError(e.errno, f"cannot open audit file {self.file_path}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            self._regular = stat.S_ISREG(st.st_mode)
            if self._regular:
                if self.mode and stat.S_IMODE(st.st_mode) != self.mode:
                    os.fchmod(fd, self.mode)
                tail = _last_lines(self.file_path, st.st_size)
                torn = tail[-1] if tail and seq_of(tail[-1].rstrip(b"\r\n")) is None else None
                if not self._resumed:
                    self.chain.resume([t.rstrip(b"\n") for t in (tail[:-1] if torn is not None else tail)])
                if torn is not None:
                    self._record_resume(fd, torn)
                elif tail and not tail[-1].endswith(b"\n"):
                    os.write(fd, b"\n")  # a whole entry that lost only its newline: the next starts a line of its own
            else:
                self.chain.apply_floor()
            self._resumed = True
        except OSError as e:
            os.close(fd)
            raise DeviceWriteError(e.errno, f"cannot open audit file {self.file_path}: {e.strerror}") from None
        self._fd = fd
        self._ident = (st.st_dev, st.st_ino)

    def _record_resume(self, fd: int, torn: bytes) -> None:
        """End the torn line and write the ``chain-resumed`` entry for it, chained from the last good line."""
        torn_seq = self.chain.seq + 1
        line = self.chain.line(resumed_entry(torn_seq, torn.rstrip(b"\r\n"), rfc3339_nano()))
        _write_all(fd, (b"" if torn.endswith(b"\n") else b"\n") + line + b"\n")
        if self.fsync != "never":
            os.fsync(fd)
        self.chain.advance(line)
        log.warning(
            "audit file %s ended in a torn line (seq %d, %d bytes); the chain resumes after the last good line",
            self.file_path,
            torn_seq,
            len(torn),
        )

    def _close_fd(self) -> None:
        if self._fd > 2:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = -1
        self._ident = None

    def _ensure_open(self) -> None:
        if self._fd >= 0 and self._regular:
            try:
                st = os.stat(self.file_path)
                same = (st.st_dev, st.st_ino) == self._ident
            except OSError:
                same = False
            if not same:
                log.warning("audit file %s was moved or removed; reopening it", self.file_path)
                self._close_fd()
        if self._fd < 0:
            self._open()

    # --- writing ------------------------------------------------------------------------------------------------

    async def write(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        if self._sync_error is not None:
            e, self._sync_error = self._sync_error, None
            self._close_fd()
            raise DeviceWriteError(e.errno, f"cannot sync audit file {self.file_path}: {e.strerror}")
        self._ensure_open()
        shared = NODE_SHARED and self._regular
        try:
            if shared:
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # the node's workers take turns; the kernel drops it on death
                self._catch_up()
            line = self.chain.line(entry)
            if self.file_path == "stdout":
                sys.stdout.write(line.decode() + "\n")
                sys.stdout.flush()
            else:
                _write_all(self._fd, line + b"\n")
            if shared:
                self._end = os.fstat(self._fd).st_size
        except OSError as e:
            self._close_fd()
            raise DeviceWriteError(e.errno, f"cannot write audit file {self.file_path}: {e.strerror}") from None
        finally:
            if shared and self._fd >= 0:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.chain.advance(line)
        if not self._regular or self.fsync == "never":
            return
        if self.fsync == "always":
            try:
                os.fsync(self._fd)
            except OSError as e:
                self._close_fd()
                raise DeviceWriteError(e.errno, f"cannot sync audit file {self.file_path}: {e.strerror}") from None
            return
        now = time.monotonic()
        if now - self._last_sync >= _FSYNC_INTERVAL and not self._sync_running:
            self._last_sync = now
            self._sync_running = True
            # a duplicate descriptor, so a reopen on the loop never closes the one being synced
            threading.Thread(target=self._background_sync, args=(os.dup(self._fd),), daemon=True).start()

    def _catch_up(self) -> None:
        """Under the file lock: continue the chain after lines another worker of the node appended."""
        size = os.fstat(self._fd).st_size
        if size != self._end:
            tail = _last_lines(self.file_path, size)
            self.chain.resume([t.rstrip(b"\n") for t in tail])
            self._end = size

    def _background_sync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as e:
            self._sync_error = e
        finally:
            os.close(fd)
            self._sync_running = False


def _parse_mode(raw: str) -> int:
    try:
        mode = int(str(raw), 8)
    except ValueError:
        raise DeviceConfigError("invalid value for option 'mode': expected an octal file mode such as 0600") from None
    if mode < 0 or mode > 0o777:
        raise DeviceConfigError("invalid value for option 'mode': only permission bits (at most 0777) are allowed")
    if mode & 0o111:
        raise DeviceConfigError("invalid value for option 'mode': audit files must not be executable")
    return mode


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _last_lines(file_path: str, size: int) -> list[bytes]:
    """Up to the last two lines (with their newline, if any), read backwards from the end: never the whole file."""
    if size <= 0:
        return []
    with open(file_path, "rb") as f:
        buf = b""
        pos = size
        while pos > 0:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            # three line starts in view (or the file start) means the last two lines are complete in ``buf``
            if buf.count(b"\n", 0, len(buf) - 1) >= 2:
                break
    lines = buf.splitlines(keepends=True)
    if pos > 0:
        lines = lines[1:]
    return [ln for ln in lines if ln.strip()][-2:]
