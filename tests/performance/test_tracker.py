"""Performance summaries and session rows (SPEC §3): grouping by exit session via the calendar."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading_bot.dashboard.metrics_calculator import NO_CLOSED_TRADES, Ratio, net_pnl
from trading_bot.logging.trade_record import TradeRecord, outcome_for, parse_trade
from trading_bot.market_calendar import MarketCalendar
from trading_bot.performance.models import SessionMetrics
from trading_bot.performance.tracker import PerformanceTracker
from trading_bot.phase.models import Phase

D = Decimal
NY = ZoneInfo("America/New_York")
TRACKER = PerformanceTracker(MarketCalendar())
_ids = itertools.count()


def ny(*args: int) -> datetime:
    """New York wall-clock time, so tests read like the spec."""
    return datetime(*args, tzinfo=NY)


def closed_at(
    exit_at: datetime,
    pnl: str | int,
    *,
    entry_at: datetime | None = None,
    emergency: bool = False,
    manual: bool = False,
    phase: str | None = "proof",
) -> TradeRecord:
    """A closed trade parsed from a journal line, as the bot would read it back."""
    n = next(_ids)
    amount = D(pnl)
    data: dict[str, Any] = {
        "timestamp": (entry_at or exit_at - timedelta(minutes=30)).isoformat(),
        "exit_timestamp": exit_at.isoformat(),
        "symbol": "SPY",
        "action": "BUY",
        "quantity": 1,
        "price": "100",
        "order_id": f"t{n}",
        "outcome": outcome_for(amount),
        "net_profit_loss": str(amount),
        "phase": phase,
        "emergency_exit": emergency,
        "manual_override": manual,
    }
    return parse_trade(data, "trades.jsonl", n + 1)


def open_at(entry_at: datetime) -> TradeRecord:
    n = next(_ids)
    data = {"timestamp": entry_at.isoformat(), "symbol": "SPY", "action": "BUY",
            "quantity": 1, "price": "100", "order_id": f"t{n}"}
    return parse_trade(data, "trades.jsonl", n + 1)


def only_row(trades: list[TradeRecord]) -> SessionMetrics:
    rows = TRACKER.session_metrics(trades)
    assert len(rows) == 1
    return rows[0]


# --- grouping by exit session -------------------------------------------------------------


def test_exit_at_0659_new_york_counts_in_the_previous_session() -> None:
    assert only_row([closed_at(ny(2025, 3, 4, 6, 59), 5)]).date == date(2025, 3, 3)


def test_exit_at_0700_new_york_counts_in_that_days_session() -> None:
    assert only_row([closed_at(ny(2025, 3, 4, 7, 0), 5)]).date == date(2025, 3, 4)


def test_exit_at_0659_edt_after_the_dst_change_counts_in_fridays_session() -> None:
    # 10:59 UTC is 06:59 EDT on the Monday after clocks went forward.
    exit_at = datetime(2025, 3, 10, 10, 59, tzinfo=timezone.utc)
    assert only_row([closed_at(exit_at, 5)]).date == date(2025, 3, 7)


def test_saturday_exit_counts_in_fridays_session() -> None:
    assert only_row([closed_at(ny(2025, 3, 8, 12, 0), 5)]).date == date(2025, 3, 7)


def test_exit_on_a_holiday_counts_in_the_previous_session() -> None:
    # Good Friday 2025-04-18 is not a trading day.
    assert only_row([closed_at(ny(2025, 4, 18, 10, 0), 5)]).date == date(2025, 4, 17)


def test_trade_counts_in_the_session_of_its_exit_not_its_entry() -> None:
    trade = closed_at(ny(2025, 3, 5, 9, 0), 5, entry_at=ny(2025, 3, 4, 15, 0))
    assert only_row([trade]).date == date(2025, 3, 5)


def test_session_of_close_is_the_exit_session() -> None:
    assert TRACKER.session_of_close(closed_at(ny(2025, 3, 4, 6, 59), 5)) == date(2025, 3, 3)


def test_session_of_close_of_an_open_trade_is_an_error() -> None:
    with pytest.raises(ValueError):
        TRACKER.session_of_close(open_at(ny(2025, 3, 4, 9, 0)))


def test_session_rows_are_ascending_whatever_the_input_order() -> None:
    trades = [closed_at(ny(2025, 3, 6, 9, 0), 1), closed_at(ny(2025, 3, 4, 9, 0), 1)]
    assert [row.date for row in TRACKER.session_metrics(trades)] == [
        date(2025, 3, 4),
        date(2025, 3, 6),
    ]


def test_sessions_without_closed_trades_have_no_row() -> None:
    assert TRACKER.session_metrics([open_at(ny(2025, 3, 4, 9, 0))]) == []


# --- what a row counts --------------------------------------------------------------------


def test_flagged_trades_count_in_trades_but_not_in_wins_or_losses() -> None:
    row = only_row(
        [
            closed_at(ny(2025, 3, 4, 9, 0), 10),
            closed_at(ny(2025, 3, 4, 10, 0), -30, emergency=True),
            closed_at(ny(2025, 3, 4, 11, 0), 20, manual=True),
        ]
    )
    assert (row.trades, row.wins, row.losses, row.breakevens, row.flagged) == (3, 1, 0, 0, 2)


def test_flagged_trades_count_in_session_net_pnl() -> None:
    row = only_row(
        [closed_at(ny(2025, 3, 4, 9, 0), 10), closed_at(ny(2025, 3, 4, 10, 0), -30, emergency=True)]
    )
    assert row.net_pnl == D("-20")


def test_session_win_rate_and_rr_use_only_that_sessions_trades() -> None:
    trades = [
        closed_at(ny(2025, 3, 4, 9, 0), 30),
        closed_at(ny(2025, 3, 4, 9, 30), 30),
        closed_at(ny(2025, 3, 4, 10, 0), -20),
        closed_at(ny(2025, 3, 5, 9, 0), -50),
    ]
    first = TRACKER.session_metrics(trades)[0]
    assert first.win_rate.value == D(2) / D(3)
    assert first.avg_rr.value == D("1.5")


def test_session_of_only_flagged_trades_has_null_ratios() -> None:
    row = only_row([closed_at(ny(2025, 3, 4, 9, 0), 10, emergency=True)])
    assert row.win_rate == Ratio(None, NO_CLOSED_TRADES)


def test_session_up_a_cent_is_profitable() -> None:
    assert only_row([closed_at(ny(2025, 3, 4, 9, 0), "0.01")]).profitable


def test_breakeven_session_is_not_profitable() -> None:
    row = only_row([closed_at(ny(2025, 3, 4, 9, 0), 5), closed_at(ny(2025, 3, 4, 9, 5), -5)])
    assert row.net_pnl == 0 and not row.profitable


def test_session_phase_defaults_to_the_phase_of_its_latest_close() -> None:
    later = closed_at(ny(2025, 3, 4, 15, 0), 5, phase="experience")
    earlier = closed_at(ny(2025, 3, 4, 9, 0), 5, phase="proof")
    assert only_row([later, earlier]).phase is Phase.EXPERIENCE


def test_session_phase_comes_from_phase_at_when_given() -> None:
    rows = TRACKER.session_metrics(
        [closed_at(ny(2025, 3, 4, 9, 0), 5, phase="proof")], phase_at=lambda day: Phase.TRIAL
    )
    assert rows[0].phase is Phase.TRIAL


def test_position_sizes_and_trips_default_to_none_recorded() -> None:
    row = only_row([closed_at(ny(2025, 3, 4, 9, 0), 5)])
    assert (row.position_sizes, row.breaker_trips) == ((), 0)


def test_position_sizes_and_trips_come_from_the_phase_system() -> None:
    asked: list[date] = []

    def sizes(day: date) -> tuple[Decimal, ...]:
        asked.append(day)
        return (D("200"), D("300"))

    rows = TRACKER.session_metrics(
        [closed_at(ny(2025, 3, 4, 9, 0), 5)], sizes_at=sizes, trips_at=lambda day: 1
    )
    assert (rows[0].position_sizes, rows[0].breaker_trips, asked) == (
        (D("200"), D("300")),
        1,
        [date(2025, 3, 4)],
    )


# --- summary over a period ----------------------------------------------------------------


def test_summary_includes_trades_closed_exactly_at_both_bounds() -> None:
    start, end = ny(2025, 3, 4, 9, 0), ny(2025, 3, 4, 10, 0)
    trades = [closed_at(start, 5), closed_at(end, -5)]
    assert TRACKER.get_summary(start, end, trades=trades).trades_closed == 2


def test_summary_excludes_trades_closed_just_outside_the_bounds() -> None:
    start, end = ny(2025, 3, 4, 9, 0), ny(2025, 3, 4, 10, 0)
    second = timedelta(seconds=1)
    trades = [closed_at(start - second, 5), closed_at(end + second, -5)]
    assert TRACKER.get_summary(start, end, trades=trades).trades_closed == 0


def test_summary_without_bounds_covers_every_closed_trade() -> None:
    trades = [closed_at(ny(2024, 1, 3, 9, 0), 5), closed_at(ny(2026, 1, 6, 9, 0), 5)]
    assert TRACKER.get_summary(trades=trades).trades_closed == 2


def test_summary_counts_flagged_trades_apart() -> None:
    trades = [
        closed_at(ny(2025, 3, 4, 9, 0), 30),
        closed_at(ny(2025, 3, 4, 9, 10), -20),
        closed_at(ny(2025, 3, 4, 9, 20), 0),
        closed_at(ny(2025, 3, 4, 9, 30), -99, emergency=True),
        open_at(ny(2025, 3, 4, 9, 40)),
    ]
    summary = TRACKER.get_summary(trades=trades)
    assert (
        summary.trades_closed, summary.counted_trades, summary.wins, summary.losses,
        summary.breakevens, summary.flagged, summary.net_pnl,
    ) == (4, 3, 1, 1, 1, 1, D("-89"))
    assert summary.win_rate.value == D(1) / D(3)
    assert summary.avg_rr.value == D("1.5")


def test_summary_of_nothing_has_null_ratios() -> None:
    summary = TRACKER.get_summary(trades=[])
    assert (summary.win_rate, summary.avg_rr, summary.net_pnl) == (
        Ratio(None, NO_CLOSED_TRADES),
        Ratio(None, NO_CLOSED_TRADES),
        0,
    )


def test_summary_loss_run_follows_exit_order_not_input_order() -> None:
    loss1 = closed_at(ny(2025, 3, 4, 9, 0), -1)
    loss2 = closed_at(ny(2025, 3, 4, 10, 0), -1)
    win = closed_at(ny(2025, 3, 4, 11, 0), 1)
    assert TRACKER.get_summary(trades=[win, loss2, loss1]).max_consecutive_losses == 2


def test_summary_with_end_before_start_is_an_error() -> None:
    with pytest.raises(ValueError):
        TRACKER.get_summary(ny(2025, 3, 5, 9, 0), ny(2025, 3, 4, 9, 0), trades=[])


# --- properties ---------------------------------------------------------------------------

EXITS = st.datetimes(
    min_value=datetime(2024, 12, 20), max_value=datetime(2025, 1, 15), timezones=st.just(timezone.utc)
)


@given(
    st.lists(
        st.tuples(EXITS, st.integers(-5000, 5000), st.booleans()), min_size=0, max_size=40
    )
)
def test_session_rows_partition_the_closed_trades(
    spec: list[tuple[datetime, int, bool]]
) -> None:
    trades = [
        closed_at(exit_at, str(D(cents).scaleb(-2)), emergency=flag)
        for exit_at, cents, flag in spec
    ]
    rows = TRACKER.session_metrics(trades)
    assert sum(row.trades for row in rows) == len(trades)
    assert sum((row.net_pnl for row in rows), D(0)) == net_pnl(trades)
    assert [row.date for row in rows] == sorted({TRACKER.session_of_close(t) for t in trades})


def test_get_summary_reads_the_journal_when_given_one(tmp_path) -> None:
    from trading_bot.logging.query_helper import TradeJournal

    trades_dir = tmp_path / "trades"
    trades_dir.mkdir()
    lines = [
        '{"timestamp": "2025-03-04T15:00:00Z", "symbol": "AAPL", "action": "BUY", "quantity": 1, "price": "10", '
        '"order_id": "a", "outcome": "win", "exit_timestamp": "2025-03-04T16:00:00Z", "net_profit_loss": "5"}',
        '{"timestamp": "2025-03-05T15:00:00Z", "symbol": "AAPL", "action": "BUY", "quantity": 1, "price": "10", '
        '"order_id": "b", "outcome": "loss", "exit_timestamp": "2025-03-05T16:00:00Z", "net_profit_loss": "-2"}',
    ]
    (trades_dir / "2025-03.jsonl").write_text("\n".join(lines) + "\n")
    tracker = PerformanceTracker(MarketCalendar(), TradeJournal(trades_dir))
    summary = tracker.get_summary(ny(2025, 3, 4, 0, 0), ny(2025, 3, 4, 23, 0))
    assert (summary.trades_closed, summary.wins, summary.net_pnl) == (1, 1, Decimal("5"))


def test_get_summary_without_trades_or_journal_is_an_error() -> None:
    with pytest.raises(ValueError):
        TRACKER.get_summary()
