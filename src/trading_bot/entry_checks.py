"""The one pre-trade chain (SPEC §7): one trading state in, one decision out.

The phase system folds the records into a `TradingState` once per change; every entry
is decided by running `EntryChain` over that state: the phase rules first (records,
clock, breaker, live mode, session limit, size), then the risk checks (hours, daily loss,
position size), whole shares and the broker's breaker. The first refusal wins and
carries a stable code. Exits never pass through here: closing only reduces risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Protocol

from trading_bot.error_handling.circuit_breaker import BreakerState
from trading_bot.market_calendar import MarketCalendar
from trading_bot.money import money_str, ratio_str
from trading_bot.phase.models import Phase
from trading_bot.phase.trade_limiter import check_session_limit
from trading_bot.risk_management.calculator import ZeroShares, shares_for

# Refusal codes, stable for scripts and tests, in the order the chain checks them.
CODE_STATE = "phase_state"
CODE_LOGS = "logs_unwritable"
CODE_DAMAGE = "phase_records"
CODE_CLOCK = "clock_behind"
CODE_BREAKER = "phase_breaker"
CODE_LIVE = "phase_live_mode"
CODE_LIMIT = "phase_entry_limit"
CODE_SIZE = "phase_position_size"
CODE_HOURS = "trading_hours"
CODE_DAILY_LOSS = "max_daily_loss_pct"
CODE_POSITION = "max_position_pct"
CODE_SHARES = "whole_shares"
CODE_BROKER_BREAKER = "broker_breaker"
CODE_BROKER = "broker"
CODE_BUSY = "busy"


@dataclass(frozen=True)
class OrderIntent:
    """A prospective entry: `dollars` of `symbol` at `price` (no price: "any entry now?")."""

    symbol: str
    action: str
    price: Decimal | None
    dollars: Decimal | None
    at: datetime
    mode: str = "paper"


@dataclass(frozen=True)
class Refusal:
    """Why an entry is not allowed: a stable code, one line for people, and when it may be."""

    code: str
    reason: str
    next_allowed_at: datetime | None = None


class TradingStatus(str, Enum):
    """What the desk may do right now (as a risk engine's ACTIVE / REDUCING / HALTED)."""

    ACTIVE = "active"  # entries allowed
    REDUCING = "reducing"  # exits only, until a limit lifts by itself (next session, hours)
    HALTED = "halted"  # exits only, until the operator acts (breaker, damage, unwritable logs)


HALTING_CODES = frozenset({CODE_STATE, CODE_LOGS, CODE_DAMAGE, CODE_BREAKER, CODE_BROKER_BREAKER})


@dataclass(frozen=True)
class TradingState:
    """Everything an entry decision needs, folded from the records once per change."""

    at: datetime
    session: date
    phase: Phase
    stint_since: datetime | None
    size: Decimal
    size_refusal: str | None
    entries_used: int
    max_entries: int | None
    breaker: BreakerState
    equity: Decimal
    equity_at_session_open: Decimal
    session_pnl: Decimal
    damage: str | None = None
    clock_behind: str | None = None  # the clock reads well before the desk's latest record
    mode: str = "paper"
    refusal: Refusal | None = None  # why a new entry at the size in force is refused now

    @property
    def entries_allowed(self) -> bool:
        return self.refusal is None

    def at_moment(self, at: datetime) -> TradingState:
        """The same state seen at another instant of the same reading of the records.

        A copy of the fields (a pre-trade check makes one per call, and `replace` would
        re-run the dataclass's init for sixteen fields)."""
        moved = object.__new__(TradingState)
        fields = moved.__dict__
        fields.update(self.__dict__)
        fields["at"] = at
        return moved

    def with_refusal(self, refusal: Refusal | None) -> TradingState:
        """The same state with the chain's answer for an entry at the size in force."""
        decided = object.__new__(TradingState)
        fields = decided.__dict__
        fields.update(self.__dict__)
        fields["refusal"] = refusal
        return decided

    @property
    def status(self) -> TradingStatus:
        return status_of(self.refusal)


def status_of(refusal: Refusal | None) -> TradingStatus:
    if refusal is None:
        return TradingStatus.ACTIVE
    return TradingStatus.HALTED if refusal.code in HALTING_CODES else TradingStatus.REDUCING


@dataclass(frozen=True)
class EntryDecision:
    """The one answer for one entry: allowed (with dollars and shares) or refused (with a code)."""

    state: TradingState
    refusal: Refusal | None
    dollars: Decimal
    shares: int | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    def refused(self, refusal: Refusal) -> EntryDecision:
        """This decision overturned after the chain (the journal or the broker said no)."""
        return replace(self, refusal=refusal, shares=None, state=replace(self.state, refusal=refusal))

    @property
    def code(self) -> str | None:
        return None if self.refusal is None else self.refusal.code

    @property
    def reason(self) -> str | None:
        return None if self.refusal is None else self.refusal.reason

    @property
    def next_allowed_at(self) -> datetime | None:
        return None if self.refusal is None else self.refusal.next_allowed_at

    @property
    def status(self) -> TradingStatus:
        return status_of(self.refusal)


class EntryCheck(Protocol):
    code: str

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        """None to allow, or the one reason this entry is refused."""


class RecordsIntact:
    """A damaged phase log or an invalid journal line halts new entries (§7.1)."""

    code = CODE_DAMAGE

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        return None if state.damage is None else Refusal(self.code, state.damage)


class ClockNotBehind:
    """No entry on a clock found well behind the desk's own records: its sessions and hours
    cannot be trusted. It lifts by itself when the clock catches up."""

    code = CODE_CLOCK

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        return None if state.clock_behind is None else Refusal(self.code, state.clock_behind)


class PhaseBreaker:
    """A tripped phase breaker holds entries until the operator acknowledges it (§7.2)."""

    code = CODE_BREAKER

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        if not state.breaker.tripped:
            return None
        return Refusal(self.code, f"phase circuit breaker tripped: {state.breaker.reason}; run `acknowledge` after review")


class LiveAllowed:
    """Experience is paper only (§7.3)."""

    code = CODE_LIVE

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        if order.mode != "live" or state.phase.allows_live:
            return None
        return Refusal(self.code, f"live trading is not allowed in the {state.phase.title} phase (paper only)")


class SessionLimit:
    """The phase's entries per session, counted from the journal (§7.4)."""

    code = CODE_LIMIT

    def __init__(self, calendar: MarketCalendar) -> None:
        self.calendar = calendar

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        exceeded = check_session_limit(state.entries_used, state.max_entries, state.phase, order.at, self.calendar)
        if exceeded is None:
            return None
        return Refusal(self.code, str(exceeded), exceeded.next_allowed_at)


class SizeInForce:
    """No order above the size in force, and none when the equity cap leaves no valid size (§7.5)."""

    code = CODE_SIZE

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        if state.equity <= 0:
            # With nothing left in the account no size is valid, whatever caps are configured.
            return Refusal(self.code, f"equity ${money_str(state.equity)} is not above zero; no new entries until the account is funded")
        if state.size_refusal is not None:
            return Refusal(self.code, state.size_refusal)
        if dollars > state.size:
            return Refusal(
                self.code,
                f"order size ${money_str(dollars)} exceeds the size in force ${money_str(state.size)} ({state.phase.value})",
            )
        return None


class TradingHours:
    """Entries only between the configured start and end time on a trading day."""

    code = CODE_HOURS

    def __init__(self, calendar: MarketCalendar) -> None:
        self.calendar = calendar
        self._day: tuple[date, datetime, datetime] | None = None  # the last day's open and close

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        known = self._day
        if known is not None and known[1] <= order.at < known[2]:
            return None  # within the hours of the trading day seen last
        calendar = self.calendar
        local = order.at.astimezone(calendar.tz)
        day = local.date()
        if self._day is None or self._day[0] != day:
            if not calendar.is_trading_day(day):
                return self._refused(order, local)
            self._day = (day, calendar.open_of(day), calendar.close_of(day))
        if self._day[1] <= order.at < self._day[2]:
            return None
        return self._refused(order, local)

    def _refused(self, order: OrderIntent, local: datetime) -> Refusal:
        calendar = self.calendar
        return Refusal(
            self.code,
            f"outside trading hours ({calendar.start_time:%H:%M}–{calendar.end_time:%H:%M} {local:%Z} on trading days)",
            calendar.next_open_after(order.at),
        )


class MaxDailyLoss:
    """No new entries once the session's real-money loss exceeds a percentage of opening equity."""

    code = CODE_DAILY_LOSS

    def __init__(self, max_pct: Decimal | None) -> None:
        self.max_pct = max_pct
        # The answer for the last (session P&L, opening equity) pair seen: it depends on the
        # state alone, which stays the same objects between two reads of the records.
        self._last: tuple[Decimal, Decimal, Refusal | None] | None = None

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        if self.max_pct is None:
            return None
        last = self._last
        if last is not None and last[0] is state.session_pnl and last[1] is state.equity_at_session_open:
            return last[2]
        refusal = self._judged(state)
        self._last = (state.session_pnl, state.equity_at_session_open, refusal)
        return refusal

    def _judged(self, state: TradingState) -> Refusal | None:
        assert self.max_pct is not None
        if state.equity_at_session_open <= 0:
            # No percentage exists of nothing: any loss in the session stops new entries.
            if state.session_pnl >= 0:
                return None
            return Refusal(
                self.code,
                f"daily loss ${money_str(-state.session_pnl)} with equity at the session's open "
                f"${money_str(state.equity_at_session_open)} (not above zero); no new entries this session",
            )
        loss_pct = -state.session_pnl / state.equity_at_session_open * 100
        if loss_pct <= self.max_pct:
            return None
        return Refusal(self.code, f"daily loss {ratio_str(loss_pct)}% exceeds the {self.max_pct}% limit; no new entries this session")


class MaxPositionPct:
    """No single position larger than a percentage of equity."""

    code = CODE_POSITION

    def __init__(self, max_pct: Decimal | None) -> None:
        self.max_pct = max_pct
        self._cap: tuple[Decimal, Decimal] | None = None  # (equity, its cap) last computed

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        if self.max_pct is None:
            return None
        known = self._cap
        if known is not None and known[0] is state.equity:
            cap = known[1]
        else:
            cap = state.equity * self.max_pct / 100
            self._cap = (state.equity, cap)
        if dollars <= cap:
            return None
        return Refusal(
            self.code,
            f"position ${money_str(dollars)} exceeds {self.max_pct}% of equity (${money_str(cap)} of ${money_str(state.equity)})",
        )


class BrokerBreakerClosed:
    """Repeated broker failures stop new orders until the broker's breaker closes again."""

    code = CODE_BROKER_BREAKER

    def __init__(self, breaker: BreakerState) -> None:
        self.breaker = breaker

    def check(self, order: OrderIntent, state: TradingState, dollars: Decimal) -> Refusal | None:
        if not self.breaker.tripped:
            return None
        return Refusal(self.code, f"broker circuit breaker tripped: {self.breaker.reason}")


class EntryChain:
    """SPEC §7's order, then the risk checks, whole shares and the broker breaker: first refusal wins."""

    def __init__(self, checks: Sequence[EntryCheck]) -> None:
        self.checks = tuple(checks)

    @classmethod
    def standard(
        cls, calendar: MarketCalendar, *, max_daily_loss_pct: Decimal | None, max_position_pct: Decimal | None
    ) -> EntryChain:
        return cls(
            [
                RecordsIntact(),
                ClockNotBehind(),
                PhaseBreaker(),
                LiveAllowed(),
                SessionLimit(calendar),
                SizeInForce(),
                TradingHours(calendar),
                MaxDailyLoss(max_daily_loss_pct),
                MaxPositionPct(max_position_pct),
            ]
        )

    def decide(self, order: OrderIntent, state: TradingState, broker_breaker: BreakerState | None = None) -> EntryDecision:
        """Run every check once; an order without a price stops before whole shares."""
        dollars = state.size if order.dollars is None else order.dollars
        refusal: Refusal | None = None
        shares = None
        for check in self.checks:
            refusal = check.check(order, state, dollars)
            if refusal is not None:
                break
        if refusal is None and order.price is not None:
            try:
                shares = shares_for(dollars, order.price)
            except ZeroShares as error:
                refusal = Refusal(CODE_SHARES, str(error))
        if refusal is None and broker_breaker is not None:
            refusal = BrokerBreakerClosed(broker_breaker).check(order, state, dollars)
        if refusal is not None:
            shares = None
        if state.refusal is not refusal:
            state = state.with_refusal(refusal)
        return EntryDecision(state, refusal, dollars, shares)


def refused_without_state(order: OrderIntent, code: str, reason: str) -> EntryDecision:
    """Fail safe: when the state cannot be read (or written), refuse with what is known."""
    state = TradingState(
        at=order.at,
        session=order.at.date(),
        phase=Phase.EXPERIENCE,
        stint_since=None,
        size=Decimal(0),
        size_refusal=None,
        entries_used=0,
        max_entries=None,
        breaker=BreakerState.closed(),
        equity=Decimal(0),
        equity_at_session_open=Decimal(0),
        session_pnl=Decimal(0),
        damage=reason,
        mode=order.mode,
        refusal=Refusal(code, reason),
    )
    return EntryDecision(state, state.refusal, order.dollars or Decimal(0))
