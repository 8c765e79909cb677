"""The vocabulary of the phase system: phases, stints, events and decisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from trading_bot.error_handling.circuit_breaker import BreakerState


class Phase(str, Enum):
    """The four rungs of the ladder, in climbing order."""

    EXPERIENCE = "experience"
    PROOF = "proof"
    TRIAL = "trial"
    SCALING = "scaling"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @property
    def next(self) -> Phase | None:
        index = self.rank + 1
        return _ORDER[index] if index < len(_ORDER) else None

    @property
    def previous(self) -> Phase | None:
        return _ORDER[self.rank - 1] if self.rank > 0 else None

    @property
    def title(self) -> str:
        return _TITLES[self]

    @property
    def allows_live(self) -> bool:
        return self is not Phase.EXPERIENCE

    def __str__(self) -> str:
        return self.value


_ORDER = [Phase.EXPERIENCE, Phase.PROOF, Phase.TRIAL, Phase.SCALING]
_TITLES = {
    Phase.EXPERIENCE: "Experience",
    Phase.PROOF: "Proof of Concept",
    Phase.TRIAL: "Real Money Trial",
    Phase.SCALING: "Scaling",
}


# ---- results the rules hand back -----------------------------------------------------


@dataclass(frozen=True)
class CriterionResult:
    """One gate criterion: what was measured, what is required, and a sentence about it."""

    name: str
    actual: Any
    required: Any
    met: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "actual": self.actual,
            "required": self.required,
            "met": self.met,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class GateResult:
    """The evaluation of one step up the ladder."""

    from_phase: Phase
    to_phase: Phase
    criteria: tuple[CriterionResult, ...]

    @property
    def ready(self) -> bool:
        return all(criterion.met for criterion in self.criteria)

    @property
    def failures(self) -> list[str]:
        return [criterion.detail for criterion in self.criteria if not criterion.met]

    def to_json(self) -> dict[str, Any]:
        return {
            "from_phase": self.from_phase.value,
            "to_phase": self.to_phase.value,
            "ready": self.ready,
            "criteria": [criterion.to_json() for criterion in self.criteria],
            "failures": self.failures,
        }


@dataclass(frozen=True)
class TriggerHit:
    """A downgrade trigger that fired, with the numbers that decided it."""

    name: str
    actual: str
    threshold: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "actual": self.actual, "threshold": self.threshold, "detail": self.detail}


@dataclass(frozen=True)
class Stint:
    """The current run in one phase: since when, at what size, with which breaker state."""

    phase: Phase
    since: datetime | None
    phase_since: datetime | None
    size: Decimal
    breaker: BreakerState
    mode: str
    transition_seq: int = 0
    details: dict[str, Any] = field(default_factory=dict)
