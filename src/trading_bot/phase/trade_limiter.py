"""Entries per session (SPEC §7): counted from the journal, with the time of the next one.

The count is derived from the journal, never kept in a counter, so a restart cannot
reset it and a mid-session downgrade cannot free an entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from trading_bot.logging.trade_record import TradeRecord
from trading_bot.market_calendar import MarketCalendar, format_countdown, format_local
from trading_bot.phase.models import Phase


class TradeLimitExceeded(Exception):
    """The session's entry limit is reached; `next_allowed_at` is the next session's open."""

    def __init__(self, count: int, limit: int, phase: Phase, next_allowed_at: datetime, now: datetime, calendar: MarketCalendar) -> None:
        self.count = count
        self.limit = limit
        self.phase = phase
        self.next_allowed_at = next_allowed_at
        super().__init__(
            f"{count}/{limit} trades this session ({phase.value}); next trade allowed "
            f"{format_local(next_allowed_at, calendar.tz)} (in {format_countdown(next_allowed_at - now)})"
        )


@runtime_checkable
class EntryAggregates(Protocol):
    """Entries that answer the rules' questions by a query (the journal's index) instead
    of being iterated one record at a time."""

    def earliest_entry(self) -> datetime | None: ...

    def session_counts(self, calendar: MarketCalendar) -> list[tuple[date, int, datetime, datetime]]: ...


def earliest_entry(entries: Mapping[str, TradeRecord]) -> datetime | None:
    """The first entry instant of the journal (None without entries)."""
    if isinstance(entries, EntryAggregates):
        return entries.earliest_entry()
    return min((record.timestamp for record in entries.values()), default=None)


class SessionEntries:
    """Entries per session (SPEC §7), with the first and last entry instant of each. An
    emergency exit is not an entry, but closing an entry by emergency exit does not give
    the entry back. Fed each order's entry once (the journal's entry log guarantees it)."""

    def __init__(self, calendar: MarketCalendar) -> None:
        self.calendar = calendar
        self.by_session: dict[date, int] = {}
        self.first_at: dict[date, datetime] = {}
        self.last_at: dict[date, datetime] = {}

    @classmethod
    def of(cls, calendar: MarketCalendar, entries: Mapping[str, TradeRecord]) -> SessionEntries:
        """The counts of a whole set of entries (one query when the journal's index has them)."""
        counted = cls(calendar)
        if isinstance(entries, EntryAggregates):
            for session, count, first, last in entries.session_counts(calendar):
                counted.add(session, count, first, last)
        else:
            counted.fold(entries.values())
        return counted

    @classmethod
    def restored(cls, calendar: MarketCalendar, rows: Iterable[tuple[date, int, datetime, datetime]]) -> SessionEntries:
        """Counts saved per session, each session once: (session, count, first, last)."""
        counts = cls(calendar)
        for session, count, first, last in rows:
            counts.by_session[session] = count
            counts.first_at[session] = first
            counts.last_at[session] = last
        return counts

    def fold(self, entries: Iterable[TradeRecord]) -> None:
        for record in entries:
            self.add(self.calendar.entry_session(record), 1, record.timestamp, record.timestamp)

    def add(self, session: date, count: int, first: datetime, last: datetime) -> None:
        known = self.by_session.get(session)
        if known is None:
            self.by_session[session] = count
            self.first_at[session] = first
            self.last_at[session] = last
            return
        self.by_session[session] = known + count
        if first < self.first_at[session]:
            self.first_at[session] = first
        if last > self.last_at[session]:
            self.last_at[session] = last

    def count(self, session: date) -> int:
        return self.by_session.get(session, 0)

    def sessions_with_entries_since(self, since: datetime | None) -> set[date]:
        """Sessions with an entry at or after `since` (for the missed-days rule): a session
        qualifies exactly when its last entry is at or after `since`."""
        return {session for session, last in self.last_at.items() if since is None or last >= since}


def check_session_limit(
    count: int, limit: int | None, phase: Phase, now: datetime, calendar: MarketCalendar
) -> TradeLimitExceeded | None:
    if limit is None or count < limit:
        return None
    return TradeLimitExceeded(count, limit, phase, calendar.next_open_after(now), now, calendar)


def longest_missed_run(days: Iterable[date], entered: set[date], skipped: set[date]) -> int:
    """Longest run of days without an entry; skipped days (breaker tripped) neither count nor break it."""
    longest = current = 0
    for day in days:
        if day in skipped:
            continue
        if day in entered:
            current = 0
            continue
        current += 1
        longest = max(longest, current)
    return longest
