"""Hash-chained, append-only JSONL logs: `phase-history.jsonl` and `phase-overrides.jsonl`.

The history is the authoritative record of the phase ladder, so every line is chained to
the one before it: any edit (the last line's included), deletion, insertion or reordering
is detected, a crash can only ever leave an unterminated last line, and nothing is ever
rewritten in place.

Line encoding
-------------
Each line of the file is one JSON object followed by ``"\\n"``. The object has at least:

- ``seq``: integer, 1 for the first line of the file, then +1 per line;
- ``timestamp``: UTC, formatted ``%Y-%m-%dT%H:%M:%S.%fZ`` (``2026-03-11T14:05:00.123456Z``);
- ``type``: a non-empty string naming the kind of record;
- ``prev_hash``: the previous line's ``hash`` (64 zeros, ``"0" * 64``, for the first line);
- ``hash``: the SHA-256, in lowercase hex, of the canonical UTF-8 encoding of the object
  *without* its ``hash`` key.

The other keys are the record's payload (JSON-native values only; money is written as
strings). The canonical encoding of an object ``obj`` is::

    json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

and the line written is the canonical encoding of the object *including* ``hash``,
followed by ``"\\n"``. A line that is not byte-for-byte in that form counts as edited.
An operator can check a whole file with::

    import hashlib, json, sys
    prev, data = "0" * 64, open(sys.argv[1], "rb").read()
    for n, raw in enumerate(data.split(b"\\n")[:-1], start=1):
        obj = json.loads(raw)
        claimed = obj.pop("hash")
        body = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(body.encode("utf-8")).hexdigest() == claimed, f"line {n}: hash"
        assert obj["seq"] == n and obj["prev_hash"] == prev, f"line {n}: chain"
        prev = claimed
    print("intact" if data.endswith(b"\\n") or not data else "torn last line")

A chain kept beside the data cannot stop someone who rewrites the whole file and
recomputes every hash; `config.json` records the head (``seq`` and ``hash``) so a history
cut short is noticed there.

Files beside a log ``<name>``: ``<name>.torn-<UTC yyyymmddTHHMMSSffffff>`` (an
unterminated last line moved aside), ``<name>.damaged-<stamp>`` (a damaged log set aside by
`recover`) and ``<name>.checkpoint`` (an atomic full copy, written at each session close).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import orjson

from trading_bot.clock import Clock, ensure_utc
from trading_bot.durable_files import LogsLock, append_durably, atomic_write_bytes
from trading_bot.input_bounds import (
    EARLIEST,
    LATEST,
    MAX_JSON_DEPTH,
    MAX_TIMESTAMP_CHARS,
    json_depth_exceeds,
    raw_json_may_nest_too_deep,
)

GENESIS_HASH: Final = "0" * 64
TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
RESERVED_KEYS: Final = frozenset({"seq", "timestamp", "type", "prev_hash", "hash"})
TORN_REASON: Final = "torn last line (unterminated)"
STAMP_RAISED_FROM: Final = "stamp_raised_from"

_STAMP_FORMAT: Final = "%Y%m%dT%H%M%S%f"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIRST_BYTES = 64
# orjson reads integers up to unsigned 64 bits exactly; beyond that it returns a float and
# the re-encoded line would no longer match its hash.
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
_MISSING: Final = ("missing",)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One verified line: its chain fields, the full parsed object and its 1-based line number."""

    seq: int
    timestamp: datetime
    type: str
    data: dict[str, Any]
    hash: str
    prev_hash: str
    line_no: int


@dataclass(frozen=True, slots=True)
class LogProblem:
    """Where a log fails its checks (``line`` is None when the whole file is concerned)."""

    file: str
    line: int | None
    reason: str

    def one_line(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """What `recover` kept, what it dropped, where the damaged file went and the line it wrote."""

    restored_from: str
    kept_lines: int
    dropped_from_line: int
    dropped_lines: int
    damaged_file: Path
    recovered_line: LogLine


class LogDamaged(Exception):
    """A terminated line fails its checks: new entries halt until `recover` is run."""

    def __init__(self, problem: LogProblem) -> None:
        self.problem = problem
        super().__init__(problem.one_line())


def canonical_bytes(obj: dict[str, Any]) -> bytes:
    """The canonical UTF-8 encoding of an object (sorted keys, no spaces, no ASCII escaping)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_line(obj: dict[str, Any]) -> bytes:
    """The exact bytes written for a full line object (``hash`` included): encoding + newline."""
    return canonical_bytes(obj) + b"\n"


def line_hash(obj_without_hash: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical encoding of a line object that has no ``hash`` key."""
    return hashlib.sha256(canonical_bytes(obj_without_hash)).hexdigest()


def format_timestamp(moment: datetime) -> str:
    """The one timestamp format of both logs (UTC, microseconds, ``Z``)."""
    return ensure_utc(moment).strftime(TIMESTAMP_FORMAT)


def stamp_no_earlier_than(
    moment: datetime, last: datetime | None, payload: dict[str, Any]
) -> tuple[datetime, dict[str, Any]]:
    """A line is never stamped before the line it follows: a clock that stepped back, or a
    record dated in the past (a session summary at its close), takes the last line's
    instant, and the instant asked for is kept as `stamp_raised_from`."""
    moment = ensure_utc(moment)
    if last is None or moment >= last:
        return moment, payload
    return last, {**payload, STAMP_RAISED_FROM: format_timestamp(moment)}


def check_payload(payload: dict[str, Any]) -> None:
    """Reject what could not round-trip through the encoding, before anything is written.

    TypeError for a value that is not JSON-native; ValueError for a reserved key, a
    non-finite float, an integer orjson cannot read exactly or text that is not UTF-8.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    clashes = RESERVED_KEYS.intersection(payload)
    if clashes:
        raise ValueError(f"payload uses reserved keys: {', '.join(sorted(clashes))}")
    _check_json_native(payload, "payload")
    canonical_bytes(payload)  # surfaces lone surrogates (UnicodeEncodeError is a ValueError)


def _check_json_native(value: object, where: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ValueError(f"{where}: integer out of the 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: non-finite number")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_native(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a string")
            _check_json_native(item, f"{where}.{key}")
        return
    raise TypeError(f"{where}: {type(value).__name__} is not a JSON-native value")


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX64.fullmatch(value) is not None


def _parse_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > MAX_TIMESTAMP_CHARS:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    offset = moment.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        return None
    moment = moment.astimezone(timezone.utc)
    if not EARLIEST <= moment <= LATEST:
        return None
    return moment


def _content_hash(raw: bytes, obj: dict[str, Any], claimed: str) -> tuple[bool, str]:
    """(is the line canonical, hash of its content without ``hash``).

    For a canonical line the hashed bytes are the line minus its own ``"hash":"…"`` member,
    so one encoding per line checks both; a line cannot contain its own hash elsewhere.
    """
    if canonical_bytes(obj) == raw:
        member = b'"hash":"' + claimed.encode("ascii") + b'"'
        at = raw.find(member)
        if raw[at - 1 : at] == b",":
            body = raw[: at - 1] + raw[at + len(member) :]
        else:
            body = raw[:at] + raw[at + len(member) + 1 :]
        return True, hashlib.sha256(body).hexdigest()
    without = dict(obj)
    del without["hash"]
    try:
        return False, line_hash(without)
    except ValueError:
        return False, ""


def _check_line(
    raw: bytes, line_no: int, expected_seq: int | None, expected_prev: str | None
) -> tuple[LogLine | None, list[str], int | None, str | None]:
    """Check one terminated line against its predecessor.

    Returns the verified line (None if anything failed), the reasons it failed, and its own
    ``seq`` and ``hash`` fields (when readable) so the next line can be checked against them.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, ["not valid JSON"], None, None
    if not isinstance(obj, dict):
        return None, ["not a JSON object"], None, None
    if raw_json_may_nest_too_deep(raw) and json_depth_exceeds(obj):
        return None, [f"nested deeper than {MAX_JSON_DEPTH} levels"], None, None
    reasons: list[str] = []
    seq = obj.get("seq")
    if type(seq) is not int:
        reasons.append("seq is missing or not an integer")
        seq = None
    elif expected_seq is not None and seq != expected_seq:
        reasons.append(f"seq is {seq}, expected {expected_seq}")
    prev_hash = obj.get("prev_hash")
    if not _is_hex64(prev_hash):
        reasons.append("prev_hash is missing or not 64 hex digits")
    elif expected_prev is not None and prev_hash != expected_prev:
        reasons.append("prev_hash does not match the previous line's hash")
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind:
        reasons.append("type is missing or not a non-empty string")
    moment = _parse_timestamp(obj.get("timestamp"))
    if moment is None:
        reasons.append("timestamp is missing or not a UTC ISO 8601 time between 1970 and 9999")
    claimed = obj.get("hash")
    if not _is_hex64(claimed):
        reasons.append("hash is missing or not 64 hex digits")
        claimed = None
    else:
        canonical, actual = _content_hash(raw, obj, claimed)
        if actual != claimed:
            reasons.append("hash does not match the line's content")
        if not canonical:
            reasons.append("line is not in the canonical encoding")
    if reasons:
        return None, reasons, seq, claimed
    line = LogLine(
        seq=seq,  # type: ignore[arg-type]  # checked above
        timestamp=moment,  # type: ignore[arg-type]
        type=kind,  # type: ignore[arg-type]
        data=obj,
        hash=claimed,  # type: ignore[arg-type]
        prev_hash=prev_hash,  # type: ignore[arg-type]
        line_no=line_no,
    )
    return line, reasons, seq, claimed


@dataclass(frozen=True, slots=True)
class _Scan:
    """A full, independent check of a log's bytes."""

    lines: list[LogLine]
    problems: list[LogProblem]
    terminated: int
    torn: bytes


def _scan_all(data: bytes, file: str) -> _Scan:
    """Check every line against its predecessor, reporting every problem, not just the first."""
    lines: list[LogLine] = []
    problems: list[LogProblem] = []
    expected_seq: int | None = 1
    expected_prev: str | None = GENESIS_HASH
    pos = 0
    line_no = 0
    while (end := data.find(b"\n", pos)) >= 0:
        line_no += 1
        line, reasons, seq, claimed = _check_line(data[pos:end], line_no, expected_seq, expected_prev)
        if line is not None:
            lines.append(line)
        else:
            problems.append(LogProblem(file, line_no, "; ".join(reasons)))
        # Follow the line's own fields so one bad line yields one problem, not a cascade.
        expected_seq = None if seq is None else seq + 1
        expected_prev = claimed
        pos = end + 1
    torn = data[pos:]
    if torn:
        problems.append(LogProblem(file, line_no + 1, TORN_REASON))
    return _Scan(lines, problems, line_no, torn)


def _build_line(
    kind: str, payload: dict[str, Any], seq: int, prev_hash: str, moment: datetime
) -> tuple[dict[str, Any], bytes]:
    obj: dict[str, Any] = {
        "seq": seq,
        "timestamp": format_timestamp(moment),
        "type": kind,
        "prev_hash": prev_hash,
        **payload,
    }
    obj["hash"] = line_hash(obj)
    return obj, canonical_line(obj)


class ChainedLog:
    """One hash-chained log file: incremental verified reads, locked appends, repair.

    Readers keep the parsed lines and the byte offset in memory and, on each call, stat
    the file and parse only appended bytes, so a check on an unchanged file costs one stat.
    They trust bytes already verified (re-reading from scratch only when the file shrank,
    kept its size, changed inode, or its first bytes or last verified line changed);
    writers re-confirm those bytes before appending and `verify` re-checks everything.
    """

    def __init__(self, path: Path, lock: LogsLock, clock: Clock) -> None:
        self.path = Path(path)
        self._lock = lock
        self._clock = clock
        self._stat_key: tuple[object, ...] | None = None
        self._confirmed_key: tuple[object, ...] | None = None
        self._reset()

    # ----------------------------------------------------------------- reading

    @property
    def checkpoint_path(self) -> Path:
        return self.path.with_name(self.path.name + ".checkpoint")

    def lines(self) -> tuple[LogLine, ...]:
        """All intact verified lines, up to the first damaged one; a torn last line is ignored.

        The same tuple is returned while the file is unchanged, so calling this is cheap.
        """
        self._refresh()
        if self._snapshot is None:
            self._snapshot = tuple(self._lines)
        return self._snapshot

    def read_lines_as_of(self, as_of: datetime) -> list[LogLine]:
        """Lines stamped at or before `as_of` (lines need not be in time order, so filter)."""
        cutoff = ensure_utc(as_of)
        return [line for line in self.lines() if line.timestamp <= cutoff]

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last intact line, or (0, 64 zeros) for an empty log."""
        self._refresh()
        if not self._lines:
            return 0, GENESIS_HASH
        last = self._lines[-1]
        return last.seq, last.hash

    def damage(self) -> LogProblem | None:
        """The first terminated line that fails its checks, or None when the log is intact."""
        self._refresh()
        return self._damage

    def torn_tail(self) -> bytes | None:
        """The unterminated bytes after the last newline (a crash mid-append), if any."""
        self._refresh()
        return self._torn

    def verify(self) -> list[LogProblem]:
        """Re-check the whole file from disk, independent of what is cached; [] when intact.

        A missing file is an empty log. A torn last line is reported as a problem too.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return _scan_all(data, self.path.name).problems

    # ----------------------------------------------------------------- writing

    def append(self, type: str, payload: dict[str, Any], timestamp: datetime | None = None) -> LogLine:  # noqa: A002
        """Durably append one record (the commit point of a decision) and return it.

        Refuses with LogDamaged while the log is damaged; moves a torn tail aside first.
        """
        _check_type(type)
        check_payload(payload)
        with self._lock.held():
            self._refresh_for_write()
            if self._damage is not None:
                raise LogDamaged(self._damage)
            if self._torn is not None:
                self._move_torn_tail_locked()
            return self._append_locked(type, payload, timestamp)

    def move_torn_tail_aside(self) -> Path | None:
        """Save an unterminated last line to a recovery file, cut it off and record that.

        Truncating that fragment is the one modification ever made to existing bytes, and
        only after its exact bytes are durably saved. Returns the recovery file, if any.
        """
        with self._lock.held():
            self._refresh_for_write()
            if self._torn is None:
                return None
            if self._damage is not None:
                raise LogDamaged(self._damage)
            return self._move_torn_tail_locked()

    def write_checkpoint(self) -> Path:
        """Atomically copy the intact lines to `<name>.checkpoint`, after a full re-check.

        The full check matters: a checkpoint is what `recover` may restore from.
        """
        with self._lock.held():
            self._refresh_for_write()
            if self._damage is not None:
                raise LogDamaged(self._damage)
            data = self._read_range(0, self._offset)
            scan = _scan_all(data, self.path.name)
            if scan.problems or scan.terminated != len(self._lines):
                self._forget()
                problem = scan.problems[0] if scan.problems else LogProblem(self.path.name, None, "changed while read")
                raise LogDamaged(problem)
            atomic_write_bytes(self.checkpoint_path, data)
            return self.checkpoint_path

    def recover(self) -> RecoveryResult | None:
        """Restore a damaged log to the longer verifiable of its intact prefix and checkpoint.

        The damaged file is kept aside and a `recovered` line records what was dropped; the
        restored content and that line are written in one atomic replace, so there is no
        moment without a log. Returns None (after moving a torn tail aside) if not damaged.
        """
        with self._lock.held():
            self._refresh_for_write()
            if self._damage is None:
                if self._torn is not None:
                    self._move_torn_tail_locked()
                return None
            data = self.path.read_bytes()
            damaged = _scan_all(data, self.path.name)
            # Recompute the intact prefix from these exact bytes rather than the cache.
            prefix_lines: list[LogLine] = []
            prefix_end = 0
            for line in damaged.lines:
                if line.line_no != len(prefix_lines) + 1:
                    break
                prefix_lines.append(line)
                prefix_end = data.index(b"\n", prefix_end) + 1
            source, kept, content = "prefix", prefix_lines, data[:prefix_end]
            checkpoint = self._valid_checkpoint()
            if checkpoint is not None and len(checkpoint[0]) > len(prefix_lines):
                source, kept, content = "checkpoint", checkpoint[0], checkpoint[1]
            dropped_from = len(prefix_lines) + 1
            dropped = max(0, damaged.terminated - len(kept))
            damaged_file = self._aside_path("damaged")
            atomic_write_bytes(damaged_file, data)
            last_seq, last_hash = (kept[-1].seq, kept[-1].hash) if kept else (0, GENESIS_HASH)
            payload = {
                "restored_from": source,
                "kept_lines": len(kept),
                "dropped_from_line": dropped_from,
                "dropped_lines": dropped,
                "damaged_file": damaged_file.name,
                "torn_tail_bytes": len(damaged.torn),
            }
            moment, payload = stamp_no_earlier_than(self._clock.now(), kept[-1].timestamp if kept else None, payload)
            obj, raw = _build_line("recovered", payload, last_seq + 1, last_hash, moment)
            atomic_write_bytes(self.path, content + raw)
            self._forget()
            recovered = self._expect_last(obj["hash"])
            return RecoveryResult(
                restored_from=source,
                kept_lines=len(kept),
                dropped_from_line=dropped_from,
                dropped_lines=dropped,
                damaged_file=damaged_file,
                recovered_line=recovered,
            )

    # ----------------------------------------------------------------- internals

    def _reset(self) -> None:
        self._lines: list[LogLine] = []
        self._snapshot: tuple[LogLine, ...] | None = ()
        self._offset = 0  # end of the last intact line
        self._anchor = b""  # bytes of the last intact line, to notice it being rewritten
        self._first = b""  # first bytes of the file, to notice it being replaced
        self._damage: LogProblem | None = None
        self._torn: bytes | None = None
        self._digest = hashlib.sha256()  # of the bytes up to `_offset`, for writers to re-confirm

    _holding = 0
    _held_fresh = False

    def _forget(self) -> None:
        """Drop the cache so the next read starts from scratch (after a replace of the file)."""
        self._reset()
        self._stat_key = None
        self._confirmed_key = None

    def reread(self) -> None:
        """Look at the file now, even inside `one_read` (after waiting for the lock, say)."""
        self._refresh(force=True)

    @contextmanager
    def one_read(self) -> Iterator[None]:
        """Within this block readers stat the file once: a pre-trade check asks the log
        several questions and needs one consistent answer, not several stats."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
            if self._holding == 0:
                self._held_fresh = False

    def _refresh(self, force: bool = False) -> None:
        """Bring the cache up to date: one stat when unchanged, appended bytes when grown."""
        if self._holding and self._held_fresh and not force:
            return
        self._held_fresh = bool(self._holding)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._stat_key != _MISSING:
                self._reset()
                self._stat_key = _MISSING
            self._confirmed_key = _MISSING
            return
        key = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)
        old = self._stat_key
        if key == old:
            return
        with open(self.path, "rb") as handle:
            grown = (
                old is not None
                and old != _MISSING
                and old[0] == st.st_ino
                and old[1] == st.st_dev
                and st.st_size > old[2]  # type: ignore[operator]
                and self._offset > 0
            )
            if grown and self._continue(handle):
                pass
            else:
                handle.seek(0)
                data = handle.read()
                self._reset()
                self._first = data[:_FIRST_BYTES]
                self._consume(data, 0)
                self._confirmed_key = key
        # The stat taken before reading: if the file grew meanwhile, the next call re-reads
        # from the kept offset, which is always correct.
        self._stat_key = key

    def _refresh_for_write(self) -> None:
        """Refresh, then make sure the bytes already verified are still on disk unchanged.

        Readers trust bytes they verified before (checking only the first bytes and the last
        line); a writer must not chain onto a file edited in place since, so when the file
        changed since it was last confirmed, its verified prefix is re-hashed (one read, no
        parsing) and, if different, the whole file is re-read and re-verified.
        """
        self._refresh(force=True)
        if self._stat_key == self._confirmed_key:
            return
        if self._digest.digest() != hashlib.sha256(self._read_range(0, self._offset)).digest():
            self._forget()
            self._refresh(force=True)
        else:
            self._confirmed_key = self._stat_key

    def _continue(self, handle: Any) -> bool:
        """Parse only what follows the kept offset, if the bytes already read are unchanged."""
        start = self._offset - len(self._anchor)
        handle.seek(start)
        chunk = handle.read()
        if not chunk.startswith(self._anchor):
            return False
        if start > 0:
            handle.seek(0)
            if handle.read(len(self._first)) != self._first:
                return False
        self._consume(chunk[len(self._anchor) :], self._offset)
        return True

    def _consume(self, data: bytes, base: int) -> None:
        """Verify lines in `data` (which starts at byte `base`, right after the last intact line)."""
        lines = self._lines
        expected_seq = lines[-1].seq + 1 if lines else 1
        prev_hash = lines[-1].hash if lines else GENESIS_HASH
        pos = 0
        last_start = -1
        damage: LogProblem | None = None
        while (end := data.find(b"\n", pos)) >= 0:
            line_no = len(lines) + 1
            line, reasons, _, _ = _check_line(data[pos:end], line_no, expected_seq, prev_hash)
            if line is None:
                damage = LogProblem(self.path.name, line_no, "; ".join(reasons))
                break
            lines.append(line)
            expected_seq = line.seq + 1
            prev_hash = line.hash
            last_start = pos
            pos = end + 1
        if last_start >= 0:
            self._digest.update(data[:pos])
            self._anchor = data[last_start:pos]
            self._offset = base + pos
            self._snapshot = None
        self._damage = damage
        tail = data[data.rfind(b"\n") + 1 :]
        self._torn = tail or None

    def _append_locked(self, kind: str, payload: dict[str, Any], timestamp: datetime | None) -> LogLine:
        seq, prev_hash = self.head()
        moment = self._clock.now() if timestamp is None else timestamp
        last = self._lines[-1].timestamp if self._lines else None
        moment, payload = stamp_no_earlier_than(moment, last, payload)
        obj, raw = _build_line(kind, payload, seq + 1, prev_hash, moment)
        append_durably(self.path, raw)
        line = self._expect_last(obj["hash"])
        self._confirmed_key = self._stat_key  # confirmed before, and only our line was added
        return line

    def _expect_last(self, expected_hash: str) -> LogLine:
        """Re-read after a write and return the line just written, proving it reads back."""
        self._refresh(force=True)
        if self._damage is not None:
            raise LogDamaged(self._damage)
        if not self._lines or self._lines[-1].hash != expected_hash:
            raise LogDamaged(LogProblem(self.path.name, None, "the line just written does not read back"))
        return self._lines[-1]

    def _move_torn_tail_locked(self) -> Path:
        cut = self._offset
        torn = self._read_range(cut, None)
        if not torn or b"\n" in torn:
            raise LogDamaged(LogProblem(self.path.name, None, "changed while moving a torn line aside"))
        recovery = self._aside_path("torn")
        atomic_write_bytes(recovery, torn)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, cut)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._refresh(force=True)
        self._append_locked("torn_tail_moved", {"recovery_file": recovery.name, "bytes": len(torn)}, None)
        return recovery

    def _read_range(self, start: int, end: int | None) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(start)
                return handle.read() if end is None else handle.read(end - start)
        except FileNotFoundError:
            return b""

    def _valid_checkpoint(self) -> tuple[list[LogLine], bytes] | None:
        try:
            data = self.checkpoint_path.read_bytes()
        except FileNotFoundError:
            return None
        scan = _scan_all(data, self.checkpoint_path.name)
        if scan.problems:
            return None
        return scan.lines, data

    def _aside_path(self, kind: str) -> Path:
        """`<name>.<kind>-<UTC stamp>`, made unique so nothing set aside is ever overwritten."""
        stamp = ensure_utc(self._clock.now()).strftime(_STAMP_FORMAT)
        candidate = self.path.with_name(f"{self.path.name}.{kind}-{stamp}")
        counter = 1
        while candidate.exists():
            candidate = self.path.with_name(f"{self.path.name}.{kind}-{stamp}-{counter}")
            counter += 1
        return candidate


def _check_type(kind: object) -> None:
    if not isinstance(kind, str):
        raise TypeError(f"type must be a string, got {type(kind).__name__}")
    if not kind:
        raise ValueError("type must not be empty")
