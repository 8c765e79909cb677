"""`export`: the sessions of a date range, their phase and numbers, as CSV or JSON.

Every number comes from the same definitions the gates use (SPEC §4): the counts and exact
sums of each session's closes are read from the journal index in one query
(`session_totals.py`), its ratios are made by the functions `RunningTally` uses, and the
phase, sizes and transitions come from the folded history. Nothing secret is exported.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from trading_bot.dashboard.metrics_calculator import Ratio, avg_rr_from_sums, win_rate_from_counts
from trading_bot.durable_files import atomic_write_bytes
from trading_bot.errors import InputError
from trading_bot.logging.session_totals import CloseTotals, totals_by_session
from trading_bot.market_calendar import MarketCalendar
from trading_bot.money import money_str, ratio_str
from trading_bot.performance.models import SessionMetrics
from trading_bot.phase.engine import PhaseState
from trading_bot.phase.log_format import LogLine
from trading_bot.phase.ledger import Ledger, effective_time
from trading_bot.phase.record_types import SIZE_CHANGE, TRANSITION
from trading_bot.phase.manager import PhaseManager
from trading_bot.phase.models import Phase

CSV_COLUMNS = ("date", "phase", "trades", "wins", "losses", "win_rate", "avg_rr", "total_pnl", "position_size", "notes")
EARLIEST = date(1970, 1, 1)
_EPSILON = timedelta(microseconds=1)

# Keys never copied out of a log line: chain bookkeeping, and anything that could be
# derived from the override password (no line holds one today; this keeps it so).
_WITHHELD = ("hash", "prev_hash")
_SECRET_WORDS = ("password", "secret", "salt", "scrypt")


class ExportRangeError(ValueError):
    """A bad --start/--end: the message names the option."""


_DAY_FORMS = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})|([0-9]{4})([0-9]{2})([0-9]{2})")
_NOT_A_DAY = "not an ISO 8601 date (YYYY-MM-DD or YYYYMMDD)"


def parse_day(option: str, text: str) -> date:
    """An operator-typed calendar date, exactly as the error names it: `2026-03-02` or
    `20260302`. A week date, an ordinal date or a time of day is refused rather than
    silently moved to a day the operator did not type.

    Errors never repeat what was typed (it might be a password typed in the wrong place)."""
    match = _DAY_FORMS.fullmatch(text)
    if match is None:
        raise ExportRangeError(f"{option}: {_NOT_A_DAY}")
    year, month, day = (int(part) for part in match.groups() if part is not None)
    try:
        parsed = date(year, month, day)
    except ValueError:
        raise ExportRangeError(f"{option}: {_NOT_A_DAY}") from None
    if parsed < EARLIEST:
        raise ExportRangeError(f"{option}: before 1970-01-01")
    return parsed


def check_range(start: date, end: date) -> None:
    if end < start:
        raise ExportRangeError(f"--end {end.isoformat()} is before --start {start.isoformat()}")


@dataclass(frozen=True)
class SessionRow:
    """One exported session: the tracker's metrics plus the phase system's context."""

    metrics: SessionMetrics
    position_size: Decimal
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "date": m.date.isoformat(),
            "phase": None if m.phase is None else m.phase.value,
            "trades": m.trades,
            "wins": m.wins,
            "losses": m.losses,
            "breakevens": m.breakevens,
            "win_rate": _ratio(m.win_rate),
            "avg_rr": _ratio(m.avg_rr),
            "total_pnl": money_str(m.net_pnl),
            "position_size": money_str(self.position_size),
            "position_sizes": [money_str(size) for size in m.position_sizes],
            "breaker_trips": m.breaker_trips,
            "notes": "; ".join(self.notes),
        }

    def csv_cells(self) -> list[object]:
        """The row's `CSV_COLUMNS`, as `to_json` has them (no value is an empty cell)."""
        m = self.metrics
        win_rate, avg_rr = _ratio(m.win_rate), _ratio(m.avg_rr)
        return [
            m.date.isoformat(),
            "" if m.phase is None else m.phase.value,
            m.trades,
            m.wins,
            m.losses,
            "" if win_rate is None else win_rate,
            "" if avg_rr is None else avg_rr,
            money_str(m.net_pnl),
            money_str(self.position_size),
            "; ".join(self.notes),
        ]


@dataclass(frozen=True)
class Export:
    start: date
    end: date
    current_phase: Phase
    sessions: list[SessionRow]
    transitions: list[LogLine]
    overrides: list[LogLine]
    summary: CloseTotals

    def to_json(self) -> dict[str, Any]:
        s = self.summary
        return {
            "range": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "current_phase": self.current_phase.value,
            "sessions": [row.to_json() for row in self.sessions],
            "transitions": [public_fields(line) for line in self.transitions],
            "overrides": [public_fields(line) for line in self.overrides],
            "summary": {
                "sessions": len(self.sessions),
                "trades": s.counted,
                "trades_closed": s.closed,
                "wins": s.wins,
                "losses": s.losses,
                "breakevens": s.breakevens,
                "win_rate": _ratio(win_rate_of(s)),
                "avg_rr": _ratio(avg_rr_of(s)),
                "total_pnl": money_str(s.net_pnl),
            },
        }

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(row.csv_cells() for row in self.sessions)
        return buffer.getvalue()

    def render(self, fmt: str) -> str:
        if fmt == "json":
            return json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n"
        return self.to_csv()


def _ratio(ratio: Ratio) -> str | None:
    return None if ratio.value is None else ratio_str(ratio.value)


def public_fields(line: LogLine) -> dict[str, Any]:
    """A log line as exported: without its chain hashes or any password-derived field."""
    return {
        key: value
        for key, value in line.data.items()
        if key not in _WITHHELD and not any(word in key.lower() for word in _SECRET_WORDS)
    }


def win_rate_of(totals: CloseTotals) -> Ratio:
    """The win rate of summed closes, as `RunningTally.win_rate` makes it."""
    return win_rate_from_counts(totals.wins, totals.counted)


def avg_rr_of(totals: CloseTotals) -> Ratio:
    """The R:R of summed closes, as `RunningTally.avg_rr` makes it."""
    return avg_rr_from_sums(totals.counted, totals.wins, totals.win_sum, totals.losses, totals.loss_sum)


def override_lines_of(manager: PhaseManager) -> Sequence[LogLine]:
    if manager.as_of is None:
        return manager.overrides.lines()
    return manager.overrides.read_lines_as_of(manager.as_of)


def session_bounds(calendar: MarketCalendar, start: date, end: date) -> tuple[datetime, datetime]:
    """[first open, last close) of the sessions dated start..end."""
    first = start if calendar.is_trading_day(start) else calendar.next_trading_day(start)
    last = end if calendar.is_trading_day(end) else calendar.previous_trading_day(end)
    low = calendar.open_of(first)
    high = calendar.session_closes_at(last) if last >= first else low
    return low, high


class SessionContext:
    """What the history says about one session: phase at its close, sizes, trips, notes."""

    def __init__(self, ledger: Ledger, calendar: MarketCalendar, now: datetime) -> None:
        self.ledger = ledger
        self.calendar = calendar
        self.now = now
        self._events: dict[date, list[tuple[datetime, str]]] = {}
        self._bounds: dict[date, tuple[datetime, datetime]] = {}
        for line in ledger.transitions:
            at = effective_time(line)
            self._events.setdefault(calendar.session_of(at), []).append((at, describe_transition(line)))

    def add_size_changes(self, lines: Iterable[LogLine]) -> None:
        for line in lines:
            if line.type == SIZE_CHANGE:
                at = effective_time(line)
                note = f"size {line.data.get('from_size')} → {line.data.get('to_size')} ({line.data.get('reason')})"
                self._events.setdefault(self.calendar.session_of(at), []).append((at, note))

    def bounds(self, session: date) -> tuple[datetime, datetime]:
        """[open, close) of a session, asked of the calendar once per session."""
        found = self._bounds.get(session)
        if found is None:
            found = self._bounds[session] = (self.calendar.open_of(session), self.calendar.session_closes_at(session))
        return found

    def closed_at(self, session: date) -> datetime:
        return min(self.bounds(session)[1], self.now)

    def phase_at(self, session: date) -> Phase:
        """The phase in force when the session closed (or now, for the open session)."""
        return self.ledger.phase_at(self.closed_at(session) - _EPSILON)

    def sizes_at(self, session: date) -> tuple[Decimal, ...]:
        open_at, closed_at = self.bounds(session)
        sizes = {self.ledger.size_at(open_at)}
        changes = self.ledger.size_changes  # in time order
        first = bisect.bisect_left(changes, open_at, key=_instant)
        for at, size in changes[first:]:
            if at >= closed_at:
                break
            sizes.add(size)
        return tuple(sorted(sizes))

    def size_at_close(self, session: date) -> Decimal:
        return self.ledger.size_at(self.closed_at(session) - _EPSILON)

    def trips_at(self, session: date) -> int:
        return self.ledger.trips_during(*self.bounds(session))

    def notes(self, session: date) -> tuple[str, ...]:
        return tuple(note for _, note in sorted(self._events.get(session, []), key=lambda item: item[0]))


def _instant(change: tuple[datetime, Decimal]) -> datetime:
    return change[0]


def describe_transition(line: LogLine) -> str:
    """"downgrade trial → proof: 3 consecutive losses" — a transition in one phrase."""
    data = line.data
    reason = data.get("reason")
    text = f"{data.get('kind')} {data.get('from_phase')} → {data.get('to_phase')}"
    return f"{text}: {reason}" if reason else text


def build_export(manager: PhaseManager, start: date, end: date) -> Export:
    """The export of sessions dated start..end (inclusive) from the manager's records."""
    check_range(start, end)
    state: PhaseState = manager.state()
    return export_from_state(manager, state, start, end)


def export_from_state(manager: PhaseManager, state: PhaseState, start: date, end: date) -> Export:
    calendar = manager.calendar
    ledger = state.ledger
    history_lines = manager.history.lines() if manager.as_of is None else manager.history.read_lines_as_of(manager.as_of)
    context = SessionContext(ledger, calendar, state.now)
    context.add_size_changes(history_lines)
    low, high = session_bounds(calendar, start, end)
    # The closes are summed per session in the index; no record per trade is read.
    totals = totals_by_session(manager.journal, calendar, low, high, as_of=manager.as_of)
    by_date = {session: _session_metrics(session, group, context) for session, group in totals.groups.items()}
    for session in sessions_with_entries_only(manager, low, high, by_date):
        by_date[session] = _session_metrics(session, CloseTotals(), context)
    rows = [
        SessionRow(metrics=by_date[session], position_size=context.size_at_close(session), notes=context.notes(session))
        for session in sorted(by_date)
    ]
    transitions = [line for line in history_lines if line.type == TRANSITION and low <= effective_time(line) < high]
    overrides = [line for line in override_lines_of(manager) if low <= line.timestamp < high]
    return Export(
        start=start,
        end=end,
        current_phase=state.phase,
        sessions=rows,
        transitions=transitions,
        overrides=overrides,
        summary=totals.overall,
    )


def _session_metrics(session: date, totals: CloseTotals, context: SessionContext) -> SessionMetrics:
    """A session row from its summed closes (none: a session with entries only)."""
    return SessionMetrics(
        date=session,
        phase=context.phase_at(session),
        trades=totals.closed,
        wins=totals.wins,
        losses=totals.losses,
        breakevens=totals.breakevens,
        win_rate=win_rate_of(totals),
        avg_rr=avg_rr_of(totals),
        net_pnl=totals.net_pnl,
        position_sizes=context.sizes_at(session),
        breaker_trips=context.trips_at(session),
    )


def sessions_with_entries_only(manager: PhaseManager, low: datetime, high: datetime, closed: Iterable[date]) -> list[date]:
    """Sessions of entries with `low <= instant < high` (entered by `as_of`, if the manager
    has one) that are not among `closed`. Only the time outside the sessions already known
    is read: a session runs from its open to the next trading day's open."""
    calendar = manager.calendar
    entries = manager.journal.entries if manager.as_of is None else manager.journal.as_of(manager.as_of).entries
    found: list[date] = []
    for gap_low, gap_high in _time_outside(calendar, low, high, closed):
        session: date | None = None
        ends: datetime | None = None
        for moment in entries.times_between(gap_low, gap_high):
            if ends is not None and moment < ends:
                continue
            session = calendar.session_of(moment)
            ends = calendar.session_closes_at(session)
            found.append(session)
    return found


def _time_outside(calendar: MarketCalendar, low: datetime, high: datetime, sessions: Iterable[date]) -> list[tuple[datetime, datetime]]:
    """[low, high) less the time of the given sessions, as ascending spans. A day that is not
    a trading day is no session of any instant, so it covers no time."""
    spans: list[tuple[datetime, datetime]] = []
    cursor = low
    for session in sorted(sessions):
        if not calendar.is_trading_day(session):
            continue
        opens, closes = calendar.open_of(session), calendar.session_closes_at(session)
        if closes <= cursor:
            continue
        if opens >= high:
            break
        if opens > cursor:
            spans.append((cursor, opens))
        cursor = closes
    if cursor < high:
        spans.append((cursor, high))
    return spans


def check_output_path(path: Path, *, config_path: Path, record_folders: Iterable[Path]) -> None:
    """Refuse an --output that cannot be written, or that would replace one of the desk's
    records (a typo must not turn the append-only history into a CSV), before anything
    is computed or recorded. Symlinks are followed: the file written is what counts."""
    _refuse_records(path, config_path, record_folders)
    if path.is_dir():
        raise OSError(21, "is a folder, not a file", str(path))
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OSError(2, "folder does not exist", str(parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OSError(13, "folder is not writable", str(parent))
    if path.exists() and not os.access(path, os.W_OK):
        raise OSError(13, "file is not writable", str(path))


def _refuse_records(path: Path, config_path: Path, record_folders: Iterable[Path]) -> None:
    try:
        target = path.resolve()
        config = config_path.resolve()
        folders = [folder.resolve() for folder in record_folders]
    except (OSError, RuntimeError):  # a symlink loop: nothing can be written there either
        raise InputError(str(path), None, "--output", "cannot be resolved (a symlink loop?); choose another file") from None
    if target == config:
        raise InputError(str(path), None, "--output", "is the desk's config file; choose another file")
    for folder in folders:
        if target == folder or folder in target.parents:
            raise InputError(str(path), None, "--output", f"is inside the desk's records folder {folder}; choose a file outside it")
    if target.suffix.lower() == ".jsonl" and target.exists():
        raise InputError(str(path), None, "--output", "is an existing .jsonl file (a journal or a log); choose another file")


def write_output(path: Path, text: str) -> None:
    """Atomically: a reader sees the old file or the whole new one."""
    atomic_write_bytes(path, text.encode("utf-8"))
