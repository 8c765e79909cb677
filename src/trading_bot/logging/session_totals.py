"""Closed trades summed per session straight from the journal index: no record per trade.

`export` and `report` need, per session (and per month), the counts and exact sums the
metrics of SPEC §4 are made of. The index keeps each net P&L also as integer micro-units
where that is exact, so the common case is one indexed `GROUP BY` whose integer sums are
exact; a range holding an amount finer than a micro-unit (or sums beyond 64 bits) is folded
row by row in close order instead, with `Decimal`, exactly as the per-trade code would.
Either way the figures are the ones `RunningTally` gives for the same trades.

A close's session is the one recorded with it; a line of the original bot (none recorded)
is placed by the calendar at its exit instant, one calendar question per session.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from trading_bot.logging.journal_index import microseconds_of, moment_of
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.trade_record import BREAKEVEN, LOSS, WIN

_MICRO = -6
Key = TypeVar("Key", bound=Hashable)


class SessionCalendar(Protocol):
    """What placing a close without a recorded session needs."""

    def session_of(self, moment: datetime) -> date: ...

    def session_closes_at(self, session: date) -> datetime: ...


@dataclass
class CloseTotals:
    """What the metrics of a group of closed trades are made of (SPEC §4): flagged trades
    count in `closed` and `net_pnl` only; `loss_sum` adds the losses' absolute values."""

    closed: int = 0
    counted: int = 0
    wins: int = 0
    losses: int = 0
    breakevens: int = 0
    win_sum: Decimal = Decimal(0)
    loss_sum: Decimal = Decimal(0)
    net_pnl: Decimal = Decimal(0)

    @property
    def flagged(self) -> int:
        return self.closed - self.counted


@dataclass
class Totals(Generic[Key]):
    """Totals per group (a session, a month, …) and over the whole range.

    `in_close_order` says the amounts were summed trade by trade in close order (some amount
    was finer than the index's micro-units, or a sum outgrew 64 bits)."""

    groups: dict[Key, CloseTotals] = field(default_factory=dict)
    overall: CloseTotals = field(default_factory=CloseTotals)
    in_close_order: bool = False


def _session_key(session: date) -> date:
    return session


def totals_by_session(
    journal: TradeJournal,
    calendar: SessionCalendar,
    low: datetime | None = None,
    high: datetime | None = None,
    *,
    as_of: datetime | None = None,
    key: Callable[[date], Key] = _session_key,  # type: ignore[assignment]
) -> Totals[Key]:
    """The closes with `low <= exit < high` (and exit at or before `as_of`), summed per
    `key(session)`; `key` may merge sessions (into months, say), never split one."""
    low_us = -1 if low is None else microseconds_of(low)
    high_us = _open_end(high, as_of)
    try:
        return _summed_in_the_index(journal, calendar, low_us, high_us, key)
    except _NotExact:
        pass
    except sqlite3.OperationalError as error:  # SQLite's integer sum outgrew 64 bits
        if "integer overflow" not in str(error):
            raise
    return _folded_in_close_order(journal, calendar, low_us, high_us, key)


def _open_end(high: datetime | None, as_of: datetime | None) -> int:
    """The exclusive upper bound on exit instants (µs)."""
    bounds = [] if high is None else [microseconds_of(high)]
    if as_of is not None:
        bounds.append(microseconds_of(as_of) + 1)
    return min(bounds) if bounds else 1 << 62


class _NotExact(Exception):
    """Some amount in the range has no exact micro-units: the range is folded in close order."""


# Per recorded session, outcome and flags: counts and integer sums (one pass over an index
# that holds every column read). The session bounds are only a pre-filter: a recorded
# session lies within a week before and a day after its instant's date (`recorded_session`),
# a date that may be a day off the UTC one; the exit bounds decide.
# A loss's P&L is below zero (the journal refuses an outcome its P&L contradicts), so the
# losses' absolute values sum to minus their sum.
_RECORDED = (
    "SELECT exit_session, outcome, emergency_exit, manual_override, count(*), count(pnl_micros), sum(pnl_micros)"
    " FROM records WHERE close_pos IS NOT NULL AND exit_session BETWEEN ? AND ? AND exit_us >= ? AND exit_us < ?"
    " GROUP BY exit_session, outcome, emergency_exit, manual_override"
)
_UNRECORDED = (
    "SELECT exit_us, outcome, emergency_exit, manual_override, pnl_micros FROM records"
    " WHERE close_pos IS NOT NULL AND exit_session IS NULL AND exit_us >= ? AND exit_us < ? ORDER BY exit_us"
)
_IN_CLOSE_ORDER = (
    "SELECT exit_us, exit_session, outcome, emergency_exit, manual_override, net_pnl FROM records"
    " WHERE close_pos IS NOT NULL AND exit_us >= ? AND exit_us < ? ORDER BY close_pos"
)
_DAY_US = 86_400_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_BLOCK_ROWS = 2048
_RECORDED_DAYS_BEFORE, _RECORDED_DAYS_AFTER = 8, 2


def _summed_in_the_index(
    journal: TradeJournal, calendar: SessionCalendar, low_us: int, high_us: int, key: Callable[[date], Key]
) -> Totals[Key]:
    totals: Totals[Key] = Totals()
    if high_us <= low_us:
        return totals
    # Per group: counts, then the integer micro-unit sums (net, wins, losses' absolute values).
    groups: dict[Key, list[int]] = {}
    first_day = _EPOCH_ORDINAL + low_us // _DAY_US - _RECORDED_DAYS_BEFORE
    last_day = _EPOCH_ORDINAL + high_us // _DAY_US + _RECORDED_DAYS_AFTER
    for session, outcome, emergency, manual, count, exact, total in journal.index_rows(
        _RECORDED, (first_day, last_day, low_us, high_us)
    ):
        if exact != count:
            raise _NotExact
        _add(groups, key(date.fromordinal(session)), outcome, emergency or manual, count, total)
    place = _SessionPlacer(calendar)
    for exit_us, outcome, emergency, manual, micros in journal.index_rows(_UNRECORDED, (low_us, high_us)):
        if micros is None:
            raise _NotExact
        _add(groups, key(place(exit_us)), outcome, emergency or manual, 1, micros)
    overall = [0] * 8
    for group, sums in groups.items():
        totals.groups[group] = _exact(sums)
        for position, value in enumerate(sums):
            overall[position] += value
    totals.overall = _exact(overall)
    return totals


# Positions in a group's integer sums.
_CLOSED, _COUNTED, _WINS, _LOSSES, _BREAKEVENS, _NET, _WIN_SUM, _LOSS_SUM = range(8)


def _add(groups: dict[Any, list[int]], group: Any, outcome: str, flagged: int, count: int, total: int) -> None:
    """One (outcome, flagged) bucket of closes into its group, as `RunningTally.fold` counts them."""
    if outcome != WIN and outcome != LOSS and outcome != BREAKEVEN:
        return
    sums = groups.get(group)
    if sums is None:
        sums = groups[group] = [0] * 8
    sums[_CLOSED] += count
    sums[_NET] += total
    if flagged:
        return
    sums[_COUNTED] += count
    if outcome == WIN:
        sums[_WINS] += count
        sums[_WIN_SUM] += total
    elif outcome == LOSS:
        sums[_LOSSES] += count
        sums[_LOSS_SUM] -= total
    else:
        sums[_BREAKEVENS] += count


def _exact(sums: list[int]) -> CloseTotals:
    """Counts as they are; micro-unit sums as exact decimals (the digits, the point six places in)."""
    return CloseTotals(
        closed=sums[_CLOSED],
        counted=sums[_COUNTED],
        wins=sums[_WINS],
        losses=sums[_LOSSES],
        breakevens=sums[_BREAKEVENS],
        win_sum=Decimal(sums[_WIN_SUM]).scaleb(_MICRO),
        loss_sum=Decimal(sums[_LOSS_SUM]).scaleb(_MICRO),
        net_pnl=Decimal(sums[_NET]).scaleb(_MICRO),
    )


def _folded_in_close_order(
    journal: TradeJournal, calendar: SessionCalendar, low_us: int, high_us: int, key: Callable[[date], Key]
) -> Totals[Key]:
    """Trade by trade in close order with `Decimal`, as `RunningTally.fold` adds them, so
    even sums `Decimal` must round come out as the per-trade code has them."""
    totals: Totals[Key] = Totals(in_close_order=True)
    place = _SessionPlacer(calendar)
    groups = totals.groups
    overall = totals.overall
    if high_us <= low_us:
        return totals
    for exit_us, session, outcome, emergency, manual, pnl_text in journal.index_rows(_IN_CLOSE_ORDER, (low_us, high_us)):
        group = key(place(exit_us) if session is None else date.fromordinal(session))
        tally = groups.get(group)
        if tally is None:
            tally = groups[group] = CloseTotals()
        pnl = Decimal(pnl_text)
        flagged = bool(emergency or manual)
        _fold(tally, outcome, flagged, pnl)
        _fold(overall, outcome, flagged, pnl)
    return totals


def _fold(tally: CloseTotals, outcome: str, flagged: bool, pnl: Decimal) -> None:
    """`RunningTally.fold` without the streaks (no export or report figure needs them)."""
    if outcome != WIN and outcome != LOSS and outcome != BREAKEVEN:
        return
    tally.closed += 1
    tally.net_pnl += pnl
    if flagged:
        return
    tally.counted += 1
    if outcome == WIN:
        tally.wins += 1
        tally.win_sum += pnl
    elif outcome == LOSS:
        tally.losses += 1
        tally.loss_sum += abs(pnl)
    else:
        tally.breakevens += 1


class _SessionPlacer:
    """The calendar's session of exit instants (µs) met mostly in rising order: one
    calendar question per session rather than per close."""

    def __init__(self, calendar: SessionCalendar) -> None:
        self.calendar = calendar
        self.session: date | None = None
        self.start_us = 0
        self.end_us = 0

    def __call__(self, exit_us: int) -> date:
        if self.session is not None and self.start_us <= exit_us < self.end_us:
            return self.session
        session = self.calendar.session_of(moment_of(exit_us))
        self.session = session
        self.start_us = exit_us
        try:
            self.end_us = microseconds_of(self.calendar.session_closes_at(session))
        except OverflowError:  # the calendar's last day: nothing comes after it
            self.end_us = 1 << 62
        return session


@dataclass(frozen=True)
class ClosesSeen:
    """How many closes there are (exit at or before `as_of`) and the earliest entry among them."""

    count: int
    earliest_entry: datetime | None


def closes_seen(journal: TradeJournal, as_of: datetime | None = None) -> ClosesSeen:
    """One query: what a page about every close needs before it streams them."""
    count, earliest = journal.index_rows(
        "SELECT count(*), min(timestamp_us) FROM records WHERE close_pos IS NOT NULL AND exit_us < ?", (_open_end(None, as_of),)
    ).fetchone()
    return ClosesSeen(count, None if earliest is None else moment_of(earliest))


def closes_in_order(journal: TradeJournal, as_of: datetime | None = None) -> Iterator[tuple[int, int, str | None, Decimal]]:
    """Each close (exit at or before `as_of`) in close order as (exit µs, entry µs, phase
    recorded, net P&L): four values a trade, read a block at a time, never held."""
    rows = journal.index_rows(
        "SELECT exit_us, timestamp_us, phase, net_pnl FROM records WHERE close_pos IS NOT NULL AND exit_us < ? ORDER BY close_pos",
        (_open_end(None, as_of),),
    )
    while True:
        block = rows.fetchmany(_BLOCK_ROWS)
        if not block:
            return
        for exit_us, entry_us, phase, pnl in block:
            yield exit_us, entry_us, phase, Decimal(pnl)
