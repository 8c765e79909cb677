"""The one pre-trade chain and each of its checks, and the paper/live switch (SPEC §3, §7).

Table-driven: each row is one state or order and the refusal code it must get (or
None); messages are asserted only where the spec fixes their wording.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from trading_bot.error_handling.circuit_breaker import BreakerState
from trading_bot.market_calendar import MarketCalendar
from trading_bot.mode_switcher import LIVE_BANNER, PAPER_BANNER, LiveModeRefused, Mode, ModeSwitcher
from trading_bot.phase.models import Phase
from trading_bot.entry_checks import (
    CODE_BROKER_BREAKER,
    CODE_DAILY_LOSS,
    CODE_DAMAGE,
    CODE_BREAKER,
    CODE_HOURS,
    CODE_LIMIT,
    CODE_LIVE,
    CODE_POSITION,
    CODE_SHARES,
    CODE_SIZE,
    EntryChain,
    MaxDailyLoss,
    MaxPositionPct,
    OrderIntent,
    Refusal,
    TradingHours,
    TradingState,
    TradingStatus,
)

D = Decimal
NY = ZoneInfo("America/New_York")
INSIDE_HOURS = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)  # Tuesday 11:00 EDT
CALENDAR = MarketCalendar()
TRIPPED = BreakerState.trip("3 consecutive losses", INSIDE_HOURS)
STATE = TradingState(
    at=INSIDE_HOURS,
    session=CALENDAR.session_of(INSIDE_HOURS),
    phase=Phase.PROOF,
    stint_since=None,
    size=D("100"),
    size_refusal=None,
    entries_used=0,
    max_entries=1,
    breaker=BreakerState.closed(),
    equity=D("10000"),
    equity_at_session_open=D("10000"),
    session_pnl=D("0"),
)
CHAIN = EntryChain.standard(CALENDAR, max_daily_loss_pct=D("3"), max_position_pct=D("5"))


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def entry(dollars: str | None = "100", at: datetime = INSIDE_HOURS, price: str | None = "10", mode: str = "paper") -> OrderIntent:
    return OrderIntent(
        symbol="AAPL",
        action="BUY",
        price=None if price is None else D(price),
        dollars=None if dollars is None else D(dollars),
        at=at,
        mode=mode,
    )


def state(**changes: Any) -> TradingState:
    return replace(STATE, **changes)


# --- the chain: one row per reason, in SPEC §7 order, then the risk checks --------------


CASES = [
    ("allowed", entry(), STATE, None),
    ("damaged records", entry(), state(damage="phase log damaged"), CODE_DAMAGE),
    ("breaker tripped", entry(), state(breaker=TRIPPED), CODE_BREAKER),
    ("live in experience", entry(mode="live"), state(phase=Phase.EXPERIENCE, max_entries=None), CODE_LIVE),
    ("live in proof", entry(mode="live"), STATE, None),
    ("limit: 0 of 1 used", entry(), state(entries_used=0), None),
    ("limit: 1 of 1 used", entry(), state(entries_used=1), CODE_LIMIT),
    ("limit: 2 of 1 used", entry(), state(entries_used=2), CODE_LIMIT),
    ("no limit", entry(), state(entries_used=50, max_entries=None), None),
    ("order at the size", entry("100"), STATE, None),
    ("order a cent above the size", entry("100.01"), STATE, CODE_SIZE),
    ("equity cap leaves no size", entry(), state(size_refusal="below the scaling minimum"), CODE_SIZE),
    ("before the open", entry(at=ny(2026, 3, 10, 6, 59)), STATE, CODE_HOURS),
    ("daily loss at 3%", entry(), state(session_pnl=D("-300")), None),
    ("daily loss above 3%", entry(), state(session_pnl=D("-300.01")), CODE_DAILY_LOSS),
    ("position at 5% of equity", entry("500"), state(size=D("2000")), None),
    ("position above 5% of equity", entry("500.01"), state(size=D("2000")), CODE_POSITION),
    ("zero whole shares", entry(price="150"), STATE, CODE_SHARES),
    ("no price: shares not judged", entry(price=None), STATE, None),
    # Several reasons at once: the first in the chain's order is the one given.
    ("damage beats breaker", entry(), state(damage="x", breaker=TRIPPED), CODE_DAMAGE),
    ("breaker beats limit", entry(), state(breaker=TRIPPED, entries_used=1), CODE_BREAKER),
    ("live beats limit", entry(mode="live"), state(phase=Phase.EXPERIENCE, entries_used=1), CODE_LIVE),
    ("limit beats hours", entry(at=ny(2026, 3, 10, 16, 0)), state(entries_used=1), CODE_LIMIT),
    ("hours beat daily loss", entry(at=ny(2026, 3, 14, 11, 0)), state(session_pnl=D("-5000")), CODE_HOURS),
]


@pytest.mark.parametrize(("order", "trading", "code"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_chain_gives_the_first_reason_in_order(order: OrderIntent, trading: TradingState, code: str | None) -> None:
    assert CHAIN.decide(order, trading).code == code


def test_allowed_entry_has_the_whole_shares_of_its_dollars() -> None:
    decision = CHAIN.decide(entry("100", price="33.33"), STATE)
    assert (decision.allowed, decision.shares, decision.dollars, decision.status) == (True, 3, D("100"), TradingStatus.ACTIVE)


def test_an_order_without_dollars_takes_the_size_in_force() -> None:
    assert CHAIN.decide(entry(None), state(size=D("200"), phase=Phase.TRIAL, max_entries=None)).dollars == D("200")


def test_a_tripped_broker_breaker_refuses_after_every_other_check() -> None:
    broken = BreakerState.trip("5 broker failures", INSIDE_HOURS)
    assert CHAIN.decide(entry(), STATE, broken).code == CODE_BROKER_BREAKER
    assert CHAIN.decide(entry(price="150"), STATE, broken).code == CODE_SHARES


@pytest.mark.parametrize(
    ("trading", "status"),
    [(state(breaker=TRIPPED), TradingStatus.HALTED), (state(damage="x"), TradingStatus.HALTED), (state(entries_used=1), TradingStatus.REDUCING)],
    ids=["breaker", "damage", "limit"],
)
def test_status_says_whether_the_operator_must_act(trading: TradingState, status: TradingStatus) -> None:
    assert CHAIN.decide(entry(), trading).status is status


def test_session_limit_refusal_gives_the_next_open() -> None:
    decision = CHAIN.decide(entry(), state(entries_used=1))
    assert decision.next_allowed_at == ny(2026, 3, 11, 7, 0)
    assert decision.reason == "1/1 trades this session (proof); next trade allowed 2026-03-11 07:00 EDT (in 20h 0m)"


# --- MaxPositionPct ------------------------------------------------------------------------


def test_position_above_the_cap_names_both_numbers() -> None:
    refusal = MaxPositionPct(D("5")).check(entry("500.01"), STATE, D("500.01"))
    assert refusal is not None
    assert refusal.reason == "position $500.01 exceeds 5% of equity ($500.00 of $10000.00)"


def test_position_cap_follows_equity() -> None:
    assert MaxPositionPct(D("5")).check(entry(), state(equity=D("9000")), D("450.01")) is not None
    assert MaxPositionPct(D("5")).check(entry(), state(equity=D("9000")), D("450.00")) is None


def test_no_position_cap_when_disabled() -> None:
    assert MaxPositionPct(None).check(entry(), STATE, D("1000000")) is None


# --- MaxDailyLoss --------------------------------------------------------------------------


def test_daily_loss_just_above_the_limit_names_the_percentage() -> None:
    refusal = MaxDailyLoss(D("3")).check(entry(), state(session_pnl=D("-300.01")), D("100"))
    assert refusal is not None
    assert refusal.reason == "daily loss 3.0001% exceeds the 3% limit; no new entries this session"


def test_daily_loss_is_measured_against_equity_at_the_sessions_open() -> None:
    after_gains = state(equity=D("10900"), equity_at_session_open=D("9000"), session_pnl=D("-270.01"))
    assert MaxDailyLoss(D("3")).check(entry(), after_gains, D("100")) is not None


def test_daily_profit_is_allowed() -> None:
    assert MaxDailyLoss(D("3")).check(entry(), state(session_pnl=D("900")), D("100")) is None


def test_no_daily_loss_limit_when_disabled() -> None:
    assert MaxDailyLoss(None).check(entry(), state(session_pnl=D("-9000")), D("100")) is None


# --- TradingHours --------------------------------------------------------------------------


@pytest.fixture
def hours() -> TradingHours:
    return TradingHours(MarketCalendar())


def test_entry_before_the_open_is_refused_until_the_open(hours: TradingHours) -> None:
    refusal = hours.check(entry(at=ny(2026, 3, 10, 6, 59)), STATE, D("100"))
    assert refusal is not None
    assert refusal.next_allowed_at == ny(2026, 3, 10, 7, 0)
    assert refusal.reason == "outside trading hours (07:00–16:00 EDT on trading days)"


@pytest.mark.parametrize("minute", [(7, 0), (15, 59)], ids=["open", "last-minute"])
def test_entry_inside_hours_is_allowed(hours: TradingHours, minute: tuple[int, int]) -> None:
    assert hours.check(entry(at=ny(2026, 3, 10, *minute)), STATE, D("100")) is None


def test_entry_at_the_end_time_is_refused_until_the_next_open(hours: TradingHours) -> None:
    refusal = hours.check(entry(at=ny(2026, 3, 10, 16, 0)), STATE, D("100"))
    assert refusal is not None
    assert refusal.next_allowed_at == ny(2026, 3, 11, 7, 0)


def test_entry_on_saturday_is_refused_until_monday(hours: TradingHours) -> None:
    refusal = hours.check(entry(at=ny(2026, 3, 14, 11, 0)), STATE, D("100"))
    assert refusal is not None
    assert refusal.next_allowed_at == ny(2026, 3, 16, 7, 0)


def test_entry_on_a_holiday_is_refused(hours: TradingHours) -> None:
    refusal = hours.check(entry(at=ny(2026, 4, 3, 11, 0)), STATE, D("100"))  # Good Friday
    assert refusal is not None
    assert refusal.next_allowed_at == ny(2026, 4, 6, 7, 0)


def test_trading_hours_follow_the_dst_change(hours: TradingHours) -> None:
    assert hours.check(entry(at=datetime(2026, 3, 9, 11, 0, tzinfo=timezone.utc)), STATE, D("100")) is None  # 07:00 EDT
    assert hours.check(entry(at=datetime(2026, 3, 6, 11, 59, tzinfo=timezone.utc)), STATE, D("100")) is not None  # 06:59 EST


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


def test_a_decision_overturned_after_the_chain_carries_the_refusal_in_its_state_too() -> None:
    allowed = CHAIN.decide(entry(), STATE)
    refused = allowed.refused(Refusal("broker", "broker error: rejected"))
    assert (refused.code, refused.shares, refused.state.refusal, refused.status) == (
        "broker", None, Refusal("broker", "broker error: rejected"), TradingStatus.REDUCING,
    )
    assert (allowed.code, allowed.shares) == (None, 10)


# --- an account at or below zero -------------------------------------------------------------

NO_CAPS = EntryChain.standard(CALENDAR, max_daily_loss_pct=None, max_position_pct=None)


@pytest.mark.parametrize(("equity", "refused"), [("0", True), ("-0.01", True), ("0.01", False)])
def test_no_entry_on_equity_at_or_below_zero_even_without_caps(equity: str, refused: bool) -> None:
    decision = NO_CAPS.decide(entry(), state(equity=D(equity), equity_at_session_open=D(equity)))
    assert decision.allowed is not refused
    if refused:
        assert decision.code == CODE_SIZE
        assert decision.reason == f"equity ${equity if equity != '0' else '0.00'} is not above zero; no new entries until the account is funded"


@pytest.mark.parametrize(("session_pnl", "refused"), [("-0.01", True), ("0", False), ("0.01", False)])
def test_any_daily_loss_refuses_entries_when_equity_at_the_open_is_not_above_zero(session_pnl: str, refused: bool) -> None:
    refusal = MaxDailyLoss(D("3")).check(entry(), state(equity_at_session_open=D("0"), session_pnl=D(session_pnl)), D("100"))
    assert (refusal is not None) is refused
    if refusal is not None:
        assert refusal.reason == "daily loss $0.01 with equity at the session's open $0.00 (not above zero); no new entries this session"
