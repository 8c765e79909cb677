"""The missed-days rule skips sessions during which the breaker was tripped (SPEC §5):
`Ledger.days_tripped` finds them by bisecting once per trip; it must name exactly the
sessions the per-day definition names (a trip before the close, not cleared before the open)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from trading_bot.config import Config
from trading_bot.error_handling.circuit_breaker import BreakerState
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.ledger import Ledger

CALENDAR = MarketCalendar()
DAYS = CALENDAR.trading_days(date(2025, 12, 1), date(2026, 3, 31))
START = CALENDAR.open_of(DAYS[0]) - timedelta(days=3)
SPAN_SECONDS = int((CALENDAR.session_closes_at(DAYS[-1]) - START).total_seconds()) + 3 * 86_400
SHIPPED = Config.from_text(Path("config.json"), (Path(__file__).resolve().parents[2] / "config.json").read_text(encoding="utf-8"))


def _ledger(spans: list[tuple[datetime, datetime | None]]) -> Ledger:
    ledger = Ledger(settings=SHIPPED.settings, mode="paper")
    ledger.breaker_spans = [span for span in spans if span[1] is not None]
    still_open = [tripped for tripped, cleared in spans if cleared is None]
    if still_open:
        ledger.breaker = BreakerState.trip("tripped in the test", still_open[0])
        ledger.open_trip = still_open[0]
    return ledger


def _per_day(spans: list[tuple[datetime, datetime | None]]) -> set[date]:
    return {
        day
        for day in DAYS
        if any(
            tripped < CALENDAR.session_closes_at(day) and (cleared is None or cleared > CALENDAR.open_of(day))
            for tripped, cleared in spans
        )
    }


def _tripped(spans: list[tuple[datetime, datetime | None]]) -> set[date]:
    return _ledger(spans).days_tripped(DAYS, CALENDAR.open_of, CALENDAR.session_closes_at)


_offsets = st.integers(min_value=0, max_value=SPAN_SECONDS)


@settings(max_examples=200, deadline=None)
@given(
    closed=st.lists(st.tuples(_offsets, st.integers(min_value=0, max_value=20 * 86_400)), max_size=4),
    open_at=st.none() | _offsets,
)
def test_the_days_found_by_bisecting_are_the_days_of_the_definition(closed: list[tuple[int, int]], open_at: int | None) -> None:
    spans: list[tuple[datetime, datetime | None]] = [
        (START + timedelta(seconds=at), START + timedelta(seconds=at + length)) for at, length in closed
    ]
    if open_at is not None:
        spans.append((START + timedelta(seconds=open_at), None))
    assert _tripped(spans) == _per_day(spans)


def test_a_trip_exactly_at_the_close_or_cleared_exactly_at_the_open_skips_no_day() -> None:
    day = DAYS[10]
    at_close = [(CALENDAR.session_closes_at(day), CALENDAR.session_closes_at(day) + timedelta(hours=1))]
    assert day not in _tripped(at_close)
    cleared_at_open = [(CALENDAR.open_of(day) - timedelta(hours=1), CALENDAR.open_of(day))]
    assert day not in _tripped(cleared_at_open)
    # One microsecond inside either edge and the day is skipped.
    assert day in _tripped([(CALENDAR.session_closes_at(day) - timedelta(microseconds=1), None)])
    assert day in _tripped([(CALENDAR.open_of(day) - timedelta(hours=1), CALENDAR.open_of(day) + timedelta(microseconds=1))])


def test_no_trip_skips_no_day_and_a_trip_still_open_skips_every_day_after_it() -> None:
    assert _tripped([]) == set()
    assert _tripped([(CALENDAR.open_of(DAYS[5]), None)]) == set(DAYS[5:])
