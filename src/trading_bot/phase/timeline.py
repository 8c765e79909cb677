"""The phase timeline read back from the records: gate passes, moves, size steps, refusals.

`simulate` and `replay` print it; `replay --json` hands it over as a list of events. It
is built from the history and override logs, so it says what was recorded, not what a
driver believes happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from trading_bot.market_calendar import format_local
from trading_bot.clock import format_timestamp
from trading_bot.phase.log_format import LogLine
from trading_bot.phase.ledger import effective_time
from trading_bot.phase.record_types import BREAKER_ACK, ENTRY_REFUSED, SIZE_CHANGE, SUGGESTION, TRANSITION


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    kind: str
    text: str
    from_phase: str | None = None
    to_phase: str | None = None
    position_size: str | None = None
    check: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": format_timestamp(self.at).replace(".000000Z", "Z"),
            "kind": self.kind,
            "from_phase": self.from_phase,
            "to_phase": self.to_phase,
            "position_size": self.position_size,
            "check": self.check,
            "text": self.text,
        }


def timeline_events(history: Sequence[LogLine], overrides: Sequence[LogLine]) -> list[TimelineEvent]:
    """Every event worth a line, in time order (history before override log at a tie)."""
    events: list[tuple[datetime, int, int, TimelineEvent]] = []
    for line in history:
        event = _history_event(line)
        if event is not None:
            events.append((event.at, 0, line.seq, event))
    for line in overrides:
        if line.type == ENTRY_REFUSED:
            data = line.data
            event = TimelineEvent(line.timestamp, ENTRY_REFUSED, str(data.get("reason")), check=data.get("check"))
            events.append((line.timestamp, 1, line.seq, event))
    events.sort(key=lambda item: item[:3])
    return [item[3] for item in events]


def _history_event(line: LogLine) -> TimelineEvent | None:
    data = line.data
    if line.type == TRANSITION:
        kind = str(data.get("kind"))
        text = f"{kind} {data.get('from_phase')} → {data.get('to_phase')}, size ${data.get('position_size')}"
        if kind != "advance" and data.get("reason"):
            text += f": {data.get('reason')}"
        return TimelineEvent(
            effective_time(line), kind, text, data.get("from_phase"), data.get("to_phase"), data.get("position_size")
        )
    if line.type == SUGGESTION:
        text = f"gate for {data.get('to_phase')} passed: " + "; ".join(str(c.get("detail")) for c in data.get("criteria", []))
        return TimelineEvent(line.timestamp, "gate_passed", text, data.get("from_phase"), data.get("to_phase"))
    if line.type == SIZE_CHANGE:
        text = f"size ${data.get('from_size')} → ${data.get('to_size')} ({data.get('reason')})"
        return TimelineEvent(effective_time(line), "size_change", text, position_size=data.get("to_size"))
    if line.type == BREAKER_ACK:
        text = f"breaker acknowledged by {data.get('operator_id')}"
        return TimelineEvent(line.timestamp, "breaker_ack", text)
    return None


def render_timeline(events: Sequence[TimelineEvent], tz: tzinfo | str) -> list[str]:
    """One line per event; a run of refusals for the same reason becomes one line with a count."""
    lines: list[str] = []
    index = 0
    while index < len(events):
        event = events[index]
        if event.kind == ENTRY_REFUSED:
            end = index
            while end + 1 < len(events) and events[end + 1].kind == ENTRY_REFUSED and events[end + 1].check == event.check:
                end += 1
            count = end - index + 1
            suffix = f" (×{count}, last {format_local(events[end].at, tz)})" if count > 1 else ""
            reason = _shared_reason([refused.text for refused in events[index : end + 1]])
            lines.append(f"{format_local(event.at, tz)}  entry refused{suffix}: {reason}")
            index = end + 1
            continue
        lines.append(f"{format_local(event.at, tz)}  {event.text}")
        index += 1
    return lines


def _shared_reason(texts: Sequence[str]) -> str:
    """What a run of refusals has in common: the whole text when every one says the same,
    else its clauses (parts between `; `) up to the first that differs. A clause such as
    "next trade allowed <when> (in 22h)" is true of one refusal only, not of the run."""
    first = texts[0]
    if all(text == first for text in texts):
        return first
    shared: list[str] = []
    for number, clause in enumerate(first.split("; ")):
        if any(text.split("; ")[number : number + 1] != [clause] for text in texts):
            break
        shared.append(clause)
    return "; ".join(shared) if shared else first.split("; ")[0]
