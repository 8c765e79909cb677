"""Value objects the performance tracker hands to the dashboard, gates and reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from trading_bot.dashboard.metrics_calculator import Ratio
from trading_bot.phase.models import Phase


@dataclass(frozen=True)
class PerformanceSummary:
    """Metrics over the trades closed in [start, end]; None bounds mean unbounded.

    `trades_closed` includes flagged trades (they are real P&L); `counted_trades` and
    everything derived from outcomes exclude them (SPEC §4).
    """

    start: datetime | None
    end: datetime | None
    trades_closed: int
    counted_trades: int
    wins: int
    losses: int
    breakevens: int
    flagged: int
    win_rate: Ratio
    avg_rr: Ratio
    net_pnl: Decimal
    max_consecutive_losses: int


@dataclass(frozen=True)
class SessionMetrics:
    """One session row (SPEC §3): trades grouped by the session of their exit time.

    `trades` counts every closed trade, flagged included; wins, losses, breakevens and
    the ratios exclude flagged trades. `phase` is the phase in force at the session close.
    """

    date: date
    phase: Phase | None
    trades: int
    wins: int
    losses: int
    breakevens: int
    win_rate: Ratio
    avg_rr: Ratio
    net_pnl: Decimal
    position_sizes: tuple[Decimal, ...]
    breaker_trips: int

    @property
    def profitable(self) -> bool:
        """A profitable session is strictly up; breakeven does not count toward the gate."""
        return self.net_pnl > 0

    @property
    def flagged(self) -> int:
        """Closed trades kept out of wins/losses (emergency exits, manual overrides)."""
        return self.trades - self.wins - self.losses - self.breakevens
