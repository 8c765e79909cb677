"""The derived index of the trade journal: one SQLite file beside the logs, never a record.

The journal files stay the only truth. The index holds per journal line only what the
rules, the reports and the bot read, plus where each file was read up to, so a start or a
command reads only the bytes appended since. Anything that does not match the files (a
file edited, replaced, shrunk or gone; an index that is not ours or is damaged) costs a
rebuild, never a wrong answer.

Who writes it: only a process holding the logs lock (`LogsLock`). With no index file yet,
the first update builds one beside it (its worker processes, if any, fill chunk files
beside that, which it copies in and deletes) and renames it into place. A read-only view
(`--as-of`, a replay of a copied folder) never opens the file: it builds the same index in
memory. Between two refreshes each process reads one snapshot (an open read transaction),
so positions into the close order and the entry log stay stable under another writer.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
import time
from collections import deque
from contextlib import closing, suppress
from glob import escape as glob_escape
from collections.abc import Callable, Generator, Iterator
from itertools import islice
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from trading_bot.durable_files import fsync_directory, open_regular, read_regular
from trading_bot.errors import JournalError
from trading_bot.input_bounds import (
    MAX_JSON_DEPTH,
    first_duplicate_key,
    json_depth_exceeds,
    may_hold_duplicate_keys,
    raw_json_may_nest_too_deep,
)
from trading_bot.logging.line_parser import keys_surely_distinct, plain_row, pnl_micros
from trading_bot.logging.trade_record import CLOSED_OUTCOMES, OPEN, REJECTED, TradeRecord, parse_trade
from trading_bot.phase.models import Phase

if TYPE_CHECKING:
    from concurrent.futures import Future

# Bump SCHEMA_VERSION when the tables change, CODE_VERSION when parsing or consolidation
# changes: an index built by other rules is rebuilt, never read.
SCHEMA_VERSION = 4
CODE_VERSION = 4
INDEX_DIR_NAME = ".derived"
INDEX_FILE_NAME = "journal.sqlite3"
GUARD_BYTES = 64
# Beside the index: how its files looked when a process last checked or closed them.
VOUCH_SUFFIX = ".vouched"
# A file modified this close to the note is checked anyway (mtime ticks are coarse).
VOUCH_SETTLE_NS = 100_000_000
# Beside the index while a first build writes it (`<name>.rebuild-<pid>`): renamed into
# place when complete; one left by a crash is removed at the next open.
BUILD_SUFFIX = ".rebuild-"
_BATCH_ROWS = 4096
# A rebuild with this much to read uses worker processes (their start-up is paid back).
PARALLEL_BYTES = 16 << 20
_CHUNK_BYTES = 2 << 20
_WORKERS = 2
_IN_FLIGHT = 4
_BUSY_TIMEOUT_MS = 30_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_PHASES = {phase.value: phase for phase in Phase}
_CLOSED = tuple(sorted(CLOSED_OUTCOMES))

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE files (
    name TEXT PRIMARY KEY, inode INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    offset INTEGER NOT NULL, line_count INTEGER NOT NULL, head BLOB NOT NULL, guard BLOB NOT NULL,
    torn INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    timestamp_us INTEGER NOT NULL, symbol TEXT NOT NULL, action TEXT NOT NULL,
    quantity INTEGER NOT NULL, price TEXT NOT NULL, order_id TEXT NOT NULL, outcome TEXT NOT NULL,
    exit_us INTEGER, net_pnl TEXT, stop_loss TEXT, target TEXT, execution_mode TEXT NOT NULL,
    phase TEXT, emergency_exit INTEGER NOT NULL, manual_override INTEGER NOT NULL, operator_id TEXT,
    session INTEGER, exit_session INTEGER, extra TEXT, file TEXT NOT NULL, line INTEGER NOT NULL,
    offset INTEGER NOT NULL, first_id INTEGER NOT NULL, entry_seq INTEGER, close_pos INTEGER,
    current INTEGER NOT NULL, pnl_micros INTEGER
);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS records_order ON records(order_id);
CREATE INDEX IF NOT EXISTS records_entry ON records(entry_seq) WHERE entry_seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_close ON records(close_pos) WHERE close_pos IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_close_key ON records(exit_us, timestamp_us, file, line) WHERE close_pos IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_entry_time ON records(timestamp_us) WHERE entry_seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_open ON records(first_id) WHERE current = 1 AND outcome = 'open';
CREATE INDEX IF NOT EXISTS records_session_totals ON records(
    exit_session, outcome, emergency_exit, manual_override, exit_us, pnl_micros, close_pos
) WHERE close_pos IS NOT NULL;
"""
_INDEX_NAMES = (
    "records_order", "records_entry", "records_close", "records_close_key", "records_entry_time", "records_open",
    "records_session_totals",
)
# The columns that make a TradeRecord, in its field order (file and line last).
RECORD_COLUMNS = (
    "timestamp_us, symbol, action, quantity, price, order_id, outcome, exit_us, net_pnl, stop_loss, "
    "target, execution_mode, phase, emergency_exit, manual_override, operator_id, session, "
    "exit_session, extra, file, line"
)
_INSERTED = ["id", *RECORD_COLUMNS.split(", "), "offset", "pnl_micros", "first_id", "entry_seq", "close_pos", "current"]
_INSERT = "INSERT INTO records (" + ", ".join(_INSERTED) + ") VALUES (" + ", ".join("?" * len(_INSERTED)) + ")"
# Positions in a row as inserted (after the id).
_R_TS, _R_EXIT, _R_FILE, _R_LINE = 1, 8, 20, 21


class IndexDamaged(Exception):
    """The index file is not one this code wrote, or SQLite finds it damaged."""


# SQLite's primary result codes for a disk or file system that refuses a write, not for a
# damaged file: replacing the index would not help, and its journal is untouched.
_DISK_TROUBLE: dict[int, int] = {
    sqlite3.SQLITE_FULL: errno.ENOSPC,
    sqlite3.SQLITE_IOERR: errno.EIO,
    sqlite3.SQLITE_NOLFS: errno.EFBIG,
    sqlite3.SQLITE_CANTOPEN: errno.EACCES,
    sqlite3.SQLITE_READONLY: errno.EACCES,
    sqlite3.SQLITE_PERM: errno.EACCES,
}


def disk_trouble(error: sqlite3.Error, path: Path | None) -> OSError | None:
    """The OSError a failed index write stands for (a full disk, an I/O error, a folder that
    cannot be written), naming the index file; None when SQLite reports anything else.
    Callers handle it like any other file that cannot be written: a command prints one line,
    the bot halts entries with the reason."""
    code = getattr(error, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_IOERR_SHORT_READ:
        # The file is shorter than SQLite expects (its write-ahead log deleted while another
        # process still writes into it): damage to rebuild from the journal, not a disk.
        return None
    number = None if code is None else _DISK_TROUBLE.get(code & 0xFF)
    if number is None:
        return None
    name = getattr(error, "sqlite_errorname", "SQLITE_ERROR")
    return OSError(number, f"the journal index cannot be written ({error}, {name}); the journal is untouched", None if path is None else str(path))


def index_path_for(trades_dir: Path) -> Path:
    """`<logs>/.derived/journal.sqlite3` for `<logs>/trades`."""
    return Path(trades_dir).parent / INDEX_DIR_NAME / INDEX_FILE_NAME


def _us(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def moment_of(us: int) -> datetime:
    """The UTC instant stored as microseconds since 1970."""
    return _EPOCH + timedelta(microseconds=us)


def microseconds_of(moment: datetime) -> int:
    """An instant as stored in the index: microseconds since 1970, UTC."""
    return _us(moment)


def record_from_row(row: tuple[Any, ...] | list[Any], base: str) -> TradeRecord:
    """A TradeRecord from the index's columns (`RECORD_COLUMNS` order)."""
    (ts, symbol, action, quantity, price, order_id, outcome, exit_us, net_pnl, stop_loss, target,
     mode, phase, emergency, manual, operator_id, session, exit_session, extra, name, line) = row
    return TradeRecord(
        _EPOCH + timedelta(microseconds=ts),
        symbol,
        action,
        quantity,
        Decimal(price),
        order_id,
        outcome,
        None if exit_us is None else _EPOCH + timedelta(microseconds=exit_us),
        None if net_pnl is None else Decimal(net_pnl),
        None if stop_loss is None else Decimal(stop_loss),
        None if target is None else Decimal(target),
        mode,
        None if phase is None else _PHASES[phase],
        bool(emergency),
        bool(manual),
        operator_id,
        None if session is None else date.fromordinal(session),
        None if exit_session is None else date.fromordinal(exit_session),
        {} if extra is None else orjson.loads(extra),
        base + name,
        line,
    )


# Rows fetched at a time by `fact_rows`: few round trips, memory that does not grow.
_FACT_BLOCK = 4096
# What the rules fold of a closed trade, in close order: entry and exit instants, net P&L,
# session ordinal, and one small integer for its flags, outcome and phase. Python shares its
# small integers, where each text column costs a new string per row: half the read's time.
# `CLOSE_KINDS[kind]` is (emergency exit, manual override, outcome, phase). A closed row
# always has one of `_CLOSED` and a phase of the ladder or none (both checked when parsed).
_KIND_PHASES: tuple[Phase | None, ...] = (None, *Phase)
FACT_COLUMNS = (
    "timestamp_us, exit_us, net_pnl, exit_session, emergency_exit + 2 * manual_override"
    + " + 4 * CASE outcome " + " ".join(f"WHEN '{outcome}' THEN {code}" for code, outcome in enumerate(_CLOSED)) + " END"
    + f" + {4 * len(_CLOSED)} * CASE WHEN phase IS NULL THEN 0 "
    + " ".join(f"WHEN phase = '{phase.value}' THEN {code}" for code, phase in enumerate(_KIND_PHASES) if phase is not None)
    + " END"
)
CLOSE_KINDS: tuple[tuple[bool, bool, str, Phase | None], ...] = tuple(
    (emergency, manual, outcome, phase)
    for phase in _KIND_PHASES
    for outcome in _CLOSED
    for manual in (False, True)
    for emergency in (False, True)
)


def row_from_record(record: TradeRecord, name: str, line: int, offset: int) -> list[Any]:
    """The index row of a parsed line (without the id and the bookkeeping columns)."""
    return [
        _us(record.timestamp),
        record.symbol,
        record.action,
        record.quantity,
        str(record.price),
        record.order_id,
        record.outcome,
        None if record.exit_timestamp is None else _us(record.exit_timestamp),
        None if record.net_pnl is None else str(record.net_pnl),
        None if record.stop_loss is None else str(record.stop_loss),
        None if record.target is None else str(record.target),
        record.execution_mode,
        None if record.phase is None else record.phase.value,
        int(record.emergency_exit),
        int(record.manual_override),
        record.operator_id,
        None if record.session is None else record.session.toordinal(),
        None if record.exit_session is None else record.exit_session.toordinal(),
        orjson.dumps(record.extra).decode() if record.extra else None,
        name,
        line,
        offset,
        None if record.net_pnl is None else pnl_micros(str(record.net_pnl)),
    ]


def parse_row(raw: bytes, name: str, display: str, line: int, offset: int) -> list[Any] | JournalError:
    """One journal line as an index row, validated exactly as SPEC §10 and §13 say, or why
    it is invalid (naming `display`, the file as the operator knows it)."""
    row = plain_row(raw, name, line, offset)
    if row is not None:
        return row
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return JournalError(display, line, "(line)", f"not valid JSON ({error.msg})")
    if raw_json_may_nest_too_deep(raw) and json_depth_exceeds(data):
        return JournalError(display, line, "(line)", f"nested deeper than {MAX_JSON_DEPTH} levels")
    # A line written exactly as orjson writes its value holds no repeated key (one would
    # have collapsed): the usual case, settled by one write instead of counting keys.
    if orjson.dumps(data) != raw and not keys_surely_distinct(raw, data) and may_hold_duplicate_keys(raw, data):
        duplicate = first_duplicate_key(raw.decode("utf-8"))
        if duplicate is not None:
            return JournalError(display, line, duplicate[0], "duplicate key (a reader sees the first, the parser would take the last)")
    try:
        record = parse_trade(data, display, line)
    except JournalError as error:
        return error
    return row_from_record(record, name, line, offset)


@dataclass
class ParsedFile:
    """The new lines of one file as rows and problems (in line order), and how far it was read."""

    name: str
    items: list[list[Any] | tuple[str, int, str, str]]
    complete: int
    torn: int
    line_count: int
    head: bytes
    guard: bytes
    # A worker's rows and problems sent back as one JSON text (orjson writes it several
    # times faster than pickle would the rows); `items` is then empty.
    packed: bytes | None = None

    def lines(self) -> list[Any]:
        """The rows and problems, in line order (a problem is a 4-item sequence)."""
        return self.items if self.packed is None else orjson.loads(self.packed)


def parse_file(path: str, name: str, display: str, offset: int, line_count: int, bulk: bool = False) -> ParsedFile:
    """Parse the complete lines of a journal file from `offset` (a torn last line is left).

    `bulk` (a rebuild into an empty index) makes each row the whole insert row (`_INSERT`
    order), its id left to the inserting process, so that process only numbers it."""
    with open_regular(path) as handle:  # swapped for a FIFO since it was listed: refused, not waited on
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n")
    complete = data[: end + 1] if end >= 0 else b""
    items: list[list[Any] | tuple[str, int, str, str]] = []
    line_no = line_count
    position = offset
    for raw in complete.split(b"\n")[:-1]:
        line_no += 1
        start = position
        position += len(raw) + 1
        if not raw.strip():
            continue
        parsed = parse_row(raw, name, display, line_no, start)
        if parsed.__class__ is list:
            if bulk:
                # id, the record, offset, micro-units, first_id, entry mark (none for an emergency exit
                # with no open), close position, current.
                entry_mark = None if parsed[13] and parsed[6] in CLOSED_OUTCOMES else 0  # type: ignore[index]
                parsed = [None, *parsed, None, entry_mark, None, 1]  # type: ignore[misc]
            items.append(parsed)  # type: ignore[arg-type]
        else:
            assert isinstance(parsed, JournalError)
            items.append((parsed.file, parsed.line, parsed.field, parsed.message))
    return ParsedFile(
        name=name,
        items=items,
        complete=len(complete),
        torn=len(data) - len(complete),
        line_count=line_no,
        head=complete[:GUARD_BYTES],
        guard=complete[-GUARD_BYTES:],
    )


def _parse_files(tasks: list[tuple[str, str, str, int, int]], bulk: bool = False) -> list[ParsedFile]:
    """A worker's share of a rebuild: several files parsed in order."""
    parsed = [parse_file(*task, bulk=bulk) for task in tasks]
    if bulk:
        for one in parsed:
            one.packed, one.items = orjson.dumps(one.items), []
    return parsed


def usable_cores() -> int:
    """The cores this process may run on (a container or `taskset` may allow fewer than the
    machine has): worker processes pay only when there are two."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


def _worker_chunks(tasks: list[tuple[str, str, str, int, int]], unread: int) -> list[list[tuple[str, str, str, int, int]]] | None:
    """The files in chunks of about `_CHUNK_BYTES` for worker processes, in reading order;
    None when the read is too small to pay their start (or there is one core or one file)."""
    if unread < PARALLEL_BYTES or usable_cores() < 2 or len(tasks) < 2:
        return None
    chunks: list[list[tuple[str, str, str, int, int]]] = [[]]
    size = 0
    for task in tasks:
        chunks[-1].append(task)
        size += os.stat(task[0]).st_size - task[3]
        if size >= _CHUNK_BYTES:
            chunks.append([])
            size = 0
    return [chunk for chunk in chunks if chunk]


def _end_with_parent() -> None:
    """In a worker process: exit as soon as the process that started it is gone. Killed
    mid-build, that process would leave its workers waiting forever for work (each holds
    both ends of the pool's pipe), holding the unfinished build file and its space."""
    from multiprocessing import parent_process
    from multiprocessing.connection import wait
    from threading import Thread

    parent = parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    Thread(target=watch, name="end-with-parent", daemon=True).start()


def _in_workers(work: Callable[..., Any], jobs: list[tuple[Any, ...]]) -> Iterator[Any]:
    """`work(*job)` for each job in worker processes, results in the order given; a few
    jobs are in flight at a time, so memory stays bounded whatever the journal's size."""
    # Imported here: worker processes cost every command 15 ms of imports otherwise, and
    # only a rebuild of more than PARALLEL_BYTES starts them.
    from concurrent.futures import ProcessPoolExecutor

    remaining = iter(jobs)
    with ProcessPoolExecutor(max_workers=_WORKERS, initializer=_end_with_parent) as pool:
        in_flight: deque[Future[Any]] = deque(pool.submit(work, *job) for job in islice(remaining, _IN_FLIGHT))
        while in_flight:
            done = in_flight.popleft().result()
            following = next(remaining, None)
            if following is not None:
                in_flight.append(pool.submit(work, *following))
            yield done


def _parsed_in_order(tasks: list[tuple[str, str, str, int, int]], unread: int, bulk: bool = False) -> Iterator[ParsedFile]:
    """The files parsed, in the order given. Above `PARALLEL_BYTES` two worker processes
    parse while this one consolidates and inserts."""
    chunks = _worker_chunks(tasks, unread)
    if chunks is None:
        for task in tasks:
            yield parse_file(*task, bulk=bulk)
        return
    for done in _in_workers(_parse_files, [(chunk, bulk) for chunk in chunks]):
        yield from done


@dataclass
class FileState:
    """How far one journal file was indexed, and what its bytes looked like there."""

    name: str
    inode: int
    size: int
    mtime_ns: int
    offset: int = 0
    line_count: int = 0
    head: bytes = b""
    guard: bytes = b""
    torn: int = 0

    def as_row(self) -> tuple[Any, ...]:
        return (self.name, self.inode, self.size, self.mtime_ns, self.offset, self.line_count, self.head, self.guard, self.torn)

    def read_through(self, parsed: ParsedFile, stat: os.stat_result) -> None:
        """Where a read of the file ended: its offset, guard and head bytes, torn tail, identity."""
        self.torn = parsed.torn
        self.offset += parsed.complete
        if parsed.complete:
            self.guard = parsed.guard
            if not self.head:
                self.head = parsed.head
        self.line_count = parsed.line_count
        self.size, self.mtime_ns, self.inode = stat.st_size, stat.st_mtime_ns, stat.st_ino


@dataclass
class IndexMeta:
    """The index's bookkeeping: counts, the last close key, the first problem, the latest instant."""

    epoch: str
    base: str
    next_id: int = 1
    entries: int = 0
    closes: int = 0
    last_close: tuple[int, int, str, int] | None = None
    problem: tuple[str, int, str, str] | None = None
    latest: tuple[int, str, int, str] | None = None

    def to_rows(self) -> list[tuple[str, Any]]:
        return [
            ("schema_version", SCHEMA_VERSION),
            ("code_version", CODE_VERSION),
            ("epoch", self.epoch),
            ("base", self.base),
            ("next_id", self.next_id),
            ("entries", self.entries),
            ("closes", self.closes),
            ("last_close", None if self.last_close is None else orjson.dumps(list(self.last_close))),
            ("problem", None if self.problem is None else orjson.dumps(list(self.problem))),
            ("latest", None if self.latest is None else orjson.dumps(list(self.latest))),
        ]

    @classmethod
    def from_rows(cls, rows: dict[str, Any]) -> IndexMeta:
        def tuple_of(value: Any) -> Any:
            return None if value is None else tuple(orjson.loads(value))

        return cls(
            epoch=rows["epoch"],
            base=rows["base"],
            next_id=rows["next_id"],
            entries=rows["entries"],
            closes=rows["closes"],
            last_close=tuple_of(rows["last_close"]),
            problem=tuple_of(rows["problem"]),
            latest=tuple_of(rows["latest"]),
        )


@dataclass
class _OrderState:
    """What consolidation needs to know about one order: its entry and its current record."""

    first_id: int
    entry_id: int | None
    entry_outcome: str | None
    current_id: int
    current_outcome: str


@dataclass
class IndexUpdate:
    """What one update added: new entries and closes (as records), and whether the close
    order was disturbed (a close inserted before the last one)."""

    new_entries: list[TradeRecord] = field(default_factory=list)
    new_closes: list[TradeRecord] = field(default_factory=list)
    reordered: bool = False
    fresh: bool = False  # read whole into an empty index: no records listed


class JournalIndex:
    """One SQLite index (a file, or `:memory:` for a read-only view) and its consolidation."""

    def __init__(self, path: Path | None, base: str, warn: Callable[[str], None]) -> None:
        self.path = path
        self.base = base
        self.warn = warn
        self.connection: sqlite3.Connection | None = None
        self.inode: int | None = None
        # Whether the last open ran SQLite's quick check (not vouched for by the previous process).
        self.structure_checked = False
        # No index file yet: an empty index in memory stands in until the first update
        # builds the file whole (beside it, then renamed into place).
        self.unbuilt = False
        self.meta = IndexMeta(epoch="", base=base)
        self.files: dict[str, FileState] = {}
        self._in_read = False
        # SQLite's `data_version` when `meta` and `files` were last loaded; None after this
        # connection wrote (its own commits do not move the number).
        self._loaded_version: int | None = None

    # ---- opening -------------------------------------------------------------------

    def open(self) -> None:
        """Open (or create) the index; one that is not ours or is damaged is replaced."""
        if self.connection is not None:
            return
        if self.path is None:
            self.connection = self._connect(":memory:")
            self._create()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stray_builds()
        if not self.path.exists():
            self._stand_in()
            return
        try:
            self.connection = self._connect(str(self.path))
            self._check()
        except (sqlite3.DatabaseError, IndexDamaged) as error:
            trouble = disk_trouble(error, self.path) if isinstance(error, sqlite3.Error) else None
            if trouble is not None:
                # A write refused at open (a full disk) says nothing of the file: it is kept,
                # unchecked, and not vouched for.
                if self.connection is not None:
                    self.connection.close()
                    self.connection = None
                raise trouble from None
            self.replace_damaged(error)
        self._stat_inode()
        self._vouch()

    def _stand_in(self) -> None:
        """An empty index in memory until the first update builds the file: no process
        ever holds a file that a build then replaces."""
        self.connection = self._connect(":memory:")
        self._create()
        self.unbuilt = True
        self.inode = None

    def _remove_stray_builds(self) -> None:
        """Files left by a build that did not finish (the caller holds the logs lock, so no
        build is running)."""
        assert self.path is not None
        for stray in self.path.parent.glob(f"{glob_escape(self.path.name)}{BUILD_SUFFIX}*"):
            with suppress(FileNotFoundError):
                stray.unlink()

    def _stat_inode(self) -> None:
        try:
            self.inode = os.stat(self.path).st_ino if self.path is not None else None
        except FileNotFoundError:
            self.inode = None

    @staticmethod
    def _connect(target: str) -> sqlite3.Connection:
        connection = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if target != ":memory:":
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
        return connection

    def _check(self) -> None:
        assert self.connection is not None
        self.structure_checked = False
        if not self._vouched_for():
            verdict = self.connection.execute("PRAGMA quick_check").fetchone()
            if verdict is None or verdict[0] != "ok":
                raise IndexDamaged("fails SQLite's quick check")
            self.structure_checked = True
        try:
            rows = dict(self.connection.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            raise IndexDamaged("has no meta table") from None
        if rows.get("schema_version") != SCHEMA_VERSION or rows.get("code_version") != CODE_VERSION:
            raise IndexDamaged(f"was written by another version (schema {rows.get('schema_version')!r}, code {rows.get('code_version')!r})")
        if rows.get("base") != self.base:
            # The logs were moved: the paths stored in messages would name the old place.
            self._begin_write()
            self._clear()
            self._commit()

    def replace_damaged(self, error: Exception) -> None:
        """Delete a damaged index file and start an empty one, saying so in one line."""
        assert self.path is not None
        self.warn(f"{self.path}: (index): {error or type(error).__name__}; rebuilding it from the journal")
        self.close()
        for suffix in ("", "-wal", "-shm", "-journal", VOUCH_SUFFIX):
            try:
                os.unlink(str(self.path) + suffix)
            except FileNotFoundError:
                pass
        self._stand_in()

    def _create(self) -> None:
        assert self.connection is not None
        self.connection.executescript(_SCHEMA + _INDEXES)
        self._begin_write()
        self._clear()
        self._commit()

    def close(self) -> None:
        if self.connection is not None:
            try:
                self._end_read()
                self.connection.close()
            finally:
                self.connection = None
                self._loaded_version = None
                self.unbuilt = False
            self._vouch()

    # ---- the structure check, skipped while the files are as a process left them -------

    def _file_states(self) -> list[list[int]]:
        """(inode, size, mtime) of the index file and its write-ahead log ([] when absent or empty)."""
        assert self.path is not None
        states: list[list[int]] = []
        for suffix in ("", "-wal"):
            try:
                found = os.stat(str(self.path) + suffix)
            except FileNotFoundError:
                states.append([])
                continue
            # An empty write-ahead log holds nothing: opening a connection creates one.
            states.append([found.st_ino, found.st_size, found.st_mtime_ns] if found.st_size or not suffix else [])
        return states

    def _vouch(self) -> None:
        """Note how the index files look now that this process checked or closed them, so
        the next open may skip SQLite's quick check (it reads the whole file: 0.1 s a
        command at 100,000 trades, ten times that at a million). Best effort: a note that
        cannot be written only costs the next open its check."""
        if self.path is None or not self.path.exists():
            return
        note = {"files": self._file_states(), "at_ns": time.time_ns()}
        target = Path(str(self.path) + VOUCH_SUFFIX)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            temporary.write_bytes(orjson.dumps(note))
            os.replace(temporary, target)
        except OSError:
            with suppress(OSError):
                temporary.unlink()

    def _vouched_for(self) -> bool:
        """The files are exactly as a process noted them after checking or closing them, and
        were last modified well before the note (so a later change could not hide in the
        same mtime tick). Anything else — no note, another size, inode or mtime — checks."""
        assert self.path is not None
        try:
            note = orjson.loads(read_regular(str(self.path) + VOUCH_SUFFIX))
            files, noted_at = note["files"], note["at_ns"]
        except (OSError, orjson.JSONDecodeError, TypeError, KeyError):
            return False
        if not isinstance(noted_at, int) or files != self._file_states():
            return False
        newest = max((state[2] for state in files if state), default=noted_at)
        return noted_at - newest >= VOUCH_SETTLE_NS

    # ---- transactions ------------------------------------------------------------

    def _begin_write(self) -> None:
        assert self.connection is not None
        self._end_read()
        self._loaded_version = None
        self.connection.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        assert self.connection is not None
        self.connection.execute("COMMIT")
        self._loaded_version = None

    def _end_read(self) -> None:
        if self._in_read and self.connection is not None:
            self.connection.execute("COMMIT")
        self._in_read = False

    def begin_read(self) -> None:
        """Start the snapshot this process reads until its next refresh, and load the bookkeeping."""
        assert self.connection is not None
        self._end_read()
        self.connection.execute("BEGIN")
        self._in_read = True
        self._load()

    def _load(self) -> None:
        """Read `meta` and `files`, unless no connection committed anything since the last load:
        2,520 files cost a few milliseconds a load, and a command looks several times."""
        assert self.connection is not None
        version = self.connection.execute("PRAGMA data_version").fetchone()[0]
        if version == self._loaded_version:
            return
        self._loaded_version = version
        rows = dict(self.connection.execute("SELECT key, value FROM meta").fetchall())
        self.meta = IndexMeta.from_rows(rows)
        self.files = {
            row[0]: FileState(*row)
            for row in self.connection.execute(
                "SELECT name, inode, size, mtime_ns, offset, line_count, head, guard, torn FROM files"
            )
        }

    def replaced_on_disk(self) -> bool:
        """Another process deleted and recreated the index file (or removed it), or built
        it while this one held none yet."""
        if self.path is None:
            return False
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return not self.unbuilt
        return self.unbuilt or inode != self.inode

    def reopen(self) -> None:
        self.close()
        self.open()

    def _clear(self) -> None:
        """Empty the index with a new epoch (inside a write transaction)."""
        assert self.connection is not None
        self.connection.execute("DELETE FROM records")
        self.connection.execute("DELETE FROM files")
        self.meta = IndexMeta(epoch=secrets.token_hex(8), base=self.base)
        self.files = {}
        self.connection.execute("DELETE FROM meta")
        self.connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", self.meta.to_rows())

    # ---- writing -------------------------------------------------------------------

    def update(self, plan: list[tuple[str, os.stat_result]], rebuild: bool, trades_dir: Path) -> IndexUpdate:
        """Index the planned files (each from its recorded offset) in one write transaction.

        `rebuild` empties the index first (new epoch) and reads every planned file whole.
        """
        assert self.connection is not None
        if self.unbuilt:
            return self._build_file(plan, trades_dir)
        self._begin_write()
        try:
            if rebuild:
                self._clear()
            else:
                self._load()
            # Nothing indexed yet reads like a rebuild: no lookups, closes numbered at the end.
            fresh = rebuild or (self.meta.next_id == 1 and self.meta.problem is None and not self.files)
            if fresh:
                self._drop_search_indexes()
                result = _BulkLoad(self).run(plan, trades_dir)
            else:
                writer = _Writer(self)
                tasks = [writer.file_task(trades_dir, name, stat) for name, stat in plan]
                unread = sum(stat.st_size - task[3] for task, (_, stat) in zip(tasks, plan))
                stats = dict(plan)
                for parsed in _parsed_in_order(tasks, unread):
                    writer.absorb(parsed, stats[parsed.name])
                writer.finish()
                result = writer.result
            self.connection.execute("DELETE FROM meta")
            self.connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", self.meta.to_rows())
            self._commit()
        except BaseException:
            if self.connection.in_transaction:  # SQLite ended it itself after a failed write to disk
                self.connection.execute("ROLLBACK")
            self._forget_unwritten()
            raise
        return result

    def _forget_unwritten(self) -> None:
        """After a failed write: the bookkeeping read again from what the index holds, so no
        later look takes the lines that were not written as indexed (it would answer without
        them). A file that cannot be read either is left to the caller's damage handling."""
        self._loaded_version = None
        with suppress(sqlite3.Error):
            self._load()

    def _build_file(self, plan: list[tuple[str, os.stat_result]], trades_dir: Path) -> IndexUpdate:
        """The first build: the whole journal into a new file beside the index, written
        without a journal (a crash leaves only a stray file, removed at the next open),
        made durable, then renamed into place and opened as every process opens it."""
        assert self.path is not None and self.connection is not None
        building = Path(f"{self.path}{BUILD_SUFFIX}{os.getpid()}")
        with suppress(FileNotFoundError):
            building.unlink()
        stand_in = self.connection
        self._end_read()
        self.connection = sqlite3.connect(str(building), isolation_level=None, check_same_thread=False)
        try:
            self.connection.execute("PRAGMA journal_mode = OFF")
            self.connection.execute("PRAGMA synchronous = OFF")
            self.connection.executescript(_SCHEMA)
            self.connection.execute("BEGIN")
            self._clear()
            result = _BulkLoad(self).run(plan, trades_dir, parts_beside=building)
            self.connection.execute("DELETE FROM meta")
            self.connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", self.meta.to_rows())
            self.connection.execute("COMMIT")
            # Readers and later writers share it in WAL mode; the mode is written in the file.
            self.connection.execute("PRAGMA journal_mode = WAL")
            self.connection.close()
            with open(building, "rb") as handle:
                os.fsync(handle.fileno())
            for suffix in ("-wal", "-shm", "-journal"):
                with suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            os.replace(building, self.path)
            fsync_directory(self.path.parent)
        except BaseException:
            with suppress(sqlite3.Error):
                self.connection.close()
            for left in (building, *building.parent.glob(f"{glob_escape(building.name)}.part-*")):
                with suppress(FileNotFoundError):
                    left.unlink()
            self.connection = stand_in
            self._forget_unwritten()
            raise
        stand_in.close()
        self.connection = self._connect(str(self.path))
        self.unbuilt = False
        self._loaded_version = None
        self._stat_inode()
        self._vouch()
        return result

    def _drop_search_indexes(self) -> None:
        assert self.connection is not None
        for name in _INDEX_NAMES:
            self.connection.execute(f"DROP INDEX IF EXISTS {name}")

    def _create_search_indexes(self) -> None:
        assert self.connection is not None
        for statement in _INDEXES.split(";"):
            if statement.strip():
                self.connection.execute(statement)

    def _number_entries(self) -> None:
        """Entry positions 0.. in the order entries were read, for rows marked as entries;
        only rows whose number moves are written."""
        assert self.connection is not None
        self.connection.execute(
            "UPDATE records SET entry_seq = ranked.pos FROM ("
            " SELECT id, row_number() OVER (ORDER BY id) - 1 AS pos FROM records WHERE entry_seq IS NOT NULL) AS ranked"
            " WHERE records.id = ranked.id AND records.entry_seq IS NOT ranked.pos"
        )

    def _number_closes(self) -> None:
        """After a rebuild: positions in (exit, entry, file, line) order for current closes."""
        assert self.connection is not None
        self.connection.execute(
            "UPDATE records SET close_pos = ranked.pos FROM ("
            " SELECT id, row_number() OVER (ORDER BY exit_us, timestamp_us, file, line) - 1 AS pos"
            f" FROM records WHERE current = 1 AND outcome IN {_CLOSED!r}) AS ranked"
            " WHERE records.id = ranked.id"
        )
        last = self.connection.execute(
            f"SELECT count(*), max(close_pos) FROM records WHERE current = 1 AND outcome IN {_CLOSED!r}"
        ).fetchone()
        self.meta.closes = last[0]
        if last[0]:
            key = self.connection.execute(
                "SELECT exit_us, timestamp_us, file, line FROM records WHERE close_pos = ?", (last[1],)
            ).fetchone()
            self.meta.last_close = tuple(key)
        else:
            self.meta.last_close = None

    # ---- reading -------------------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        assert self.connection is not None
        return self.connection.execute(sql, params)

    def records(self, where: str, params: tuple[Any, ...] = (), order: str = "id", limit: int | None = None) -> Iterator[TradeRecord]:
        sql = f"SELECT {RECORD_COLUMNS} FROM records WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        base = self.base
        for row in self.query(sql, params):
            yield record_from_row(row, base)

    def fact_rows(self, order: str, start: int, stop: int) -> Generator[tuple[Any, ...], None, None]:
        """Positions [start, stop) of `order`, one row each (`FACT_COLUMNS`), as the tuples
        SQLite returns, a block at a time from one cursor."""
        cursor = self.query(f"SELECT {FACT_COLUMNS} FROM records WHERE {order} >= ? AND {order} < ? ORDER BY {order}", (start, stop))
        try:
            while block := cursor.fetchmany(_FACT_BLOCK):
                yield from block
        finally:
            cursor.close()

    def problem(self) -> JournalError | None:
        if self.meta.problem is None:
            return None
        name, line, field_name, message = self.meta.problem
        return JournalError(self.base + name, line, field_name, message)


class _Writer:
    """Reads the lines appended to a journal into an index that holds its earlier lines,
    one at a time, applying the consolidation rules of SPEC §10 (an empty index is filled
    by `_BulkLoad`, which applies the same rules to the whole journal at once)."""

    def __init__(self, index: JournalIndex) -> None:
        self.index = index
        self.connection = index.connection
        self.meta = index.meta
        self.base = index.base
        self.states: dict[str, _OrderState] = {}
        self.pending: dict[int, list[Any]] = {}
        self.demoted: list[int] = []
        self.result = IndexUpdate()

    def file_task(self, trades_dir: Path, name: str, stat: os.stat_result) -> tuple[str, str, str, int, int]:
        """What `parse_file` needs to read this file's new bytes."""
        state = self.index.files.get(name)
        if state is None:
            state = FileState(name=name, inode=stat.st_ino, size=0, mtime_ns=0)
            self.index.files[name] = state
        return (str(Path(trades_dir) / name), name, self.base + name, state.offset, state.line_count)

    def absorb(self, parsed: ParsedFile, stat: os.stat_result) -> None:
        """Consolidate one file's new lines and record how far it was read."""
        for item in parsed.items:
            if item.__class__ is list:
                self.take(item)  # type: ignore[arg-type]
            else:
                self._note_problem(JournalError(*item))
        state = self.index.files[parsed.name]
        state.read_through(parsed, stat)
        assert self.connection is not None
        self.connection.execute(
            "INSERT OR REPLACE INTO files (name, inode, size, mtime_ns, offset, line_count, head, guard, torn)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            state.as_row(),
        )

    def _note_problem(self, problem: JournalError) -> None:
        if self.meta.problem is None:
            assert problem.file.startswith(self.base)
            self.meta.problem = (problem.file[len(self.base):], problem.line, problem.field, problem.message)

    # ---- consolidation -------------------------------------------------------------

    def _state(self, order_id: str) -> _OrderState | None:
        state = self.states.get(order_id)
        if state is not None:
            return state
        assert self.connection is not None
        rows = self.connection.execute(
            "SELECT id, outcome, entry_seq IS NOT NULL, current, first_id FROM records WHERE order_id = ?", (order_id,)
        ).fetchall()
        if not rows:
            return None
        entry = next((row for row in rows if row[2]), None)
        current = next(row for row in rows if row[3])
        state = _OrderState(
            first_id=current[4],
            entry_id=None if entry is None else entry[0],
            entry_outcome=None if entry is None else entry[1],
            current_id=current[0],
            current_outcome=current[1],
        )
        self.states[order_id] = state
        return state

    def _stored(self, record_id: int) -> TradeRecord:
        row = self.pending.get(record_id)
        if row is not None:
            return record_from_row(row[1:22], self.base)
        assert self.connection is not None
        stored = self.connection.execute(f"SELECT {RECORD_COLUMNS} FROM records WHERE id = ?", (record_id,)).fetchone()
        return record_from_row(stored, self.base)

    def _new_row(self, parsed: list[Any], first_id: int | None) -> list[Any]:
        meta = self.meta
        record_id = meta.next_id
        meta.next_id += 1
        row = [record_id, *parsed, record_id if first_id is None else first_id, None, None, 0]
        self.pending[record_id] = row
        return row

    def _record(self, parsed: list[Any]) -> TradeRecord:
        return record_from_row(parsed[:21], self.base)

    def take(self, parsed: list[Any]) -> None:
        """Consolidate one valid line (an index row as parsed) per SPEC §10."""
        meta = self.meta
        entry_us, exit_us, outcome, order_id = parsed[0], parsed[7], parsed[6], parsed[5]
        latest_us = entry_us if exit_us is None else exit_us
        if meta.latest is None or latest_us > meta.latest[0]:
            meta.latest = (latest_us, parsed[19], parsed[20], "timestamp" if exit_us is None else "exit_timestamp")
        previous = self.states.get(order_id)
        if previous is None:
            previous = self._state(order_id)
        is_closed = outcome in CLOSED_OUTCOMES
        if previous is None:
            # The first record of an order: its entry (unless an emergency exit with no
            # open) and its current record.
            row = self._new_row(parsed, None)
            record_id = row[0]
            row[-1] = 1
            becomes_entry = not (parsed[13] and is_closed)
            if becomes_entry:
                row[-3] = meta.entries
                meta.entries += 1
                self.result.new_entries.append(self._record(parsed))
            self.states[order_id] = _OrderState(
                record_id, record_id if becomes_entry else None, outcome if becomes_entry else None, record_id, outcome
            )
            if is_closed:
                self._add_closed(row, parsed)
            if len(self.pending) >= _BATCH_ROWS:
                self._flush()
            return
        self._take_known(parsed, previous, outcome, is_closed)
        if len(self.pending) >= _BATCH_ROWS:
            self._flush()

    def _repeat_must_match(
        self, earlier_id: int, parsed: list[Any], display: str, line: int, field: str, says: Callable[[str], str]
    ) -> None:
        """A repeated terminal record is harmless only as an exact copy of the one held;
        otherwise it is an invalid line naming where the first one is."""
        earlier = self._stored(earlier_id)
        if not earlier.same_content(self._record(parsed)):
            self._note_problem(JournalError(display, line, field, says(f"{earlier.file}:{earlier.line}")))

    def _take_known(self, parsed: list[Any], previous: _OrderState, outcome: str, is_closed: bool) -> None:
        """A further record of an order already seen."""
        meta = self.meta
        order_id, line = parsed[5], parsed[20]
        display = self.base + parsed[19]
        row: list[Any] | None = None
        if previous.entry_id is None:
            row = self._new_row(parsed, previous.first_id)
            row[-3] = meta.entries
            meta.entries += 1
            previous.entry_id = row[0]
            previous.entry_outcome = outcome
            self.result.new_entries.append(self._record(parsed))
        if outcome == OPEN:
            entry_id = previous.entry_id
            if previous.entry_outcome != OPEN or not self._stored(entry_id).same_content(self._record(parsed)):
                where = self._stored(entry_id)
                self._note_problem(
                    JournalError(
                        display,
                        line,
                        "order_id",
                        f"a second, different open record for order {order_id!r} (first recorded at {where.file}:{where.line})",
                    )
                )
            return
        if outcome == REJECTED or previous.current_outcome == REJECTED:
            if previous.current_outcome == OPEN:
                self._make_current(previous, row or self._new_row(parsed, previous.first_id), outcome)
            else:
                self._repeat_must_match(
                    previous.current_id, parsed, display, line, "outcome",
                    lambda at: f"order {order_id!r} is both rejected by the broker and closed (see {at})",
                )
            return
        if previous.current_outcome in CLOSED_OUTCOMES and is_closed:
            self._repeat_must_match(
                previous.current_id, parsed, display, line, "order_id",
                lambda at: f"a second, different close for order {order_id!r} (first closed at {at})",
            )
            return
        if is_closed:
            row = row or self._new_row(parsed, previous.first_id)
            self._make_current(previous, row, outcome)
            self._add_closed(row, parsed)

    def _make_current(self, state: _OrderState, row: list[Any], outcome: str) -> None:
        old = self.pending.get(state.current_id)
        if old is not None:
            old[-1] = 0
        else:
            self.demoted.append(state.current_id)
        row[-1] = 1
        state.current_id = row[0]
        state.current_outcome = outcome

    def _add_closed(self, row: list[Any], parsed: list[Any]) -> None:
        meta = self.meta
        key = (row[_R_EXIT], row[_R_TS], row[_R_FILE], row[_R_LINE])
        if meta.last_close is None or key >= tuple(meta.last_close):
            row[-2] = meta.closes
            meta.last_close = key
        else:
            self.pending.pop(row[0])
            self._flush()
            self.pending[row[0]] = row
            assert self.connection is not None
            (before,) = self.connection.execute(
                "SELECT count(*) FROM records WHERE close_pos IS NOT NULL AND (exit_us, timestamp_us, file, line) <= (?, ?, ?, ?)",
                key,
            ).fetchone()
            self.connection.execute("UPDATE records SET close_pos = close_pos + 1 WHERE close_pos >= ?", (before,))
            row[-2] = before
            self.result.reordered = True
            meta.epoch = secrets.token_hex(8)  # positions in the close order moved
        meta.closes += 1
        self.result.new_closes.append(self._record(parsed))

    def _flush(self) -> None:
        assert self.connection is not None
        if self.pending:
            self.connection.executemany(_INSERT, self.pending.values())
            self.pending = {}
        if self.demoted:
            self.connection.executemany("UPDATE records SET current = 0 WHERE id = ?", ((i,) for i in self.demoted))
            self.demoted = []

    def finish(self) -> None:
        self._flush()


# Positions in a bulk row (`_INSERT` order).
_B_ID, _B_TS, _B_ORDER, _B_OUTCOME, _B_EXIT, _B_EMERGENCY, _B_FILE, _B_LINE = 0, 1, 6, 7, 8, 14, 20, 21
_B_FIRST, _B_ENTRY, _B_CLOSE = 24, 25, 26
_BULK_BATCH = 8192
# What a rebuild's worker stores: the records table alone, filled in reading order.
_PART_TABLE = _SCHEMA[_SCHEMA.index("CREATE TABLE records"):]
# A worker's rows into the index, at the offsets of the rows, entries and closes before them.
_MERGE_PART = (
    "INSERT INTO main.records (" + ", ".join(_INSERTED) + ") SELECT "
    + ", ".join({"id": "id + ?1", "first_id": "first_id + ?1", "entry_seq": "entry_seq + ?2", "close_pos": "close_pos + ?3"}.get(column, column)
                for column in _INSERTED)
    + " FROM part.records ORDER BY id"
)


class _Tally:
    """Numbers bulk rows in reading order as the index stores them: ids, entry positions,
    close positions while the closes come in close order (a journal written by the bot
    appends each close after the ones before it), the latest instant and the first
    invalid line. A worker tallies its chunk from zero; the loading process `absorb`s it
    at offsets, with the same result as tallying every row itself."""

    __slots__ = ("next_id", "entries", "closes", "first_close", "last_close", "in_order", "latest", "problem")

    def __init__(
        self, next_id: int = 1, entries: int = 0, closes: int = 0,
        last_close: tuple[int, int, str, int] | None = None, latest: tuple[int, str, int, str] | None = None,
    ) -> None:
        self.next_id = next_id
        self.entries = entries
        self.closes = closes
        # The first close this tally read itself: `absorb` compares a chunk's with the closes before it.
        self.first_close: tuple[int, int, str, int] | None = None
        self.last_close = last_close
        self.in_order = True
        self.latest = latest
        # The first invalid line: (id of the next row, its problem as parsed).
        self.problem: tuple[int, list[Any]] | None = None

    def take(self, items: list[Any]) -> list[list[Any]]:
        """Number one file's parsed lines; the valid ones, as insert rows."""
        rows = []
        next_id, entries, closes, last_close, latest = self.next_id, self.entries, self.closes, self.last_close, self.latest
        latest_us = 0 if latest is None else latest[0]
        closed = CLOSED_OUTCOMES
        for item in items:
            if len(item) == 4:
                if self.problem is None:
                    self.problem = (next_id, item)
                continue
            item[_B_ID] = item[_B_FIRST] = next_id
            next_id += 1
            if item[_B_ENTRY] is not None:
                item[_B_ENTRY] = entries
                entries += 1
            exit_us = item[_B_EXIT]
            if item[_B_OUTCOME] in closed:
                key = (exit_us, item[_B_TS], item[_B_FILE], item[_B_LINE])
                if self.first_close is None:
                    self.first_close = key
                if self.in_order:
                    if last_close is None or key > last_close:
                        item[_B_CLOSE] = closes
                        closes += 1
                        last_close = key
                    else:
                        self.in_order = False
            moment = item[_B_TS] if exit_us is None else exit_us
            if latest is None or moment > latest_us:
                latest_us = moment
                latest = (moment, item[_B_FILE], item[_B_LINE], "timestamp" if exit_us is None else "exit_timestamp")
            rows.append(item)
        self.next_id, self.entries, self.closes, self.last_close, self.latest = next_id, entries, closes, last_close, latest
        return rows

    def absorb(self, part: _Tally) -> tuple[int, int, int]:
        """Follow these rows with a chunk tallied from zero; the offsets of its ids, entry
        positions and close positions."""
        offsets = (self.next_id - 1, self.entries, self.closes)
        if part.problem is not None and self.problem is None:
            self.problem = (part.problem[0] + offsets[0], part.problem[1])
        if part.latest is not None and (self.latest is None or part.latest[0] > self.latest[0]):
            self.latest = part.latest
        if self.in_order:
            if not part.in_order or (part.first_close is not None and self.last_close is not None and part.first_close <= self.last_close):
                self.in_order = False
            elif part.last_close is not None:
                self.last_close = part.last_close
                self.closes += part.closes
        self.next_id += part.next_id - 1
        self.entries += part.entries
        return offsets


def _build_part(tasks: list[tuple[str, str, str, int, int]], path: str) -> tuple[list[ParsedFile], _Tally]:
    """A worker's share of a first build: its files parsed, numbered from zero and stored in
    a file of their own, which the building process then copies in at its offsets (SQLite
    copies rows several times faster than this process could hand them over)."""
    tally = _Tally()
    parsed_files = []
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        connection.executescript(_PART_TABLE)
        connection.execute("BEGIN")
        for task in tasks:
            parsed = parse_file(*task, bulk=True)
            connection.executemany(_INSERT, tally.take(parsed.items))
            parsed.items = []
            parsed_files.append(parsed)
        connection.execute("COMMIT")
    finally:
        connection.close()
    return parsed_files, tally


class _BulkLoad:
    """A rebuild into an empty index: every valid line goes in as its own order's current
    record (parsed into insert rows by the workers, numbered here), then the orders with
    more than one line are settled by the same rules as `_Writer`, in SQL where it is
    plain (an open followed by its close) and by replaying the rest in Python.

    No Python object is kept per order, so memory does not grow with the journal; the
    whole load is one write transaction, so a crash leaves the previous index intact."""

    def __init__(self, index: JournalIndex) -> None:
        self.index = index
        assert index.connection is not None
        self.connection = index.connection
        self.meta = index.meta
        self.base = index.base
        # The first invalid line and the first repeated record breaking a rule, each with
        # its place in the reading order: (id of the next row, 0) before a row, (id, 1) at one.
        self.parse_problem: tuple[tuple[int, int], tuple[str, int, str, str]] | None = None
        self.order_problem: tuple[tuple[int, int], tuple[str, int, str, str]] | None = None
        # Closes are numbered as they are read while they come in close order, and all at
        # the end otherwise, or when settling an order took a close out of the order.
        self.closes_in_order = True

    def run(self, plan: list[tuple[str, os.stat_result]], trades_dir: Path, parts_beside: Path | None = None) -> IndexUpdate:
        """Load the planned files whole. `parts_beside` (a file being built that no process
        can see yet) lets worker processes store their rows in files named after it."""
        files = self.index.files
        tasks = []
        for name, stat in plan:
            state = files.get(name)
            if state is None:
                state = files[name] = FileState(name=name, inode=stat.st_ino, size=0, mtime_ns=0)
            tasks.append((str(Path(trades_dir) / name), name, self.base + name, state.offset, state.line_count))
        unread = sum(stat.st_size - task[3] for task, (_, stat) in zip(tasks, plan))
        stats = dict(plan)
        meta = self.meta
        tally = _Tally(meta.next_id, meta.entries, meta.closes, meta.last_close, meta.latest)
        chunks = _worker_chunks(tasks, unread) if parts_beside is not None else None
        if chunks is None or parts_beside is None:
            self._load(_parsed_in_order(tasks, unread, bulk=True), stats, tally)
        else:
            self._load_parts(chunks, parts_beside, stats, tally)
        meta.next_id, meta.entries, meta.closes, meta.last_close, meta.latest = (
            tally.next_id, tally.entries, tally.closes, tally.last_close, tally.latest
        )
        self.closes_in_order = tally.in_order
        if tally.problem is not None:
            next_id, (display, line, field_name, message) = tally.problem
            self.parse_problem = ((next_id, 0), (display[len(self.base):], line, field_name, message))
        repeated = self._settle_repeated_orders()
        if repeated:
            self.index._number_entries()
            (self.meta.entries,) = self.connection.execute("SELECT count(*) FROM records WHERE entry_seq IS NOT NULL").fetchone()
        if not self.closes_in_order:
            self.connection.execute("UPDATE records SET close_pos = NULL WHERE close_pos IS NOT NULL")
            self.index._number_closes()
        self.index._create_search_indexes()
        found = [found for found in (self.parse_problem, self.order_problem) if found is not None]
        if found and self.meta.problem is None:
            self.meta.problem = min(found)[1]
        return IndexUpdate(fresh=True)

    def _load(self, parsed_files: Iterator[ParsedFile], stats: dict[str, os.stat_result], tally: _Tally) -> None:
        """Insert every valid line in reading order, numbered by `tally`, and note how far
        each file was read."""
        connection = self.connection
        batch: list[list[Any]] = []
        file_rows = []
        for parsed in parsed_files:
            batch.extend(tally.take(parsed.lines()))
            if len(batch) >= _BULK_BATCH:
                connection.executemany(_INSERT, batch)
                batch = []
            file_rows.append(self._read_through(parsed, stats))
        if batch:
            connection.executemany(_INSERT, batch)
        self._note_files(file_rows)

    def _load_parts(
        self, chunks: list[list[tuple[str, str, str, int, int]]], beside: Path, stats: dict[str, os.stat_result], tally: _Tally
    ) -> None:
        """Worker processes parse the chunks and store their rows in files beside the index
        being built; each is copied in at its offsets in reading order, then removed. The
        copy runs between transactions (SQLite attaches no file inside one): this is only
        done to a file no other process sees until it is complete."""
        connection = self.connection
        jobs = [(chunk, f"{beside}.part-{number}") for number, chunk in enumerate(chunks)]
        file_rows = []
        with closing(_in_workers(_build_part, jobs)) as built:
            for (parsed_files, part), (_, path) in zip(built, jobs):
                offsets = tally.absorb(part)
                was_open = connection.in_transaction
                if was_open:
                    connection.execute("COMMIT")
                connection.execute("ATTACH DATABASE ? AS part", (path,))
                try:
                    connection.execute(_MERGE_PART, offsets)
                finally:
                    connection.execute("DETACH DATABASE part")
                    os.unlink(path)
                if was_open:
                    connection.execute("BEGIN")
                file_rows.extend(self._read_through(parsed, stats) for parsed in parsed_files)
        self._note_files(file_rows)

    def _read_through(self, parsed: ParsedFile, stats: dict[str, os.stat_result]) -> tuple[Any, ...]:
        state = self.index.files[parsed.name]
        state.read_through(parsed, stats[parsed.name])
        return state.as_row()

    def _note_files(self, file_rows: list[tuple[Any, ...]]) -> None:
        self.connection.executemany(
            "INSERT OR REPLACE INTO files (name, inode, size, mtime_ns, offset, line_count, head, guard, torn)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            file_rows,
        )

    def _settle_repeated_orders(self) -> bool:
        """Apply SPEC §10's rules to the orders read more than once; whether there were any."""
        connection = self.connection
        connection.execute("CREATE INDEX records_order ON records(order_id)")
        for table in ("repeated", "pairs", "replay"):
            connection.execute(f"DROP TABLE IF EXISTS temp.{table}")
        connection.execute(
            "CREATE TEMP TABLE repeated AS SELECT order_id, min(id) AS first, max(id) AS last, count(*) AS lines"
            " FROM records GROUP BY order_id HAVING count(*) > 1"
        )
        (any_repeated,) = connection.execute("SELECT EXISTS (SELECT 1 FROM temp.repeated)").fetchone()
        if not any_repeated:
            connection.execute("DROP TABLE temp.repeated")
            return False
        # The usual pair: an open, then its close (or the broker's rejection). The close
        # becomes current, the open stays the entry; nothing to compare.
        pairs = (
            "SELECT first, last FROM temp.repeated WHERE lines = 2"
            " AND (SELECT outcome FROM records WHERE id = first) = 'open'"
            " AND (SELECT outcome FROM records WHERE id = last) != 'open'"
        )
        connection.execute(f"CREATE TEMP TABLE pairs AS {pairs}")
        connection.execute("UPDATE records SET current = 0 WHERE id IN (SELECT first FROM temp.pairs)")
        connection.execute(
            "UPDATE records SET entry_seq = NULL, first_id = pairs.first FROM temp.pairs WHERE records.id = pairs.last"
        )
        connection.execute("DELETE FROM temp.repeated WHERE first IN (SELECT first FROM temp.pairs)")
        connection.execute("DROP TABLE temp.pairs")
        self._replay_the_rest()
        connection.execute("DROP TABLE temp.repeated")
        return True

    def _replay_the_rest(self) -> None:
        """Orders with any other mix of lines: replayed one by one, as `_Writer` takes them."""
        connection = self.connection
        connection.execute(
            f"CREATE TEMP TABLE replay AS SELECT records.id, {RECORD_COLUMNS} FROM records"
            " JOIN temp.repeated USING (order_id) ORDER BY records.order_id, records.id"
        )
        changes: list[tuple[int, int | None, int, int]] = []
        dropped: list[tuple[int]] = []
        group: list[tuple[Any, ...]] = []
        for row in connection.execute("SELECT * FROM temp.replay ORDER BY rowid"):
            if group and group[0][6] != row[6]:
                self._settle(group, changes, dropped)
                group = []
            group.append(row)
            if len(changes) + len(dropped) >= _BULK_BATCH:
                self._write(changes, dropped)
        if group:
            self._settle(group, changes, dropped)
        self._write(changes, dropped)
        connection.execute("DROP TABLE temp.replay")

    def _write(self, changes: list[tuple[int, int | None, int, int]], dropped: list[tuple[int]]) -> None:
        self.connection.executemany("UPDATE records SET first_id = ?, entry_seq = ?, current = ? WHERE id = ?", changes)
        self.connection.executemany("DELETE FROM records WHERE id = ?", dropped)
        changes.clear()
        dropped.clear()

    def _settle(self, rows: list[tuple[Any, ...]], changes: list[tuple[int, int | None, int, int]], dropped: list[tuple[int]]) -> None:
        """One order's lines (id first, then `RECORD_COLUMNS`), in reading order: which
        stay, which is its entry and which its current record, and the first broken rule."""
        base = self.base
        first = rows[0]
        first_id = first[0]
        is_entry = {first_id: not (first[14] and first[7] in CLOSED_OUTCOMES)}
        entry = first if is_entry[first_id] else None
        current = first
        kept = [first]
        for row in rows[1:]:
            record_id, outcome, order_id = row[0], row[7], row[6]
            created = False
            if entry is None:
                entry = row
                is_entry[record_id] = True
                kept.append(row)
                created = True
            if outcome == OPEN:
                if entry[7] != OPEN or not self._same(entry, row):
                    at = f"{base}{entry[20]}:{entry[21]}"
                    self._note(row, "order_id", f"a second, different open record for order {order_id!r} (first recorded at {at})")
                continue
            if outcome == REJECTED or current[7] == REJECTED:
                if current[7] == OPEN:
                    current = row
                    if not created:
                        kept.append(row)
                elif not self._same(current, row):
                    at = f"{base}{current[20]}:{current[21]}"
                    self._note(row, "outcome", f"order {order_id!r} is both rejected by the broker and closed (see {at})")
                continue
            if current[7] in CLOSED_OUTCOMES and outcome in CLOSED_OUTCOMES:
                if not self._same(current, row):
                    at = f"{base}{current[20]}:{current[21]}"
                    self._note(row, "order_id", f"a second, different close for order {order_id!r} (first closed at {at})")
                continue
            if outcome in CLOSED_OUTCOMES:
                current = row
                if not created:
                    kept.append(row)
        kept_ids = {row[0] for row in kept}
        for row in rows:
            record_id = row[0]
            if row is not current and row[7] in CLOSED_OUTCOMES:
                self.closes_in_order = False  # a close read as current is not one
            if record_id not in kept_ids:
                dropped.append((record_id,))
            else:
                changes.append((first_id, 0 if is_entry.get(record_id) else None, int(row is current), record_id))

    def _same(self, earlier: tuple[Any, ...], later: tuple[Any, ...]) -> bool:
        return record_from_row(earlier[1:], self.base).same_content(record_from_row(later[1:], self.base))

    def _note(self, row: tuple[Any, ...], field_name: str, message: str) -> None:
        key = (row[0], 1)
        if self.order_problem is None or key < self.order_problem[0]:
            self.order_problem = (key, (row[20], row[21], field_name, message))
