"""The broker's own audit record: an append-only JSONL file whose lines are hash-chained.

Each line is one JSON object starting with ``seq`` (1, 2, …) and ``prev_hash`` (SHA-256 hex of the previous line's
exact bytes without its newline; 64 zeros for the first line) — the format ``strongroom audit verify`` checks. A line
is flushed and fsynced before the state change it records is reported to anyone.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

GENESIS = "0" * 64


class AuditWriteError(RuntimeError):
    pass


def _last_line(path: Path) -> bytes | None:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        if end == 0:
            return None
        pos, chunk, tail = end, 4096, b""
        while pos > 0:
            step = min(chunk, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
            body = tail.rstrip(b"\n")
            if b"\n" in body:
                return body.rsplit(b"\n", 1)[1]
        return tail.rstrip(b"\n") or None


class HashChainLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(mode=0o600, exist_ok=True)
        last = _last_line(self.path)
        if last is None:
            self._seq, self._prev = 0, GENESIS
        else:
            try:
                self._seq = int(orjson.loads(last)["seq"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise AuditWriteError(f"audit log {self.path} ends with a damaged line; not extending it") from None
            self._prev = hashlib.sha256(last).hexdigest()
        self._lock = threading.Lock()

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Write the event as the next link and return it with its ``seq`` and ``prev_hash``."""
        with self._lock:
            record = {"seq": self._seq + 1, "prev_hash": self._prev, **event}
            line = orjson.dumps(record)
            try:
                with self.path.open("ab") as f:
                    f.write(line + b"\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise AuditWriteError(f"cannot write the audit log: {exc.strerror}") from None
            self._seq += 1
            self._prev = hashlib.sha256(line).hexdigest()
            return record


def verify_lines(lines: Iterable[bytes]) -> tuple[bool, int, str]:
    """(ok, lines checked, problem) for a chain in the shared format (a checker independent of the CLI's)."""
    prev, expected, n = GENESIS, 1, 0
    for raw in lines:
        line = raw.rstrip(b"\n")
        if not line:
            continue
        n += 1
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            return False, n, f"line {n} is not JSON"
        if record.get("seq") != expected:
            return False, n, f"line {n}: seq {record.get('seq')} where {expected} was expected"
        if record.get("prev_hash") != prev:
            return False, n, f"line {n}: prev_hash does not match line {n - 1}"
        prev, expected = hashlib.sha256(line).hexdigest(), expected + 1
    return True, n, ""
