from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from trading_bot.clock import FixedClock
from trading_bot.error_handling.circuit_breaker import BreakerState, CircuitBreaker

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=timezone.utc)
WINDOW = timedelta(seconds=60)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


def make_breaker(clock: FixedClock, threshold: int = 5) -> CircuitBreaker:
    return CircuitBreaker(threshold=threshold, window=WINDOW, clock=clock)


def fail_at(breaker: CircuitBreaker, clock: FixedClock, offsets: list[float], what: str = "") -> BreakerState:
    state = breaker.state
    for seconds in offsets:
        clock.set(T0 + timedelta(seconds=seconds))
        state = breaker.record_failure(what)
    return state


def test_new_breaker_is_closed(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    assert breaker.state == BreakerState.closed()
    assert not breaker.is_tripped


def test_trips_at_exactly_threshold_failures_within_window(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    state = fail_at(breaker, clock, [0, 10, 20, 30, 59], what="timeout")
    assert state.tripped
    assert breaker.is_tripped
    assert state.since == T0 + timedelta(seconds=59)


def test_does_not_trip_at_one_below_threshold(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    state = fail_at(breaker, clock, [0, 10, 20, 30])
    assert not state.tripped
    assert breaker.recent_failures == 4


def test_does_not_trip_when_first_failure_is_just_outside_window(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    state = fail_at(breaker, clock, [0, 10, 20, 30, 60.000001])
    assert not state.tripped
    assert breaker.recent_failures == 4


def test_failure_exactly_window_old_has_dropped_out(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    state = fail_at(breaker, clock, [0, 10, 20, 30, 60])
    assert not state.tripped


def test_trips_when_first_failure_is_just_inside_window(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    state = fail_at(breaker, clock, [0, 10, 20, 30, 59.999999])
    assert state.tripped


def test_trip_reason_names_count_window_and_last_failure(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    state = fail_at(breaker, clock, [0, 1, 2, 3, 4], what="HTTP 503 from broker")
    assert state.reason == "5 failures within 60s (last: HTTP 503 from broker)"


def test_threshold_of_one_trips_on_first_failure(clock: FixedClock) -> None:
    breaker = make_breaker(clock, threshold=1)
    assert breaker.record_failure("boom").tripped


def test_success_clears_the_failure_window(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    fail_at(breaker, clock, [0, 1, 2, 3])
    breaker.record_success()
    state = fail_at(breaker, clock, [4])
    assert not state.tripped
    assert breaker.recent_failures == 1


def test_success_does_not_clear_a_tripped_breaker(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    fail_at(breaker, clock, [0, 1, 2, 3, 4])
    breaker.record_success()
    assert breaker.is_tripped


def test_reset_clears_a_tripped_breaker(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    fail_at(breaker, clock, [0, 1, 2, 3, 4])
    breaker.reset()
    assert breaker.state == BreakerState.closed()
    assert breaker.recent_failures == 0


def test_reset_starts_a_fresh_failure_count(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    fail_at(breaker, clock, [0, 1, 2, 3, 4])
    breaker.reset()
    assert not fail_at(breaker, clock, [5, 6, 7, 8]).tripped


def test_failures_while_tripped_keep_the_first_reason_and_time(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    first = fail_at(breaker, clock, [0, 1, 2, 3, 4], what="first")
    later = fail_at(breaker, clock, [30], what="second")
    assert later == first


def test_manual_trip_records_reason_and_clock_time(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    state = breaker.trip("3 consecutive losses")
    assert state == BreakerState(tripped=True, reason="3 consecutive losses", since=T0)
    assert breaker.is_tripped


def test_manual_trip_of_a_tripped_breaker_keeps_the_original_cause(clock: FixedClock) -> None:
    breaker = make_breaker(clock)
    breaker.trip("first cause")
    clock.set(T0 + timedelta(minutes=5))
    assert breaker.trip("second cause").reason == "first cause"


def test_breaker_reads_time_from_system_clock_under_freezegun() -> None:
    breaker = CircuitBreaker(threshold=1)
    with freeze_time("2026-03-10 14:00:00"):
        state = breaker.record_failure("x")
    assert state.since == T0


@pytest.mark.parametrize("threshold", [0, -1, True, 2.0])
def test_invalid_threshold_is_rejected(threshold: object) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=threshold)  # type: ignore[arg-type]


@pytest.mark.parametrize("window", [timedelta(0), timedelta(seconds=-1)])
def test_non_positive_window_is_rejected(window: timedelta) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(window=window)


def test_closed_state_to_json() -> None:
    assert BreakerState.closed().to_json() == {"tripped": False, "reason": None, "since": None}


def test_tripped_state_to_json_writes_utc_with_z() -> None:
    state = BreakerState.trip("broker down", T0)
    assert state.to_json() == {"tripped": True, "reason": "broker down", "since": "2026-03-10T14:00:00Z"}


@pytest.mark.parametrize(
    "state",
    [BreakerState.closed(), BreakerState.trip("5 failures within 60s (last: x)", T0 + timedelta(microseconds=7))],
)
def test_state_json_round_trip(state: BreakerState) -> None:
    assert BreakerState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_from_json_accepts_an_offset_and_converts_to_utc() -> None:
    state = BreakerState.from_json({"tripped": True, "reason": "r", "since": "2026-03-10T10:00:00-04:00"})
    assert state.since == T0


def test_trip_converts_aware_time_to_utc() -> None:
    eastern = timezone(timedelta(hours=-4))
    assert BreakerState.trip("r", datetime(2026, 3, 10, 10, 0, tzinfo=eastern)).since == T0


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"tripped": "yes"},
        {"tripped": 1, "reason": None, "since": None},
        {"tripped": True, "reason": None, "since": "2026-03-10T14:00:00Z"},
        {"tripped": True, "reason": "r", "since": None},
        {"tripped": True, "reason": 5, "since": "2026-03-10T14:00:00Z"},
        {"tripped": True, "reason": "r", "since": "not a time"},
        {"tripped": True, "reason": "r", "since": "2026-03-10T14:00:00"},
        {"tripped": True, "reason": "r", "since": 1741615200},
        {"tripped": False, "reason": "left over", "since": None},
    ],
)
def test_from_json_rejects_bad_shape(data: object) -> None:
    with pytest.raises(ValueError):
        BreakerState.from_json(data)


def test_tripped_state_without_reason_is_rejected() -> None:
    with pytest.raises(ValueError):
        BreakerState(tripped=True, since=T0)
