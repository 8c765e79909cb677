"""One hash-chained phase log on disk: incremental verified reads and locked appends.

The line format is `log_format`'s; torn tails, checkpoints and recovery are
`log_repair`'s, which works on this class's cache under the logs lock.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson

from trading_bot.clock import Clock, ensure_utc
from trading_bot.durable_files import DERIVED_DIR, LogsLock, StatsOncePerRead, append_many_durably, open_regular, read_regular
from trading_bot.high_water import HighWater
import trading_bot.phase.log_repair as log_repair
from trading_bot.phase.log_format import (
    GENESIS_HASH,
    LogDamaged,
    LogLine,
    LogProblem,
    build_line,
    check_line,
    check_payload,
    check_type,
    parse_log_timestamp,
    scan_all,
    stamp_no_earlier_than,
)

_FIRST_BYTES: Final = 64
_MISSING: Final = ("missing",)
# A new process re-checks every line's hash and canonical form (50 µs a line: 0.1 s for ten
# years of session summaries) unless the prefix it reads is byte for byte one a process
# checked before: `.derived/<name>.verified` names its length and SHA-256. A note is
# written again once this many bytes past it have been checked, so commands write rarely.
VERIFIED_SUFFIX: Final = ".verified"
_VERIFIED_VERSION: Final = 1
_RENOTE_BYTES: Final = 64 * 1024


class ChainedLog(StatsOncePerRead):
    """One hash-chained log file: incremental verified reads, locked appends, repair.

    Readers keep the parsed lines and the byte offset in memory and, on each call, stat
    the file and parse only appended bytes, so a check on an unchanged file costs one stat.
    They trust bytes already verified (re-reading from scratch only when the file shrank,
    kept its size, changed inode, or its first bytes or last verified line changed);
    writers re-confirm those bytes before appending and `verify` re-checks everything.
    """

    def __init__(self, path: Path, lock: LogsLock, clock: Clock, *, notes: bool = True) -> None:
        """`notes=False` (a read-only `--as-of` view) never writes a verified-prefix note."""
        self.path = Path(path)
        self._notes = notes
        self._lock = lock
        self._clock = clock
        self._high_water = HighWater.beside(lock)
        self._stat_key: tuple[object, ...] | None = None
        self._confirmed_key: tuple[object, ...] | None = None
        self._batch: _Batch | None = None
        self.verified_note = self._lock.path.parent / DERIVED_DIR / (self.path.name + VERIFIED_SUFFIX)
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
            data = read_regular(self.path)
        except FileNotFoundError:
            return []
        return scan_all(data, self.path.name).problems

    # ----------------------------------------------------------------- writing

    def append(self, type: str, payload: dict[str, Any], timestamp: datetime | None = None) -> LogLine:  # noqa: A002
        """Durably append one record (the commit point of a decision) and return it.

        Refuses with LogDamaged while the log is damaged; moves a torn tail aside first.
        """
        check_type(type)
        check_payload(payload)
        if self._batch is not None:  # the batch holds the lock already
            return self._append_held(type, payload, timestamp)
        with self._lock.held():
            return self._append_held(type, payload, timestamp)

    def _append_held(self, kind: str, payload: dict[str, Any], timestamp: datetime | None) -> LogLine:
        self._refresh_for_write()
        if self._damage is not None:
            raise LogDamaged(self._damage)
        if self._torn is not None:
            log_repair.move_torn_tail_locked(self)
        return self._append_locked(kind, payload, timestamp)

    @contextmanager
    def batched(self, deferrable: Collection[str]) -> Iterator[None]:
        """Within this block, appends of the `deferrable` types are chained and read back
        in memory at once but reach the disk together on leaving it: one write per chunk
        and ONE fsync, instead of one fsync per line (a catch-up of thousands of session
        summaries). Any other type is written at once together with what is pending, so
        a line a caller acts on is durable before it is returned. Holds the logs lock
        throughout; on an error inside the block the pending lines are dropped, unwritten.
        """
        if self._batch is not None:
            yield
            return
        with self._lock.held():
            self._batch = _Batch(frozenset(deferrable))
            try:
                yield
            except BaseException:
                dropped = bool(self._batch.lines)
                self._batch = None
                if dropped:
                    self._forget()  # the cache holds lines that never reached the disk
                raise
            batch, self._batch = self._batch, None
            if batch.lines:
                self._write_pending(batch)

    def move_torn_tail_aside(self) -> Path | None:
        """Save an unterminated last line aside, cut it off and record that (`log_repair`)."""
        return log_repair.move_torn_tail_aside(self)

    def write_checkpoint(self) -> Path:
        """Atomically copy the intact lines to `<name>.checkpoint` (`log_repair`)."""
        return log_repair.write_checkpoint(self)

    def recover(self) -> log_repair.RecoveryResult | None:
        """Restore a damaged log from its intact prefix or checkpoint (`log_repair`)."""
        return log_repair.recover(self)


    def _reset(self) -> None:
        self._lines: list[LogLine] = []
        self._snapshot: tuple[LogLine, ...] | None = ()
        self._offset = 0  # end of the last intact line
        self._anchor = b""  # bytes of the last intact line, to notice it being rewritten
        self._first = b""  # first bytes of the file, to notice it being replaced
        self._damage: LogProblem | None = None
        self._torn: bytes | None = None
        self._digest = hashlib.sha256()  # of the bytes up to `_offset`, for writers to re-confirm

    def _forget(self) -> None:
        """Drop the cache so the next read starts from scratch (after a replace of the file)."""
        self._reset()
        self._stat_key = None
        self._confirmed_key = None

    def reread(self) -> None:
        """Look at the file now, even inside `one_read` (after waiting for the lock, say)."""
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        """Bring the cache up to date: one stat when unchanged, appended bytes when grown."""
        if self._batch is not None and self._batch.lines:
            return  # the cache is ahead of the disk by the pending lines, under our lock
        if not self._stat_due(force):
            return
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
        with open_regular(self.path) as handle:
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
                noted = self._take_noted_prefix(data)
                self._consume(data[noted:], noted)
                if self._notes and self._offset - noted >= _RENOTE_BYTES:
                    self._note_verified()
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
            line, reasons, _, _ = check_line(data[pos:end], line_no, expected_seq, prev_hash)
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

    # ---- the verified prefix a process noted (a cache; `verify` never reads it) ----

    def _take_noted_prefix(self, data: bytes) -> int:
        """Take, without re-hashing each line, the prefix of `data` a process verified and
        noted; returns its length (0 when there is no note or it does not match byte for byte)."""
        try:
            note = orjson.loads(read_regular(self.verified_note))
            length, digest = note["bytes"], note["sha256"]
        except (OSError, orjson.JSONDecodeError, TypeError, KeyError):
            return 0
        if note.get("version") != _VERIFIED_VERSION or not isinstance(length, int) or not 0 < length <= len(data):
            return 0
        prefix = data[:length]
        if prefix[-1:] != b"\n" or hashlib.sha256(prefix).hexdigest() != digest:
            return 0
        lines: list[LogLine] = []
        pos = last_start = 0
        prev_hash = GENESIS_HASH
        try:
            while (end := prefix.find(b"\n", pos)) >= 0:
                obj = orjson.loads(prefix[pos:end])
                seq, kind, claimed = obj["seq"], obj["type"], obj["hash"]
                moment = parse_log_timestamp(obj["timestamp"])
                # The chain's links are compared (cheap); only the hashing is what the note saves.
                if moment is None or seq != len(lines) + 1 or type(seq) is not int or obj["prev_hash"] != prev_hash:
                    return 0
                if not isinstance(kind, str) or not kind or not isinstance(claimed, str):
                    return 0
                lines.append(LogLine(seq, moment, kind, obj, claimed, prev_hash, seq))
                prev_hash = claimed
                last_start, pos = pos, end + 1
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return 0  # a note for other bytes than these: check them all
        self._lines = lines
        self._digest.update(prefix)
        self._anchor = prefix[last_start:]
        self._offset = length
        self._snapshot = None
        return length

    def _note_verified(self) -> None:
        """Note the verified prefix for the next process (atomically; best effort: a note
        that cannot be written costs the next start its checks, never an answer)."""
        note = {"version": _VERIFIED_VERSION, "bytes": self._offset, "sha256": self._digest.hexdigest()}
        temporary = self.verified_note.with_name(f".{self.verified_note.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            self.verified_note.parent.mkdir(exist_ok=True)
            temporary.write_bytes(orjson.dumps(note))
            os.replace(temporary, self.verified_note)
        except OSError:
            try:
                temporary.unlink()
            except OSError:
                pass

    def _append_locked(self, kind: str, payload: dict[str, Any], timestamp: datetime | None) -> LogLine:
        seq, prev_hash = self.head()
        moment = self._clock.now() if timestamp is None else timestamp
        last = self._lines[-1].timestamp if self._lines else None
        moment, payload = stamp_no_earlier_than(moment, last, payload)
        obj, raw = build_line(kind, payload, seq + 1, prev_hash, moment)
        batch = self._batch
        if batch is not None:
            if not batch.lines:
                batch.start = self._offset
            batch.lines.append(raw)
            batch.latest = moment if batch.latest is None else max(batch.latest, moment)
            self._consume(raw, self._offset)  # read back exactly as a reader of the file would
            if self._damage is not None or not self._lines or self._lines[-1].hash != obj["hash"]:
                problem = self._damage or LogProblem(self.path.name, None, "the line just built does not read back")
                self._batch = _Batch(batch.deferrable)
                self._forget()
                raise LogDamaged(problem)
            line = self._lines[-1]
            if kind not in batch.deferrable:
                self._batch = _Batch(batch.deferrable)
                self._write_pending(batch)
            return line
        self._high_water.raise_to(moment, exact=True)
        append_many_durably(self.path, [raw])
        line = self._expect_last(obj["hash"])
        self._confirmed_key = self._stat_key  # confirmed before, and only our line was added
        return line

    def _write_pending(self, batch: _Batch) -> None:
        """Write the lines a batch holds in memory (already chained and in the cache) and
        fsync once; then prove they read back. On failure the cache is dropped, since it
        holds lines the disk may not."""
        assert batch.latest is not None
        data_end = batch.start + sum(len(raw) for raw in batch.lines)
        try:
            self._high_water.raise_to(batch.latest, exact=True)
            append_many_durably(self.path, batch.lines, expected_size=batch.start)
            written = self._read_range(batch.start, data_end)
            st = os.stat(self.path)
        except BaseException:
            self._forget()
            raise
        if written != b"".join(batch.lines) or st.st_size != data_end:
            self._forget()
            raise LogDamaged(LogProblem(self.path.name, None, "the lines just written do not read back"))
        # Confirmed before the batch, and only our lines were added since.
        self._stat_key = self._confirmed_key = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)

    def _expect_last(self, expected_hash: str) -> LogLine:
        """Re-read after a write and return the line just written, proving it reads back."""
        self._refresh(force=True)
        if self._damage is not None:
            raise LogDamaged(self._damage)
        if not self._lines or self._lines[-1].hash != expected_hash:
            raise LogDamaged(LogProblem(self.path.name, None, "the line just written does not read back"))
        return self._lines[-1]

    def _read_range(self, start: int, end: int | None) -> bytes:
        try:
            with open_regular(self.path) as handle:
                handle.seek(start)
                return handle.read() if end is None else handle.read(end - start)
        except FileNotFoundError:
            return b""



class _Batch:
    """Lines appended inside `ChainedLog.batched` and not yet on disk."""

    def __init__(self, deferrable: frozenset[str]) -> None:
        self.deferrable = deferrable
        self.lines: list[bytes] = []
        self.start = 0  # the file offset the first pending line goes to
        self.latest: datetime | None = None  # the latest stamp pending, for the high-water
