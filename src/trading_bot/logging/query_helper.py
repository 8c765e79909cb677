"""Reading the trade journal: every `logs/trades/*.jsonl`, consolidated by order id.

The reader is incremental: it remembers how far it read each file and, on refresh,
stats the files and parses only the bytes appended since. A file that shrank or was
replaced makes it start over. Rules (SPEC §10): a closed record supersedes an `open`
one with the same `order_id`; identical duplicates collapse; two different closes for
one order are an invalid line. A torn (unterminated) last line is ignored.
"""

from __future__ import annotations

import bisect
import gc
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from trading_bot.clock import CLOCK_TOLERANCE
from trading_bot.errors import JournalError
from trading_bot.input_bounds import (
    MAX_JSON_DEPTH,
    first_duplicate_key,
    json_depth_exceeds,
    may_hold_duplicate_keys,
    raw_json_may_nest_too_deep,
)
from trading_bot.logging.trade_record import OPEN, TradeRecord, parse_trade

JOURNAL_SUFFIX = ".jsonl"


def journal_files(trades_dir: Path) -> list[Path]:
    """The journal files: `*.jsonl` directly in the folder, dot-files skipped."""
    try:
        entries = list(os.scandir(trades_dir))
    except FileNotFoundError:
        return []
    names = sorted(
        entry.name
        for entry in entries
        if entry.name.endswith(JOURNAL_SUFFIX) and not entry.name.startswith(".") and entry.is_file()
    )
    return [Path(trades_dir) / name for name in names]


def close_order_key(trade: TradeRecord) -> tuple[datetime, datetime, str, int]:
    """Trades are ordered by (exit time, entry time, file, line)."""
    assert trade.exit_timestamp is not None
    return (trade.exit_timestamp, trade.timestamp, trade.file, trade.line)


_GUARD_BYTES = 64
_HOT_FILES = 2
_FULL_REFRESH_SECONDS = 1.0
# A folder's mtime can be stamped in coarse ticks: a file created in the same tick as the
# previous scan would not change it, so a folder changed this recently is rescanned.
_MTIME_TICK_NS = 100_000_000


@dataclass
class _FileCursor:
    inode: int
    offset: int
    size: int
    mtime_ns: int
    line_count: int
    guard: bytes = b""
    head: bytes = b""


@dataclass(frozen=True)
class JournalDelta:
    """What one refresh found: new entries, new closes, and whether order was disturbed."""

    new_entries: list[TradeRecord] = field(default_factory=list)
    new_closes: list[TradeRecord] = field(default_factory=list)
    rebuilt: bool = False

    @property
    def changed(self) -> bool:
        return self.rebuilt or bool(self.new_entries) or bool(self.new_closes)


class TradeJournal:
    """The consolidated journal, kept in memory and brought up to date by `refresh()`."""

    def __init__(self, trades_dir: Path) -> None:
        self.trades_dir = Path(trades_dir)
        self._base = os.path.join(str(self.trades_dir), "")
        self.generation = 0
        self._reset()

    def _reset(self) -> None:
        # Stays equal while the first n closes and m entries keep their meaning (appends only).
        self.epoch = uuid.uuid4().hex
        self._cursors: dict[str, _FileCursor] = {}
        self._by_order: dict[str, TradeRecord] = {}
        self._entries: dict[str, TradeRecord] = {}
        self._closed: list[TradeRecord] = []
        self._entry_log: list[TradeRecord] = []
        self._closed_keys: list[tuple[datetime, datetime, str, int]] = []
        self._problem: JournalError | None = None
        self._latest_timestamp: datetime | None = None
        self._latest_source: tuple[str, int, str] | None = None
        self._dir_mtime_ns: int | None = None
        self._scan_started_ns = 0
        self._torn: dict[str, int] = {}
        self._hot: list[str] = []
        self._full_at = 0.0

    # ---- reading -------------------------------------------------------------------

    def refresh(self, *, quick: bool = False) -> JournalDelta:
        """Pick up appended lines (and new files); start over if a file shrank or moved.

        `quick` (the pre-trade check) stats the folder and only the files being written
        to, so its cost does not grow with the number of journal files; a full refresh,
        which every command and every close does, is forced at least once a second.
        """
        if quick and self._hot and time.monotonic() - self._full_at < _FULL_REFRESH_SECONDS:
            try:
                dir_stat = os.stat(self.trades_dir)
            except FileNotFoundError:
                dir_stat = None
            if dir_stat is not None and dir_stat.st_mtime_ns == self._dir_mtime_ns:
                return self._refresh_files(self._hot)
        return self._refresh_full()

    def _refresh_full(self) -> JournalDelta:
        self._full_at = time.monotonic()
        try:
            dir_stat = os.stat(self.trades_dir)
        except FileNotFoundError:
            if self._cursors:
                self._reset()
                self.generation += 1
                return JournalDelta(rebuilt=True)
            return JournalDelta()
        unchanged_dir = (
            dir_stat.st_mtime_ns == self._dir_mtime_ns
            and self._scan_started_ns - dir_stat.st_mtime_ns > _MTIME_TICK_NS
        )
        if unchanged_dir:
            names = list(self._cursors)
        else:
            self._scan_started_ns = time.time_ns()
            names = [path.name for path in journal_files(self.trades_dir)]
        self._dir_mtime_ns = dir_stat.st_mtime_ns
        if set(self._cursors) - set(names):
            return self._rebuild()
        delta = self._refresh_files(names)
        self._update_hot()
        return delta

    def _update_hot(self) -> None:
        """The files a quick refresh watches: the most recently modified ones."""
        newest = sorted(self._cursors.items(), key=lambda item: item[1].mtime_ns, reverse=True)
        self._hot = [name for name, _ in newest[:_HOT_FILES]]

    def _refresh_files(self, names: list[str]) -> JournalDelta:
        delta = JournalDelta()
        base = self._base
        for name in names:
            path = base + name
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                return self._rebuild()
            cursor = self._cursors.get(name)
            if cursor is not None:
                if stat.st_ino != cursor.inode or stat.st_size < cursor.offset:
                    return self._rebuild()
                if stat.st_size == cursor.size and stat.st_mtime_ns == cursor.mtime_ns:
                    continue
                if stat.st_size == cursor.size or self._problem is not None or not self._guard_intact(Path(path), cursor):
                    # Rewritten in place (same size, or the bytes before our offset changed). Start over.
                    return self._rebuild()
            self._read_file(Path(path), stat, delta)
        return delta

    @staticmethod
    def _guard_intact(path: Path, cursor: _FileCursor) -> bool:
        """The file's first bytes and the last bytes we read are still where we read them
        (it was only appended to); a middle edit is left to `verify` and the summaries."""
        with open(path, "rb") as handle:
            if handle.read(len(cursor.head)) != cursor.head:
                return False
            if not cursor.guard:
                return True
            handle.seek(cursor.offset - len(cursor.guard))
            return handle.read(len(cursor.guard)) == cursor.guard

    def _rebuild(self) -> JournalDelta:
        self._reset()
        self.generation += 1
        delta = JournalDelta(rebuilt=True)
        self._dir_mtime_ns = os.stat(self.trades_dir).st_mtime_ns if self.trades_dir.exists() else None
        self._scan_started_ns = time.time_ns()
        self._full_at = time.monotonic()
        collecting = gc.isenabled()
        gc.disable()  # a bulk load creates millions of long-lived objects: nothing to collect
        try:
            for path in journal_files(self.trades_dir):
                try:
                    stat = os.stat(path)
                except FileNotFoundError:
                    continue
                self._read_file(path, stat, delta)
        finally:
            if collecting:
                gc.enable()
        self._update_hot()
        return delta

    def _read_file(self, path: Path, stat: os.stat_result, delta: JournalDelta) -> None:
        name = path.name
        cursor = self._cursors.get(name)
        if cursor is None:
            cursor = _FileCursor(inode=stat.st_ino, offset=0, size=0, mtime_ns=0, line_count=0)
            self._cursors[name] = cursor
        with open(path, "rb") as handle:
            handle.seek(cursor.offset)
            data = handle.read()
        end = data.rfind(b"\n")
        complete = data[: end + 1] if end >= 0 else b""
        line_no = cursor.line_count
        display = str(path)
        for raw in complete.split(b"\n")[:-1]:
            line_no += 1
            if not raw.strip():
                continue
            self._take_line(raw, display, line_no, delta)
        if len(data) > len(complete):
            self._torn[display] = len(data) - len(complete)
        else:
            self._torn.pop(display, None)
        cursor.offset += len(complete)
        if complete:
            cursor.guard = complete[-_GUARD_BYTES:]
            if not cursor.head:
                cursor.head = complete[:_GUARD_BYTES]
        cursor.line_count = line_no
        cursor.size = stat.st_size
        cursor.mtime_ns = stat.st_mtime_ns

    def _take_line(self, raw: bytes, file: str, line: int, delta: JournalDelta) -> None:
        """Parse one line. An invalid line is remembered (it halts entries) and skipped, so
        the lines after it still count: positions opened later can still be closed."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            self._note_problem(JournalError(file, line, "(line)", f"not valid JSON ({error.msg})"))
            return
        if raw_json_may_nest_too_deep(raw) and json_depth_exceeds(data):
            self._note_problem(JournalError(file, line, "(line)", f"nested deeper than {MAX_JSON_DEPTH} levels"))
            return
        if may_hold_duplicate_keys(raw, data):
            duplicate = first_duplicate_key(raw.decode("utf-8"))
            if duplicate is not None:
                self._note_problem(JournalError(file, line, duplicate[0], "duplicate key (a reader sees the first, the parser would take the last)"))
                return
        try:
            record = parse_trade(data, file, line)
        except JournalError as error:
            self._note_problem(error)
            return
        self._consolidate(record, delta)

    def _note_problem(self, problem: JournalError) -> None:
        if self._problem is None:
            self._problem = problem

    def _consolidate(self, record: TradeRecord, delta: JournalDelta) -> None:
        latest = record.exit_timestamp or record.timestamp
        if self._latest_timestamp is None or latest > self._latest_timestamp:
            self._latest_timestamp = latest
            self._latest_source = (record.file, record.line, "exit_timestamp" if record.exit_timestamp else "timestamp")
        previous = self._by_order.get(record.order_id)
        if record.order_id not in self._entries and not (record.emergency_exit and record.is_closed and previous is None):
            self._entries[record.order_id] = record
            self._entry_log.append(record)
            delta.new_entries.append(record)
        if previous is None:
            self._by_order[record.order_id] = record
            if record.is_closed:
                self._add_closed(record, delta)
            return
        if record.outcome == OPEN:
            # One `open` per order, then at most one terminal record: a repeat must be
            # the same line (a harmless duplicate), never a second, different entry.
            first = self._entries.get(record.order_id)
            if first is None or first.outcome != OPEN or not first.same_content(record):
                where = f"{first.file}:{first.line}" if first is not None else f"{previous.file}:{previous.line}"
                self._note_problem(
                    JournalError(
                        record.file,
                        record.line,
                        "order_id",
                        f"a second, different open record for order {record.order_id!r} (first recorded at {where})",
                    )
                )
            return
        if record.is_rejected or previous.is_rejected:
            if record.outcome == "open":
                return
            if previous.outcome == "open":
                self._by_order[record.order_id] = record
            elif not previous.same_content(record):
                self._note_problem(
                    JournalError(
                        record.file,
                        record.line,
                        "outcome",
                        f"order {record.order_id!r} is both rejected by the broker and closed "
                        f"(see {previous.file}:{previous.line})",
                    )
                )
            return
        if previous.is_closed and record.is_closed:
            if previous.same_content(record):
                return
            self._note_problem(
                JournalError(
                    record.file,
                    record.line,
                    "order_id",
                    f"a second, different close for order {record.order_id!r} "
                    f"(first closed at {previous.file}:{previous.line})",
                )
            )
            return
        if record.is_closed:
            self._by_order[record.order_id] = record
            self._add_closed(record, delta)
        # An open record never replaces what is already known for that order.

    def _add_closed(self, record: TradeRecord, delta: JournalDelta) -> None:
        key = close_order_key(record)
        if not self._closed_keys or key >= self._closed_keys[-1]:
            self._closed.append(record)
            self._closed_keys.append(key)
        else:
            index = bisect.bisect_right(self._closed_keys, key)
            self._closed.insert(index, record)
            self._closed_keys.insert(index, key)
            self.generation += 1
            self.epoch = uuid.uuid4().hex
        delta.new_closes.append(record)

    # ---- what it knows -------------------------------------------------------------

    @property
    def closed_trades(self) -> list[TradeRecord]:
        """Closed trades in (exit, entry, file, line) order. Read-only."""
        return self._closed

    @property
    def entry_log(self) -> list[TradeRecord]:
        """Entries in the order they were read: readers sharing this journal fold from an
        index into it, whoever called `refresh`. Read-only."""
        return self._entry_log

    @property
    def entries(self) -> dict[str, TradeRecord]:
        """The first record seen of each order that counts as an entry, by order id."""
        return self._entries

    def torn_tails(self) -> dict[str, int]:
        """Files whose last line is unterminated (a crash mid-write), with its byte count."""
        return dict(self._torn)

    def open_trades(self) -> list[TradeRecord]:
        """Positions the journal holds open (a rejected order never opened one)."""
        return [record for record in self._by_order.values() if record.outcome == "open"]

    def record(self, order_id: str) -> TradeRecord | None:
        return self._by_order.get(order_id)

    def problem(self, now: datetime | None = None) -> JournalError | None:
        """The first invalid line, or a trade dated after `now` (the real clock) by more
        than the clock tolerance."""
        if self._problem is not None:
            return self._problem
        if now is not None and self._latest_timestamp is not None and self._latest_timestamp > now + CLOCK_TOLERANCE:
            assert self._latest_source is not None
            file, line, field_name = self._latest_source
            return JournalError(
                file,
                line,
                field_name,
                f"is in the future ({self._latest_timestamp.isoformat()}; the clock reads {now.isoformat()}); "
                "entries stay halted until the clock passes it",
            )
        return None

    def require_valid(self, now: datetime | None = None) -> None:
        problem = self.problem(now)
        if problem is not None:
            raise problem

    def as_of(self, moment: datetime) -> JournalView:
        """The journal as it was at `moment`: later entries ignored, later closes still open."""
        closed = [trade for trade in self._closed if trade.exit_timestamp is not None and trade.exit_timestamp <= moment]
        entries = {oid: record for oid, record in self._entries.items() if record.timestamp <= moment}
        open_trades = [
            record if record.outcome == "open" else record.reopened()
            for record in self._by_order.values()
            if record.timestamp <= moment and (record.outcome == "open" or (record.exit_timestamp or moment) > moment)
        ]
        return JournalView(closed_trades=closed, entries=entries, open_trades=open_trades)


@dataclass(frozen=True)
class JournalView:
    """A fixed picture of the journal (used for `--as-of` and replays)."""

    closed_trades: list[TradeRecord]
    entries: dict[str, TradeRecord]
    open_trades: list[TradeRecord]
