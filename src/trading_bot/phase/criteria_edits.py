"""Hand edits of the criteria: what counts as the criteria, and which edits loosen a gate.

An edit is recorded with before and after; one that makes a gate easier to pass counts
as an override incident, because it is as good as skipping the gate.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from trading_bot.config import Settings


def criteria_snapshot(settings: Settings) -> dict[str, Any]:
    """Everything under `phase_progression` but the phase itself, plus equity and hours."""
    progression = _normalized(
        settings.phase_progression.model_dump(mode="python", exclude={"current_phase", "history_head", "overrides_head"})
    )
    hours = settings.trading.hours
    return {
        "phase_progression": progression,
        "account": {"starting_equity": _normalized(settings.account.starting_equity)},
        "trading": {
            "hours": {
                "start_time": hours.start_time.strftime("%H:%M"),
                "end_time": hours.end_time.strftime("%H:%M"),
                "timezone": hours.timezone,
            }
        },
    }


def _normalized(value: Any) -> Any:
    """Numbers compared by value, not spelling: 0.60 and 0.6 are the same criterion."""
    if isinstance(value, dict):
        return {key: _normalized(item) for key, item in value.items()}
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    return value


def _number(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value))


def _looser(key: str, before: Any, after: Any) -> bool:
    """min_* looser when lower or disabled; max_* looser when higher or disabled."""
    old, new = _number(before), _number(after)
    if old is None:
        return False
    if key.startswith("min_"):
        return new is None or new < old
    if key.startswith("max_"):
        return new is None or new > old
    return False


def loosened_criteria(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Dotted paths of the gate criteria (advancement_criteria) that the edit loosened."""
    loosened: list[str] = []
    old_progression = before.get("phase_progression", {})
    new_progression = after.get("phase_progression", {})
    for phase, block in new_progression.items():
        new_criteria = block.get("advancement_criteria") if isinstance(block, dict) else None
        old_block = old_progression.get(phase, {})
        old_criteria = old_block.get("advancement_criteria") if isinstance(old_block, dict) else None
        if not isinstance(new_criteria, dict) or not isinstance(old_criteria, dict):
            continue
        for key, value in new_criteria.items():
            if key in old_criteria and _looser(key, old_criteria[key], value):
                loosened.append(f"phase_progression.{phase}.advancement_criteria.{key}")
    return loosened
