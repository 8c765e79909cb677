"""The desk's high-water instant: the latest moment its own writers durably recorded.

A clock that steps back leaves the desk's latest records ahead of it. Judged against the
clock alone, those records would look future-dated (§13) and the bot would reject what
it wrote itself. Every writer of the journal and of the phase logs raises this instant
under the logs lock *before* appending its line, so it is never behind the records by
more than `HIGH_WATER_STEP`; readers judge "future" against the later of the clock and
it. A line written by hand after both is still refused.

The file (`<logs>/high_water`) holds one timestamp line and is replaced atomically. It
is as writable as every other record: raising it by hand only lets a hand-written
journal line be dated up to that instant, which grants nothing a present-dated forged
line does not, and makes the clock look behind, which halts entries (see the README's
trust model).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Final

from trading_bot.clock import ensure_utc, format_timestamp, parse_timestamp
from trading_bot.durable_files import LogsLock, StatsOncePerRead, atomic_write_bytes, open_regular

HIGH_WATER_FILE: Final = "high_water"

# The writers skip rewriting the file while a new instant is within this step of the one
# stored, so a busy desk replaces it at most once a minute. It must stay below the clock
# tolerance: a record may then lie this far past the stored instant and still not be
# future-dated against it.
HIGH_WATER_STEP: Final = timedelta(minutes=1)

# A valid file is one timestamp line; anything longer is not ours and is not read.
_MAX_BYTES: Final = 64

# The latest high-water read as such. The desk never records this late; the year kept
# free below the end of the calendar leaves room for session arithmetic (next open, week
# windows) on every record it lets through, so a hand-raised file cannot make it overflow.
LATEST_HIGH_WATER: Final = datetime(9999, 1, 1, tzinfo=timezone.utc)


class HighWater(StatsOncePerRead):
    """The high-water file beside the logs lock, read with one stat when unchanged."""

    def __init__(self, logs_dir: Path) -> None:
        self.path = Path(logs_dir) / HIGH_WATER_FILE
        self._key: tuple[int, int, int, int] | None = None
        self._value: datetime | None = None

    @classmethod
    def beside(cls, lock: LogsLock) -> HighWater:
        """The high-water of the desk whose writers take `lock` (same folder as the lock file)."""
        return cls(lock.path.parent)

    def read(self) -> datetime | None:
        """The recorded instant, or None when there is none or it cannot be read.

        An unreadable file extends no trust: records are then judged against the clock
        alone, as if the desk had never recorded an instant.
        """
        if not self._stat_due():
            return self._value
        try:
            stat = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            self._key, self._value = None, None
            return None
        key = (stat.st_ino, stat.st_dev, stat.st_size, stat.st_mtime_ns)
        if key == self._key:
            return self._value
        self._value = self._parse()
        self._key = key
        return self._value

    def _parse(self) -> datetime | None:
        try:
            with open_regular(self.path) as handle:
                data = handle.read(_MAX_BYTES + 1)
        except OSError:
            return None
        if len(data) > _MAX_BYTES:
            return None
        try:
            moment = parse_timestamp(data.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return None
        return moment if moment < LATEST_HIGH_WATER else None

    def raise_to(self, instant: datetime, *, exact: bool = False) -> None:
        """Record that the desk is writing a line stamped `instant`. The caller holds the
        logs lock and calls this before the line is appended, so a crash in between
        leaves the high-water ahead of the records, never behind them.

        `exact` (the phase logs, written rarely) records every advance: a session summary
        then lifts the high-water to its session's close, so no later close is counted in
        a session already summarised.
        """
        moment = ensure_utc(instant)
        stored = self.read()
        step = timedelta(0) if exact else HIGH_WATER_STEP
        if stored is not None and moment - step <= stored:
            return
        atomic_write_bytes(self.path, (format_timestamp(moment) + "\n").encode("ascii"))
        self._key, self._value = None, None
        self._forget_read()
