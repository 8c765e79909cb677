"""The phase history read back: which phase, since when, at what size, breaker state.

The history file is the single commit point of every phase decision; this module is the
one place that turns its lines into the current stint. It is pure: lines in, state out.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from trading_bot.config import ScalingSettings, Settings
from trading_bot.money import to_decimal
from trading_bot.clock import parse_timestamp
from trading_bot.phase.log_format import LogDamaged, LogLine, LogProblem
from trading_bot.error_handling.circuit_breaker import BreakerState
from trading_bot.phase.models import Phase, Stint
from trading_bot.phase.record_types import BREAKER_ACK, HISTORY_FILE, RECOVERED, RESET, SESSION_SUMMARY, SIZE_CHANGE, SUGGESTION, TRANSITION


def entry_size(settings: Settings, phase: Phase) -> Decimal:
    """The size a phase starts at when entered by advance or override."""
    block = settings.phase_block(phase)
    if isinstance(block, ScalingSettings):
        return block.position_size_min
    return block.position_size


def downgrade_size(settings: Settings, lower: Phase, size_before: Decimal) -> Decimal:
    """Half the size before, but never above the lower phase's size; experience uses its own."""
    if lower is Phase.EXPERIENCE:
        return entry_size(settings, lower)
    return min(size_before / 2, entry_size(settings, lower))


@dataclass
class Ledger:
    """Everything the history says, folded line by line (`fold`), so new lines cost O(1)."""

    settings: Settings
    mode: str
    phase: Phase = Phase.EXPERIENCE
    since: datetime | None = None
    phase_since: datetime | None = None
    size: Decimal = Decimal(0)
    breaker: BreakerState = field(default_factory=BreakerState.closed)
    transition_seq: int = 0
    transitions: list[LogLine] = field(default_factory=list)
    phase_changes: list[tuple[datetime, Phase]] = field(default_factory=list)
    size_changes: list[tuple[datetime, Decimal]] = field(default_factory=list)
    size_keys: set[str] = field(default_factory=set)
    suggested_stints: set[int] = field(default_factory=set)
    summarized_sessions: dict[date, LogLine] = field(default_factory=dict)
    breaker_spans: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    open_trip: datetime | None = None
    head_seq: int = 0
    initial_size: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        self.size = self.initial_size = entry_size(self.settings, Phase.EXPERIENCE)

    @property
    def stint(self) -> Stint:
        return Stint(
            phase=self.phase,
            since=self.since,
            phase_since=self.phase_since,
            size=self.size,
            breaker=self.breaker,
            mode=self.mode,
            transition_seq=self.transition_seq,
        )

    def fold(self, line: LogLine) -> None:
        """Take one more history line. Unknown line types are kept in the file but ignored.

        A line whose chain checks out but whose payload cannot be read (a hand rewrite
        with recomputed hashes, say) is damage, reported with its line, never a traceback.
        """
        try:
            self._fold(line)
        except (KeyError, ValueError, TypeError, ArithmeticError) as error:
            raise LogDamaged(
                LogProblem(HISTORY_FILE, line.line_no, f"{line.type} line cannot be read ({type(error).__name__}: {error})")
            ) from None

    def _fold(self, line: LogLine) -> None:
        data = line.data
        kind = line.type
        if kind == TRANSITION:
            at = effective_time(line)
            if data.get("kind") != RESET or self.phase_since is None:
                self.phase_since = at
            self.phase = Phase(data["to_phase"])
            self.since = at
            self.size = to_decimal(data["position_size"])
            breaker = BreakerState.from_json(data["breaker"])
            if breaker.tripped and not self.breaker.tripped:
                self.open_trip = breaker.since or at
            self.breaker = breaker
            self.transition_seq = line.seq
            self.transitions.append(line)
            bisect.insort(self.phase_changes, (at, self.phase), key=lambda item: item[0])
            bisect.insort(self.size_changes, (at, self.size), key=lambda item: item[0])
        elif kind == SIZE_CHANGE:
            self.size = to_decimal(data["to_size"])
            self.size_keys.add(str(data.get("key", "")))
            bisect.insort(self.size_changes, (effective_time(line), self.size), key=lambda item: item[0])
        elif kind == BREAKER_ACK:
            if self.breaker.tripped and self.open_trip is not None:
                self.breaker_spans.append((self.open_trip, line.timestamp))
            self.open_trip = None
            self.breaker = BreakerState.closed()
        elif kind == RECOVERED:
            if not self.breaker.tripped:
                self.open_trip = line.timestamp
            self.breaker = BreakerState.trip(
                f"phase logs recovered (restored from {data.get('restored_from', '?')}); "
                "check the history, then acknowledge",
                line.timestamp,
            )
        elif kind == SUGGESTION:
            self.suggested_stints.add(int(data.get("stint_seq", 0)))
        elif kind == SESSION_SUMMARY:
            self.summarized_sessions[date.fromisoformat(data["date"])] = line
        self.head_seq = line.seq

    def phase_at(self, moment: datetime) -> Phase:
        """The phase in force at a moment (for trades whose record names none)."""
        index = bisect.bisect_right(self.phase_changes, moment, key=lambda item: item[0]) - 1
        return self.phase_changes[index][1] if index >= 0 else Phase.EXPERIENCE

    def size_at(self, moment: datetime) -> Decimal:
        """The size in force at a moment (before any history line: experience's size)."""
        index = bisect.bisect_right(self.size_changes, moment, key=lambda item: item[0]) - 1
        return self.size_changes[index][1] if index >= 0 else self.initial_size

    def _spans(self) -> list[tuple[datetime, datetime | None]]:
        if self.breaker.tripped and self.open_trip is not None:
            return [*self.breaker_spans, (self.open_trip, None)]
        return self.breaker_spans

    def days_tripped(self, days: Sequence[date], opens_at: Callable[[date], datetime], closes_at: Callable[[date], datetime]) -> set[date]:
        """The sessions among `days` (in order) during which the breaker was tripped at any
        moment between the day's open and its close (a trip that began before the close and
        was not cleared before the open), found by bisecting the days once per trip instead
        of asking once per day (ten years: 2,520 days)."""
        found: set[date] = set()
        for tripped_at, cleared_at in self._spans():
            first = bisect.bisect_right(days, tripped_at, key=closes_at)
            last = len(days) if cleared_at is None else bisect.bisect_left(days, cleared_at, key=opens_at)
            found.update(days[first:last])
        return found

    def trips_during(self, start: datetime, end: datetime) -> int:
        return sum(1 for tripped_at, _ in self._spans() if start <= tripped_at < end)


def effective_time(line: LogLine) -> datetime:
    """A downgrade found late takes effect at the close that caused it."""
    value = line.data.get("effective_at")
    return parse_timestamp(value) if isinstance(value, str) else line.timestamp


def read_ledger(lines: Sequence[LogLine], settings: Settings, mode: str) -> Ledger:
    """Fold the whole history into the current stint."""
    ledger = Ledger(settings=settings, mode=mode)
    for line in lines:
        ledger.fold(line)
    return ledger
