"""Market calendar (SPEC §3): NYSE days, session boundaries, DST and formatting."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from trading_bot.market_calendar import (
    MarketCalendar,
    format_countdown,
    format_local,
    holidays_package_closed_days,
    installed_holidays_version,
    nyse_closed_days,
)
from trading_bot.nyse_closures import FIRST_YEAR, LAST_YEAR, MADE_WITH_HOLIDAYS

NY = ZoneInfo("America/New_York")
CAL = MarketCalendar()
DAYS = st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31))


def ny(*args: int) -> datetime:
    """A New York wall-clock time, so tests read like the spec."""
    return datetime(*args, tzinfo=NY)


def utc(*args: int) -> datetime:
    """A UTC instant, for asserting what the calendar returns."""
    return datetime(*args, tzinfo=timezone.utc)


# --- trading days -----------------------------------------------------------------------


@pytest.mark.parametrize("day", [date(2025, 4, 18), date(2026, 4, 3)])
def test_good_friday_is_not_a_trading_day(day: date) -> None:
    assert not CAL.is_trading_day(day)


def test_thanksgiving_2025_is_not_a_trading_day() -> None:
    assert not CAL.is_trading_day(date(2025, 11, 27))


def test_carter_mourning_closure_2025_01_09_is_not_a_trading_day() -> None:
    assert not CAL.is_trading_day(date(2025, 1, 9))
    assert CAL.next_trading_day(date(2025, 1, 8)) == date(2025, 1, 10)


def test_weekend_is_not_a_trading_day() -> None:
    assert not CAL.is_trading_day(date(2026, 3, 7))
    assert not CAL.is_trading_day(date(2026, 3, 8))


def test_ordinary_weekday_is_a_trading_day() -> None:
    assert CAL.is_trading_day(date(2026, 3, 11))


def test_next_and_previous_trading_day_are_strict() -> None:
    assert CAL.next_trading_day(date(2026, 3, 11)) == date(2026, 3, 12)
    assert CAL.previous_trading_day(date(2026, 3, 11)) == date(2026, 3, 10)


def test_previous_trading_day_skips_weekend_and_good_friday() -> None:
    assert CAL.previous_trading_day(date(2026, 4, 6)) == date(2026, 4, 2)


# --- sessions ---------------------------------------------------------------------------


def test_trade_at_0659_belongs_to_previous_session() -> None:
    assert CAL.session_of(ny(2026, 3, 11, 6, 59)) == date(2026, 3, 10)


def test_trade_at_0700_belongs_to_same_day_session() -> None:
    assert CAL.session_of(ny(2026, 3, 11, 7, 0)) == date(2026, 3, 11)


def test_trade_after_end_time_still_belongs_to_that_day_session() -> None:
    assert CAL.session_of(ny(2026, 3, 11, 23, 30)) == date(2026, 3, 11)


def test_saturday_trade_belongs_to_fridays_session() -> None:
    assert CAL.session_of(ny(2026, 3, 7, 12, 0)) == date(2026, 3, 6)


def test_monday_0659_belongs_to_fridays_session() -> None:
    assert CAL.session_of(ny(2026, 3, 9, 6, 59)) == date(2026, 3, 6)


def test_naive_moment_is_read_as_utc() -> None:
    assert CAL.session_of(datetime(2026, 3, 11, 11, 0)) == date(2026, 3, 11)
    assert CAL.session_of(datetime(2026, 3, 11, 10, 59)) == date(2026, 3, 10)


def test_trade_on_holiday_belongs_to_previous_session() -> None:
    assert CAL.session_of(ny(2025, 1, 9, 10, 0)) == date(2025, 1, 8)


def test_session_closes_when_next_session_opens() -> None:
    assert CAL.session_closes_at(date(2026, 4, 2)) == utc(2026, 4, 6, 11, 0)


@given(DAYS)
def test_session_of_open_is_that_day(day: date) -> None:
    assume(CAL.is_trading_day(day))
    assert CAL.session_of(CAL.open_of(day)) == day


@given(DAYS)
def test_instant_before_open_belongs_to_previous_trading_day(day: date) -> None:
    assume(CAL.is_trading_day(day))
    assert CAL.session_of(CAL.open_of(day) - timedelta(microseconds=1)) == CAL.previous_trading_day(day)


# --- DST --------------------------------------------------------------------------------


def test_spring_dst_switch_moves_open_from_1200_to_1100_utc() -> None:
    assert CAL.open_of(date(2026, 3, 6)) == utc(2026, 3, 6, 12, 0)
    assert CAL.open_of(date(2026, 3, 9)) == utc(2026, 3, 9, 11, 0)


def test_autumn_dst_switch_moves_open_from_1100_to_1200_utc() -> None:
    assert CAL.open_of(date(2026, 10, 30)) == utc(2026, 10, 30, 11, 0)
    assert CAL.open_of(date(2026, 11, 2)) == utc(2026, 11, 2, 12, 0)


def test_close_of_follows_dst() -> None:
    assert CAL.close_of(date(2026, 3, 6)) == utc(2026, 3, 6, 21, 0)
    assert CAL.close_of(date(2026, 3, 9)) == utc(2026, 3, 9, 20, 0)


def test_open_of_returns_aware_utc() -> None:
    assert CAL.open_of(date(2026, 3, 11)).tzinfo == timezone.utc


# --- next open --------------------------------------------------------------------------


def test_next_open_after_skips_thanksgiving() -> None:
    assert CAL.next_open_after(ny(2026, 11, 25, 16, 0)) == ny(2026, 11, 27, 7, 0)


def test_next_open_after_skips_weekend_and_good_friday() -> None:
    assert CAL.next_open_after(ny(2026, 4, 2, 16, 0)) == utc(2026, 4, 6, 11, 0)


def test_next_open_after_exactly_at_open_returns_following_open() -> None:
    assert CAL.next_open_after(ny(2026, 3, 11, 7, 0)) == ny(2026, 3, 12, 7, 0)


def test_next_open_after_just_before_open_returns_that_open() -> None:
    assert CAL.next_open_after(ny(2026, 3, 11, 6, 59)) == ny(2026, 3, 11, 7, 0)


# --- counting trading days --------------------------------------------------------------


def test_trading_days_across_thanksgiving_week() -> None:
    assert CAL.trading_days(date(2025, 11, 24), date(2025, 11, 30)) == [
        date(2025, 11, 24),
        date(2025, 11, 25),
        date(2025, 11, 26),
        date(2025, 11, 28),
    ]
    assert CAL.trading_days_between(date(2025, 11, 24), date(2025, 11, 30)) == 4


def test_trading_days_between_across_year_boundary() -> None:
    # Dec 24, 26, 29, 30, 31, Jan 2, 5 (Christmas and New Year's Day closed).
    assert CAL.trading_days_between(date(2025, 12, 24), date(2026, 1, 5)) == 7


def test_trading_days_between_is_inclusive_of_both_ends() -> None:
    assert CAL.trading_days_between(date(2026, 3, 11), date(2026, 3, 11)) == 1


def test_trading_days_empty_when_last_before_first() -> None:
    assert CAL.trading_days(date(2026, 3, 12), date(2026, 3, 11)) == []
    assert CAL.trading_days_between(date(2026, 3, 12), date(2026, 3, 11)) == 0


def test_trading_days_in_2025_total() -> None:
    assert CAL.trading_days_between(date(2025, 1, 1), date(2025, 12, 31)) == 250


@given(DAYS, DAYS)
def test_trading_days_between_equals_len_trading_days(first: date, last: date) -> None:
    assert CAL.trading_days_between(first, last) == len(CAL.trading_days(first, last))


# --- formatting -------------------------------------------------------------------------


def test_format_local_shows_new_york_wall_time_with_zone() -> None:
    assert format_local(utc(2026, 3, 11, 11, 0), NY) == "2026-03-11 07:00 EDT"


def test_format_local_accepts_zone_name_and_shows_est() -> None:
    assert format_local(utc(2026, 3, 6, 12, 0), "America/New_York") == "2026-03-06 07:00 EST"


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(hours=15, minutes=42), "15h 42m"),
        (timedelta(minutes=42, seconds=59), "42m"),
        (timedelta(days=2, hours=15, minutes=5), "63h 5m"),
        (timedelta(hours=1), "1h 0m"),
        (timedelta(seconds=59), "0m"),
        (timedelta(0), "0m"),
        (timedelta(minutes=-5), "0m"),
    ],
)
def test_format_countdown(delta: timedelta, expected: str) -> None:
    assert format_countdown(delta) == expected


# --- configuration ----------------------------------------------------------------------


def test_custom_hours_calendar_uses_its_own_open() -> None:
    cal = MarketCalendar(start_time=time(9, 30), end_time=time(16, 0))
    assert cal.open_of(date(2026, 3, 11)) == utc(2026, 3, 11, 13, 30)
    assert cal.session_of(ny(2026, 3, 11, 9, 29)) == date(2026, 3, 10)
    assert cal.session_of(ny(2026, 3, 11, 9, 30)) == date(2026, 3, 11)


def test_invalid_timezone_raises_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        MarketCalendar(timezone="Mars/Olympus")


@pytest.mark.parametrize("end", [time(7, 0), time(6, 0)])
def test_end_not_after_start_raises_value_error(end: time) -> None:
    with pytest.raises(ValueError):
        MarketCalendar(start_time=time(7, 0), end_time=end)


# --- the shipped NYSE closures table ------------------------------------------------------


def test_the_shipped_closures_table_is_made_with_the_installed_holidays_package() -> None:
    # When this fails after an upgrade of `holidays`, the calendar is still right (it asks the
    # package) but every command pays ~0.15 s again: re-make src/trading_bot/nyse_closures.py.
    assert installed_holidays_version() == MADE_WITH_HOLIDAYS


def test_the_installed_holidays_version_is_the_one_its_metadata_gives() -> None:
    from importlib import metadata

    assert installed_holidays_version() == metadata.version("holidays")


def test_every_year_of_the_shipped_table_equals_what_the_holidays_package_says() -> None:
    wrong = [
        f'{year}: "{" ".join(day.strftime("%m-%d") for day in sorted(holidays_package_closed_days(year)))}",'
        for year in range(FIRST_YEAR, LAST_YEAR + 1)
        if nyse_closed_days(year, MADE_WITH_HOLIDAYS) != holidays_package_closed_days(year)
    ]
    assert wrong == [], "lines to put in nyse_closures.CLOSED_DAYS:\n" + "\n".join(wrong)


def test_the_table_covers_the_special_closures() -> None:
    assert date(2001, 9, 11) in nyse_closed_days(2001, MADE_WITH_HOLIDAYS)  # four days after the attacks
    assert date(2012, 10, 29) in nyse_closed_days(2012, MADE_WITH_HOLIDAYS)  # hurricane Sandy
    assert date(2025, 1, 9) in nyse_closed_days(2025, MADE_WITH_HOLIDAYS)  # President Carter's funeral


@pytest.mark.parametrize("year", [FIRST_YEAR - 1, FIRST_YEAR, LAST_YEAR, LAST_YEAR + 1])
def test_a_year_at_and_beyond_the_table_edges_matches_the_package(year: int) -> None:
    assert nyse_closed_days(year) == holidays_package_closed_days(year)


def test_another_holidays_version_is_asked_directly_and_agrees_where_nothing_changed() -> None:
    assert nyse_closed_days(2025, "0.0-not-installed") == holidays_package_closed_days(2025)
    assert date(2025, 1, 9) in nyse_closed_days(2025, "0.0-not-installed")


def test_a_trading_day_question_does_not_load_the_holidays_package() -> None:
    # Loading it is the slow part of every command's start; the table answers instead.
    program = (
        "import sys\n"
        "from datetime import date\n"
        "from trading_bot.market_calendar import MarketCalendar\n"
        "calendar = MarketCalendar()\n"
        "print(calendar.is_trading_day(date(2026, 4, 3)), calendar.is_trading_day(date(2026, 4, 6)), 'holidays' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True", "False"]
