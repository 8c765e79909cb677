"""The one clock: every "now" in the bot comes from here so tests and replays control time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Final, Protocol

from trading_bot.input_bounds import MAX_TIMESTAMP_CHARS, bounded_moment

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

# The phase logs' timestamp format: UTC, microseconds, `Z`.
TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_timestamp(moment: datetime) -> str:
    """The one written form of an instant in the phase logs (`2026-03-11T14:05:00.123456Z`)."""
    return ensure_utc(moment).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(value: Any) -> datetime:
    """The one timestamp parse of the product (journal, logs, command line): ISO 8601;
    a value with no offset is UTC (the original journal wrote naive UTC).

    Bounded to 1970 through 9999, so no later arithmetic on it can leave the calendar.
    """
    if type(value) is str and len(value) == 27 and value[26] == "Z" and value[19] == ".":
        # The written form (`format_timestamp`): thousands of these are read per start, and
        # `fromisoformat` gives the same UTC instant for it as the general path below.
        # The general path would read the same text the same way, so its refusal is this one.
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from None
        return bounded_moment(moment)
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 timestamp string")
    text = value.strip()
    if len(text) > MAX_TIMESTAMP_CHARS:
        raise ValueError(f"not an ISO 8601 timestamp (longer than {MAX_TIMESTAMP_CHARS} characters)")
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("must be between 1970 and 9999") from None
    return bounded_moment(moment)
