"""Reading the trade journal: every `logs/trades/*.jsonl`, consolidated by order id.

The consolidated journal lives in a derived SQLite index (`journal_index.py`), brought up
to date by `refresh()`: it stats the files and parses only the bytes appended since; a file
that shrank, was replaced or edited makes the index start over. Rules (SPEC §10): a closed
record supersedes an `open` one with the same `order_id`; identical duplicates collapse;
two different closes for one order are an invalid line. A torn (unterminated) last line
is ignored. The views below read the index lazily: no object per historical trade is
kept in memory.
"""

from __future__ import annotations

import bisect

import errno
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, overload

from trading_bot.clock import CLOCK_TOLERANCE
from trading_bot.durable_files import LogsLock, open_regular
from trading_bot.errors import JournalError
from trading_bot.logging.journal_index import (
    RECORD_COLUMNS,
    IndexUpdate,
    JournalIndex,
    disk_trouble,
    index_path_for,
    microseconds_of,
    moment_of,
    record_from_row,
)
from trading_bot.logging.trade_record import TradeRecord



class SessionCalendar(Protocol):
    """What placing an entry of the original bot (no recorded session) needs: its session,
    and where sessions begin and end."""

    def session_of(self, moment: datetime) -> date: ...

    def session_closes_at(self, session: date) -> datetime: ...


JOURNAL_SUFFIX = ".jsonl"


def journal_files(trades_dir: Path) -> list[Path]:
    """The journal files: `*.jsonl` directly in the folder, dot-files skipped."""
    return [Path(trades_dir) / name for name in journal_file_names(trades_dir)]


def journal_file_names(trades_dir: Path) -> list[str]:
    """The journal files' names, sorted (no path objects: a refresh lists thousands)."""
    try:
        with os.scandir(trades_dir) as entries:
            names = sorted(
                entry.name
                for entry in entries
                if entry.name.endswith(JOURNAL_SUFFIX) and not entry.name.startswith(".") and entry.is_file()
            )
    except FileNotFoundError:
        return []
    for name in names:
        if not name.isascii():  # the usual name is plain ASCII: no path is built for it
            _refuse_undecodable(trades_dir, name)
    return names


def _refuse_undecodable(trades_dir: Path, name: str) -> None:
    """A journal file whose name is not UTF-8 cannot be indexed or named in a report; its
    trades are not skipped silently, the desk is refused until the file is renamed."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(Path(trades_dir) / name).decode("utf-8", "backslashreplace")
        raise OSError(errno.EILSEQ, "file name is not valid UTF-8; rename the file", shown) from None


_HOT_FILES = 2
_FULL_REFRESH_SECONDS = 1.0
# A folder's mtime can be stamped in coarse ticks: a file created in the same tick as the
# previous scan would not change it, so a folder changed this recently is rescanned.
_MTIME_TICK_NS = 100_000_000
_BLOCK = 512
_CLOSE_ORDER = "close_pos"
_ENTRY_ORDER = "entry_seq"


@dataclass(frozen=True)
class JournalDelta:
    """What one refresh found: new entries, new closes, and whether order was disturbed.

    A rebuild (or the first look at an index) lists no records: it says `rebuilt`."""

    new_entries: list[TradeRecord] = field(default_factory=list)
    new_closes: list[TradeRecord] = field(default_factory=list)
    rebuilt: bool = False

    @property
    def changed(self) -> bool:
        return self.rebuilt or bool(self.new_entries) or bool(self.new_closes)


def _stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")


class TradeJournal:
    """The consolidated journal, read from its index and brought up to date by `refresh()`.

    `read_only` (a view `--as-of` a past moment, a copied folder) never writes a file: it
    builds the index in memory. Otherwise the index file is written only under `lock`.
    `skip_unreadable` (read-only views only) leaves out the files this process may not read
    and names them in `unreadable`: what it says is partial, and the caller must judge it so.
    """

    def __init__(
        self,
        trades_dir: Path,
        *,
        lock: LogsLock | None = None,
        read_only: bool = False,
        warn: Callable[[str], None] | None = None,
        skip_unreadable: bool = False,
    ) -> None:
        self.trades_dir = Path(trades_dir)
        self._base = os.path.join(str(self.trades_dir), "")
        self.read_only = read_only
        self.lock = lock if lock is not None else LogsLock(self.trades_dir.parent)
        self.index_path = index_path_for(self.trades_dir)
        self.warn = warn or _stderr_line
        self.generation = 0
        self._index: JournalIndex | None = None
        self._seen_epoch: str | None = None
        self._dir_mtime_ns: int | None = None
        self._scan_started_ns = 0
        self._hot: list[str] = []
        self._full_at = 0.0
        self._blocks: dict[str, tuple[int, int, list[TradeRecord]]] = {}
        self._listed: set[str] = set()
        self._listed_names: list[str] = []
        self.skip_unreadable = skip_unreadable and read_only
        # The journal files this process may not read, left out of a `skip_unreadable` view.
        self.unreadable: list[str] = []
        # A look has completed since the index was opened: until then (a first look a file
        # or the disk refused) the index holds no answer, and every question looks again.
        self._answered = False

    # ---- the index -----------------------------------------------------------------

    def _open_index(self) -> JournalIndex:
        """The index to read: the file beside the logs, or one in memory while there is
        nothing to write it for (no trades folder yet) or when only reading."""
        wanted_file = not self.read_only and (self.trades_dir.is_dir() or self.index_path.exists())
        index = self._index
        if index is not None and (index.path is not None) == wanted_file:
            return index
        if index is not None:
            index.close()
        index = JournalIndex(self.index_path if wanted_file else None, self._base, lambda text: self.warn(text))
        if wanted_file:
            with self.lock.held():
                index.open()
        else:
            index.open()
        index.begin_read()
        self._index = index
        self._answered = False
        return index

    def close(self) -> None:
        """Let go of the index file (its connection); a later refresh opens it again."""
        if self._index is not None:
            self._index.close()
            self._index = None
            self._seen_epoch = None
            self._answered = False

    def _view(self) -> JournalIndex:
        if self._index is None or not self._answered:
            self.refresh()
        assert self._index is not None
        return self._index

    # ---- reading -------------------------------------------------------------------

    def refresh(self, *, quick: bool = False) -> JournalDelta:
        """Pick up appended lines (and new files); start over if a file shrank or moved.

        `quick` (the pre-trade check) stats the folder and only the files being written
        to, so its cost does not grow with the number of journal files; a full refresh,
        which every command and every close does, is forced at least once a second.
        """
        delta = self._refresh(quick)
        self._answered = True
        return delta

    def _refresh(self, quick: bool) -> JournalDelta:
        if quick and self._hot and self._index is not None and time.monotonic() - self._full_at < _FULL_REFRESH_SECONDS:
            try:
                dir_stat = os.stat(self.trades_dir)
            except FileNotFoundError:
                dir_stat = None
            # A folder changed within a tick of the last listing may hold a file it missed.
            if (
                dir_stat is not None
                and dir_stat.st_mtime_ns == self._dir_mtime_ns
                and self._scan_started_ns - dir_stat.st_mtime_ns > _MTIME_TICK_NS
            ):
                if self._plan(self._index, self._hot, listing=False) is None:
                    return JournalDelta()
        return self._refresh_full()

    def _listing(self, index: JournalIndex) -> list[str]:
        try:
            dir_stat = os.stat(self.trades_dir)
        except FileNotFoundError:
            self._dir_mtime_ns = None
            return []
        unchanged = (
            dir_stat.st_mtime_ns == self._dir_mtime_ns
            and self._scan_started_ns - dir_stat.st_mtime_ns > _MTIME_TICK_NS
            and not index.files.keys() - self._listed
        )
        if unchanged:
            return self._listed_names
        self._scan_started_ns = time.time_ns()
        self._dir_mtime_ns = dir_stat.st_mtime_ns
        names = journal_file_names(self.trades_dir)
        if self.skip_unreadable:
            self.unreadable = [name for name in names if not os.access(self._base + name, os.R_OK)]
            names = [name for name in names if name not in self.unreadable]
        self._listed = set(names)
        self._listed_names = names
        return names

    def _plan(self, index: JournalIndex, names: list[str], *, listing: bool) -> tuple[bool, list[tuple[str, os.stat_result]]] | None:
        """What the index lacks: None when it matches the files, else (rebuild?, files to read)."""
        files = index.files
        if listing and files.keys() - set(names):
            return True, []
        plan: list[tuple[str, os.stat_result]] = []
        base = self._base
        for name in names:
            try:
                stat = os.stat(base + name)
            except FileNotFoundError:
                return True, []
            state = files.get(name)
            if state is None:
                if index.meta.problem is not None and files and name < max(files):
                    # Read in name order, its lines may hold the first problem: start over.
                    return True, []
                plan.append((name, stat))
                continue
            if stat.st_ino != state.inode or stat.st_size < state.offset:
                return True, []
            if stat.st_size == state.size and stat.st_mtime_ns == state.mtime_ns:
                continue
            if stat.st_size == state.size or index.meta.problem is not None or not _guard_intact(Path(base + name), state.head, state.guard, state.offset):
                # Rewritten in place (same size, or the bytes before the offset changed).
                return True, []
            plan.append((name, stat))
        return (False, plan) if plan else None

    def _refresh_full(self) -> JournalDelta:
        try:
            return self._refresh_index()
        except sqlite3.DatabaseError as error:
            self._raise_disk_trouble(error)
            # Damaged under our feet (not at open): start the index over, once.
            index = self._index
            assert index is not None
            with self.lock.held():
                index.replace_damaged(error)
            self._seen_epoch = None
        try:
            return self._refresh_index()
        except sqlite3.DatabaseError as error:
            self._raise_disk_trouble(error)
            raise

    def _raise_disk_trouble(self, error: sqlite3.DatabaseError) -> None:
        """A write the disk refused is an OSError naming the index, not a damaged index."""
        trouble = disk_trouble(error, self._index.path if self._index is not None else None)
        if trouble is not None:
            raise trouble from error

    def _refresh_index(self) -> JournalDelta:
        self._full_at = time.monotonic()
        index = self._open_index()
        if index.replaced_on_disk():
            with self.lock.held():
                index.reopen()
            index.begin_read()
        first_look = self._seen_epoch is None
        before = (index.meta.entries, index.meta.closes)
        names = self._listing(index)
        plan = self._plan(index, names, listing=True)
        update: IndexUpdate | None = None
        rebuilt = False
        if plan is not None:
            if index.path is None:
                update, rebuilt = self._apply(index, names, plan), plan[0]
            else:
                with self.lock.held():
                    if index.replaced_on_disk():  # another process built or replaced it meanwhile
                        index.reopen()
                    index.begin_read()  # another process may have indexed it meanwhile
                    names = self._listing(index)
                    plan = self._plan(index, names, listing=True)
                    if plan is not None:
                        update, rebuilt = self._apply(index, names, plan), plan[0]
        index.begin_read()
        self._update_hot(index)
        epoch = index.meta.epoch
        moved = epoch != self._seen_epoch
        self._seen_epoch = epoch
        if moved:
            self.generation += 1
            self._blocks.clear()
        if first_look:
            return JournalDelta(rebuilt=bool(index.meta.entries or index.meta.closes or index.meta.problem))
        if update is not None and update.fresh:
            return JournalDelta(rebuilt=True)
        if update is not None:
            return JournalDelta(new_entries=update.new_entries, new_closes=update.new_closes, rebuilt=rebuilt)
        if moved:
            return JournalDelta(rebuilt=True)
        if before != (index.meta.entries, index.meta.closes):
            return JournalDelta(new_entries=list(self.entry_log[before[0]:]), new_closes=list(self.closed_trades[before[1]:]))
        return JournalDelta()

    def _apply(self, index: JournalIndex, names: list[str], plan: tuple[bool, list[tuple[str, os.stat_result]]]) -> IndexUpdate:
        rebuild, files = plan
        if rebuild:
            files = []
            for name in names:
                try:
                    files.append((name, os.stat(self._base + name)))
                except FileNotFoundError:
                    continue
        return index.update(files, rebuild, self.trades_dir)

    def _update_hot(self, index: JournalIndex) -> None:
        """The files a quick refresh watches: the most recently modified ones."""
        newest = sorted(index.files.values(), key=lambda state: state.mtime_ns, reverse=True)
        self._hot = [state.name for state in newest[:_HOT_FILES]]

    # ---- what it knows -------------------------------------------------------------

    @property
    def epoch(self) -> str:
        """Stays the same while positions in `closed_trades` and `entry_log` keep their
        meaning (only appends happened), in every process; changes on a rebuild and when a
        close lands before the last one."""
        return self._view().meta.epoch

    @property
    def closed_trades(self) -> RecordSequence:
        """Closed trades in (exit, entry, file, line) order. Read-only."""
        return RecordSequence(self, _CLOSE_ORDER)

    @property
    def entry_log(self) -> RecordSequence:
        """Entries in the order they were read: readers sharing this journal fold from an
        index into it, whoever called `refresh`. Read-only."""
        return RecordSequence(self, _ENTRY_ORDER)

    @property
    def entries(self) -> JournalEntries:
        """The first record seen of each order that counts as an entry, by order id."""
        return JournalEntries(self)

    @property
    def lines_read(self) -> int:
        """Journal lines indexed so far, over every file (blank and invalid ones included)."""
        return sum(state.line_count for state in self._view().files.values())

    def torn_tails(self) -> dict[str, int]:
        """Files whose last line is unterminated (a crash mid-write), with its byte count."""
        index = self._view()
        return {self._base + state.name: state.torn for state in index.files.values() if state.torn}

    def open_trades(self) -> list[TradeRecord]:
        """Positions the journal holds open (a rejected order never opened one)."""
        return list(self._view().records("current = 1 AND outcome = 'open'", order="first_id"))

    def record(self, order_id: str) -> TradeRecord | None:
        return next(self._view().records("order_id = ? AND current = 1", (order_id,)), None)

    def problem(self, now: datetime | None = None) -> JournalError | None:
        """The first invalid line, or a trade dated after `now` by more than the clock
        tolerance (the caller passes the later of the clock and the desk's high-water)."""
        index = self._view()
        problem = index.problem()
        if problem is not None:
            return problem
        latest = index.meta.latest
        if now is not None and latest is not None:
            moment = moment_of(latest[0])
            if moment > now + CLOCK_TOLERANCE:
                _, name, line, field_name = latest
                return JournalError(
                    self._base + name,
                    line,
                    field_name,
                    f"is in the future ({moment.isoformat()}; now is {now.isoformat()}); "
                    "entries stay halted until the clock passes it",
                )
        return None

    def require_valid(self, now: datetime | None = None) -> None:
        problem = self.problem(now)
        if problem is not None:
            raise problem

    def as_of(self, moment: datetime) -> JournalView:
        """The journal as it was at `moment`: later entries ignored, later closes still open."""
        index = self._view()
        until = microseconds_of(moment)
        (closed,) = index.query("SELECT count(*) FROM records WHERE close_pos IS NOT NULL AND exit_us <= ?", (until,)).fetchone()
        open_trades = [
            record if record.outcome == "open" else record.reopened()
            for record in index.records(
                "current = 1 AND timestamp_us <= ? AND (outcome = 'open' OR exit_us > ?)", (until, until), order="first_id"
            )
        ]
        return JournalView(
            closed_trades=RecordSequence(self, _CLOSE_ORDER, 0, closed),
            entries=JournalEntries(self, until),
            open_trades=open_trades,
        )

    def closed_between(self, low: datetime, high: datetime, *, as_of: datetime | None = None) -> RecordSequence:
        """Closed trades with `low <= exit < high` (those closed by `as_of`, if given), in
        close order: a run of the close order, which is sorted by exit first."""
        index = self._view()

        def closes_before(moment_us: int, inclusive: bool = False) -> int:
            test = "<=" if inclusive else "<"
            sql = f"SELECT count(*) FROM records WHERE close_pos IS NOT NULL AND exit_us {test} ?"
            return int(index.query(sql, (moment_us,)).fetchone()[0])

        start = closes_before(microseconds_of(low))
        stop = closes_before(microseconds_of(high))
        if as_of is not None:
            stop = min(stop, closes_before(microseconds_of(as_of), inclusive=True))
        return RecordSequence(self, _CLOSE_ORDER, start, max(start, stop))

    def index_rows(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """A read of the index in this process's current snapshot (the one the views read),
        for aggregates that need no record per trade (`session_totals.py`)."""
        return self._view().query(sql, params)

    # ---- for the views -------------------------------------------------------------

    def _count(self, order: str) -> int:
        meta = self._view().meta
        return meta.closes if order == _CLOSE_ORDER else meta.entries

    def _at(self, order: str, position: int) -> Any:
        cached = self._blocks.get(order)
        if cached is not None and cached[0] == self.generation and 0 <= position - cached[1] < len(cached[2]):
            return cached[2][position - cached[1]]
        block = self._fetch(order, position, position + _BLOCK)
        self._blocks[order] = (self.generation, position, block)
        return block[0]

    def _fetch(self, order: str, start: int, stop: int) -> list[Any]:
        return list(self._view().records(f"{order} >= ? AND {order} < ?", (start, stop), order=order))


def _guard_intact(path: Path, head: bytes, guard: bytes, offset: int) -> bool:
    """The file's first bytes and the last bytes indexed are still where they were read (it
    was only appended to); a middle edit is left to `verify` and the summaries."""
    with open_regular(path) as handle:
        if handle.read(len(head)) != head:
            return False
        if not guard:
            return True
        handle.seek(offset - len(guard))
        return handle.read(len(guard)) == guard


@dataclass(frozen=True)
class JournalView:
    """A fixed picture of the journal (used for `--as-of` and replays)."""

    closed_trades: RecordSequence
    entries: JournalEntries
    open_trades: list[TradeRecord]


class RecordSequence(Sequence[TradeRecord]):
    """Positions [start, stop) of the close order or the entry log, read from the index a
    block at a time; without `stop` it follows the journal as it grows."""

    def __init__(self, journal: TradeJournal, order: str, start: int = 0, stop: int | None = None) -> None:
        self._journal = journal
        self._order = order
        self._start = start
        self._stop = stop

    def fact_rows(self, start: int = 0, stop: int | None = None) -> Generator[tuple[Any, ...], None, None]:
        """Positions [start, stop) of this sequence as the rules fold them: one row of
        `FACT_COLUMNS` each, in order, plain tuples read through one cursor."""
        low, high = self._bounds()
        first = min(high, low + start)
        last = high if stop is None else min(high, low + max(stop, 0))
        return self._journal._view().fact_rows(self._order, first, last)

    def _bounds(self) -> tuple[int, int]:
        total = self._journal._count(self._order)
        stop = total if self._stop is None else min(self._stop, total)
        return self._start, max(self._start, stop)

    def __len__(self) -> int:
        start, stop = self._bounds()
        return stop - start

    @overload
    def __getitem__(self, item: int) -> TradeRecord: ...

    @overload
    def __getitem__(self, item: slice) -> Sequence[TradeRecord]: ...

    def __getitem__(self, item: int | slice) -> TradeRecord | Sequence[TradeRecord]:
        if item.__class__ is int and item >= 0 and self._stop is None:
            # The common walk (`trades[i]`, i rising): straight from the cached block. A
            # position once read stays valid while the generation holds.
            cached = self._journal._blocks.get(self._order)
            position = self._start + item
            if cached is not None and cached[0] == self._journal.generation and 0 <= position - cached[1] < len(cached[2]):
                return cached[2][position - cached[1]]
        start, stop = self._bounds()
        size = stop - start
        if isinstance(item, slice):
            low, high, step = item.indices(size)
            if step != 1:
                return list(self)[item]
            return RecordSequence(self._journal, self._order, start + low, start + max(low, high))
        position = item + size if item < 0 else item
        if not 0 <= position < size:
            raise IndexError("journal position out of range")
        return self._journal._at(self._order, start + position)

    def __iter__(self) -> Iterator[TradeRecord]:
        start, stop = self._bounds()
        position = start
        while position < stop:
            block = self._journal._fetch(self._order, position, min(stop, position + 4 * _BLOCK))
            if not block:
                return
            yield from block
            position += len(block)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (RecordSequence, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordSequence({list(self)!r})"


class JournalEntries(Mapping[str, TradeRecord]):
    """The entries by order id (optionally only those entered by an instant), read from the
    index; with the aggregates the rules need, answered by a query."""

    def __init__(self, journal: TradeJournal, until_us: int | None = None) -> None:
        self._journal = journal
        self._until = until_us

    def _where(self, extra: str = "") -> tuple[str, tuple[Any, ...]]:
        where = "entry_seq IS NOT NULL"
        params: tuple[Any, ...] = ()
        if self._until is not None:
            where += " AND timestamp_us <= ?"
            params = (self._until,)
        return (where + (" AND " + extra if extra else "")), params

    def __getitem__(self, order_id: str) -> TradeRecord:
        where, params = self._where("order_id = ?")
        found = next(self._journal._view().records(where, (*params, order_id)), None)
        if found is None:
            raise KeyError(order_id)
        return found

    def __contains__(self, order_id: object) -> bool:
        if not isinstance(order_id, str):
            return False
        where, params = self._where("order_id = ?")
        return self._journal._view().query(f"SELECT 1 FROM records WHERE {where} LIMIT 1", (*params, order_id)).fetchone() is not None

    def __len__(self) -> int:
        if self._until is None:
            return self._journal._count(_ENTRY_ORDER)
        where, params = self._where()
        return self._journal._view().query(f"SELECT count(*) FROM records WHERE {where}", params).fetchone()[0]

    def __iter__(self) -> Iterator[str]:
        where, params = self._where()
        for (order_id,) in self._journal._view().query(f"SELECT order_id FROM records WHERE {where} ORDER BY entry_seq", params):
            yield order_id

    def values(self) -> Iterable[TradeRecord]:  # type: ignore[override]
        """The entry records in read order, streamed."""
        return _Streamed(self._records)

    def items(self) -> Iterable[tuple[str, TradeRecord]]:  # type: ignore[override]
        return _Streamed(lambda: ((record.order_id, record) for record in self._records()))

    def _records(self) -> Iterator[TradeRecord]:
        where, params = self._where()
        index = self._journal._view()
        sql = f"SELECT {RECORD_COLUMNS} FROM records WHERE {where} ORDER BY entry_seq"
        base = index.base
        rows = index.query(sql, params)
        while True:
            chunk = rows.fetchmany(_BLOCK)
            if not chunk:
                return
            for row in chunk:
                yield record_from_row(row, base)

    def times_between(self, low: datetime, high: datetime) -> list[datetime]:
        """The entry instants with `low <= instant < high`, in time order."""
        where, params = self._where("timestamp_us >= ? AND timestamp_us < ?")
        rows = self._journal._view().query(
            f"SELECT timestamp_us FROM records WHERE {where} ORDER BY timestamp_us",
            (*params, microseconds_of(low), microseconds_of(high)),
        )
        return [moment_of(moment_us) for (moment_us,) in rows]

    def earliest_entry(self) -> datetime | None:
        """The earliest entry instant, or None without entries."""
        where, params = self._where()
        (earliest,) = self._journal._view().query(f"SELECT min(timestamp_us) FROM records WHERE {where}", params).fetchone()
        return None if earliest is None else moment_of(earliest)

    def session_counts(self, calendar: SessionCalendar, since: datetime | None = None) -> list[tuple[date, int, datetime, datetime]]:
        """Per entry session: the entry count and the first and last entry instants."""
        extra = "" if since is None else "timestamp_us >= ?"
        where, params = self._where(extra)
        if since is not None:
            params = (*params, microseconds_of(since))
        index = self._journal._view()
        totals: dict[date, list[Any]] = {}
        for session, count, first, last in index.query(
            f"SELECT session, count(*), min(timestamp_us), max(timestamp_us) FROM records"
            f" WHERE {where} AND session IS NOT NULL GROUP BY session",
            params,
        ):
            totals[date.fromordinal(session)] = [count, first, last]
        unrecorded = [moment_us for (moment_us,) in index.query(f"SELECT timestamp_us FROM records WHERE {where} AND session IS NULL ORDER BY timestamp_us", params)]
        for session, count, first, last in _group_by_session(unrecorded, calendar):
            known = totals.get(session)
            if known is None:
                totals[session] = [count, first, last]
            else:
                known[0] += count
                known[1] = min(known[1], first)
                known[2] = max(known[2], last)
        return [(session, count, moment_of(first), moment_of(last)) for session, (count, first, last) in sorted(totals.items())]


def _group_by_session(moments_us: list[int], calendar: SessionCalendar) -> Iterator[tuple[date, int, int, int]]:
    """Sorted instants (µs) grouped by the calendar's session, as (session, count, first,
    last): one calendar question per session, not per line (a session runs from its open to
    the next trading day's open, so the run ends where that open falls)."""
    position = 0
    total = len(moments_us)
    while position < total:
        first = moments_us[position]
        session = calendar.session_of(moment_of(first))
        try:
            ends_us = microseconds_of(calendar.session_closes_at(session))
        except OverflowError:  # a session on the calendar's last day: nothing comes after it
            stop = total
        else:
            stop = bisect.bisect_left(moments_us, ends_us, position)
        yield session, stop - position, first, moments_us[stop - 1]
        position = stop


class _Streamed:
    """An iterable that starts a fresh stream each time it is iterated."""

    def __init__(self, make: Callable[[], Iterator[Any]]) -> None:
        self._make = make

    def __iter__(self) -> Iterator[Any]:
        return self._make()
