"""The one clock: every "now" in the bot comes from here so tests and replays control time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol

# How far a record may lie ahead of the real clock before it counts as future-dated: an
# NTP correction of a few minutes must not halt the desk, a record days ahead must.
CLOCK_TOLERANCE = timedelta(minutes=5)


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""


class SystemClock:
    """Reads `datetime.now(timezone.utc)` on every call, so freezegun can freeze it."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that stays where it is put; used by `--as-of` and replays."""

    def __init__(self, at: datetime) -> None:
        self._at = ensure_utc(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = ensure_utc(at)


def ensure_utc(value: datetime) -> datetime:
    """A naive datetime is taken as UTC (the journal's rule); aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


SYSTEM_CLOCK = SystemClock()
