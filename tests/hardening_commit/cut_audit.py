"""An audit device that fails exactly between a request's entry and its response entry, deterministically.

The server's only audit device is a ``file`` device whose ``file_path`` is a FIFO read by this test (a real kernel pipe,
its buffer shrunk to one page). A reader thread drains every line. Once armed for a path, when the request entry for
that path has arrived it (1) moves a regular file over the FIFO's name, so a reopen finds a working file, and
(2) closes the pipe's read end. The padded response entry of that request is larger than the pipe can hold, so the
server's write of it either starts after the close or blocks on the full pipe until the close: either way it gets
EPIPE, the device fails and the server must refuse the request. No timing decides the outcome.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import orjson

_PIPE_SIZE = 4096
_READ_CHUNK = 256
# each padding field becomes a 76-character HMAC in both entries: about 12 KiB, three times the pipe
PADDING_FIELDS = 160


def padding() -> dict[str, str]:
    """Fields no path declares (ignored by the handlers) that make the request's audit entries large."""
    return {f"pad_{i:03d}": secrets.token_hex(4) for i in range(PADDING_FIELDS)}


class CutAudit:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "audit.log"
        self.after = folder / "after-the-cut"
        self.after.write_bytes(b"")
        self.after.chmod(0o600)
        os.mkfifo(self.path, 0o600)
        self._reader = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        # a writer of our own, so the reader sees no end of file before the server has opened the pipe
        self._keeper = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        os.set_blocking(self._reader, True)
        fcntl.fcntl(self._reader, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self.entries: list[dict[str, Any]] = []
        self._target = ""
        self.cut = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="audit-pipe", daemon=True)
        self._thread.start()

    def arm(self, request_path: str) -> None:
        self._target = request_path

    def _drain(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._reader, _READ_CHUNK)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                entry = orjson.loads(line)
                self.entries.append(entry)
                if self._target and entry.get("type") == "request" and entry["request"]["path"] == self._target:
                    self._cut()
                    return

    def _cut(self) -> None:
        os.replace(self.after, self.path)
        os.close(self._reader)
        os.close(self._keeper)
        self.cut.set()

    def close(self) -> None:
        if not self.cut.is_set():
            self._target = ""
            os.replace(self.after, self.path)
            with contextlib.suppress(OSError):
                os.close(self._keeper)
            with contextlib.suppress(OSError):
                os.close(self._reader)
        self._thread.join(timeout=10)

    def events(self) -> list[dict[str, Any]]:
        """Event entries written after the cut (to the regular file that replaced the pipe)."""
        lines = self.path.read_bytes().splitlines() if self.path.is_file() else []
        return [e["event"] for e in map(orjson.loads, lines) if e.get("type") == "event"]
