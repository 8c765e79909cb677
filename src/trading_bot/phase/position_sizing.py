"""Position size rules (SPEC §6): scaling's steps up, and the equity cap at every check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from trading_bot.config import ScalingSettings
from trading_bot.money import money_str
from trading_bot.phase.stint import StintProgress

WIN_STREAK = "win_streak"
WIN_RATE = "win_rate"


@dataclass(frozen=True)
class SizeStep:
    """A recorded change of the size in force, with the reason shown to the operator."""

    new_size: Decimal
    reason: str
    rule: str
    key: str


def _bounded(settings: ScalingSettings, size: Decimal, increase: Decimal, size_at_open: Decimal) -> Decimal:
    """Never above the configured maximum, never more than double the size at the open."""
    return min(size + increase, settings.position_size_max, size_at_open * 2)


def streak_at_step(settings: ScalingSettings, streak: int) -> bool:
    """Whether a winning streak of `streak` stands where the rule steps the size up (a
    multiple of `every`): the replay asks this of each scaling close before it looks up
    any size, since a step is rarely due."""
    rule = settings.increase_on_win_streak
    return rule is not None and streak != 0 and streak % rule.every == 0


def streak_step(
    settings: ScalingSettings, progress: StintProgress, size: Decimal, size_at_open: Decimal, key_prefix: str
) -> SizeStep | None:
    """+amount each time the stint's winning streak reaches a multiple of `every`."""
    rule = settings.increase_on_win_streak
    trade = progress.last_stint_trade
    streak = progress.tally.winning_streak
    if rule is None or trade is None or trade.is_flagged or not streak_at_step(settings, streak):
        return None
    new_size = _bounded(settings, size, rule.amount, size_at_open)
    if new_size <= size:
        return None
    return SizeStep(
        new_size=new_size,
        reason=f"{streak} consecutive wins: ${money_str(size)} → ${money_str(new_size)}",
        rule=WIN_STREAK,
        key=f"{key_prefix}:streak:{trade.order_id}",
    )


def win_rate_step(
    settings: ScalingSettings,
    progress: StintProgress,
    session: date,
    size: Decimal,
    size_at_open: Decimal,
    key_prefix: str,
) -> SizeStep | None:
    """+amount at a session close when the pooled win rate of the last N sessions is high enough."""
    rule = settings.increase_on_win_rate
    if rule is None:
        return None
    pooled = progress.pooled_last_sessions(rule.sessions, through=session)
    if pooled.sessions < rule.sessions:
        return None
    rate = pooled.win_rate().value
    if rate is None or rate < rule.min_win_rate:
        return None
    new_size = _bounded(settings, size, rule.amount, size_at_open)
    if new_size <= size:
        return None
    return SizeStep(
        new_size=new_size,
        reason=(
            f"win rate {rate.quantize(Decimal('0.0001'))} over the last {rule.sessions} sessions "
            f"≥ {rule.min_win_rate}: ${money_str(size)} → ${money_str(new_size)}"
        ),
        rule=WIN_RATE,
        key=f"{key_prefix}:winrate:{session.isoformat()}",
    )


@dataclass(frozen=True)
class EffectiveSize:
    """The size an entry may use now, or why none is valid."""

    size: Decimal
    refusal: str | None = None


def effective_size(recorded: Decimal, equity: Decimal, settings: ScalingSettings | None) -> EffectiveSize:
    """Apply the scaling cap of a percentage of equity; below the phase minimum, refuse."""
    if settings is None or settings.max_portfolio_pct is None:
        return EffectiveSize(recorded)
    cap = equity * settings.max_portfolio_pct / 100
    if cap >= recorded:
        return EffectiveSize(recorded)
    if cap < settings.position_size_min:
        return EffectiveSize(
            cap,
            f"{settings.max_portfolio_pct}% of equity ${money_str(equity)} is ${money_str(cap)}, "
            f"below the scaling minimum ${money_str(settings.position_size_min)}; entries refused",
        )
    return EffectiveSize(cap)
