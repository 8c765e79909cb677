"""Entries per session (SPEC §7): counted from the journal, with the time of the next one.

The count is derived from the journal, never kept in a counter, so a restart cannot
reset it and a mid-session downgrade cannot free an entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

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


class SessionEntries:
    """Distinct order ids entered per session (SPEC §7). An emergency exit is not an
    entry, but closing an entry by emergency exit does not give the entry back."""

    def __init__(self, calendar: MarketCalendar) -> None:
        self.calendar = calendar
        self.by_session: dict[date, set[str]] = {}

    def fold(self, entries: Iterable[TradeRecord]) -> None:
        for record in entries:
            session = self.calendar.entry_session(record)
            self.by_session.setdefault(session, set()).add(record.order_id)

    def count(self, session: date) -> int:
        return len(self.by_session.get(session, ()))

    def sessions_with_entries_since(self, since: datetime | None, entries: dict[str, TradeRecord]) -> set[date]:
        """Sessions with an entry at or after `since` (for the missed-days rule)."""
        return {
            self.calendar.entry_session(record)
            for record in entries.values()
            if since is None or record.timestamp >= since
        }


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
