"""The trading loop's two moves: open a position through the chain, close one.

Every journal record carries the phase in force. The phase system plugs in through
`PhaseHooks`; without it the bot trades in the phase config.json names, at that
phase's configured size, with only the risk checks.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from trading_bot.broker import Broker, BrokerError, Position
from trading_bot.clock import SYSTEM_CLOCK, Clock
from trading_bot.config import Config, ScalingSettings
from trading_bot.durable_files import LogsLock
from trading_bot.error_handling.circuit_breaker import CircuitBreaker
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.structured_logger import StructuredTradeLogger
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.market_calendar import MarketCalendar
from trading_bot.mode_switcher import ModeSwitcher
from trading_bot.phase.models import Phase
from trading_bot.risk_management.calculator import ZeroShares, shares_for
from trading_bot.validator import (
    AccountSnapshot,
    Decision,
    OrderIntent,
    PreTradeCheck,
    Refusal,
    ValidationChain,
    risk_checks,
)


class PhaseUnavailable(Exception):
    """The phase system cannot read its state (a damaged or unreadable record): fail safe."""


class PhaseHooks(Protocol):
    """What the trading loop asks of the phase system."""

    def phase_in_force(self) -> Phase: ...

    def size_in_force(self) -> Decimal: ...

    def entry_check(self) -> PreTradeCheck | None: ...

    def live_refusal(self) -> str | None: ...

    def entry_refused(self, order: OrderIntent, refusal: Refusal, operator_id: str) -> None: ...

    def exit_recorded(self, record: TradeRecord, operator_id: str) -> None: ...

    def journal_repaired(self, fragment: Path, operator_id: str) -> None: ...

    def shared_journal(self) -> TradeJournal | None: ...


class ConfiguredPhase:
    """Phase hooks that simply follow config.json (the bot without the phase system)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def phase_in_force(self) -> Phase:
        return self.config.current_phase

    def size_in_force(self) -> Decimal:
        block = self.config.settings.phase_block(self.phase_in_force())
        if isinstance(block, ScalingSettings):
            return block.position_size_min
        return block.position_size

    def entry_check(self) -> PreTradeCheck | None:
        return None

    def live_refusal(self) -> str | None:
        phase = self.phase_in_force()
        if not phase.allows_live:
            return f"live trading is not allowed in the {phase.title} phase (paper only)"
        return None

    def entry_refused(self, order: OrderIntent, refusal: Refusal, operator_id: str) -> None:
        return None

    def exit_recorded(self, record: TradeRecord, operator_id: str) -> None:
        return None

    def journal_repaired(self, fragment: Path, operator_id: str) -> None:
        return None

    def shared_journal(self) -> TradeJournal | None:
        return None


@dataclass(frozen=True)
class TradeResult:
    """An entry attempt: placed (with its journal record) or refused (with the reason)."""

    accepted: bool
    record: TradeRecord | None = None
    refusal: Refusal | None = None

    @property
    def reason(self) -> str | None:
        return None if self.refusal is None else self.refusal.reason


class AccountBook:
    """Equity and per-session P&L as an O(1) fold over closes (experience is simulated money)."""

    def __init__(self, starting_equity: Decimal, calendar: MarketCalendar) -> None:
        self.equity = starting_equity
        self.calendar = calendar
        self.session_pnl: dict[date, Decimal] = {}
        self._equity_at_open: dict[date, Decimal] = {}

    def fold(self, trade: TradeRecord) -> None:
        if trade.exit_timestamp is None or trade.net_pnl is None or trade.phase is Phase.EXPERIENCE:
            return
        session = self.calendar.session_of(trade.exit_timestamp)
        self._equity_at_open.setdefault(session, self.equity)
        self.session_pnl[session] = self.session_pnl.get(session, Decimal(0)) + trade.net_pnl
        self.equity += trade.net_pnl

    def equity_at_open(self, session: date) -> Decimal:
        return self._equity_at_open.get(session, self.equity)


class UnknownPosition(Exception):
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"no open position with order id {order_id!r}")


def default_operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "operator"


class TradingBot:
    """Places entries only through the validation chain and journals every fill."""

    def __init__(
        self,
        config: Config,
        broker: Broker,
        *,
        logs_dir: Path,
        clock: Clock = SYSTEM_CLOCK,
        phase: PhaseHooks | None = None,
        operator_id: str = "bot",
        lock: LogsLock | None = None,
    ) -> None:
        self.config = config
        self.broker = broker
        self.clock = clock
        self.operator_id = operator_id
        self.logs_dir = Path(logs_dir)
        self.lock = lock or LogsLock(self.logs_dir)
        hours = config.settings.trading.hours
        self.calendar = MarketCalendar(hours.start_time, hours.end_time, hours.timezone)
        self.phase: PhaseHooks = phase or ConfiguredPhase(config)
        self.journal = self.phase.shared_journal() or TradeJournal(self.logs_dir / "trades")
        self.journal_writer = StructuredTradeLogger(self.logs_dir / "trades", self.lock)
        risk = config.settings.risk_management
        self.chain = ValidationChain(
            risk_checks(
                max_position_pct=risk.max_position_pct,
                max_daily_loss_pct=risk.max_daily_loss_pct,
                calendar=self.calendar,
            )
        )
        phase_check = self.phase.entry_check()
        if phase_check is not None:
            self.chain.insert_first(phase_check)
        self.mode = ModeSwitcher(config.mode, live_guard=self.phase.live_refusal)
        self.broker_breaker = CircuitBreaker(threshold=5, clock=clock)
        self._book: AccountBook | None = None
        self._book_generation = -1
        self._book_index = 0
        self._restore_paper_positions()

    def _restore_paper_positions(self) -> None:
        """A paper broker forgets its positions on restart; the journal remembers them."""
        restore = getattr(self.broker, "restore", None)
        if restore is None:
            return
        self.journal.refresh()
        for record in self.journal.open_trades():
            restore(
                Position(
                    order_id=record.order_id,
                    symbol=record.symbol,
                    action=record.action,
                    quantity=record.quantity,
                    entry_price=record.price,
                    opened_at=record.timestamp,
                )
            )

    # ---- numbers the risk checks need ----------------------------------------------

    def account_snapshot(self, now: datetime) -> AccountSnapshot:
        """Equity and the session's P&L, folded from the journal one close at a time."""
        book = self._account_book()
        session = self.calendar.session_of(now)
        return AccountSnapshot(
            equity=book.equity,
            equity_at_session_open=book.equity_at_open(session),
            session_net_pnl=book.session_pnl.get(session, Decimal(0)),
        )

    def _account_book(self) -> AccountBook:
        journal = self.journal
        if self._book is None or self._book_generation != journal.generation:
            self._book = AccountBook(self.config.settings.account.starting_equity, self.calendar)
            self._book_generation = journal.generation
            self._book_index = 0
        closed = journal.closed_trades
        while self._book_index < len(closed):
            self._book.fold(closed[self._book_index])
            self._book_index += 1
        return self._book

    # ---- entries -------------------------------------------------------------------

    def check_entry(self, symbol: str, action: str, price: Decimal, dollars: Decimal | None = None) -> Decision:
        """Run the chain for a prospective entry without placing anything."""
        now = self.clock.now()
        self.journal.refresh()
        size = self.phase.size_in_force() if dollars is None else dollars
        intent = OrderIntent(symbol=symbol, action=action, price=price, dollars=size, at=now, mode=self.mode.mode)
        return self.chain.validate(intent, self.account_snapshot(now))

    def execute_trade(
        self,
        symbol: str,
        action: str,
        price: Decimal,
        *,
        stop_loss: Decimal | None = None,
        target: Decimal | None = None,
        dollars: Decimal | None = None,
    ) -> TradeResult:
        """Validate, size in whole shares, place, and journal an entry."""
        now = self.clock.now()
        try:
            self.journal.refresh(quick=True)
            phase = self.phase.phase_in_force()
            size = self.phase.size_in_force() if dollars is None else dollars
            intent = OrderIntent(symbol=symbol, action=action, price=price, dollars=size, at=now, mode=self.mode.mode)
            decision = self.chain.validate(intent, self.account_snapshot(now))
        except (PhaseUnavailable, OSError) as error:
            # Fail-safe: when the phase state cannot be read, no entry is placed.
            return TradeResult(accepted=False, refusal=Refusal("phase_state", f"phase state cannot be read ({error}); trading halted"))
        refusal = decision.refusal
        if refusal is None and self.broker_breaker.is_tripped:
            refusal = Refusal("broker_breaker", f"broker circuit breaker tripped: {self.broker_breaker.state.reason}")
        quantity = 0
        if refusal is None:
            try:
                quantity = shares_for(size, price)
            except ZeroShares as error:
                refusal = Refusal("whole_shares", str(error))
        if refusal is not None:
            self.phase.entry_refused(intent, refusal, self.operator_id)
            return TradeResult(accepted=False, refusal=refusal)
        try:
            fill = self.broker.place_order(symbol, action, quantity, price)
        except BrokerError as error:
            self.broker_breaker.record_failure(str(error))
            return TradeResult(accepted=False, refusal=Refusal("broker", f"broker error: {error}"))
        self.broker_breaker.record_success()
        record = TradeRecord(
            timestamp=now,
            symbol=symbol,
            action=action,
            quantity=quantity,
            price=fill.price,
            order_id=fill.order_id,
            stop_loss=stop_loss,
            target=target,
            execution_mode=self.mode.mode,
            phase=phase,
            operator_id=self.operator_id,
        )
        self._journal(record, now)
        return TradeResult(accepted=True, record=record)

    # ---- exits ---------------------------------------------------------------------

    def close_position(
        self,
        order_id: str,
        price: Decimal,
        *,
        emergency_exit: bool = False,
        operator_id: str | None = None,
    ) -> TradeRecord:
        """Exits are never blocked by the chain; an emergency exit is flagged and recorded."""
        now = self.clock.now()
        self.journal.refresh()
        entry = self.journal.record(order_id)
        if entry is None or entry.is_closed:
            raise UnknownPosition(order_id)
        _, net_pnl = self.broker.close_position(order_id, price)
        closed = entry.closed(
            exit_timestamp=now, net_pnl=net_pnl, emergency_exit=emergency_exit, extra={"exit_price": str(price)}
        )
        closed = _with_operator(closed, operator_id or self.operator_id)
        self._journal(closed, now)
        try:
            self.phase.exit_recorded(closed, operator_id or self.operator_id)
            if self.mode.is_live and self.phase.live_refusal() is not None:
                self.mode.switch_to_paper()
        except PhaseUnavailable:
            pass  # the exit is done and journaled; the next pre-trade check refuses entries
        return closed

    def _journal(self, record: TradeRecord, now: datetime) -> None:
        """Append durably; a torn line a crash left behind is set aside first, and recorded."""
        before = len(self.journal_writer.recovered_fragments)
        self.journal_writer.log_trade(record, now)
        for fragment in self.journal_writer.recovered_fragments[before:]:
            self.phase.journal_repaired(fragment, self.operator_id)
        self.journal.refresh()

    def flatten(self, prices: Mapping[str, Decimal], *, operator_id: str | None = None) -> list[TradeRecord]:
        """Close every open position as an emergency exit (the operator's "get me out")."""
        self.journal.refresh()
        closed = []
        for entry in sorted(self.journal.open_trades(), key=lambda record: record.timestamp):
            price = prices.get(entry.symbol)
            if price is None:
                raise KeyError(f"no price given for {entry.symbol} (order {entry.order_id})")
            closed.append(self.close_position(entry.order_id, price, emergency_exit=True, operator_id=operator_id))
        return closed


def _with_operator(record: TradeRecord, operator_id: str) -> TradeRecord:
    """An emergency exit names who forced it; an ordinary close keeps the entry's operator."""
    return replace(record, operator_id=operator_id) if record.emergency_exit else record
