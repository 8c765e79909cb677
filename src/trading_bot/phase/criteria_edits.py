"""Hand edits of the criteria: what counts as the criteria (the snapshot recorded with
before and after). Whether an edit loosens a gate is each gate criterion's own answer
(`phase.rules.loosened_criteria`); a loosening edit counts as an override incident.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from trading_bot.config import Settings


def criteria_snapshot(settings: Settings) -> dict[str, Any]:
    """Everything under `phase_progression` but the phase itself, plus equity and hours."""
    progression = _normalized(settings.phase_progression.dump(exclude={"current_phase", "history_head", "overrides_head"}))
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
