"""The vocabulary of the phase system: phases, stints, events and decisions."""

from __future__ import annotations

from enum import Enum


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
