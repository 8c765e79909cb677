"""The metric definitions of SPEC §4, written once and used everywhere.

Pure functions over `TradeRecord`s: no I/O, no clock, `Decimal` throughout. Each ratio
is one division of exact sums, so the list functions, `RunningTally` and
`RollingWindow` give bit-identical answers for the same trades.

Order matters only for streaks: trades are taken in the order given, which callers
keep as close order (journal order). Open trades are ignored everywhere.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from trading_bot.logging.trade_record import BREAKEVEN, LOSS, WIN, TradeRecord
from trading_bot.money import ZERO, money_str
from trading_bot.phase.models import Phase

NO_CLOSED_TRADES = "no closed trades"
NO_LOSING_TRADES = "no losing trades"
NO_WINNING_TRADES = "no winning trades"
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Ratio:
    """A metric that may be undefined (`value` None); `detail` says why, or how it was made."""

    value: Decimal | None
    detail: str


def _pnl(trade: TradeRecord) -> Decimal:
    """A closed trade's net P&L; a closed record without one is a bug upstream, not a zero."""
    pnl = trade.net_pnl
    if pnl is None:
        raise ValueError(f"closed trade {trade.order_id} has no net P&L")
    return pnl


def counted(trades: Iterable[TradeRecord]) -> list[TradeRecord]:
    """Closed, unflagged trades: the ones win rate, R:R, streaks, gates and triggers see."""
    return [t for t in trades if t.is_closed and not t.is_flagged]


def win_rate_from_counts(wins: int, total: int) -> Ratio:
    """Shared by every implementation so they agree to the last digit."""
    if total == 0:
        return Ratio(None, NO_CLOSED_TRADES)
    return Ratio(Decimal(wins) / Decimal(total), f"{wins} wins / {total} trades")


def avg_rr_from_sums(
    total: int, wins: int, win_sum: Decimal, losses: int, loss_sum: Decimal
) -> Ratio:
    """(win_sum / wins) / (loss_sum / losses) as one division: (win_sum·losses) / (loss_sum·wins)."""
    if total == 0:
        return Ratio(None, NO_CLOSED_TRADES)
    if losses == 0:
        return Ratio(None, NO_LOSING_TRADES)
    if wins == 0:
        return Ratio(ZERO, f"{NO_WINNING_TRADES}, {losses} losses")
    if loss_sum == 0:
        # Only reachable with records whose outcome contradicts their P&L.
        return Ratio(None, f"{losses} losses total zero")
    value = (win_sum * losses) / (loss_sum * wins)
    detail = (
        f"avg win {money_str(win_sum / wins)} ({wins}) / "
        f"avg loss {money_str(loss_sum / losses)} ({losses})"
    )
    return Ratio(value, detail)


def rr_met_from_counts(value: Decimal | None, required: Decimal, wins: int, losses: int) -> bool:
    """Missing data never helps: undefined R:R passes only when it means "won, never lost"."""
    if value is None:
        return losses == 0 and wins > 0
    return value >= required


def win_rate(trades: Iterable[TradeRecord]) -> Ratio:
    """wins ÷ (wins + losses + breakevens) over counted trades; breakevens dilute it."""
    wins = total = 0
    for trade in counted(trades):
        total += 1
        if trade.outcome == WIN:
            wins += 1
    return win_rate_from_counts(wins, total)


def avg_rr(trades: Iterable[TradeRecord]) -> Ratio:
    """Realized payoff: mean winning P&L ÷ mean |losing P&L|, over counted trades."""
    total = wins = losses = 0
    win_sum = loss_sum = ZERO
    for trade in counted(trades):
        total += 1
        if trade.outcome == WIN:
            wins += 1
            win_sum += _pnl(trade)
        elif trade.outcome == LOSS:
            losses += 1
            loss_sum += abs(_pnl(trade))
    return avg_rr_from_sums(total, wins, win_sum, losses, loss_sum)


def rr_meets(ratio: Ratio, required: Decimal, trades: Iterable[TradeRecord]) -> bool:
    """Whether `ratio` (the R:R of `trades`) satisfies `required`, per SPEC §4."""
    wins = losses = 0
    for trade in counted(trades):
        if trade.outcome == WIN:
            wins += 1
        elif trade.outcome == LOSS:
            losses += 1
    return rr_met_from_counts(ratio.value, required, wins, losses)


def consecutive_losses(trades: Iterable[TradeRecord]) -> int:
    """Losses in a row up to the latest counted trade; a win or breakeven resets the run."""
    run = 0
    for trade in counted(trades):
        run = run + 1 if trade.outcome == LOSS else 0
    return run


def winning_streak(trades: Iterable[TradeRecord]) -> int:
    """Wins in a row up to the latest counted trade; a loss or breakeven resets it (§6)."""
    run = 0
    for trade in counted(trades):
        run = run + 1 if trade.outcome == WIN else 0
    return run


def net_pnl(trades: Iterable[TradeRecord]) -> Decimal:
    """Net P&L of every closed trade; flagged ones are real money, so they count."""
    total = ZERO
    for trade in trades:
        if trade.is_closed:
            total += _pnl(trade)
    return total


def equity(starting_equity: Decimal, trades: Iterable[TradeRecord]) -> Decimal:
    """Starting equity plus every closed trade outside Experience (simulated money).

    A trade whose `phase` is None counts: the caller resolves the phase in force at entry
    before calling, and an unresolved phase is treated as real money, not dropped.
    """
    total = starting_equity
    for trade in trades:
        if trade.is_closed and trade.phase is not Phase.EXPERIENCE:
            total += _pnl(trade)
    return total


def daily_loss_pct(session_net_pnl: Decimal, equity_at_open: Decimal) -> Decimal:
    """Loss as a percentage of the session's opening equity; negative on an up day.

    Exact value only; the strict `> limit` comparison is the trigger's job.
    """
    if equity_at_open <= 0:
        raise ValueError(f"equity at the session open must be > 0, got {equity_at_open}")
    return ((ZERO - session_net_pnl) * _HUNDRED) / equity_at_open


def max_drawdown_pct(start_equity: Decimal, pnl_sequence: Iterable[Decimal]) -> Decimal:
    """Largest fall from a running peak, in percent of that peak; the peak starts at start."""
    if start_equity <= 0:
        raise ValueError(f"starting equity must be > 0, got {start_equity}")
    peak = current = start_equity
    worst = ZERO
    for pnl in pnl_sequence:
        current += pnl
        if current > peak:
            peak = current
        elif current < peak:
            drawdown = ((peak - current) * _HUNDRED) / peak
            if drawdown > worst:
                worst = drawdown
    return worst


class RunningTally:
    """The list metrics as an O(1) fold, so the live bot never rescans its history."""

    __slots__ = (
        "closed",
        "counted",
        "wins",
        "losses",
        "breakevens",
        "flagged",
        "win_sum",
        "loss_sum",
        "net_pnl",
        "consecutive_losses",
        "winning_streak",
        "max_consecutive_losses",
    )

    def __init__(self, trades: Iterable[TradeRecord] = ()) -> None:
        self.closed = 0
        self.counted = 0
        self.wins = 0
        self.losses = 0
        self.breakevens = 0
        self.flagged = 0
        self.win_sum = ZERO
        self.loss_sum = ZERO
        self.net_pnl = ZERO
        self.consecutive_losses = 0
        self.winning_streak = 0
        self.max_consecutive_losses = 0
        for trade in trades:
            self.fold(trade)

    def folding(self, trades: Iterable[TradeRecord]) -> Iterator[TradeRecord]:
        """Pass the trades on, folding each on its way: one stream serves this tally and
        whatever reads the trades next."""
        for trade in trades:
            self.fold(trade)
            yield trade

    def fold(self, trade: TradeRecord) -> None:
        """Add one trade in close order; open trades are ignored, flagged ones only add P&L."""
        outcome = trade.outcome
        if outcome != WIN and outcome != LOSS and outcome != BREAKEVEN:
            return
        self.fold_close(outcome, _pnl(trade), trade.emergency_exit or trade.manual_override)

    def fold_close(self, outcome: str, pnl: Decimal, flagged: bool) -> None:
        """`fold` on a close's bare facts (a first start folds the index's columns)."""
        if flagged:
            if outcome == WIN or outcome == LOSS or outcome == BREAKEVEN:
                self.closed += 1
                self.net_pnl += pnl
                self.flagged += 1
            return
        if outcome == WIN:
            self.wins += 1
            self.win_sum += pnl
            self.winning_streak += 1
            self.consecutive_losses = 0
        elif outcome == LOSS:
            self.losses += 1
            self.loss_sum += abs(pnl)
            self.consecutive_losses += 1
            self.winning_streak = 0
            if self.consecutive_losses > self.max_consecutive_losses:
                self.max_consecutive_losses = self.consecutive_losses
        elif outcome == BREAKEVEN:
            self.breakevens += 1
            self.consecutive_losses = 0
            self.winning_streak = 0
        else:
            return
        self.closed += 1
        self.counted += 1
        self.net_pnl += pnl

    def win_rate(self) -> Ratio:
        return win_rate_from_counts(self.wins, self.counted)

    def avg_rr(self) -> Ratio:
        return avg_rr_from_sums(self.counted, self.wins, self.win_sum, self.losses, self.loss_sum)

    def rr_meets(self, required: Decimal) -> bool:
        """`rr_meets` without the trade list, from the tally's own counts."""
        return rr_met_from_counts(self.avg_rr().value, required, self.wins, self.losses)


class RollingWindow:
    """The last `size` counted trades, for "win rate of the last 20 trades" in O(1) a fold.

    `size` is the configured window; `len()` is how many trades it holds now.
    """

    __slots__ = ("size", "_items", "wins", "losses", "win_sum", "loss_sum")

    def __init__(self, size: int, trades: Iterable[TradeRecord] = ()) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.size = size
        self._items: deque[tuple[str, Decimal]] = deque()
        self.wins = 0
        self.losses = 0
        self.win_sum = ZERO
        self.loss_sum = ZERO
        for trade in trades:
            self.fold(trade)

    def fold(self, trade: TradeRecord) -> None:
        """Append a counted trade, dropping the oldest once full; others are ignored."""
        if not trade.is_closed or trade.is_flagged:
            return
        self.fold_close(trade.outcome, _pnl(trade))

    def fold_close(self, outcome: str, pnl: Decimal) -> None:
        """`fold` on an unflagged close's bare facts (a first start folds the index's columns)."""
        if outcome != WIN and outcome != LOSS and outcome != BREAKEVEN:
            return
        items = self._items
        if len(items) == self.size:
            self._remove(*items.popleft())
        items.append((outcome, pnl))
        if outcome == WIN:
            self.wins += 1
            self.win_sum += pnl
        elif outcome == LOSS:
            self.losses += 1
            self.loss_sum += abs(pnl)

    def contents(self) -> list[tuple[str, Decimal]]:
        """The (outcome, P&L) of each trade held, oldest first (to save the fold)."""
        return list(self._items)

    @classmethod
    def restored(
        cls, size: int, contents: list[tuple[str, Decimal]], wins: int, losses: int, win_sum: Decimal, loss_sum: Decimal
    ) -> RollingWindow:
        """A window as saved, sums included as they were (exact to the last digit and exponent)."""
        if len(contents) > size:
            raise ValueError(f"{len(contents)} trades saved in a window of {size}")
        window = cls(size)
        window._items.extend(contents)
        window.wins, window.losses, window.win_sum, window.loss_sum = wins, losses, win_sum, loss_sum
        return window

    def _remove(self, outcome: str, pnl: Decimal) -> None:
        if outcome == WIN:
            self.wins -= 1
            self.win_sum -= pnl
        elif outcome == LOSS:
            self.losses -= 1
            self.loss_sum -= abs(pnl)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        """Rolling triggers wait for a full window: they never fire on partial data."""
        return len(self._items) == self.size

    def win_rate(self) -> Ratio:
        return win_rate_from_counts(self.wins, len(self._items))

    def avg_rr(self) -> Ratio:
        return avg_rr_from_sums(len(self._items), self.wins, self.win_sum, self.losses, self.loss_sum)

    def rr_meets(self, required: Decimal) -> bool:
        """`rr_meets` over the window, from its own counts."""
        return rr_met_from_counts(self.avg_rr().value, required, self.wins, self.losses)
