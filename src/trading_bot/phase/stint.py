"""The current stint's numbers, folded one closed trade at a time (O(1) per trade).

Gates, triggers and size steps read this, never the journal: the bot folds each new
close as it happens, and a restart folds the journal once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from trading_bot.clock import ensure_utc
from trading_bot.dashboard.metrics_calculator import Ratio, RollingWindow, RunningTally, avg_rr_from_sums, rr_met_from_counts, win_rate_from_counts
from trading_bot.logging.journal_index import microseconds_of, moment_of
from trading_bot.logging.trade_record import LOSS, WIN, TradeRecord
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.models import Phase, Stint

ZERO = Decimal(0)
EXPERIENCE = Phase.EXPERIENCE


@dataclass(slots=True)
class SessionBook:
    """One session's stint trades: P&L (flagged included) and the counted outcomes."""

    net_pnl: Decimal = ZERO
    counted: int = 0
    wins: int = 0
    losses: int = 0
    win_sum: Decimal = ZERO
    loss_sum: Decimal = ZERO

    def add_close(self, outcome: str, pnl: Decimal, flagged: bool) -> None:
        pnl = pnl or ZERO  # a zero of any exponent adds as plain 0, as it always has
        self.net_pnl += pnl
        if flagged:
            return
        self.counted += 1
        if outcome == WIN:
            self.wins += 1
            self.win_sum += pnl
        elif outcome == LOSS:
            self.losses += 1
            self.loss_sum += -pnl


@dataclass(frozen=True)
class Pooled:
    """Outcomes pooled over several sessions."""

    sessions: int
    counted: int
    wins: int
    losses: int
    win_sum: Decimal
    loss_sum: Decimal

    def win_rate(self) -> Ratio:
        return win_rate_from_counts(self.wins, self.counted)

    def avg_rr(self) -> Ratio:
        return avg_rr_from_sums(self.counted, self.wins, self.win_sum, self.losses, self.loss_sum)

    def rr_meets(self, required: Decimal) -> bool:
        return rr_met_from_counts(self.avg_rr().value, required, self.wins, self.losses)


@dataclass
class StintProgress:
    """Everything the rules need about the current stint, plus account equity."""

    stint: Stint
    calendar: MarketCalendar
    phase_at: Callable[[datetime], Phase]
    starting_equity: Decimal
    trigger_window_size: int | None = None
    gate_window_size: int | None = None
    equity: Decimal = ZERO
    tally: RunningTally = field(default_factory=RunningTally)
    trigger_window: RollingWindow | None = None
    gate_window: RollingWindow | None = None
    sessions: dict[date, SessionBook] = field(default_factory=dict)
    session_order: list[date] = field(default_factory=list)
    equity_at_open: dict[date, Decimal] = field(default_factory=dict)
    all_sessions_pnl: dict[date, Decimal] = field(default_factory=dict)
    all_sessions_count: dict[date, int] = field(default_factory=dict)
    real_session_pnl: dict[date, Decimal] = field(default_factory=dict)
    equity_at_stint_start: Decimal | None = None
    peak: Decimal | None = None
    max_drawdown_pct: Decimal = ZERO
    peak_not_above_zero: Decimal | None = None
    last_stint_trade: TradeRecord | None = None
    last_session: date | None = None
    manual_override_trades: int = 0

    def __post_init__(self) -> None:
        self.equity = self.starting_equity
        # The stint's start as microseconds, worked out again only when the stint changes.
        self._stint_seen: Stint | None = None
        self._since_us: int | None = None
        if self.trigger_window_size:
            self.trigger_window = RollingWindow(self.trigger_window_size)
        if self.gate_window_size:
            self.gate_window = RollingWindow(self.gate_window_size)

    # ---- membership ----------------------------------------------------------------

    def trade_phase(self, trade: TradeRecord) -> Phase:
        return trade.phase if trade.phase is not None else self.phase_at(trade.timestamp)

    # ---- folding -------------------------------------------------------------------

    def fold(self, trade: TradeRecord) -> bool:
        """Add one closed trade (in close order). Returns whether it is a stint trade."""
        assert trade.exit_timestamp is not None and trade.net_pnl is not None
        folded = self.fold_close(
            self.calendar.exit_session(trade),
            microseconds_of(ensure_utc(trade.timestamp)),
            microseconds_of(ensure_utc(trade.exit_timestamp)),
            trade.net_pnl,
            self.trade_phase(trade),
            trade.outcome,
            trade.emergency_exit,
            trade.manual_override,
        )
        if folded:
            self.last_stint_trade = trade
        return folded

    def fold_close(
        self,
        session: date,
        entry_us: int,
        exit_us: int,
        pnl: Decimal,
        phase: Phase | None,
        outcome: str,
        emergency_exit: bool,
        manual_override: bool,
    ) -> bool:
        """`fold` on a close's bare facts (instants as microseconds since 1970, UTC), so a
        first start folds the index's columns without building an object per trade.

        `phase` None is resolved from the history at entry. The caller keeps the trade
        itself as `last_stint_trade` when this returns True."""
        equity = self.equity
        self.equity_at_open.setdefault(session, equity)
        all_pnl = self.all_sessions_pnl
        all_pnl[session] = all_pnl.get(session, ZERO) + pnl
        all_count = self.all_sessions_count
        all_count[session] = all_count.get(session, 0) + 1
        stint = self.stint
        if stint is not self._stint_seen:
            self._stint_seen = stint
            self._since_us = None if stint.since is None else microseconds_of(stint.since)
        since_us = self._since_us
        after_start = since_us is None or exit_us >= since_us
        if after_start and self.equity_at_stint_start is None:
            self.equity_at_stint_start = equity
            self.peak = equity
        if phase is None:
            phase = self.phase_at(moment_of(entry_us))
        if phase is not EXPERIENCE:
            self.equity = equity = equity + pnl
            real = self.real_session_pnl
            real[session] = real.get(session, ZERO) + pnl
            if after_start:
                self._track_drawdown(equity)
        # In the stint: in the stint's phase, entered at or after its start.
        if phase is not stint.phase or (since_us is not None and entry_us < since_us):
            return False
        flagged = emergency_exit or manual_override
        self.tally.fold_close(outcome, pnl, flagged)
        if not flagged:
            if self.trigger_window is not None:
                self.trigger_window.fold_close(outcome, pnl)
            if self.gate_window is not None:
                self.gate_window.fold_close(outcome, pnl)
        book = self.sessions.get(session)
        if book is None:
            book = self.sessions[session] = SessionBook()
            self.session_order.append(session)
        book.add_close(outcome, pnl, flagged)
        if manual_override:
            self.manual_override_trades += 1
        self.last_session = session
        return True

    def _track_drawdown(self, equity: Decimal) -> None:
        peak = self.peak
        assert peak is not None
        if equity > peak:
            self.peak = peak = equity
        if peak <= 0:
            # A fall from nothing has no percentage; the drawdown stays unmeasured for the stint.
            if self.peak_not_above_zero is None:
                self.peak_not_above_zero = peak
        elif equity < peak:
            drawdown = (peak - equity) / peak * 100
            if drawdown > self.max_drawdown_pct:
                self.max_drawdown_pct = drawdown

    # ---- questions -----------------------------------------------------------------

    def equity_at_session_open(self, session: date) -> Decimal:
        """Equity before the first close of the session (or now, if none closed yet)."""
        return self.equity_at_open.get(session, self.equity)

    def stint_session_pnl(self, session: date) -> Decimal:
        book = self.sessions.get(session)
        return book.net_pnl if book is not None else ZERO

    def profitable_sessions(self) -> int:
        return sum(1 for book in self.sessions.values() if book.net_pnl > 0)

    def pooled_last_sessions(self, count: int, *, through: date | None = None) -> Pooled:
        """Pool the last `count` stint sessions that had a closed unflagged trade."""
        chosen: list[SessionBook] = []
        for session in reversed(self.session_order):
            if through is not None and session > through:
                continue
            book = self.sessions[session]
            if book.counted == 0:
                continue
            chosen.append(book)
            if len(chosen) == count:
                break
        return Pooled(
            sessions=len(chosen),
            counted=sum(book.counted for book in chosen),
            wins=sum(book.wins for book in chosen),
            losses=sum(book.losses for book in chosen),
            win_sum=sum((book.win_sum for book in chosen), ZERO),
            loss_sum=sum((book.loss_sum for book in chosen), ZERO),
        )

    def drawdown_pct(self) -> Decimal | None:
        """The stint's max drawdown; None when a peak at or below zero makes it unmeasurable."""
        if self.unmeasured_peak() is not None:
            return None
        return self.max_drawdown_pct

    def unmeasured_peak(self) -> Decimal | None:
        """The equity peak at or below zero that left the drawdown unmeasurable, if any."""
        if self.peak_not_above_zero is not None:
            return self.peak_not_above_zero
        if self.peak is None and self.equity <= 0:
            return self.equity
        return None
