"""The rules: gate criteria for climbing, downgrade triggers for stepping down.

Each rule is one small class that knows its config key, reads its parameters from its
config block, answers one question about the current stint, describes itself, and (for
gate criteria) says whether an edit of its key makes the gate easier. The registries
`GATES` and `TRIGGERS` build them from config: adding a rule is adding a class and a
registry entry, never a branch in a chain of ifs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from trading_bot.config import DowngradeTriggers, Settings
from trading_bot.dashboard.metrics_calculator import Ratio, daily_loss_pct, rr_met_from_counts
from trading_bot.money import distinct_pair, money_str, ratio_str
from trading_bot.phase.models import CriterionResult, GateResult, Phase, TriggerHit
from trading_bot.phase.stint import StintProgress


@dataclass(frozen=True)
class GateView:
    """What a gate looks at: the stint's folded numbers plus calendar and log counts."""

    progress: StintProgress
    trading_days: int
    missed_days_streak: int
    override_incidents: int


# Which way a gate's limit loosens: a requirement ("at least") loosens when lowered or
# switched off; an allowance ("at most") loosens when raised or switched off.
AT_LEAST = "at_least"
AT_MOST = "at_most"


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


def _at_most_count(name: str, label: str, actual: int, allowed: int | None, suffix: str = "") -> CriterionResult:
    if allowed is None:
        return _disabled(name, label)
    met = actual <= allowed
    sign = "≤" if met else ">"
    return CriterionResult(name, actual, allowed, met, f"{label} {actual} {sign} allowed {allowed}{suffix}")


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
    limit_key = "min_sessions"
    loosens_when = AT_LEAST

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

    key = "session_window"
    pools_trades = False

    def __init__(self, sessions: int) -> None:
        self.sessions = sessions

    def sample(self, view: GateView) -> tuple[Sample, str]:
        pooled = view.progress.pooled_last_sessions(self.sessions)
        return pooled, f"over the last {pooled.sessions} sessions with trades (window {self.sessions})"


class TradeWindow:
    """The stint's last N closed unflagged trades."""

    key = "trade_window"
    pools_trades = True

    def __init__(self, trades: int) -> None:
        self.trades = trades

    def sample(self, view: GateView) -> tuple[Sample, str]:
        window = view.progress.gate_window
        assert window is not None
        return window, f"over the last {len(window)} trades (window {self.trades})"


class WindowWinRate:
    name = "win_rate"
    limit_key = "min_win_rate"
    loosens_when = AT_LEAST

    def __init__(self, window: SessionWindow | TradeWindow, required: Decimal | None) -> None:
        self.window = window
        self.required = required

    def evaluate(self, view: GateView) -> CriterionResult:
        sample, scope = self.window.sample(view)
        return _ratio_at_least(self.name, "win rate", sample.win_rate(), self.required, scope)


class WindowRR:
    name = "avg_rr"
    limit_key = "min_avg_rr"
    loosens_when = AT_LEAST

    def __init__(self, window: SessionWindow | TradeWindow, required: Decimal | None) -> None:
        self.window = window
        self.required = required

    def evaluate(self, view: GateView) -> CriterionResult:
        sample, scope = self.window.sample(view)
        # An undefined R:R passes only as "won, never lost" (the metric's own rule).
        met_undefined = rr_met_from_counts(None, Decimal(0), sample.wins, sample.losses)
        return _rr_at_least(self.name, sample.avg_rr(), met_undefined, self.required, scope)


class OverrideIncidents:
    name = "override_incidents"
    limit_key = "max_override_incidents"
    loosens_when = AT_MOST

    def __init__(self, allowed: int | None) -> None:
        self.allowed = allowed

    def evaluate(self, view: GateView) -> CriterionResult:
        return _at_most_count(self.name, "override incidents", view.override_incidents, self.allowed, " since the stint began")


class TradingDays:
    name = "trading_days"
    limit_key = "min_sessions"
    loosens_when = AT_LEAST

    def __init__(self, required: int | None) -> None:
        self.required = required

    def evaluate(self, view: GateView) -> CriterionResult:
        return _at_least_count(self.name, "trading days in the stint", view.trading_days, self.required)


class MissedDaysStreak:
    name = "missed_days_streak"
    limit_key = "max_missed_days"
    loosens_when = AT_MOST

    def __init__(self, allowed: int | None) -> None:
        self.allowed = allowed

    def evaluate(self, view: GateView) -> CriterionResult:
        return _at_most_count(self.name, "longest run of trading days without an entry", view.missed_days_streak, self.allowed)


class TradeCount:
    name = "trades"
    limit_key = "min_trades"
    loosens_when = AT_LEAST

    def __init__(self, required: int | None) -> None:
        self.required = required

    def evaluate(self, view: GateView) -> CriterionResult:
        return _at_least_count(self.name, "closed trades in the stint", view.progress.tally.counted, self.required)


class MaxDrawdown:
    name = "max_drawdown_pct"
    limit_key = "max_drawdown_pct"
    loosens_when = AT_MOST

    def __init__(self, limit: Decimal | None) -> None:
        self.limit = limit

    def evaluate(self, view: GateView) -> CriterionResult:
        label = "max drawdown in the stint"
        if self.limit is None:
            return _disabled(self.name, label)
        actual = view.progress.drawdown_pct()
        if actual is None:
            peak = view.progress.unmeasured_peak()
            return CriterionResult(
                self.name,
                None,
                ratio_str(self.limit),
                False,
                f"{label} not measurable (equity peak ${money_str(peak or Decimal(0))} is not above zero); limit {ratio_str(self.limit)}%",
            )
        met = actual < self.limit
        shown, limit = distinct_pair(actual, self.limit)
        sign = "<" if met else "≥"
        return CriterionResult(self.name, ratio_str(actual), ratio_str(self.limit), met, f"{label} {shown}% {sign} limit {limit}%")


@dataclass(frozen=True)
class GateRule:
    """One criterion of a gate as configured: its class, and the window it pools over."""

    criterion: Any
    window: type[SessionWindow] | type[TradeWindow] | None = None

    def build(self, criteria: Any) -> GateCriterion:
        required = getattr(criteria, self.criterion.limit_key)
        if self.window is None:
            return self.criterion(required)  # type: ignore[no-any-return]
        return self.criterion(self.window(getattr(criteria, self.window.key)), required)  # type: ignore[no-any-return]

    def loosened(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
        """Whether an edit of this criterion's limit makes the gate easier to pass."""
        key = self.criterion.limit_key
        if key not in before or before[key] is None:
            return False
        old, new = Decimal(str(before[key])), after.get(key)
        if new is None:
            return True
        new = Decimal(str(new))
        return new < old if self.criterion.loosens_when == AT_LEAST else new > old

    def trades_window(self, criteria: Any) -> int | None:
        """The rolling window of trades this criterion needs folded, if it pools trades."""
        if self.window is None or not self.window.pools_trades:
            return None
        return getattr(criteria, self.window.key)  # type: ignore[no-any-return]


# The criteria for leaving each phase upward, read from its `advancement_criteria`.
GATES: dict[Phase, tuple[GateRule, ...]] = {
    Phase.EXPERIENCE: (
        GateRule(ProfitableSessions),
        GateRule(WindowWinRate, SessionWindow),
        GateRule(WindowRR, SessionWindow),
        GateRule(OverrideIncidents),
    ),
    Phase.PROOF: (
        GateRule(TradingDays),
        GateRule(MissedDaysStreak),
        GateRule(TradeCount),
        GateRule(WindowWinRate, TradeWindow),
        GateRule(WindowRR, TradeWindow),
    ),
    Phase.TRIAL: (
        GateRule(TradingDays),
        GateRule(TradeCount),
        GateRule(WindowWinRate, TradeWindow),
        GateRule(WindowRR, TradeWindow),
        GateRule(MaxDrawdown),
    ),
}


def _criteria(settings: Settings, phase: Phase) -> Any:
    return settings.phase_block(phase).advancement_criteria  # type: ignore[union-attr]


def gate_for(settings: Settings, phase: Phase) -> list[GateCriterion]:
    """The criteria for leaving `phase` upward (none at the top of the ladder)."""
    rules = GATES.get(phase, ())
    return [rule.build(_criteria(settings, phase)) for rule in rules]


def gate_window_size(settings: Settings, phase: Phase) -> int | None:
    windows = [size for rule in GATES.get(phase, ()) if (size := rule.trades_window(_criteria(settings, phase))) is not None]
    return max(windows, default=None)


def loosened_criteria(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Dotted paths of the gate criteria an edit of `advancement_criteria` loosened.

    `before` and `after` are criteria snapshots: {"phase_progression": {phase: {...}}}.
    """
    loosened: list[str] = []
    for phase, rules in GATES.items():
        old = before.get("phase_progression", {}).get(phase.value, {}).get("advancement_criteria")
        new = after.get("phase_progression", {}).get(phase.value, {}).get("advancement_criteria")
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            continue
        for rule in rules:
            path = f"phase_progression.{phase.value}.advancement_criteria.{rule.criterion.limit_key}"
            if rule.loosened(old, new) and path not in loosened:
                loosened.append(path)
    return loosened


def evaluate_gate(settings: Settings, view: GateView) -> GateResult:
    phase = view.progress.stint.phase
    target = phase.next
    assert target is not None, "scaling is the top of the ladder"
    results = tuple(rule.evaluate(view) for rule in gate_for(settings, phase))
    return GateResult(from_phase=phase, to_phase=target, criteria=results)


# ---- downgrade triggers --------------------------------------------------------------


class DowngradeTrigger(Protocol):
    name: str
    trades_window: int | None  # the rolling window of trades it needs folded, if any

    def check(self, progress: StintProgress) -> TriggerHit | None: ...

    def describe(self) -> str: ...


class ConsecutiveLosses:
    name = "consecutive_losses"
    trades_window = None

    def __init__(self, limit: int) -> None:
        self.limit = limit

    @classmethod
    def from_config(cls, config: DowngradeTriggers) -> ConsecutiveLosses | None:
        return None if config.consecutive_losses is None else cls(config.consecutive_losses)

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
        self.trades_window = window

    @classmethod
    def from_config(cls, config: DowngradeTriggers) -> RollingWinRate | None:
        if config.rolling_window_trades is None or config.rolling_win_rate_min is None:
            return None
        return cls(config.rolling_window_trades, config.rolling_win_rate_min)

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
    trades_window = None

    def __init__(self, limit_pct: Decimal) -> None:
        self.limit_pct = limit_pct

    @classmethod
    def from_config(cls, config: DowngradeTriggers) -> DailyLoss | None:
        return None if config.max_daily_loss_pct is None else cls(config.max_daily_loss_pct)

    def check(self, progress: StintProgress) -> TriggerHit | None:
        session = progress.last_session
        if session is None:
            return None
        equity_open = progress.equity_at_session_open(session)
        session_pnl = progress.stint_session_pnl(session)
        if equity_open <= 0:
            # No percentage exists of nothing: any loss on an account at or below zero fires.
            if session_pnl >= 0:
                return None
            return TriggerHit(
                self.name,
                money_str(session_pnl),
                ratio_str(self.limit_pct),
                f"daily loss ${money_str(-session_pnl)} with equity at the session's open ${money_str(equity_open)} (not above zero): any loss fires",
            )
        loss_pct = daily_loss_pct(session_pnl, equity_open)
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


# The downgrade triggers, each built from the phase's `downgrade_triggers` (None: off).
TRIGGERS = (ConsecutiveLosses, RollingWinRate, DailyLoss)


def triggers_for(settings: Settings, phase: Phase) -> list[DowngradeTrigger]:
    """The phase's configured downgrade triggers (none in experience)."""
    config: DowngradeTriggers | None = getattr(settings.phase_block(phase), "downgrade_triggers", None)
    if config is None:
        return []
    return [rule for factory in TRIGGERS if (rule := factory.from_config(config)) is not None]


def trigger_window_size(settings: Settings, phase: Phase) -> int | None:
    windows = [rule.trades_window for rule in triggers_for(settings, phase) if rule.trades_window is not None]
    return max(windows, default=None)


def fired_triggers(rules: list[DowngradeTrigger], progress: StintProgress) -> list[TriggerHit]:
    """Every trigger that fires on the stint as it stands (never on empty data)."""
    if progress.tally.closed == 0:
        return []
    return [hit for rule in rules if (hit := rule.check(progress)) is not None]
