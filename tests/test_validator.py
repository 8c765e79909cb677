"""The pre-trade validation chain and its risk checks, and the paper/live switch (SPEC §3, §7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from trading_bot.market_calendar import MarketCalendar
from trading_bot.mode_switcher import LIVE_BANNER, PAPER_BANNER, LiveModeRefused, Mode, ModeSwitcher
from trading_bot.validator import (
    AccountSnapshot,
    MaxDailyLoss,
    MaxPositionPct,
    OrderIntent,
    Refusal,
    TradingHours,
    ValidationChain,
    risk_checks,
)

D = Decimal
NY = ZoneInfo("America/New_York")
INSIDE_HOURS = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)  # Tuesday 11:00 EDT
ACCOUNT = AccountSnapshot(equity=D("10000"), equity_at_session_open=D("10000"), session_net_pnl=D("0"))


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def entry(dollars: str = "100", at: datetime = INSIDE_HOURS) -> OrderIntent:
    return OrderIntent(symbol="AAPL", action="BUY", price=D("10"), dollars=D(dollars), at=at)


def exit_order(at: datetime = INSIDE_HOURS) -> OrderIntent:
    return OrderIntent(symbol="AAPL", action="SELL", price=D("10"), dollars=D("100"), at=at, is_entry=False)


def session_loss(pnl: str) -> AccountSnapshot:
    return AccountSnapshot(equity=D("10000"), equity_at_session_open=D("10000"), session_net_pnl=D(pnl))


@dataclass
class RecordingCheck:
    """A PreTradeCheck that notes every call and refuses when told to."""

    name: str
    refuse: bool = False
    sees_exits: bool = False
    calls: list[str] = field(default_factory=list)

    def check(self, order: OrderIntent, account: AccountSnapshot) -> Refusal | None:
        self.calls.append(order.symbol)
        return Refusal(self.name, f"{self.name} says no") if self.refuse else None


# --- the chain -----------------------------------------------------------------------------


def test_chain_with_no_refusal_allows() -> None:
    decision = ValidationChain([RecordingCheck("a"), RecordingCheck("b")]).validate(entry(), ACCOUNT)
    assert (decision.allowed, decision.refusal, decision.reason) == (True, None, None)


def test_first_refusal_wins() -> None:
    chain = ValidationChain([RecordingCheck("a"), RecordingCheck("b", refuse=True), RecordingCheck("c", refuse=True)])
    decision = chain.validate(entry(), ACCOUNT)
    assert (decision.allowed, decision.reason) == (False, "b says no")


def test_checks_after_a_refusal_are_not_run() -> None:
    later = RecordingCheck("c")
    ValidationChain([RecordingCheck("a", refuse=True), later]).validate(entry(), ACCOUNT)
    assert later.calls == []


def test_insert_first_runs_ahead_of_the_risk_checks() -> None:
    calendar = MarketCalendar()
    chain = ValidationChain(risk_checks(max_position_pct=D("5"), max_daily_loss_pct=D("3"), calendar=calendar))
    chain.insert_first(RecordingCheck("phase", refuse=True))
    decision = chain.validate(entry(dollars="99999", at=ny(2026, 3, 7, 12, 0)), ACCOUNT)
    assert decision.refusal is not None and decision.refusal.check == "phase"
    assert [check.name for check in chain.checks] == ["phase", "trading_hours", "max_daily_loss_pct", "max_position_pct"]


def test_exits_skip_checks_that_do_not_see_exits() -> None:
    blind = RecordingCheck("blind", refuse=True)
    decision = ValidationChain([blind]).validate(exit_order(), ACCOUNT)
    assert decision.allowed
    assert blind.calls == []


def test_exits_are_checked_by_checks_that_see_exits() -> None:
    watcher = RecordingCheck("watcher", refuse=True, sees_exits=True)
    decision = ValidationChain([RecordingCheck("blind", refuse=True), watcher]).validate(exit_order(), ACCOUNT)
    assert (decision.allowed, decision.reason) == (False, "watcher says no")


def test_risk_checks_never_refuse_an_exit() -> None:
    chain = ValidationChain(risk_checks(max_position_pct=D("5"), max_daily_loss_pct=D("3"), calendar=MarketCalendar()))
    assert chain.validate(exit_order(at=ny(2026, 3, 7, 3, 0)), session_loss("-5000")).allowed


# --- MaxPositionPct ------------------------------------------------------------------------


@pytest.mark.parametrize("dollars", ["499.99", "500", "500.00"])
def test_position_at_or_below_the_cap_is_allowed(dollars: str) -> None:
    assert MaxPositionPct(D("5")).check(entry(dollars), ACCOUNT) is None


def test_position_above_the_cap_is_refused() -> None:
    refusal = MaxPositionPct(D("5")).check(entry("500.01"), ACCOUNT)
    assert refusal is not None
    assert refusal.reason == "position $500.01 exceeds 5% of equity ($500.00 of $10000.00)"


def test_position_cap_follows_equity() -> None:
    poorer = AccountSnapshot(equity=D("9000"), equity_at_session_open=D("9000"), session_net_pnl=D("0"))
    assert MaxPositionPct(D("5")).check(entry("450.01"), poorer) is not None


def test_no_position_cap_when_disabled() -> None:
    assert MaxPositionPct(None).check(entry("1000000"), ACCOUNT) is None


# --- MaxDailyLoss --------------------------------------------------------------------------


def test_daily_loss_of_exactly_the_limit_is_allowed() -> None:
    assert MaxDailyLoss(D("3")).check(entry(), session_loss("-300")) is None


def test_daily_loss_just_above_the_limit_is_refused() -> None:
    refusal = MaxDailyLoss(D("3")).check(entry(), session_loss("-300.01"))
    assert refusal is not None
    assert refusal.reason == "daily loss 3.0001% exceeds the 3% limit; no new entries this session"


def test_daily_profit_is_allowed() -> None:
    assert MaxDailyLoss(D("3")).check(entry(), session_loss("900")) is None


def test_no_daily_loss_limit_when_disabled() -> None:
    assert MaxDailyLoss(None).check(entry(), session_loss("-9000")) is None


# --- TradingHours --------------------------------------------------------------------------


@pytest.fixture
def hours() -> TradingHours:
    return TradingHours(MarketCalendar())


def test_entry_before_the_open_is_refused_until_the_open(hours: TradingHours) -> None:
    refusal = hours.check(entry(at=ny(2026, 3, 10, 6, 59)), ACCOUNT)
    assert refusal is not None
    assert refusal.next_allowed_at == ny(2026, 3, 10, 7, 0)
    assert refusal.reason == "outside trading hours (07:00–16:00 EDT on trading days)"


@pytest.mark.parametrize("minute", [(7, 0), (15, 59)], ids=["open", "last-minute"])
def test_entry_inside_hours_is_allowed(hours: TradingHours, minute: tuple[int, int]) -> None:
    assert hours.check(entry(at=ny(2026, 3, 10, *minute)), ACCOUNT) is None


def test_entry_at_the_end_time_is_refused_until_the_next_open(hours: TradingHours) -> None:
    refusal = hours.check(entry(at=ny(2026, 3, 10, 16, 0)), ACCOUNT)
    assert refusal is not None
    assert refusal.next_allowed_at == ny(2026, 3, 11, 7, 0)


def test_entry_on_saturday_is_refused_until_monday(hours: TradingHours) -> None:
    refusal = hours.check(entry(at=ny(2026, 3, 14, 11, 0)), ACCOUNT)
    assert refusal is not None
    assert refusal.next_allowed_at == ny(2026, 3, 16, 7, 0)


def test_entry_on_a_holiday_is_refused(hours: TradingHours) -> None:
    refusal = hours.check(entry(at=ny(2026, 4, 3, 11, 0)), ACCOUNT)  # Good Friday
    assert refusal is not None
    assert refusal.next_allowed_at == ny(2026, 4, 6, 7, 0)


def test_trading_hours_follow_the_dst_change(hours: TradingHours) -> None:
    assert hours.check(entry(at=datetime(2026, 3, 9, 11, 0, tzinfo=timezone.utc)), ACCOUNT) is None  # 07:00 EDT
    assert hours.check(entry(at=datetime(2026, 3, 6, 11, 59, tzinfo=timezone.utc)), ACCOUNT) is not None  # 06:59 EST


# --- ModeSwitcher --------------------------------------------------------------------------


def test_live_guard_refusal_raises_with_the_reason() -> None:
    switcher = ModeSwitcher(live_guard=lambda: "paper only in Experience")
    with pytest.raises(LiveModeRefused) as caught:
        switcher.switch_to_live()
    assert caught.value.reason == "paper only in Experience"
    assert switcher.mode == "paper"


def test_allowed_switch_goes_live() -> None:
    switcher = ModeSwitcher(live_guard=lambda: None)
    switcher.switch_to_live()
    assert (switcher.mode, switcher.is_live) == ("live", True)


def test_switch_without_a_guard_goes_live() -> None:
    switcher = ModeSwitcher()
    switcher.switch_to_live()
    assert switcher.is_live


def test_on_change_is_called_once_per_change() -> None:
    changes: list[Mode] = []
    switcher = ModeSwitcher(on_change=changes.append)
    switcher.switch_to_live()
    switcher.switch_to_live()
    switcher.switch_to_paper()
    assert changes == ["live", "paper"]


def test_refused_switch_does_not_call_on_change() -> None:
    changes: list[Mode] = []
    switcher = ModeSwitcher(live_guard=lambda: "no", on_change=changes.append)
    with pytest.raises(LiveModeRefused):
        switcher.switch_to_live()
    assert changes == []


def test_banners_differ_between_paper_and_live() -> None:
    switcher = ModeSwitcher()
    paper = switcher.banner()
    switcher.switch_to_live()
    assert (paper, switcher.banner()) == (PAPER_BANNER, LIVE_BANNER)
    assert PAPER_BANNER != LIVE_BANNER


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        ModeSwitcher("demo")  # type: ignore[arg-type]
