"""What every audit device shares: option parsing and the hash chain.

Each line a device writes is one JSON object carrying ``seq`` (1, 2, 3, …) and ``prev_hash`` (SHA-256 hex of the
previous line's bytes, without its newline; 64 zeros for the first). Removing, editing, inserting or reordering a line
breaks the chain at that point, which ``strongroom audit verify`` reports.

SHA-256 needs no key, so someone who can write the file could recompute the whole chain after an edit. Each line
therefore ends with ``mac``: an HMAC, under a key derived from the device's key (behind the barrier), of the SHA-256 of
the line as it reads without ``mac``. Only the server can check it (``sys/audit-chain/<path>``); checking the *last*
line authenticates the whole file, because every line's ``prev_hash`` commits to everything before it.

A crash (or a full disk) mid-write can leave a torn last line. A device that finds one when it opens writes a
``chain-resumed`` entry (:func:`resumed_entry`): it takes the torn line's seq, chains from the last good line and names
the torn bytes by their SHA-256, so ``audit verify`` skips exactly that line, says so, and checks everything after it.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson

from strongroom import crypto

log = logging.getLogger(__name__)

GENESIS = "0" * 64
CHAIN_RESUMED = "chain-resumed"
MAC_PURPOSE = "strongroom audit chain mac"
_MAC_PREFIX = b',"mac":"hmac-sha256:'
# ``,"mac":"hmac-sha256:`` + 64 hex digits + ``"}``
MAC_SUFFIX_LEN = len(_MAC_PREFIX) + 64 + 2

# Options every device understands. ``log_raw`` and ``prefix`` are refused on purpose: one would write secrets in
# clear, the other lets a sudo caller plant arbitrary bytes in a file (CVE-2025-6000).
_COMMON = frozenset({"hmac_accessor", "format"})
_REFUSED = {
    "log_raw": "log_raw is not supported: secrets never reach an audit device in clear",
    "prefix": "prefix is not supported: audit lines are plain JSON",
}


class DeviceConfigError(ValueError):
    """Invalid device options (a 400 for the client)."""


class DeviceWriteError(OSError):
    """The device could not record an entry."""


def parse_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "t", "yes"):
        return True
    if v in ("false", "0", "f", "no"):
        return False
    raise DeviceConfigError(f"invalid value for option {name!r}: expected a boolean")


def seq_of(line: bytes) -> int | None:
    """The ``seq`` of a chain line, or None if the line is not a chain entry."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    seq = doc.get("seq") if isinstance(doc, dict) else None
    if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0:
        return seq
    return None


def resumed_entry(torn_seq: int, torn: bytes, now: str) -> dict[str, Any]:
    """The entry that follows a torn line (``torn``: its bytes without newline), which was to be ``torn_seq``."""
    return {
        "time": now,
        "type": CHAIN_RESUMED,
        "torn_seq": torn_seq,
        "torn_sha256": hashlib.sha256(torn).hexdigest(),
        "torn_length": len(torn),
    }


def unsigned(line: bytes) -> tuple[bytes, str] | None:
    """Split a signed line into the line as it reads without ``mac`` and the mac; None if it carries none."""
    cut = len(line) - MAC_SUFFIX_LEN
    if cut <= 0 or line[cut : cut + len(_MAC_PREFIX)] != _MAC_PREFIX or not line.endswith(b'"}'):
        return None
    return line[:cut] + b"}", line[cut + len(b',"mac":"') : -2].decode()


class Chain:
    """The running position of one device's hash chain.

    ``floor`` is the last position the broker saved behind the barrier. A log that resumes below it lost lines from
    its end while the server was down (or is a fresh file after rotation): the chain then continues from the floor,
    so the gap shows in the file itself as removed entries instead of passing unnoticed.
    """

    __slots__ = ("seq", "prev_hash", "_mac_key", "_mac", "floor")

    def __init__(self, seq: int = 0, prev_hash: str = GENESIS) -> None:
        self.seq = seq
        self.prev_hash = prev_hash
        self._mac_key = b""
        self._mac: crypto.HmacKey | None = None
        self.floor: tuple[int, str] | None = None

    @property
    def mac_key(self) -> bytes:
        return self._mac_key

    @mac_key.setter
    def mac_key(self, key: bytes) -> None:
        self._mac_key = key
        self._mac = crypto.HmacKey(key) if key else None

    def line(self, entry: dict[str, Any]) -> bytes:
        """The next line (without newline) for ``entry``; call :meth:`advance` once it is written."""
        body = orjson.dumps({**entry, "seq": self.seq + 1, "prev_hash": self.prev_hash})
        if self._mac is None:
            return body
        mac = "hmac-sha256:" + self._mac.hexdigest(hashlib.sha256(body).hexdigest().encode())
        return body[:-1] + b',"mac":"' + mac.encode() + b'"}'

    def advance(self, line: bytes) -> None:
        self.seq += 1
        self.prev_hash = hashlib.sha256(line).hexdigest()

    def resume(self, last_lines: list[bytes]) -> None:
        """Continue after the last lines of an existing log (newlines stripped).

        The hash anchors on the physically last line given, even one that is no chain entry, so ``audit verify``
        reports that line rather than a silent restart of the chain. (The file device leaves a torn last line out
        and records a ``chain-resumed`` entry for it instead.)
        """
        if last_lines:
            self.prev_hash = hashlib.sha256(last_lines[-1]).hexdigest()
            for candidate in reversed(last_lines):
                seq = seq_of(candidate)
                if seq is not None:
                    self.seq = seq
                    break
        self.apply_floor(bool(last_lines))

    def apply_floor(self, had_lines: bool = False) -> None:
        if self.floor is None or self.floor[0] <= self.seq:
            return
        if had_lines:
            log.error(
                "audit log ends at seq %d but this device had written up to seq %d: entries were removed from its end "
                "or the file was replaced; continuing from seq %d so the gap shows in the log",
                self.seq,
                self.floor[0],
                self.floor[0] + 1,
            )
        self.seq, self.prev_hash = self.floor


class Device:
    """Base class: ``open`` (raise on failure), ``write`` one entry (raise if not recorded), ``close``.

    The base class itself is the stand-in for a device whose stored configuration can no longer be used: it refuses
    every entry, so the broker fails closed instead of dropping the device.
    """

    type = ""
    options_allowed: frozenset[str] = frozenset()

    def __init__(self, path: str, options: dict[str, str]) -> None:
        self.path = path
        for name, why in _REFUSED.items():
            if name in options:
                raise DeviceConfigError(why)
        unknown = sorted(set(options) - _COMMON - self.options_allowed)
        if unknown:
            raise DeviceConfigError(f"unsupported option(s) for audit device type {self.type!r}: {', '.join(unknown)}")
        if options.get("format", "json") != "json":
            raise DeviceConfigError("only format=json is supported")
        self.hmac_accessor = parse_bool("hmac_accessor", options.get("hmac_accessor", "true"))
        self.chain = Chain()

    async def open(self) -> None:
        raise DeviceWriteError(0, "audit device is not usable")

    async def write(self, entry: dict[str, Any]) -> None:
        raise DeviceWriteError(0, "audit device is not usable")

    async def close(self) -> None:
        return None

    def head(self) -> dict[str, Any]:
        """Where this device's chain stands: lets a verifier notice lines cut off the end of a log."""
        return {"seq": self.chain.seq, "hash": self.chain.prev_hash}
