"""The rules: gate criteria for climbing, downgrade triggers for stepping down.

Each rule is one small object that reads its parameters from its config block and
answers one question about the current stint. Adding a rule is adding a class here
and listing it in `gate_for` or `triggers_for`, not editing a chain of ifs.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from trading_bot.config import (
    DowngradeTriggers,
    ExperienceCriteria,
    ProofCriteria,
    Settings,
    TrialCriteria,
)
from trading_bot.dashboard.metrics_calculator import Ratio
from trading_bot.money import distinct_pair, ratio_str
from trading_bot.phase.models import CriterionResult, GateResult, Phase, TriggerHit
from trading_bot.phase.stint import StintProgress


@dataclass(frozen=True)
class GateView:
    """What a gate looks at: the stint's folded numbers plus calendar and log counts."""

    progress: StintProgress
    trading_days: int
    missed_days_streak: int
    override_incidents: int


class GateCriterion(Protocol):
    name: str

    def evaluate(self, view: GateView) -> CriterionResult: ...


def _disabled(name: str, label: str) -> CriterionResult:
    return CriterionResult(name, None, None, True, f"{label}: not required (disabled in config)")


def _at_least_count(name: str, label: str, actual: int, required: int | None) -> CriterionResult:
    if required is None:
        return _disabled(name, label)
    met = actual >= required
    sign = "≥" if met else "<"
    return CriterionResult(name, actual, required, met, f"{label} {actual} {sign} required {required}")


def _ratio_at_least(name: str, label: str, ratio: Ratio, required: Decimal | None, scope: str) -> CriterionResult:
    if required is None:
        return _disabled(name, label)
    if ratio.value is None:
        return CriterionResult(name, None, ratio_str(required), False, f"{label} unavailable ({ratio.detail}) {scope}; required {ratio_str(required)}")
    met = ratio.value >= required
    shown, needed = distinct_pair(ratio.value, required)
    sign = "≥" if met else "<"
    return CriterionResult(name, ratio_str(ratio.value), ratio_str(required), met, f"{label} {shown} {sign} required {needed} {scope}")


def _rr_at_least(name: str, ratio: Ratio, met_when_undefined: bool, required: Decimal | None, scope: str) -> CriterionResult:
    label = "average R:R"
    if required is None:
        return _disabled(name, label)
    if ratio.value is None:
        if met_when_undefined:
            return CriterionResult(name, None, ratio_str(required), True, f"{label}: {ratio.detail} {scope} (met: wins and no losses)")
        return CriterionResult(name, None, ratio_str(required), False, f"{label} unavailable ({ratio.detail}) {scope}; required {ratio_str(required)}")
    return _ratio_at_least(name, label, ratio, required, scope)


class ProfitableSessions:
    name = "profitable_sessions"

    def __init__(self, required: int | None) -> None:
        self.required = required

    def evaluate(self, view: GateView) -> CriterionResult:
        return _at_least_count(self.name, "profitable sessions", view.progress.profitable_sessions(), self.required)


class Sample(Protocol):
    """Outcomes pooled over a window: the last N sessions, or the last N trades."""

    wins: int
    losses: int

    def win_rate(self) -> Ratio: ...

    def avg_rr(self) -> Ratio: ...


class SessionWindow:
    """The trades of the stint's last N sessions that had a closed unflagged trade."""

    def __init__(self, sessions: int) -> None:
        self.sessions = sessions

    def sample(self, view: GateView) -> tuple[Sample, str]:
        pooled = view.progress.pooled_last_sessions(self.sessions)
        return pooled, f"over the last {pooled.sessions} sessions with trades (window {self.sessions})"


class TradeWindow:
    """The stint's last N closed unflagged trades."""

    def __init__(self, trades: int) -> None:
        self.trades = trades

    def sample(self, view: GateView) -> tuple[Sample, str]:
        window = view.progress.gate_window
        assert window is not None
        return window, f"over the last {len(window)} trades (window {self.trades})"


class WindowWinRate:
    name = "win_rate"

    def __init__(self, window: SessionWindow | TradeWindow, required: Decimal | None) -> None:
        self.window = window
        self.required = required

    def evaluate(self, view: GateView) -> CriterionResult:
        sample, scope = self.window.sample(view)
        return _ratio_at_least(self.name, "win rate", sample.win_rate(), self.required, scope)


class WindowRR:
    name = "avg_rr"

    def __init__(self, window: SessionWindow | TradeWindow, required: Decimal | None) -> None:
        self.window = window
        self.required = required

    def evaluate(self, view: GateView) -> CriterionResult:
        sample, scope = self.window.sample(view)
        met_undefined = sample.losses == 0 and sample.wins > 0
        return _rr_at_least(self.name, sample.avg_rr(), met_undefined, self.required, scope)


class OverrideIncidents:
    name = "override_incidents"

    def __init__(self, allowed: int | None) -> None:
        self.allowed = allowed

    def evaluate(self, view: GateView) -> CriterionResult:
        label = "override incidents"
        if self.allowed is None:
            return _disabled(self.name, label)
        actual = view.override_incidents
        met = actual <= self.allowed
        sign = "≤" if met else ">"
        return CriterionResult(self.name, actual, self.allowed, met, f"{label} {actual} {sign} allowed {self.allowed} since the stint began")


class TradingDays:
    name = "trading_days"

    def __init__(self, required: int | None) -> None:
        self.required = required

    def evaluate(self, view: GateView) -> CriterionResult:
        return _at_least_count(self.name, "trading days in the stint", view.trading_days, self.required)


class MissedDaysStreak:
    name = "missed_days_streak"

    def __init__(self, allowed: int | None) -> None:
        self.allowed = allowed

    def evaluate(self, view: GateView) -> CriterionResult:
        label = "longest run of trading days without an entry"
        if self.allowed is None:
            return _disabled(self.name, label)
        actual = view.missed_days_streak
        met = actual <= self.allowed
        sign = "≤" if met else ">"
        return CriterionResult(self.name, actual, self.allowed, met, f"{label} {actual} {sign} allowed {self.allowed}")


class TradeCount:
    name = "trades"

    def __init__(self, required: int | None) -> None:
        self.required = required

    def evaluate(self, view: GateView) -> CriterionResult:
        return _at_least_count(self.name, "closed trades in the stint", view.progress.tally.counted, self.required)


class MaxDrawdown:
    name = "max_drawdown_pct"

    def __init__(self, limit: Decimal | None) -> None:
        self.limit = limit

    def evaluate(self, view: GateView) -> CriterionResult:
        label = "max drawdown in the stint"
        if self.limit is None:
            return _disabled(self.name, label)
        actual = view.progress.drawdown_pct()
        met = actual < self.limit
        shown, limit = distinct_pair(actual, self.limit)
        sign = "<" if met else "≥"
        return CriterionResult(self.name, ratio_str(actual), ratio_str(self.limit), met, f"{label} {shown}% {sign} limit {limit}%")


def gate_for(settings: Settings, phase: Phase) -> list[GateCriterion]:
    """The criteria for leaving `phase` upward (its `advancement_criteria`)."""
    block = settings.phase_block(phase)
    criteria = getattr(block, "advancement_criteria", None)
    if isinstance(criteria, ExperienceCriteria):
        return [
            ProfitableSessions(criteria.min_sessions),
            WindowWinRate(SessionWindow(criteria.session_window), criteria.min_win_rate),
            WindowRR(SessionWindow(criteria.session_window), criteria.min_avg_rr),
            OverrideIncidents(criteria.max_override_incidents),
        ]
    if isinstance(criteria, ProofCriteria):
        return [
            TradingDays(criteria.min_sessions),
            MissedDaysStreak(criteria.max_missed_days),
            TradeCount(criteria.min_trades),
            WindowWinRate(TradeWindow(criteria.trade_window), criteria.min_win_rate),
            WindowRR(TradeWindow(criteria.trade_window), criteria.min_avg_rr),
        ]
    if isinstance(criteria, TrialCriteria):
        return [
            TradingDays(criteria.min_sessions),
            TradeCount(criteria.min_trades),
            WindowWinRate(TradeWindow(criteria.trade_window), criteria.min_win_rate),
            WindowRR(TradeWindow(criteria.trade_window), criteria.min_avg_rr),
            MaxDrawdown(criteria.max_drawdown_pct),
        ]
    return []


def gate_window_size(settings: Settings, phase: Phase) -> int | None:
    criteria = getattr(settings.phase_block(phase), "advancement_criteria", None)
    return getattr(criteria, "trade_window", None)


def evaluate_gate(settings: Settings, view: GateView) -> GateResult:
    phase = view.progress.stint.phase
    target = phase.next
    assert target is not None, "scaling is the top of the ladder"
    results = tuple(rule.evaluate(view) for rule in gate_for(settings, phase))
    return GateResult(from_phase=phase, to_phase=target, criteria=results)


# ---- downgrade triggers --------------------------------------------------------------


class DowngradeTrigger(Protocol):
    name: str

    def check(self, progress: StintProgress) -> TriggerHit | None: ...

    def describe(self) -> str: ...


class ConsecutiveLosses:
    name = "consecutive_losses"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, progress: StintProgress) -> TriggerHit | None:
        run = progress.tally.consecutive_losses
        if run >= self.limit:
            return TriggerHit(self.name, str(run), str(self.limit), f"{run} consecutive losses (limit {self.limit})")
        return None

    def describe(self) -> str:
        return f"{self.limit} consecutive losses → downgrade"


class RollingWinRate:
    name = "rolling_win_rate"

    def __init__(self, window: int, minimum: Decimal) -> None:
        self.window = window
        self.minimum = minimum

    def check(self, progress: StintProgress) -> TriggerHit | None:
        window = progress.trigger_window
        if window is None or not window.full:
            return None
        rate = window.win_rate().value
        if rate is not None and rate < self.minimum:
            shown, floor = distinct_pair(rate, self.minimum)
            return TriggerHit(
                self.name,
                ratio_str(rate),
                ratio_str(self.minimum),
                f"win rate of the last {self.window} trades {shown} < {floor}",
            )
        return None

    def describe(self) -> str:
        return f"win rate of the last {self.window} trades below {ratio_str(self.minimum)} → downgrade"


class DailyLoss:
    name = "max_daily_loss_pct"

    def __init__(self, limit_pct: Decimal) -> None:
        self.limit_pct = limit_pct

    def check(self, progress: StintProgress) -> TriggerHit | None:
        session = progress.last_session
        if session is None:
            return None
        equity_open = progress.equity_at_session_open(session)
        if equity_open <= 0:
            return None
        loss_pct = -progress.stint_session_pnl(session) / equity_open * 100
        if loss_pct > self.limit_pct:
            shown, limit = distinct_pair(loss_pct, self.limit_pct)
            return TriggerHit(
                self.name,
                ratio_str(loss_pct),
                ratio_str(self.limit_pct),
                f"daily loss {shown}% > {limit}% of equity at the session's open",
            )
        return None

    def describe(self) -> str:
        return f"daily loss above {self.limit_pct}% of equity → downgrade"


def triggers_for(settings: Settings, phase: Phase) -> list[DowngradeTrigger]:
    """The phase's configured downgrade triggers (none in experience)."""
    block = settings.phase_block(phase)
    config: DowngradeTriggers | None = getattr(block, "downgrade_triggers", None)
    if config is None:
        return []
    rules: list[DowngradeTrigger] = []
    if config.consecutive_losses is not None:
        rules.append(ConsecutiveLosses(config.consecutive_losses))
    if config.rolling_window_trades is not None and config.rolling_win_rate_min is not None:
        rules.append(RollingWinRate(config.rolling_window_trades, config.rolling_win_rate_min))
    if config.max_daily_loss_pct is not None:
        rules.append(DailyLoss(config.max_daily_loss_pct))
    return rules


def trigger_window_size(settings: Settings, phase: Phase) -> int | None:
    config = getattr(settings.phase_block(phase), "downgrade_triggers", None)
    if config is None or config.rolling_win_rate_min is None:
        return None
    return config.rolling_window_trades


def fired_triggers(rules: list[DowngradeTrigger], progress: StintProgress) -> list[TriggerHit]:
    """Every trigger that fires on the stint as it stands (never on empty data)."""
    if progress.tally.closed == 0:
        return []
    return [hit for rule in rules if (hit := rule.check(progress)) is not None]
