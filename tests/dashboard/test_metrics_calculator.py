"""The metric definitions (SPEC §4): win rate, R:R, streaks, P&L, equity, loss and drawdown."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading_bot.dashboard.metrics_calculator import (
    NO_CLOSED_TRADES,
    NO_LOSING_TRADES,
    Ratio,
    RollingWindow,
    RunningTally,
    avg_rr,
    consecutive_losses,
    counted,
    daily_loss_pct,
    equity,
    max_drawdown_pct,
    net_pnl,
    rr_meets,
    win_rate,
    winning_streak,
)
from trading_bot.logging.trade_record import TradeRecord, parse_trade
from trading_bot.phase.models import Phase

D = Decimal
T0 = datetime(2025, 3, 3, 15, 0, tzinfo=timezone.utc)
_ids = itertools.count()


def entry(*, phase: Phase | None = Phase.PROOF, manual: bool = False) -> TradeRecord:
    """An open trade; each call gets a fresh order id and a later entry time."""
    n = next(_ids)
    return TradeRecord(
        timestamp=T0 + timedelta(minutes=n),
        symbol="SPY",
        action="BUY",
        quantity=1,
        price=D("100"),
        order_id=f"o{n}",
        phase=phase,
        manual_override=manual,
    )


def closed(
    pnl: str | int | Decimal,
    *,
    emergency: bool = False,
    manual: bool = False,
    phase: Phase | None = Phase.PROOF,
) -> TradeRecord:
    """A closed trade whose outcome follows from the sign of `pnl`, as the bot sets it."""
    opened = entry(phase=phase, manual=manual)
    return opened.closed(
        exit_timestamp=opened.timestamp + timedelta(seconds=30),
        net_pnl=D(pnl),
        emergency_exit=emergency,
    )


def wins_and_losses(wins: int, losses: int) -> list[TradeRecord]:
    return [closed(10) for _ in range(wins)] + [closed(-10) for _ in range(losses)]


# --- counted ------------------------------------------------------------------------------


def test_counted_keeps_closed_unflagged_trades_in_order() -> None:
    a, b = closed(5), closed(-5)
    assert counted([a, entry(), b]) == [a, b]


def test_counted_drops_emergency_exits() -> None:
    assert counted([closed(5, emergency=True)]) == []


def test_counted_drops_manual_overrides() -> None:
    assert counted([closed(5, manual=True)]) == []


# --- win rate -----------------------------------------------------------------------------


def test_win_rate_three_of_five_is_exactly_point_six() -> None:
    assert win_rate(wins_and_losses(3, 2)) == Ratio(D("0.6"), "3 wins / 5 trades")


def test_win_rate_just_below_point_six_is_not_rounded_up() -> None:
    rate = win_rate(wins_and_losses(599, 401)).value
    assert rate == D("0.599")
    assert rate is not None and rate < D("0.60")


def test_win_rate_just_above_point_six() -> None:
    rate = win_rate(wins_and_losses(601, 399)).value
    assert rate == D("0.601")
    assert rate is not None and rate > D("0.60")


def test_win_rate_with_no_trades_is_null_no_closed_trades() -> None:
    assert win_rate([]) == Ratio(None, NO_CLOSED_TRADES)


def test_win_rate_ignores_open_trades() -> None:
    assert win_rate([entry(), entry()]) == Ratio(None, NO_CLOSED_TRADES)


def test_breakeven_counts_in_the_win_rate_denominator() -> None:
    assert win_rate([closed(10), closed(0)]).value == D("0.5")


def test_flagged_loss_is_excluded_from_win_rate() -> None:
    assert win_rate([closed(10), closed(-10, emergency=True)]).value == 1


def test_manual_override_loss_is_excluded_from_win_rate() -> None:
    assert win_rate([closed(10), closed(-10, manual=True)]).value == 1


def test_win_rate_of_parsed_journal_lines() -> None:
    lines = [
        {"timestamp": "2025-03-03T15:00:00Z", "symbol": "SPY", "action": "BUY",
         "quantity": 1, "price": "100", "order_id": f"p{i}", "outcome": outcome,
         "exit_timestamp": "2025-03-03T16:00:00Z", "net_profit_loss": pnl}
        for i, (outcome, pnl) in enumerate(
            [("win", "12.50"), ("loss", "-4"), ("breakeven", "0"), ("win", "1")]
        )
    ]
    trades = [parse_trade(data, "trades.jsonl", i + 1) for i, data in enumerate(lines)]
    assert win_rate(trades) == Ratio(D("0.5"), "2 wins / 4 trades")


# --- average R:R --------------------------------------------------------------------------


def test_avg_rr_is_mean_win_over_mean_loss_exactly() -> None:
    assert avg_rr([closed(30), closed(30), closed(-20)]).value == D("1.5")


def test_avg_rr_uses_means_not_sums() -> None:
    # mean win 15, mean |loss| 6 -> 2.5; the ratio of the sums would be 30 / 6 = 5
    assert avg_rr([closed(10), closed(20), closed(-6)]).value == D("2.5")


def test_avg_rr_ignores_breakevens_in_both_means() -> None:
    assert avg_rr([closed(30), closed(0), closed(-20)]).value == D("1.5")


def test_avg_rr_with_no_losses_is_null_no_losing_trades() -> None:
    assert avg_rr([closed(30)]) == Ratio(None, NO_LOSING_TRADES)


def test_avg_rr_with_losses_and_no_wins_is_zero() -> None:
    assert avg_rr([closed(-30), closed(0)]).value == 0


def test_avg_rr_with_no_trades_is_null_no_closed_trades() -> None:
    assert avg_rr([]) == Ratio(None, NO_CLOSED_TRADES)


def test_avg_rr_excludes_flagged_losses() -> None:
    assert avg_rr([closed(30), closed(-100, emergency=True)]) == Ratio(None, NO_LOSING_TRADES)


def test_avg_rr_detail_names_both_means() -> None:
    detail = avg_rr([closed(30), closed(30), closed(-20)]).detail
    assert "30.00" in detail and "20.00" in detail


# --- R:R met or not -----------------------------------------------------------------------


def test_rr_exactly_at_required_is_met() -> None:
    trades = [closed(30), closed(-20)]
    assert rr_meets(avg_rr(trades), D("1.5"), trades)


def test_rr_just_below_required_is_not_met() -> None:
    trades = [closed("30"), closed("-20.01")]
    assert not rr_meets(avg_rr(trades), D("1.5"), trades)


def test_rr_just_above_required_is_met() -> None:
    trades = [closed("30.01"), closed("-20")]
    assert rr_meets(avg_rr(trades), D("1.5"), trades)


def test_rr_with_wins_and_no_losses_is_met() -> None:
    trades = [closed(30)]
    assert rr_meets(avg_rr(trades), D("1.5"), trades)


def test_rr_with_only_breakevens_is_not_met() -> None:
    trades = [closed(0)]
    assert not rr_meets(avg_rr(trades), D("1.5"), trades)


def test_rr_with_no_trades_is_never_met() -> None:
    assert not rr_meets(avg_rr([]), D("0"), [])


def test_rr_of_zero_meets_a_zero_requirement() -> None:
    trades = [closed(-5)]
    assert rr_meets(avg_rr(trades), D("0"), trades)


# --- streaks ------------------------------------------------------------------------------


def test_three_losses_in_a_row_are_three_consecutive_losses() -> None:
    assert consecutive_losses([closed(5), closed(-1), closed(-1), closed(-1)]) == 3


def test_a_win_ends_the_loss_run() -> None:
    assert consecutive_losses([closed(-1), closed(-1), closed(5)]) == 0


def test_a_breakeven_ends_the_loss_run() -> None:
    assert consecutive_losses([closed(-1), closed(-1), closed(0)]) == 0


def test_consecutive_losses_skip_flagged_trades() -> None:
    trades = [closed(-1), closed(50, emergency=True), closed(-1), closed(9, manual=True)]
    assert consecutive_losses(trades) == 2


def test_an_open_trade_does_not_end_the_loss_run() -> None:
    assert consecutive_losses([closed(-1), entry()]) == 1


def test_no_trades_no_consecutive_losses() -> None:
    assert consecutive_losses([]) == 0


def test_five_wins_in_a_row_are_a_winning_streak_of_five() -> None:
    assert winning_streak([closed(-1)] + [closed(2) for _ in range(5)]) == 5


def test_a_breakeven_ends_the_winning_streak() -> None:
    assert winning_streak([closed(2), closed(2), closed(0)]) == 0


def test_a_loss_ends_the_winning_streak() -> None:
    assert winning_streak([closed(2), closed(-2)]) == 0


def test_winning_streak_skips_flagged_trades() -> None:
    assert winning_streak([closed(2), closed(-9, emergency=True), closed(2)]) == 2


# --- P&L and equity -----------------------------------------------------------------------


def test_net_pnl_includes_flagged_trades() -> None:
    assert net_pnl([closed("10.25"), closed("-3.10", emergency=True)]) == D("7.15")


def test_net_pnl_ignores_open_trades() -> None:
    assert net_pnl([entry(), closed("1.01")]) == D("1.01")


def test_net_pnl_of_nothing_is_zero() -> None:
    assert net_pnl([]) == 0


def test_equity_excludes_experience_trades() -> None:
    trades = [closed(100, phase=Phase.EXPERIENCE), closed(-40, phase=Phase.PROOF)]
    assert equity(D("10000"), trades) == D("9960")


def test_equity_includes_flagged_trades() -> None:
    assert equity(D("10000"), [closed(-40, emergency=True, phase=Phase.TRIAL)]) == D("9960")


def test_equity_counts_a_trade_with_no_phase() -> None:
    assert equity(D("10000"), [closed("12.34", phase=None)]) == D("10012.34")


# --- daily loss ---------------------------------------------------------------------------


def test_daily_loss_of_500_on_10000_is_exactly_5_pct() -> None:
    assert daily_loss_pct(D("-500"), D("10000")) == D("5")


def test_daily_loss_a_cent_more_is_5_0001_pct() -> None:
    assert daily_loss_pct(D("-500.01"), D("10000")) == D("5.0001")


def test_daily_loss_a_cent_less_is_4_9999_pct() -> None:
    assert daily_loss_pct(D("-499.99"), D("10000")) == D("4.9999")


def test_daily_loss_is_negative_on_an_up_day() -> None:
    assert daily_loss_pct(D("250"), D("10000")) == D("-2.5")


def test_daily_loss_of_a_flat_day_is_zero() -> None:
    assert daily_loss_pct(D("0"), D("10000")) == 0


@pytest.mark.parametrize("bad", [D("0"), D("-1")])
def test_daily_loss_on_non_positive_equity_is_an_error(bad: Decimal) -> None:
    with pytest.raises(ValueError):
        daily_loss_pct(D("-1"), bad)


# --- drawdown -----------------------------------------------------------------------------


def test_drawdown_with_no_trades_is_zero() -> None:
    assert max_drawdown_pct(D("10000"), []) == 0


def test_drawdown_only_rising_is_zero() -> None:
    assert max_drawdown_pct(D("10000"), [D("5"), D("10")]) == 0


def test_drawdown_from_the_starting_equity() -> None:
    assert max_drawdown_pct(D("10000"), [D("-500")]) == D("5")


def test_drawdown_is_measured_from_the_risen_peak() -> None:
    # peak 11000, trough 9900 -> 10%; a later 5% dip from a new peak does not replace it
    pnls = [D("1000"), D("-550"), D("-550"), D("2000"), D("-595")]
    assert max_drawdown_pct(D("10000"), pnls) == D("10")


def test_drawdown_just_below_five_pct() -> None:
    assert max_drawdown_pct(D("10000"), [D("-499.99")]) == D("4.9999")


def test_drawdown_on_non_positive_start_is_an_error() -> None:
    with pytest.raises(ValueError):
        max_drawdown_pct(D("0"), [])


# --- running tally and rolling window -----------------------------------------------------


def test_running_tally_counts_flagged_separately() -> None:
    tally = RunningTally([closed(5), closed(-5, emergency=True), entry()])
    assert (tally.closed, tally.counted, tally.flagged, tally.net_pnl) == (2, 1, 1, D("0"))


def test_running_tally_remembers_the_longest_loss_run() -> None:
    tally = RunningTally([closed(-1), closed(-1), closed(-1), closed(1), closed(-1)])
    assert (tally.max_consecutive_losses, tally.consecutive_losses) == (3, 1)


def test_rolling_window_drops_the_oldest_trade_when_full() -> None:
    window = RollingWindow(2, [closed(-1), closed(1), closed(1)])
    assert window.win_rate().value == 1 and window.full and len(window) == 2


def test_rolling_window_is_not_full_until_size_counted_trades() -> None:
    window = RollingWindow(3, [closed(1), closed(1), closed(1, emergency=True), entry()])
    assert not window.full and len(window) == 2 and window.size == 3


def test_rolling_window_of_size_zero_is_an_error() -> None:
    with pytest.raises(ValueError):
        RollingWindow(0)


# --- properties ---------------------------------------------------------------------------

KINDS = st.sampled_from(["plain", "plain", "plain", "emergency", "manual", "open"])
CENTS = st.one_of(st.just(0), st.integers(-20_000, 20_000))


@st.composite
def trade_lists(draw: st.DrawFn) -> list[TradeRecord]:
    """Random journals: wins, losses, breakevens, flagged closes and open entries."""
    trades = []
    for kind, cents in draw(st.lists(st.tuples(KINDS, CENTS), max_size=60)):
        if kind == "open":
            trades.append(entry())
        else:
            trades.append(
                closed(
                    D(cents).scaleb(-2),
                    emergency=kind == "emergency",
                    manual=kind == "manual",
                )
            )
    return trades


@given(trade_lists(), st.sampled_from([D("0"), D("1.5"), D("2")]))
def test_running_tally_agrees_with_the_list_functions(
    trades: list[TradeRecord], required: Decimal
) -> None:
    tally = RunningTally()
    for trade in trades:
        tally.fold(trade)
    assert tally.win_rate() == win_rate(trades)
    assert tally.avg_rr() == avg_rr(trades)
    assert tally.consecutive_losses == consecutive_losses(trades)
    assert tally.winning_streak == winning_streak(trades)
    assert tally.counted == len(counted(trades))
    assert tally.net_pnl == net_pnl(trades)
    assert tally.rr_meets(required) == rr_meets(avg_rr(trades), required, trades)


@given(trade_lists())
def test_win_rate_is_between_zero_and_one(trades: list[TradeRecord]) -> None:
    value = win_rate(trades).value
    assert value is None or 0 <= value <= 1


@given(trade_lists(), st.integers(1, 25))
def test_rolling_window_agrees_with_the_list_functions_over_the_last_n(
    trades: list[TradeRecord], size: int
) -> None:
    window = RollingWindow(size)
    for trade in trades:
        window.fold(trade)
    last = counted(trades)[-size:]
    assert window.win_rate() == win_rate(last)
    assert window.avg_rr() == avg_rr(last)
    assert len(window) == len(last)
    assert window.full == (len(last) == size)


def test_folding_passes_every_trade_on_and_tallies_as_a_fold_would() -> None:
    from tests.conftest import journal_fields
    from trading_bot.logging.trade_record import parse_trade

    trades = [
        parse_trade(journal_fields(order_id=f"o-{n}", outcome=outcome, exit_timestamp="2026-03-10T15:00:00Z", net_profit_loss=pnl), "j", n)
        for n, (outcome, pnl) in enumerate([("win", "5"), ("loss", "-2"), ("loss", "-1"), ("breakeven", "0")])
    ]
    streamed = RunningTally()
    passed_on = list(streamed.folding(iter(trades)))
    assert passed_on == trades
    folded = RunningTally(trades)
    assert (streamed.closed, streamed.wins, streamed.losses, streamed.net_pnl, streamed.max_consecutive_losses) == (
        folded.closed, folded.wins, folded.losses, folded.net_pnl, folded.max_consecutive_losses
    ) == (4, 1, 2, Decimal("2"), 2)
