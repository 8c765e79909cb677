"""NYSE trading days and sessions (SPEC §3): which session a timestamp belongs to, and when it closes.

DST always comes from the time-zone database; early (13:00) closes are not modelled.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trading_bot.clock import ensure_utc
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.nyse_closures import CLOSED_DAYS, FIRST_YEAR, LAST_YEAR, MADE_WITH_HOLIDAYS

_ONE_DAY = timedelta(days=1)


@cache
def installed_holidays_version() -> str | None:
    """The installed `holidays` package's version, without importing it: from the name of
    the one `holidays-<version>.dist-info` folder beside it (the installers' standard
    record), else from its metadata (`importlib.metadata` alone costs a command 25 ms)."""
    spec = importlib.util.find_spec("holidays")
    if spec is None:
        return None
    if spec.origin is not None:
        site = os.path.dirname(os.path.dirname(spec.origin))
        try:
            found = [name for name in os.listdir(site) if name.startswith("holidays-") and name.endswith(".dist-info")]
        except OSError:
            found = []
        if len(found) == 1:
            return found[0][len("holidays-") : -len(".dist-info")]
    from importlib import metadata

    try:
        return metadata.version("holidays")
    except metadata.PackageNotFoundError:
        return None


def nyse_closed_days(year: int, installed_version: str | None = None) -> frozenset[date]:
    """NYSE holidays and closures of one year: from the shipped table when it was made with
    the installed `holidays` package, else from the package (slow to load, always right)."""
    version = installed_holidays_version() if installed_version is None else installed_version
    if version == MADE_WITH_HOLIDAYS and FIRST_YEAR <= year <= LAST_YEAR:
        return frozenset(date.fromisoformat(f"{year}-{day}") for day in CLOSED_DAYS[year].split())
    return holidays_package_closed_days(year)


def holidays_package_closed_days(year: int) -> frozenset[date]:
    """What the `holidays` package says the NYSE is closed for in `year` (imported on first use)."""
    import holidays

    return frozenset(day for day in holidays.financial_holidays("NYSE", years=year) if day.year == year)


class MarketCalendar:
    """Trading days are NYSE days; a session runs from one trading-day open to the next."""

    def __init__(
        self,
        start_time: time = time(7, 0),
        end_time: time = time(16, 0),
        timezone: str = "America/New_York",
    ) -> None:
        """Validate up front so a bad config fails at start-up, not on the first trade."""
        if end_time <= start_time:
            raise ValueError(f"end_time {end_time} must be after start_time {start_time}")
        try:
            self.tz: ZoneInfo = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {timezone!r}") from exc
        self.start_time: time = start_time
        self.end_time: time = end_time
        self._holidays: dict[int, frozenset[date]] = {}
        self._next: dict[date, date] = {}
        self._previous: dict[date, date] = {}
        self._opens: dict[date, datetime] = {}
        # local date -> (open of that date if it is a trading day, else None; previous trading day)
        self._session_info: dict[date, tuple[datetime | None, date]] = {}

    def _holidays_of(self, year: int) -> frozenset[date]:
        """Built lazily once per year: session arithmetic asks for the same years constantly."""
        found = self._holidays.get(year)
        if found is None:
            found = nyse_closed_days(year)
            self._holidays[year] = found
        return found

    def is_trading_day(self, day: date) -> bool:
        """NYSE day: a weekday that is not an NYSE holiday or closure."""
        return day.weekday() < 5 and day not in self._holidays_of(day.year)

    def next_trading_day(self, day: date) -> date:
        """Strictly after `day`; cached because session arithmetic asks for it constantly."""
        found = self._next.get(day)
        if found is None:
            found = day + _ONE_DAY
            while not self.is_trading_day(found):
                found += _ONE_DAY
            self._next[day] = found
        return found

    def previous_trading_day(self, day: date) -> date:
        """Strictly before `day`; cached for the same reason as `next_trading_day`."""
        found = self._previous.get(day)
        if found is None:
            found = day - _ONE_DAY
            while not self.is_trading_day(found):
                found -= _ONE_DAY
            self._previous[day] = found
        return found

    def open_of(self, day: date) -> datetime:
        """`start_time` on `day` in the market zone, as UTC (zoneinfo decides the offset)."""
        found = self._opens.get(day)
        if found is None:
            found = datetime.combine(day, self.start_time, tzinfo=self.tz).astimezone(timezone.utc)
            self._opens[day] = found
        return found

    def close_of(self, day: date) -> datetime:
        """`end_time` on `day` as UTC; only the trading-hours risk check uses it."""
        return datetime.combine(day, self.end_time, tzinfo=self.tz).astimezone(timezone.utc)

    def session_of(self, moment: datetime) -> date:
        """The trading day whose open is the latest at or before `moment` (naive = UTC).

        Hot path when replaying the journal: one zone conversion plus a dict lookup per call.
        """
        utc = ensure_utc(moment)
        local_day = utc.astimezone(self.tz).date()
        info = self._session_info.get(local_day)
        if info is None:
            opens = self.open_of(local_day) if self.is_trading_day(local_day) else None
            info = (opens, self.previous_trading_day(local_day))
            self._session_info[local_day] = info
        opens, previous = info
        return local_day if opens is not None and utc >= opens else previous

    def entry_session(self, record: TradeRecord) -> date:
        """The session an entry was counted in: as recorded when written, so an hours edit
        never moves a used entry; a line of the original bot falls back to this calendar."""
        return record.session if record.session is not None else self.session_of(record.timestamp)

    def exit_session(self, trade: TradeRecord) -> date:
        """The session a close's P&L counts in: as recorded when written, else its exit's session."""
        if trade.exit_session is not None:
            return trade.exit_session
        assert trade.exit_timestamp is not None
        return self.session_of(trade.exit_timestamp)

    def session_closes_at(self, session: date) -> datetime:
        """A session closes when the next one opens, not at `end_time`."""
        return self.open_of(self.next_trading_day(session))

    def next_open_after(self, moment: datetime) -> datetime:
        """First trading-day open strictly after `moment`: the close of its session."""
        return self.session_closes_at(self.session_of(moment))

    def trading_days(self, first: date, last: date) -> list[date]:
        """Trading days in [first, last], ascending; empty when last < first."""
        days: list[date] = []
        day = first
        while day <= last:
            if self.is_trading_day(day):
                days.append(day)
            day += _ONE_DAY
        return days

    def trading_days_between(self, first: date, last: date) -> int:
        """Count of `trading_days(first, last)` by arithmetic, so long ranges stay cheap."""
        if last < first:
            return 0
        span = (last - first).days + 1
        weeks, rest = divmod(span, 7)
        start = first.weekday()
        weekdays = weeks * 5 + sum(1 for i in range(rest) if (start + i) % 7 < 5)
        closed = sum(
            1
            for year in range(first.year, last.year + 1)
            for day in self._holidays_of(year)
            if first <= day <= last and day.weekday() < 5
        )
        return weekdays - closed


def format_local(moment: datetime, tz: tzinfo | str) -> str:
    """Show a UTC instant the way a trader in `tz` reads it, e.g. "2026-03-11 07:00 EDT"."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return ensure_utc(moment).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def format_countdown(delta: timedelta) -> str:
    """Compact "15h 42m" countdown; whole minutes only, never negative."""
    minutes = max(delta // timedelta(minutes=1), 0)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"
