"""Check an audit log's hash chain and name the first line where it was tampered with.

The file is read one line at a time (constant memory, any size). Each line must be a JSON object whose ``seq`` is one
more than the previous line's and whose ``prev_hash`` is the SHA-256 of the previous line's bytes. The first line
must be ``seq`` 1 with a ``prev_hash`` of 64 zeros, unless the file is known to continue an earlier one (``partial``,
e.g. after rotation).

What a chain alone cannot show: lines cut off the *end* of a file. Pass the device's current head (``GET
sys/audit/<path>``: ``seq`` and ``hash`` of the last line written) as ``head_seq``/``head_hash`` to check that too.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import orjson

from strongroom.audit.device import GENESIS

# How far ahead to look for a missing seq before calling it removed rather than moved.
_LOOKAHEAD = 1000


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    first_seq: int = 0
    last_seq: int = 0
    last_hash: str = ""
    line: int = 0  # 1-based line number of the first problem
    seq: int | None = None  # seq found on that line, if any
    problem: str = ""

    def message(self) -> str:
        if self.ok:
            span = f" (seq {self.first_seq}..{self.last_seq})" if self.entries else ""
            return f"{self.entries} entries{span}, chain intact"
        return self.problem


@dataclass
class _Line:
    number: int
    raw: bytes
    seq: int | None
    prev_hash: str | None
    complete: bool


def _parse(number: int, raw: bytes) -> _Line:
    complete = raw.endswith(b"\n")
    body = raw.rstrip(b"\r\n") if complete else raw
    seq: int | None = None
    prev: str | None = None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        s, p = doc.get("seq"), doc.get("prev_hash")
        if isinstance(s, int) and not isinstance(s, bool) and isinstance(p, str):
            seq, prev = s, p
    return _Line(number, body, seq, prev, complete)


def _lines(stream: IO[bytes]) -> Iterator[_Line]:
    for number, raw in enumerate(stream, start=1):
        yield _parse(number, raw)


def verify_stream(
    stream: IO[bytes], partial: bool = False, head_seq: int | None = None, head_hash: str | None = None
) -> VerifyResult:
    ahead: deque[_Line] = deque()
    source = _lines(stream)

    def next_line() -> _Line | None:
        if ahead:
            return ahead.popleft()
        return next(source, None)

    def seq_ahead(want: int) -> bool:
        while len(ahead) < _LOOKAHEAD:
            nxt = next(source, None)
            if nxt is None:
                break
            ahead.append(nxt)
        return any(ln.seq == want for ln in ahead)

    result = VerifyResult(ok=True, entries=0)

    def fail(line: _Line, problem: str) -> VerifyResult:
        result.ok = False
        result.line = line.number
        result.seq = line.seq
        result.problem = problem
        return result

    prev: _Line | None = None
    prev_prev_hash = ""
    while (cur := next_line()) is not None:
        where = f"line {cur.number}" + (f" (seq {cur.seq})" if cur.seq is not None else "")
        if not cur.raw.strip():
            return fail(cur, f"line {cur.number}: empty line: a line was removed or edited")
        if cur.seq is None or cur.prev_hash is None:
            what = "incomplete (truncated)" if not cur.complete else "not a valid audit chain entry"
            return fail(cur, f"line {cur.number}: {what}: the line was edited or inserted")
        cur_hash = hashlib.sha256(cur.raw).hexdigest()
        if prev is None:
            if not partial and (cur.seq != 1 or cur.prev_hash != GENESIS):
                return fail(
                    cur,
                    f"{where}: the file does not start the chain (expected seq 1): earlier entries were removed "
                    "(use --partial for a file that continues a rotated one)",
                )
            result.first_seq = cur.seq
        else:
            assert prev.seq is not None
            want = prev.seq + 1
            pwhere = f"line {prev.number} (seq {prev.seq})"
            if cur.prev_hash == result.last_hash:
                if cur.seq != want:
                    return fail(cur, f"{where}: expected seq {want}: the seq of this line was edited")
            elif cur.seq == want:
                return fail(prev, f"{pwhere} was edited: the prev_hash of line {cur.number} does not match it")
            elif cur.prev_hash == prev_prev_hash and cur.seq == prev.seq:
                return fail(prev, f"{pwhere} was inserted: line {cur.number} follows the line before it")
            elif cur.seq > want:
                if seq_ahead(want):
                    return fail(cur, f"{where}: expected seq {want}: lines were reordered")
                gap = f"seq {want}" if cur.seq == want + 1 else f"seq {want}..{cur.seq - 1}"
                return fail(cur, f"{where}: expected seq {want}: entries {gap} were removed before this line")
            else:
                return fail(cur, f"{where}: expected seq {want}: this line was inserted, or lines were reordered")
        result.entries += 1
        result.last_seq = cur.seq
        prev_prev_hash, result.last_hash = result.last_hash, cur_hash
        prev = cur
    if head_seq is not None and result.ok:
        if result.last_seq < head_seq:
            result.ok = False
            result.line = (prev.number + 1) if prev else 1
            result.problem = (
                f"the file ends at seq {result.last_seq} but the device has written up to seq {head_seq}: "
                "entries were removed from the end"
            )
        elif head_hash and result.last_seq == head_seq and result.last_hash != head_hash:
            result.ok = False
            result.line = prev.number if prev else 0
            result.seq = result.last_seq
            result.problem = f"line {result.line} (seq {result.last_seq}): the last entry was edited"
    return result


def verify_file(
    path: str, partial: bool = False, head_seq: int | None = None, head_hash: str | None = None
) -> VerifyResult:
    with open(path, "rb") as f:
        return verify_stream(f, partial, head_seq, head_hash)
