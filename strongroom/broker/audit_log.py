"""The broker's own audit record: an append-only JSONL file whose lines are hash-chained and MAC'd.

Each line is one JSON object starting with ``seq`` (1, 2, …) and ``prev_hash`` (SHA-256 hex of the previous line's
exact bytes without its newline; 64 zeros for the first line) — the format ``strongroom audit verify`` checks — and
ending with ``"mac":"hmac-sha256:<hex>"``: HMAC-SHA256, under the broker's audit key (sealed in the seed with the
other seed keys), of the SHA-256 of the line as it reads without ``mac`` (the server's audit devices use the same
layout). The hash chain ties every line to the next, so the MAC of the *last* line authenticates the whole file: an
edited, re-chained tail no longer carries a MAC only the broker can make. ``verify_lines`` checks every MAC when given
the key; ``HashChainLog.vouches_for`` lets the running broker vouch for a file's last line without handing out its key.

The only lines without a MAC are the ones written while the seed was still sealed (``mpa.seed-release-refused``): the
key does not exist in memory then. The next MAC'd line's chain link vouches for them.
A line is flushed and fsynced before the state change it records is reported to anyone.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from strongroom import crypto

GENESIS = "0" * 64
MAC_PURPOSE = "strongroom broker audit mac"
# Events that may be recorded before the seed (and with it the audit key) is open.
UNSEALED_TYPES = frozenset({"mpa.seed-release-refused"})
_MAC_PREFIX = b',"mac":"hmac-sha256:'
_MAC_SUFFIX_LEN = len(_MAC_PREFIX) + 64 + 2


class AuditWriteError(RuntimeError):
    pass


def mac_key(seed_audit_key: bytes) -> bytes:
    """The key the log's MACs are made with, kept apart from any other use of the sealed key."""
    return crypto.derive_key(seed_audit_key, MAC_PURPOSE)


def split_mac(line: bytes) -> tuple[bytes, str] | None:
    """(the line as it reads without ``mac``, the MAC hex) or None for a line that carries no MAC."""
    if len(line) <= _MAC_SUFFIX_LEN or not line.endswith(b'"}'):
        return None
    cut = len(line) - _MAC_SUFFIX_LEN
    if line[cut : cut + len(_MAC_PREFIX)] != _MAC_PREFIX:
        return None
    mac = line[cut + len(_MAC_PREFIX) : -2].decode("ascii", "replace")
    if any(c not in "0123456789abcdef" for c in mac):
        return None
    return line[:cut] + b"}", mac


def line_mac(key: bytes, unsigned: bytes) -> str:
    return crypto.hmac_sha256_hex(key, hashlib.sha256(unsigned).digest())


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


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str  # SHA-256 hex of the last line


class HashChainLog:
    def __init__(self, path: str | Path, key: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(mode=0o600, exist_ok=True)
        self._key: bytes | None = None
        last = _last_line(self.path)
        self._last = last
        if last is None:
            self._seq, self._prev = 0, GENESIS
        else:
            try:
                self._seq = int(orjson.loads(last)["seq"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise AuditWriteError(f"audit log {self.path} ends with a damaged line; not extending it") from None
            self._prev = hashlib.sha256(last).hexdigest()
        self._lock = threading.Lock()
        if key is not None:
            self.set_key(key)

    def set_key(self, key: bytes) -> None:
        """From now on every line carries a MAC (called once the seed, which holds the key, is open).

        The next line's chain link vouches for the line before it, so the broker first checks that it wrote the
        current last line itself: it never extends a log whose end was edited while it was not running.
        """
        mk = mac_key(key)
        with self._lock:
            if self._last is not None and not _tail_is_ours(mk, self._last):
                raise AuditWriteError(f"audit log {self.path}: its last line (seq {self._seq}) was not written by this "
                                      "broker (wrong or missing mac); not extending it — keep it as evidence and "
                                      "start a new log")
            self._key = mk

    def head(self) -> Head:
        with self._lock:
            return Head(self._seq, self._prev)

    def vouches_for(self, line_sha256: str, mac: str) -> bool:
        """Whether ``mac`` is this broker's MAC of a line whose unMAC'd form hashes to ``line_sha256``.

        This is what ``strongroom mpa audit-verify`` asks about a file's last line; the key never leaves the broker.
        """
        mac = mac.removeprefix("hmac-sha256:")
        if self._key is None or not _is_sha256(line_sha256) or not _is_sha256(mac):
            return False
        return crypto.constant_time_eq(crypto.hmac_sha256_hex(self._key, bytes.fromhex(line_sha256)), mac)

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Write the event as the next link and return it with its ``seq``, ``prev_hash`` and (if keyed) ``mac``."""
        with self._lock:
            record = {"seq": self._seq + 1, "prev_hash": self._prev, **event}
            record.pop("mac", None)
            if self._key is None and record.get("type") not in UNSEALED_TYPES:
                raise AuditWriteError("the audit key is not loaded; only a refused seed release may be recorded")
            line = orjson.dumps(record)
            if self._key is not None:
                mac = line_mac(self._key, line)
                line = line[:-1] + _MAC_PREFIX + mac.encode() + b'"}'
                record["mac"] = f"hmac-sha256:{mac}"
            try:
                with self.path.open("ab") as f:
                    f.write(line + b"\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise AuditWriteError(f"cannot write the audit log: {exc.strerror}") from None
            self._seq += 1
            self._prev = hashlib.sha256(line).hexdigest()
            self._last = line
            return record


def _tail_is_ours(mk: bytes, line: bytes) -> bool:
    split = split_mac(line)
    if split is None:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            return False
        return isinstance(record, dict) and record.get("type") in UNSEALED_TYPES
    return crypto.constant_time_eq(line_mac(mk, split[0]), split[1])


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def verify_lines(lines: Iterable[bytes], key: bytes | None = None) -> tuple[bool, int, str]:
    """(ok, lines checked, problem) for a chain in the shared format (a checker independent of the CLI's).

    With ``key`` (the seed's audit key) every line's MAC is checked too, and only a refused seed release may lack one.
    """
    mk = mac_key(key) if key is not None else None
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
        if not isinstance(record, dict):
            return False, n, f"line {n} is not a JSON object"
        if record.get("seq") != expected:
            return False, n, f"line {n}: seq {record.get('seq')} where {expected} was expected"
        if record.get("prev_hash") != prev:
            return False, n, f"line {n}: prev_hash does not match line {n - 1}"
        if mk is not None:
            split = split_mac(line)
            if split is None:
                if record.get("type") not in UNSEALED_TYPES:
                    return False, n, f"line {n}: carries no mac"
            elif not crypto.constant_time_eq(line_mac(mk, split[0]), split[1]):
                return False, n, f"line {n}: mac does not match: the line was edited or not written by this broker"
        prev, expected = hashlib.sha256(line).hexdigest(), expected + 1
    return True, n, ""


def verify_with_broker(lines: list[bytes], head: Head, vouch: Callable[[str, str], bool]) -> tuple[bool, str]:
    """(ok, message) for a copy of the log checked against the running broker, which holds the key.

    ``head`` is the broker's head, read *before* the file (so the file holds at least that many lines); ``vouch``
    asks the broker whether a MAC is its own. The chain ties every line to the last one, the broker vouches for the
    last one's MAC, and the head shows nothing was cut off the end.
    """
    lines = [line for line in (raw.rstrip(b"\n") for raw in lines) if line]
    ok, n, problem = verify_lines(lines)
    if not ok:
        return False, problem
    if n < head.seq:
        return False, f"the file ends at seq {n} but the broker has written {head.seq} lines: lines were cut off"
    if head.seq and hashlib.sha256(lines[head.seq - 1]).hexdigest() != head.hash:
        return False, f"line {head.seq} is not the line the broker wrote there"
    if n == 0:
        return True, "0 lines"
    split = split_mac(lines[-1])
    if split is None:
        return False, f"line {n}: the last line carries no mac, so it cannot be authenticated"
    if not vouch(hashlib.sha256(split[0]).hexdigest(), split[1]):
        return False, f"line {n}: the broker did not write this line: the log was forged or rewritten"
    return True, f"{n} lines, chain intact; authenticated by the broker"
