"""Check an audit log's hash chain and name the first line where it was tampered with.

The file is read one line at a time (constant memory, any size). Each line must be a JSON object whose ``seq`` is one
more than the previous line's and whose ``prev_hash`` is the SHA-256 of the previous line's bytes. The first line
must be ``seq`` 1 with a ``prev_hash`` of 64 zeros, unless the file is known to continue an earlier one (``partial``,
e.g. after rotation).

What a chain alone cannot show: lines cut off the *end* of a file, or a file rewritten from some point on with a
recomputed chain (SHA-256 needs no key). For those, ``strongroom audit verify --device`` asks the server: the last
line's ``mac`` (which only the server can compute) authenticates the whole file, and the device's head (``seq`` and
``hash`` of the last line written) shows lines cut off the end.

Two things a healthy server leaves behind are accepted, and reported as findings rather than failures: a torn line
(crash mid-write) directly followed by the ``chain-resumed`` entry the device wrote for it on its next start (the
entry takes the torn line's seq, chains from the line before it and names the torn bytes' SHA-256: "truncated at seq
N, resumed"), and an exact duplicate of the previous line, which a socket device's receiver may get when a line is
re-sent after a reconnect ("duplicate of seq N ignored").
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import orjson

from strongroom.audit.device import CHAIN_RESUMED, GENESIS, unsigned

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
    # the last line's MAC and the SHA-256 of the line without it: the server can authenticate the file with these
    last_unsigned_sha256: str = ""
    last_mac: str = ""
    # accepted irregularities, one sentence each: a torn line the server resumed after, a re-sent duplicate
    findings: list[str] = field(default_factory=list)

    def message(self) -> str:
        if self.ok:
            span = f" (seq {self.first_seq}..{self.last_seq})" if self.entries else ""
            return f"{self.entries} entries{span}, chain intact" + "".join(f"; {f}" for f in self.findings)
        return self.problem


@dataclass
class _Line:
    number: int
    raw: bytes
    seq: int | None
    prev_hash: str | None
    complete: bool
    resumed: tuple[int, str] | None = None  # a chain-resumed entry: (torn_seq, torn_sha256)


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
    line = _Line(number, body, seq, prev, complete)
    if seq is not None and isinstance(doc, dict) and doc.get("type") == CHAIN_RESUMED:
        torn_seq, torn_hash = doc.get("torn_seq"), doc.get("torn_sha256")
        if isinstance(torn_seq, int) and not isinstance(torn_seq, bool) and isinstance(torn_hash, str):
            line.resumed = (torn_seq, torn_hash)
    return line


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
    head_line: tuple[int, str] | None = None
    while (cur := next_line()) is not None:
        where = f"line {cur.number}" + (f" (seq {cur.seq})" if cur.seq is not None else "")
        if not cur.raw.strip():
            return fail(cur, f"line {cur.number}: empty line: a line was removed or edited")
        if cur.seq is None or cur.prev_hash is None:
            nxt = next_line()
            if nxt is not None and _resumes_after(cur, nxt, prev, result.last_hash, partial):
                assert nxt.seq is not None
                result.findings.append(f"line {cur.number}: truncated at seq {nxt.seq}, resumed")
                ahead.appendleft(nxt)
                continue
            if nxt is not None:
                ahead.appendleft(nxt)
            what = "incomplete (truncated)" if not cur.complete else "not a valid audit chain entry"
            return fail(cur, f"line {cur.number}: {what}: the line was edited or inserted")
        if prev is not None and cur.raw == prev.raw:
            # a re-sent line (socket device after a reconnect): same bytes, so it adds and hides nothing
            result.findings.append(f"line {cur.number}: duplicate of seq {cur.seq} ignored")
            continue
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
        if cur.seq == head_seq:
            head_line = (cur.number, cur_hash)
        prev = cur
    if prev is not None and result.ok:
        split = unsigned(prev.raw)
        if split is not None:
            result.last_unsigned_sha256, result.last_mac = hashlib.sha256(split[0]).hexdigest(), split[1]
    if head_seq is not None and result.ok:
        if result.last_seq < head_seq:
            result.ok = False
            result.line = (prev.number + 1) if prev else 1
            result.problem = (
                f"the file ends at seq {result.last_seq} but the device has written up to seq {head_seq}: "
                "entries were removed from the end"
            )
        elif head_hash and head_line is not None and head_line[1] != head_hash:
            result.ok = False
            result.line, result.seq = head_line[0], head_seq
            result.problem = (
                f"line {head_line[0]} (seq {head_seq}) does not match what the device wrote: it was edited, "
                "or the log was rewritten from there on"
            )
    return result


def _resumes_after(torn: _Line, nxt: _Line, prev: _Line | None, last_hash: str, partial: bool) -> bool:
    """Whether ``nxt`` is the chain-resumed entry a device wrote for exactly this torn line, in its place."""
    if nxt.resumed is None or nxt.seq is None:
        return False
    torn_seq, torn_sha256 = nxt.resumed
    if torn_seq != nxt.seq or torn_sha256 != hashlib.sha256(torn.raw).hexdigest():
        return False
    if prev is None:
        return partial or (nxt.seq == 1 and nxt.prev_hash == GENESIS)
    assert prev.seq is not None
    return nxt.seq == prev.seq + 1 and nxt.prev_hash == last_hash


def verify_file(
    path: str, partial: bool = False, head_seq: int | None = None, head_hash: str | None = None
) -> VerifyResult:
    with open(path, "rb") as f:
        return verify_stream(f, partial, head_seq, head_hash)
