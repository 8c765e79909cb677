"""A sliding-window circuit breaker: repeated API/broker failures stop new orders.

The bot trips it when a run of failures says the broker cannot be trusted right now;
the phase breaker (§9) persists the same `BreakerState` in the phase history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from trading_bot.clock import SYSTEM_CLOCK, Clock, ensure_utc


@dataclass(frozen=True)
class BreakerState:
    """Tripped or not, why, and since when; a tripped state always has a reason and a time."""

    tripped: bool
    reason: str | None = None
    since: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tripped, bool):
            raise ValueError("tripped must be a boolean")
        if self.tripped:
            if not isinstance(self.reason, str) or not self.reason.strip():
                raise ValueError("a tripped breaker needs a reason")
            if not isinstance(self.since, datetime):
                raise ValueError("a tripped breaker needs the time it tripped")
            object.__setattr__(self, "since", ensure_utc(self.since))
        elif self.reason is not None or self.since is not None:
            raise ValueError("a closed breaker has no reason or since")

    @classmethod
    def closed(cls) -> BreakerState:
        return cls(tripped=False)

    @classmethod
    def trip(cls, reason: str, at: datetime) -> BreakerState:
        return cls(tripped=True, reason=reason, since=at)

    def to_json(self) -> dict[str, Any]:
        """The `circuit_breaker` object of `status --json` and of history lines."""
        return {
            "tripped": self.tripped,
            "reason": self.reason,
            "since": None if self.since is None else _iso_z(self.since),
        }

    @classmethod
    def from_json(cls, data: Any) -> BreakerState:
        """Read a stored state; anything malformed is a ValueError so callers can fail safe."""
        if not isinstance(data, dict):
            raise ValueError("breaker state must be a JSON object")
        if "tripped" not in data:
            raise ValueError("breaker state: missing 'tripped'")
        tripped = data["tripped"]
        if not isinstance(tripped, bool):
            raise ValueError("breaker state: 'tripped' must be true or false")
        reason = data.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ValueError("breaker state: 'reason' must be a string or null")
        since_text = data.get("since")
        since = None if since_text is None else _parse_iso(since_text)
        return cls(tripped=tripped, reason=reason, since=since)


class CircuitBreaker:
    """Trips after `threshold` failures within `window`; stays tripped until `reset()`.

    A failure counts while it is younger than `window` (a failure exactly `window` old
    has dropped out). Once tripped, further failures and trips keep the first reason and
    time, so the operator sees what stopped trading. Not thread-safe: one per loop.
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        window: timedelta = timedelta(seconds=60),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ValueError(f"threshold must be an integer >= 1, got {threshold!r}")
        if not isinstance(window, timedelta) or window <= timedelta(0):
            raise ValueError(f"window must be a positive timedelta, got {window!r}")
        self._threshold = threshold
        self._window = window
        self._clock = clock
        self._failures: deque[datetime] = deque()
        self._state = BreakerState.closed()

    @property
    def threshold(self) -> int:
        return self._threshold

    @property
    def window(self) -> timedelta:
        return self._window

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def is_tripped(self) -> bool:
        return self._state.tripped

    @property
    def recent_failures(self) -> int:
        """Failures still inside the window as of now (for status displays)."""
        self._drop_expired(self._now())
        return len(self._failures)

    def record_failure(self, what: str = "") -> BreakerState:
        """Count one failure; trip when `threshold` of them fall inside the window."""
        if self._state.tripped:
            return self._state
        now = self._now()
        self._failures.append(now)
        self._drop_expired(now)
        if len(self._failures) >= self._threshold:
            reason = f"{self._threshold} failures within {_duration(self._window)}"
            if what:
                reason += f" (last: {what})"
            self._state = BreakerState.trip(reason, now)
            self._failures.clear()
        return self._state

    def record_success(self) -> None:
        """A success proves the broker answers again, so the failure run starts over."""
        self._failures.clear()

    def trip(self, reason: str) -> BreakerState:
        """Trip by decision (not by counting); an already tripped breaker keeps its cause."""
        if not self._state.tripped:
            self._state = BreakerState.trip(reason, self._now())
            self._failures.clear()
        return self._state

    def reset(self) -> None:
        """The operator's acknowledgement: closed again, with an empty failure window."""
        self._state = BreakerState.closed()
        self._failures.clear()

    def _now(self) -> datetime:
        return ensure_utc(self._clock.now())

    def _drop_expired(self, now: datetime) -> None:
        while self._failures and now - self._failures[0] >= self._window:
            self._failures.popleft()


def _duration(window: timedelta) -> str:
    seconds = window.total_seconds()
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:g}s"


def _iso_z(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_iso(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("breaker state: 'since' must be an ISO 8601 string or null")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"breaker state: 'since' is not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"breaker state: 'since' has no UTC offset: {value!r}")
    return moment.astimezone(timezone.utc)
