"""Where each line sits in its device's hash chain, checked as it arrives.

The rules are those of ``strongroom audit verify`` (``strongroom/audit/verify.py``), applied to a stream: a line
follows the last one if its ``seq`` is one more and its ``prev_hash`` is the SHA-256 of the last line's bytes. An
exact re-send of the last line (a socket device after a reconnect) is skipped; a torn line followed by the
``chain-resumed`` entry that names it is accepted. Anything else is a *break*, reported once, after which the check
re-anchors on the line it got, so one removed block is one alert rather than an alert per following line.

A Kafka topic is checked per partition: the ``kafka`` device gives each entry a partition chain of its own
(``pseq``/``pprev``), because partitions are consumed independently and the device-wide ``seq`` is not contiguous
within one of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from strongroom.audit.device import CHAIN_RESUMED, GENESIS


@dataclass(slots=True)
class Break:
    seq: int
    problem: str


class ChainCheck:
    __slots__ = ("seq", "hash", "_seq_key", "_prev_key", "_torn", "_redelivered")

    def __init__(
        self,
        seq: int = 0,
        last_hash: str = "",
        seq_key: str = "seq",
        prev_key: str = "prev_hash",
        redelivered: bool = False,
    ) -> None:
        """``redelivered``: the transport re-sends what was not yet acknowledged (a socket device after a
        reconnect), in order; a line at or below the position is then a re-send, dropped, as that protocol asks."""
        self.seq = seq
        self.hash = last_hash
        self._seq_key = seq_key
        self._prev_key = prev_key
        self._torn: bytes | None = None
        self._redelivered = redelivered

    def position(self) -> tuple[int, str]:
        return self.seq, self.hash

    def check(self, raw: bytes, doc: dict[str, Any] | None) -> tuple[bool, Break | None]:
        """(whether the line is new and should be processed, a break if the chain does not hold here)."""
        seq = doc.get(self._seq_key) if doc is not None else None
        prev = doc.get(self._prev_key) if doc is not None else None
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev, str):
            if self._torn is not None:
                self._torn = None
                return False, Break(self.seq + 1, f"after seq {self.seq}: a line that is not an audit chain entry")
            # maybe a torn line the device resumes after; decided by the next line
            self._torn = raw
            return False, None
        line_hash = hashlib.sha256(raw).hexdigest()
        torn, self._torn = self._torn, None
        if seq == self.seq and line_hash == self.hash:
            return False, None  # a re-send: adds and hides nothing
        if self._redelivered and torn is None and 0 < seq <= self.seq:
            return False, None
        problem = ""
        if torn is not None:
            resumed = doc is not None and doc.get("type") == CHAIN_RESUMED
            if not (resumed and doc is not None and doc.get("torn_sha256") == hashlib.sha256(torn).hexdigest()):
                problem = f"after seq {self.seq}: a line that is not an audit chain entry (edited or inserted)"
        if not problem and self.seq == 0 and not self.hash:
            # the first line this source sees anchors it; a log that claims to start the chain must really do so
            if seq == 1 and prev != GENESIS:
                problem = "seq 1 does not start the chain: the log was edited"
        elif not problem:
            want = self.seq + 1
            if seq == want and prev != self.hash:
                problem = f"seq {self.seq} was edited or replaced: the prev_hash of seq {seq} does not match it"
            elif seq > want:
                gap = f"seq {want}" if seq == want + 1 else f"seq {want}..{seq - 1}"
                if prev == self.hash:
                    problem = f"seq {seq} follows seq {self.seq} directly: its seq was edited"
                else:
                    problem = f"entries {gap} are missing before seq {seq}: audit lines were removed or reordered"
            elif seq < want:
                problem = f"seq {seq} arrived after seq {self.seq}: lines were reordered, replayed or inserted"
        self.seq, self.hash = seq, line_hash
        return True, (Break(seq, problem) if problem else None)
