"""The pre-trade validation chain: ordered checks, the first refusal wins.

Each check answers one question about one order. The phase check is inserted first by
the phase system; the risk checks below follow it. Exits are never refused by a risk
check: closing a position only ever reduces risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from trading_bot.market_calendar import MarketCalendar
from trading_bot.money import money_str, ratio_str


@dataclass(frozen=True)
class OrderIntent:
    """What the bot wants to do: open a position of `dollars` at `price`, or exit one."""

    symbol: str
    action: str
    price: Decimal
    dollars: Decimal
    at: datetime
    mode: str = "paper"
    is_entry: bool = True
    emergency_exit: bool = False


@dataclass(frozen=True)
class AccountSnapshot:
    """The numbers the risk checks need, derived from the journal by the caller."""

    equity: Decimal
    equity_at_session_open: Decimal
    session_net_pnl: Decimal


@dataclass(frozen=True)
class Refusal:
    check: str
    reason: str
    next_allowed_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    refusal: Refusal | None = None

    @property
    def reason(self) -> str | None:
        return None if self.refusal is None else self.refusal.reason


ALLOWED = Decision(allowed=True)


class PreTradeCheck(Protocol):
    name: str

    def check(self, order: OrderIntent, account: AccountSnapshot) -> Refusal | None:
        """None to allow, or a refusal with one specific reason."""


class ValidationChain:
    """Runs the checks in order; exits skip every check that does not ask to see them."""

    def __init__(self, checks: Sequence[PreTradeCheck] = ()) -> None:
        self.checks: list[PreTradeCheck] = list(checks)

    def insert_first(self, check: PreTradeCheck) -> None:
        self.checks.insert(0, check)

    def validate(self, order: OrderIntent, account: AccountSnapshot) -> Decision:
        for check in self.checks:
            if not order.is_entry and not getattr(check, "sees_exits", False):
                continue
            refusal = check.check(order, account)
            if refusal is not None:
                return Decision(allowed=False, refusal=refusal)
        return ALLOWED


class MaxPositionPct:
    """No single position larger than a percentage of equity."""

    name = "max_position_pct"

    def __init__(self, max_pct: Decimal | None) -> None:
        self.max_pct = max_pct

    def check(self, order: OrderIntent, account: AccountSnapshot) -> Refusal | None:
        if self.max_pct is None:
            return None
        cap = account.equity * self.max_pct / 100
        if order.dollars > cap:
            return Refusal(
                self.name,
                f"position ${money_str(order.dollars)} exceeds {self.max_pct}% of equity "
                f"(${money_str(cap)} of ${money_str(account.equity)})",
            )
        return None


class MaxDailyLoss:
    """No new entries once the session's loss exceeds a percentage of opening equity."""

    name = "max_daily_loss_pct"

    def __init__(self, max_pct: Decimal | None) -> None:
        self.max_pct = max_pct

    def check(self, order: OrderIntent, account: AccountSnapshot) -> Refusal | None:
        if self.max_pct is None or account.equity_at_session_open <= 0:
            return None
        loss_pct = -account.session_net_pnl / account.equity_at_session_open * 100
        if loss_pct > self.max_pct:
            return Refusal(
                self.name,
                f"daily loss {ratio_str(loss_pct)}% exceeds the {self.max_pct}% limit; "
                "no new entries this session",
            )
        return None


class TradingHours:
    """Entries only between the configured start and end time on a trading day."""

    name = "trading_hours"

    def __init__(self, calendar: MarketCalendar) -> None:
        self.calendar = calendar

    def check(self, order: OrderIntent, account: AccountSnapshot) -> Refusal | None:
        local = order.at.astimezone(self.calendar.tz)
        day = local.date()
        inside = (
            self.calendar.is_trading_day(day)
            and self.calendar.open_of(day) <= order.at < self.calendar.close_of(day)
        )
        if inside:
            return None
        next_open = self.calendar.next_open_after(order.at)
        return Refusal(
            self.name,
            f"outside trading hours ({self.calendar.start_time:%H:%M}–{self.calendar.end_time:%H:%M} "
            f"{local:%Z} on trading days)",
            next_allowed_at=next_open,
        )


def risk_checks(
    *, max_position_pct: Decimal | None, max_daily_loss_pct: Decimal | None, calendar: MarketCalendar
) -> list[PreTradeCheck]:
    """The standard risk checks, in the order they run after the phase check."""
    return [TradingHours(calendar), MaxDailyLoss(max_daily_loss_pct), MaxPositionPct(max_position_pct)]
