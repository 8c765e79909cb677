"""Performance over a period and per session, computed in one pass over the trades.

Session rows follow SPEC §3: a closed trade's P&L belongs to the session of its exit
time, as the market calendar defines sessions (an exit at 06:59 New York time is the
previous session's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal

from trading_bot.dashboard.metrics_calculator import RunningTally
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.market_calendar import MarketCalendar
from trading_bot.performance.models import PerformanceSummary, SessionMetrics
from trading_bot.phase.models import Phase


def _utc(moment: datetime) -> datetime:
    """Naive means UTC (the journal's rule), so naive and aware exits compare safely."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _exit_of(trade: TradeRecord) -> datetime:
    if trade.exit_timestamp is None:
        raise ValueError(f"closed trade {trade.order_id} has no exit timestamp")
    return _utc(trade.exit_timestamp)


class _SessionAccumulator:
    """A session's running tally plus the phase of its latest close."""

    __slots__ = ("tally", "last_exit", "last_phase")

    def __init__(self, exit_at: datetime, phase: Phase | None) -> None:
        self.tally = RunningTally()
        self.last_exit = exit_at
        self.last_phase = phase


class PerformanceTracker:
    """Summaries and session rows over the journal (or over trades handed to it)."""

    def __init__(self, calendar: MarketCalendar, journal: TradeJournal | None = None) -> None:
        self.calendar = calendar
        self.journal = journal

    def _trades(self, trades: Sequence[TradeRecord] | None) -> Sequence[TradeRecord]:
        if trades is not None:
            return trades
        if self.journal is None:
            raise ValueError("no trades given and no journal to read them from")
        self.journal.refresh()
        self.journal.require_valid()
        return self.journal.closed_trades

    def session_of_close(self, trade: TradeRecord) -> date:
        """The session a closed trade's P&L counts in: as recorded at its close, else its exit's."""
        if not trade.is_closed:
            raise ValueError(f"trade {trade.order_id} is still open")
        _exit_of(trade)  # a close without an exit instant is refused, naming the order
        return self.calendar.exit_session(trade)

    def get_summary(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        trades: Sequence[TradeRecord] | None = None,
    ) -> PerformanceSummary:
        """Metrics over the trades closed in [start, end], both ends inclusive (the journal's
        trades unless `trades` is given).

        Trades are ordered by exit time (stable) so the loss-streak figure does not
        depend on how the caller happened to order them.
        """
        low = None if start is None else _utc(start)
        high = None if end is None else _utc(end)
        if low is not None and high is not None and high < low:
            raise ValueError(f"end {end} is before start {start}")
        selected: list[tuple[datetime, TradeRecord]] = []
        for trade in self._trades(trades):
            if not trade.is_closed:
                continue
            exit_at = _exit_of(trade)
            if (low is None or exit_at >= low) and (high is None or exit_at <= high):
                selected.append((exit_at, trade))
        selected.sort(key=lambda pair: pair[0])
        return self.summary_of(RunningTally(trade for _, trade in selected), low, high)

    @staticmethod
    def summary_of(tally: RunningTally, start: datetime | None = None, end: datetime | None = None) -> PerformanceSummary:
        """The summary of trades already folded in exit order (a caller that streams the
        trades once for several figures folds them itself)."""
        return PerformanceSummary(
            start=start,
            end=end,
            trades_closed=tally.closed,
            counted_trades=tally.counted,
            wins=tally.wins,
            losses=tally.losses,
            breakevens=tally.breakevens,
            flagged=tally.flagged,
            win_rate=tally.win_rate(),
            avg_rr=tally.avg_rr(),
            net_pnl=tally.net_pnl,
            max_consecutive_losses=tally.max_consecutive_losses,
        )

    def session_metrics(
        self,
        trades: Iterable[TradeRecord],
        *,
        phase_at: Callable[[date], Phase | None] | None = None,
        sizes_at: Callable[[date], tuple[Decimal, ...]] | None = None,
        trips_at: Callable[[date], int] | None = None,
    ) -> list[SessionMetrics]:
        """One row per session with a closed trade, ascending by session date.

        The phase system knows the phase at each close, the sizes in force and the
        breaker trips, so it supplies them through the callbacks. Without `phase_at`,
        a row's phase is the phase of its latest close (ties: the later in `trades`);
        without the others, sizes are () and trips 0.
        """
        session_of = self.calendar.exit_session
        sessions: dict[date, _SessionAccumulator] = {}
        for trade in trades:
            if not trade.is_closed:
                continue
            exit_at = _exit_of(trade)
            session = session_of(trade)
            acc = sessions.get(session)
            if acc is None:
                acc = sessions[session] = _SessionAccumulator(exit_at, trade.phase)
            elif exit_at >= acc.last_exit:
                acc.last_exit = exit_at
                acc.last_phase = trade.phase
            acc.tally.fold(trade)
        rows: list[SessionMetrics] = []
        for session in sorted(sessions):
            acc = sessions[session]
            tally = acc.tally
            rows.append(
                SessionMetrics(
                    date=session,
                    phase=phase_at(session) if phase_at is not None else acc.last_phase,
                    trades=tally.closed,
                    wins=tally.wins,
                    losses=tally.losses,
                    breakevens=tally.breakevens,
                    win_rate=tally.win_rate(),
                    avg_rr=tally.avg_rr(),
                    net_pnl=tally.net_pnl,
                    position_sizes=sizes_at(session) if sizes_at is not None else (),
                    breaker_trips=trips_at(session) if trips_at is not None else 0,
                )
            )
        return rows
