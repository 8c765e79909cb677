"""Appending trades to the journal: one JSON line per record, fsync'd, under the logs lock."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import orjson

from trading_bot.durable_files import LogsLock, append_durably, atomic_write_bytes, fsync_directory, open_regular, read_regular
from trading_bot.errors import JournalError
from trading_bot.high_water import HighWater
from trading_bot.logging.query_helper import journal_file_names
from trading_bot.logging.trade_record import OPEN, TradeRecord, parse_trade


_TAIL_BYTES = 65536


def last_written_at(path: Path) -> datetime | None:
    """When the last complete line of a journal file was written, if it reads as a trade."""
    try:
        with open_regular(path) as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
    except FileNotFoundError:
        return None
    lines = tail[: tail.rfind(b"\n") + 1].splitlines()
    if not lines:
        return None
    try:
        return parse_trade(orjson.loads(lines[-1]), str(path), 0).written_at
    except (orjson.JSONDecodeError, JournalError):
        return None  # an unreadable last line is the reader's to report, not a floor


def journal_file_of(trades_dir: Path, moment: datetime) -> Path:
    """The journal file a record written at `moment` goes to (the UTC date of the write)."""
    return Path(trades_dir) / f"{moment.astimezone(timezone.utc).date().isoformat()}.jsonl"


# The write runs as the effective user; `access(2)` asks for the real one unless told otherwise.
_EFFECTIVE = os.access in os.supports_effective_ids


def new_file_refused(trades_dir: Path, moment: datetime) -> str | None:
    """Why an entry's record could not be written at `moment`: its day file does not exist yet
    and the folder takes no new file. A check says so before an entry tries (a loop that
    enters when the check allows would otherwise be refused, and recorded, at every turn)."""
    path = journal_file_of(trades_dir, moment)
    if os.path.lexists(path) or not os.path.isdir(trades_dir) or os.access(trades_dir, os.W_OK | os.X_OK, effective_ids=_EFFECTIVE):
        return None
    return f"{path}: the folder {trades_dir} takes no new file"


class StructuredTradeLogger:
    """Writes `logs/trades/YYYY-MM-DD.jsonl` (UTC date of the write) append-only; an exit
    whose day file the folder will not let be created goes to the newest journal file."""

    def __init__(self, trades_dir: Path, lock: LogsLock) -> None:
        self.trades_dir = Path(trades_dir)
        self.lock = lock
        self.high_water = HighWater.beside(lock)
        self.recovered_fragments: list[Path] = []

    def path_for(self, moment: datetime) -> Path:
        return journal_file_of(self.trades_dir, moment)

    def log_trade(self, record: TradeRecord, at: datetime) -> Path:
        """Append one record durably; returns the file written.

        A line is never stamped earlier than the line before it in its file: after the
        clock stepped back, the record takes that line's instant and keeps the clock's
        reading (see `TradeRecord.stamped_no_earlier_than`). The desk's high-water is raised
        to the line's instant first, so the bot never finds its own line future-dated.
        """
        path = self.path_for(at)
        with self.lock.held():
            try:
                self._append(path, record, at)
            except PermissionError:
                newest = self._newest_file() if record.outcome != OPEN and not os.path.lexists(path) else None
                if newest is None:
                    raise
                # The folder takes no new file today. An exit already happened at the broker: a
                # record waiting in memory dies with the process, and a restart would take the
                # position for open. The newest file is never older than the entry's.
                self._append(newest, record, at)
                return newest
        return path

    def _append(self, path: Path, record: TradeRecord, at: datetime) -> None:
        self.set_aside_torn_tail(path, at)
        floor = last_written_at(path)
        if floor is not None:
            record = record.stamped_no_earlier_than(floor)
        try:
            self.high_water.raise_to(record.written_at)
        except OSError:
            if record.outcome == OPEN:
                raise  # an entry waits until the high-water can be kept
            # An exit's record never waits on bookkeeping: left unraised, the high-water
            # can only make this line look future-dated after a clock step back, which
            # halts entries (the safe side), never lets one through.
        append_durably(path, orjson.dumps(record.to_json_dict()) + b"\n")

    def _newest_file(self) -> Path | None:
        """The journal file last by name: it sorts after the file of every entry still open."""
        names = journal_file_names(self.trades_dir)
        return self.trades_dir / names[-1] if names else None

    def set_aside_torn_tail(self, path: Path, at: datetime) -> Path | None:
        """A crash can leave an unterminated last line; appending after it would merge two
        records into one garbage line, so the fragment is kept in a recovery file first.
        Returns the recovery file, or None when the file ends cleanly."""
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            return None
        if size == 0:
            return None
        with open_regular(path) as handle:
            handle.seek(max(0, size - 65536))
            tail = handle.read()
        if tail.endswith(b"\n"):
            return None
        data = read_regular(path)
        cut = data.rfind(b"\n") + 1
        stamp = at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        recovery = path.with_name(f"{path.name}.torn-{stamp}")
        suffix = 1
        while os.path.lexists(recovery):  # a dangling link is taken too: never written through
            recovery = path.with_name(f"{path.name}.torn-{stamp}-{suffix}")
            suffix += 1
        atomic_write_bytes(recovery, data[cut:])
        with open_regular(path, "r+b") as handle:
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_directory(path.parent)
        self.recovered_fragments.append(recovery)
        return recovery
