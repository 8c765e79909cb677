"""Each gate criterion and downgrade trigger on its own, and the registries that build them.

Table-driven: a stint folded from a few closes, the rule, and whether it is met or
fires — at, just below and just above each threshold. Whole-desk behaviour is in
test_gates.py and test_downgrades.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from trading_bot.config import Config
from trading_bot.error_handling.circuit_breaker import BreakerState
from trading_bot.logging.trade_record import TradeRecord, outcome_for
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.models import Phase, Stint
from trading_bot.phase.stint import StintProgress
from trading_bot.phase.rules import (
    GATES,
    ConsecutiveLosses,
    DailyLoss,
    GateView,
    MaxDrawdown,
    MissedDaysStreak,
    OverrideIncidents,
    ProfitableSessions,
    RollingWinRate,
    TradeCount,
    TradeWindow,
    TradingDays,
    WindowRR,
    WindowWinRate,
    gate_for,
    gate_window_size,
    loosened_criteria,
    trigger_window_size,
    triggers_for,
)

D = Decimal
CALENDAR = MarketCalendar()
START = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)  # Monday 10:00 New York


def progress(*pnls: str, phase: Phase = Phase.PROOF, window: int | None = None, equity: str = "10000") -> StintProgress:
    """A stint in `phase` that closed one trade per P&L, all in the same session."""
    stint = Stint(phase=phase, since=START - timedelta(days=1), phase_since=START - timedelta(days=1), size=D("100"), breaker=BreakerState.closed(), mode="paper")
    folded = StintProgress(
        stint=stint,
        calendar=CALENDAR,
        phase_at=lambda _moment: phase,
        starting_equity=D(equity),
        trigger_window_size=window,
        gate_window_size=window,
    )
    for number, pnl in enumerate(pnls):
        at = START + timedelta(minutes=number)
        folded.fold(
            TradeRecord(
                timestamp=at, symbol="AAPL", action="BUY", quantity=1, price=D("10"), order_id=f"o-{number}",
                outcome=outcome_for(D(pnl)), exit_timestamp=at, net_pnl=D(pnl), phase=phase,
            )
        )
    return folded


def view(folded: StintProgress, **counts: int) -> GateView:
    return GateView(
        progress=folded,
        trading_days=counts.get("trading_days", 0),
        missed_days_streak=counts.get("missed_days_streak", 0),
        override_incidents=counts.get("override_incidents", 0),
    )


# ---- triggers ------------------------------------------------------------------------------


TRIGGER_CASES: list[tuple[str, Any, StintProgress, bool]] = [
    ("2 losses of 3", ConsecutiveLosses(3), progress("-5", "-5"), False),
    ("3 losses of 3", ConsecutiveLosses(3), progress("-5", "-5", "-5"), True),
    ("4 losses of 3", ConsecutiveLosses(3), progress("-5", "-5", "-5", "-5"), True),
    ("a win ends the run", ConsecutiveLosses(3), progress("-5", "-5", "5", "-5"), False),
    ("a breakeven ends the run", ConsecutiveLosses(3), progress("-5", "-5", "0", "-5"), False),
    ("win rate 0.50 < 0.55 over a full window", RollingWinRate(4, D("0.55")), progress("5", "5", "-5", "-5", window=4), True),
    ("win rate 0.75 over a full window", RollingWinRate(4, D("0.55")), progress("5", "5", "5", "-5", window=4), False),
    ("win rate at the minimum", RollingWinRate(4, D("0.50")), progress("5", "5", "-5", "-5", window=4), False),
    ("window not full yet", RollingWinRate(4, D("0.55")), progress("-5", "-5", "-5", window=4), False),
    ("daily loss at 5%", DailyLoss(D("5")), progress("-500", phase=Phase.TRIAL), False),
    ("daily loss just above 5%", DailyLoss(D("5")), progress("-500.01", phase=Phase.TRIAL), True),
    ("daily loss just below 5%", DailyLoss(D("5")), progress("-499.99", phase=Phase.TRIAL), False),
    ("an up day", DailyLoss(D("5")), progress("800", phase=Phase.TRIAL), False),
    ("any loss with equity at the open of 0", DailyLoss(D("5")), progress("-0.01", phase=Phase.TRIAL, equity="0"), True),
    ("any loss with equity at the open below 0", DailyLoss(D("5")), progress("-0.01", phase=Phase.TRIAL, equity="-0.01"), True),
    ("a breakeven day with equity at the open of 0", DailyLoss(D("5")), progress("0", phase=Phase.TRIAL, equity="0"), False),
    ("an up day with equity at the open below 0", DailyLoss(D("5")), progress("5", phase=Phase.TRIAL, equity="-100"), False),
    ("a loss of 5% of 0.01 equity at the open", DailyLoss(D("5")), progress("-0.0005", phase=Phase.TRIAL, equity="0.01"), False),
    ("a loss above 5% of 0.01 equity at the open", DailyLoss(D("5")), progress("-0.0006", phase=Phase.TRIAL, equity="0.01"), True),
]


@pytest.mark.parametrize(("rule", "folded", "fires"), [case[1:] for case in TRIGGER_CASES], ids=[case[0] for case in TRIGGER_CASES])
def test_trigger_fires_exactly_past_its_threshold(rule: Any, folded: StintProgress, fires: bool) -> None:
    hit = rule.check(folded)
    assert (hit is not None) is fires
    if hit is not None:
        assert hit.name == rule.name


def test_each_trigger_describes_itself_in_one_line() -> None:
    assert [rule.describe() for rule in (ConsecutiveLosses(3), RollingWinRate(20, D("0.55")), DailyLoss(D("5")))] == [
        "3 consecutive losses → downgrade",
        "win rate of the last 20 trades below 0.5500 → downgrade",
        "daily loss above 5% of equity → downgrade",
    ]


# ---- gate criteria -------------------------------------------------------------------------


GATE_CASES: list[tuple[str, Any, GateView, bool]] = [
    ("2 profitable sessions of 2", ProfitableSessions(2), view(progress("5")), False),
    ("1 profitable session of 1", ProfitableSessions(1), view(progress("5")), True),
    ("29 trading days of 30", TradingDays(30), view(progress(), trading_days=29), False),
    ("30 trading days of 30", TradingDays(30), view(progress(), trading_days=30), True),
    ("missed 3 of 3 allowed", MissedDaysStreak(3), view(progress(), missed_days_streak=3), True),
    ("missed 4 of 3 allowed", MissedDaysStreak(3), view(progress(), missed_days_streak=4), False),
    ("2 trades of 3", TradeCount(3), view(progress("5", "-5")), False),
    ("3 trades of 3", TradeCount(3), view(progress("5", "-5", "5")), True),
    ("0 incidents of 0", OverrideIncidents(0), view(progress(), override_incidents=0), True),
    ("1 incident of 0", OverrideIncidents(0), view(progress(), override_incidents=1), False),
    ("win rate 0.6667 ≥ 0.65", WindowWinRate(TradeWindow(3), D("0.65")), view(progress("5", "5", "-5", window=3)), True),
    ("win rate 0.6667 < 0.67", WindowWinRate(TradeWindow(3), D("0.67")), view(progress("5", "5", "-5", window=3)), False),
    ("R:R 2.0 ≥ 2.0", WindowRR(TradeWindow(3), D("2")), view(progress("10", "10", "-5", window=3)), True),
    ("R:R 1.98 < 2.0", WindowRR(TradeWindow(3), D("2")), view(progress("9.9", "9.9", "-5", window=3)), False),
    ("R:R with wins and no losses", WindowRR(TradeWindow(3), D("2")), view(progress("5", "5", window=3)), True),
    ("R:R with no trades", WindowRR(TradeWindow(3), D("2")), view(progress(window=3)), False),
    ("drawdown 4.99% < 5%", MaxDrawdown(D("5")), view(progress("-499", phase=Phase.TRIAL)), True),
    ("drawdown 5% is not below 5%", MaxDrawdown(D("5")), view(progress("-500", phase=Phase.TRIAL)), False),
    ("a disabled criterion is met", TradeCount(None), view(progress()), True),
    ("drawdown from a peak of 0 is not measurable", MaxDrawdown(D("5")), view(progress("-1", phase=Phase.TRIAL, equity="0")), False),
    ("drawdown from a peak below 0 is not measurable", MaxDrawdown(D("5")), view(progress("-1", phase=Phase.TRIAL, equity="-0.01")), False),
    ("a gain from equity below 0 leaves the drawdown unmeasured", MaxDrawdown(D("5")), view(progress("5", phase=Phase.TRIAL, equity="-100")), False),
    ("no closes yet on equity below 0", MaxDrawdown(D("5")), view(progress(phase=Phase.TRIAL, equity="-100")), False),
    ("drawdown 4.99% from a peak of 0.01", MaxDrawdown(D("5")), view(progress("-0.000499", phase=Phase.TRIAL, equity="0.01")), True),
]


@pytest.mark.parametrize(("rule", "seen", "met"), [case[1:] for case in GATE_CASES], ids=[case[0] for case in GATE_CASES])
def test_gate_criterion_is_met_exactly_at_its_threshold(rule: Any, seen: GateView, met: bool) -> None:
    result = rule.evaluate(seen)
    assert (result.name, result.met) == (rule.name, met)


def test_daily_loss_on_equity_at_or_below_zero_says_why_it_fired() -> None:
    hit = DailyLoss(D("5")).check(progress("-0.01", phase=Phase.TRIAL, equity="0"))
    assert hit is not None
    assert (hit.name, hit.threshold) == ("max_daily_loss_pct", "5.0000")
    assert hit.detail == "daily loss $0.01 with equity at the session's open $0.00 (not above zero): any loss fires"


def test_drawdown_from_a_peak_at_or_below_zero_is_unmet_with_a_clear_detail() -> None:
    folded = progress("-1", phase=Phase.TRIAL, equity="-0.01")
    assert folded.drawdown_pct() is None
    result = MaxDrawdown(D("5")).evaluate(view(folded))
    assert (result.actual, result.required, result.met) == (None, "5.0000", False)
    assert result.detail == "max drawdown in the stint not measurable (equity peak $-0.01 is not above zero); limit 5.0000%"


def test_drawdown_stays_unmeasurable_after_equity_climbs_back_above_zero() -> None:
    folded = progress("-1", "50", phase=Phase.TRIAL, equity="0")
    assert folded.drawdown_pct() is None


# ---- the registries ------------------------------------------------------------------------


@pytest.fixture
def settings(config_path: Any) -> Any:
    return Config.from_env_and_json(config_path, environ={}).settings


@pytest.mark.parametrize(
    ("phase", "names"),
    [
        (Phase.EXPERIENCE, ["profitable_sessions", "win_rate", "avg_rr", "override_incidents"]),
        (Phase.PROOF, ["trading_days", "missed_days_streak", "trades", "win_rate", "avg_rr"]),
        (Phase.TRIAL, ["trading_days", "trades", "win_rate", "avg_rr", "max_drawdown_pct"]),
        (Phase.SCALING, []),
    ],
)
def test_gate_registry_builds_each_phases_criteria_in_order(settings: Any, phase: Phase, names: list[str]) -> None:
    assert [rule.name for rule in gate_for(settings, phase)] == names


def test_windows_come_from_the_rules_that_need_them(settings: Any) -> None:
    assert (gate_window_size(settings, Phase.EXPERIENCE), gate_window_size(settings, Phase.PROOF)) == (None, 50)
    assert (trigger_window_size(settings, Phase.EXPERIENCE), trigger_window_size(settings, Phase.TRIAL)) == (None, 20)


def test_trigger_registry_leaves_out_what_config_switches_off(config_path: Any) -> None:
    config = Config.from_env_and_json(config_path, environ={}).with_updates(
        {("phase_progression", "proof", "downgrade_triggers", "consecutive_losses"): None}
    )
    assert [rule.name for rule in triggers_for(config.settings, Phase.PROOF)] == ["rolling_win_rate"]
    assert [rule.name for rule in triggers_for(config.settings, Phase.TRIAL)] == ["consecutive_losses", "rolling_win_rate", "max_daily_loss_pct"]
    assert triggers_for(config.settings, Phase.EXPERIENCE) == []


def criteria(phase: str, **values: Any) -> dict[str, Any]:
    return {"phase_progression": {phase: {"advancement_criteria": values}}}


LOOSENING = [
    ("a lower minimum", "proof", {"min_trades": "50"}, {"min_trades": "49"}, ["min_trades"]),
    ("a higher minimum", "proof", {"min_trades": "50"}, {"min_trades": "51"}, []),
    ("a minimum switched off", "proof", {"min_win_rate": "0.65"}, {"min_win_rate": None}, ["min_win_rate"]),
    ("a higher allowance", "proof", {"max_missed_days": 3}, {"max_missed_days": 4}, ["max_missed_days"]),
    ("a lower allowance", "trial", {"max_drawdown_pct": "5"}, {"max_drawdown_pct": "4"}, []),
    ("the same value spelled differently", "experience", {"min_win_rate": "0.60"}, {"min_win_rate": "0.6"}, []),
    ("a window size", "proof", {"trade_window": 50}, {"trade_window": 10}, []),
    ("a minimum switched back on", "experience", {"min_sessions": None}, {"min_sessions": 20}, []),
]


@pytest.mark.parametrize(("phase", "before", "after", "keys"), [case[1:] for case in LOOSENING], ids=[case[0] for case in LOOSENING])
def test_each_criterion_says_whether_an_edit_loosens_it(phase: str, before: dict[str, Any], after: dict[str, Any], keys: list[str]) -> None:
    loosened = loosened_criteria(criteria(phase, **before), criteria(phase, **after))
    assert loosened == [f"phase_progression.{phase}.advancement_criteria.{key}" for key in keys]


def test_every_gate_rule_names_a_key_of_its_config_block(settings: Any) -> None:
    for phase, rules in GATES.items():
        block = settings.phase_block(phase).advancement_criteria  # type: ignore[union-attr]
        for rule in rules:
            assert hasattr(block, rule.criterion.limit_key), (phase, rule.criterion.limit_key)
