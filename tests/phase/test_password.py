"""The override password (SPEC §8): configuration, checking, and the log-derived lockout."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_bot.phase.password import (
    HASH_VAR,
    PASSWORD_VAR,
    BadPasswordHash,
    LockoutState,
    PasswordAttempt,
    PasswordNotConfigured,
    PasswordSecret,
    lockout_state,
    make_password_hash,
    password_matches,
    secret_from_environment,
)

FAST_N = 2**4  # tests use a tiny scrypt cost; production uses the 2**15 default
SALT = b"0123456789abcdef"
T0 = datetime(2025, 1, 6, 14, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)


def fast_hash(password: str) -> str:
    return make_password_hash(password, n=FAST_N, salt=SALT)


def wrong(at: datetime) -> PasswordAttempt:
    return PasswordAttempt(at, "wrong_password")


def success(at: datetime) -> PasswordAttempt:
    return PasswordAttempt(at, "success")


def locked_out(at: datetime) -> PasswordAttempt:
    return PasswordAttempt(at, "locked_out")


def five_wrong_ending_at(fifth: datetime) -> list[PasswordAttempt]:
    """Five wrong passwords one minute apart, the fifth at `fifth`."""
    return [wrong(fifth - (4 - i) * MIN) for i in range(5)]


# --- hash format --------------------------------------------------------------------


def test_hash_has_documented_format() -> None:
    value = make_password_hash("pw", n=FAST_N, r=8, p=1, salt=SALT)
    prefix, n, r, p, salt, key = value.split("$")
    assert (prefix, n, r, p) == ("scrypt", "16", "8", "1")
    assert salt == "MDEyMzQ1Njc4OWFiY2RlZg=="
    assert len(key) == 44  # 32 bytes, padded standard base64


def test_hash_uses_a_random_16_byte_salt_by_default() -> None:
    first = make_password_hash("pw", n=FAST_N)
    second = make_password_hash("pw", n=FAST_N)
    assert first.split("$")[4] != second.split("$")[4]
    assert len(first.split("$")[4]) == 24  # 16 bytes


def test_hash_with_default_cost_round_trips() -> None:
    value = make_password_hash("correct horse")
    assert value.startswith("scrypt$32768$8$1$")
    assert password_matches("correct horse", PasswordSecret("hash", value))


def test_hash_round_trip() -> None:
    secret = secret_from_environment({HASH_VAR: fast_hash("s3cret")})
    assert password_matches("s3cret", secret)


def test_hash_wrong_password_is_false() -> None:
    secret = secret_from_environment({HASH_VAR: fast_hash("s3cret")})
    assert not password_matches("s3cret ", secret)


def test_make_hash_rejects_n_not_a_power_of_two() -> None:
    with pytest.raises(ValueError):
        make_password_hash("pw", n=1000)


def test_make_hash_rejects_empty_password() -> None:
    with pytest.raises(ValueError):
        make_password_hash("")


# --- where the secret comes from ----------------------------------------------------


def test_plain_password_from_environment() -> None:
    secret = secret_from_environment({PASSWORD_VAR: "hunter2"})
    assert secret.kind == "plain"
    assert password_matches("hunter2", secret)


def test_plain_wrong_password_is_false() -> None:
    secret = secret_from_environment({PASSWORD_VAR: "hunter2"})
    assert not password_matches("hunter3", secret)
    assert not password_matches("hunter", secret)
    assert not password_matches("", secret)


def test_non_ascii_plain_password_matches() -> None:
    secret = secret_from_environment({PASSWORD_VAR: "pässwörd✓"})
    assert password_matches("pässwörd✓", secret)


def test_hash_wins_over_plain_when_both_set() -> None:
    secret = secret_from_environment({HASH_VAR: fast_hash("from-hash"), PASSWORD_VAR: "plain"})
    assert secret.kind == "hash"
    assert password_matches("from-hash", secret)
    assert not password_matches("plain", secret)


def test_empty_hash_counts_as_unset() -> None:
    secret = secret_from_environment({HASH_VAR: "", PASSWORD_VAR: "plain"})
    assert secret == PasswordSecret("plain", "plain")


def test_empty_plain_counts_as_unset() -> None:
    with pytest.raises(PasswordNotConfigured):
        secret_from_environment({PASSWORD_VAR: ""})


def test_both_empty_counts_as_unset() -> None:
    with pytest.raises(PasswordNotConfigured):
        secret_from_environment({HASH_VAR: "", PASSWORD_VAR: ""})


def test_neither_set_raises_not_configured_naming_both_variables() -> None:
    with pytest.raises(PasswordNotConfigured) as caught:
        secret_from_environment({"UNRELATED": "x"})
    message = str(caught.value)
    assert HASH_VAR in message
    assert PASSWORD_VAR in message
    assert message == (
        "overrides are impossible: set PHASE_OVERRIDE_PASSWORD_HASH "
        "(or PHASE_OVERRIDE_PASSWORD) in the environment or .env"
    )


def test_repr_of_secret_hides_value() -> None:
    secret = PasswordSecret("plain", "hunter2-very-secret")
    assert "hunter2-very-secret" not in repr(secret)
    assert "hunter2-very-secret" not in str(secret)
    assert "plain" in repr(secret)


# --- malformed hashes ---------------------------------------------------------------

GOOD_SALT = "MDEyMzQ1Njc4OWFiY2RlZg=="
GOOD_KEY = "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="  # 29 bytes


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (f"bcrypt$16$8$1${GOOD_SALT}${GOOD_KEY}", "scrypt$"),
        (f"scrypt$sixteen$8$1${GOOD_SALT}${GOOD_KEY}", "N is not"),
        (f"scrypt$16.0$8$1${GOOD_SALT}${GOOD_KEY}", "N is not"),
        (f"scrypt$-16$8$1${GOOD_SALT}${GOOD_KEY}", "N is not"),
        (f"scrypt$16$x$1${GOOD_SALT}${GOOD_KEY}", "r is not"),
        (f"scrypt$16$8$$${GOOD_SALT}${GOOD_KEY}", "6 '$'-separated parts"),
        (f"scrypt$16$8$1$not*base64${GOOD_KEY}", "salt is not valid base64"),
        (f"scrypt$16$8$1${GOOD_SALT}$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U", "key is not"),
        (f"scrypt$16$8$1$${GOOD_KEY}", "salt is empty"),
        (f"scrypt$1000$8$1${GOOD_SALT}${GOOD_KEY}", "power of 2"),
        (f"scrypt$1$8$1${GOOD_SALT}${GOOD_KEY}", "power of 2"),
        (f"scrypt$0$8$1${GOOD_SALT}${GOOD_KEY}", "power of 2"),
        (f"scrypt$16$0$1${GOOD_SALT}${GOOD_KEY}", "r must be"),
        (f"scrypt$16$8$0${GOOD_SALT}${GOOD_KEY}", "p must be"),
        (f"scrypt$1073741824$8$1${GOOD_SALT}${GOOD_KEY}", "MiB of memory"),
        (f"scrypt$16$8$1$c2FsdA==${GOOD_KEY}", "salt is shorter"),
        (f"scrypt$16$8$1${GOOD_SALT}$a2V5", "key must be"),
        (f"scrypt$16$8$1${GOOD_SALT}", "6 '$'-separated parts"),
        ("hunter2", "6 '$'-separated parts"),
    ],
)
def test_malformed_hash_raises_bad_hash_without_echoing_value(value: str, problem: str) -> None:
    with pytest.raises(BadPasswordHash) as caught:
        secret_from_environment({HASH_VAR: value, PASSWORD_VAR: "plain"})
    message = str(caught.value)
    assert problem in message
    assert HASH_VAR in message
    assert value not in message
    for part in value.split("$"):
        if len(part) > 3:
            assert part not in message.replace("scrypt$", "")


def test_hash_value_with_surrounding_whitespace_is_accepted() -> None:
    secret = secret_from_environment({HASH_VAR: f"  {fast_hash('pw')}\n"})
    assert password_matches("pw", secret)


# --- property ------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(x=st.text(min_size=1, max_size=40), y=st.text(max_size=40))
def test_password_matches_only_the_hashed_password(x: str, y: str) -> None:
    secret = PasswordSecret("hash", make_password_hash(x, n=FAST_N))
    assert password_matches(x, secret)
    if y != x:
        assert not password_matches(y, secret)


@settings(max_examples=25, deadline=None)
@given(x=st.text(min_size=1, max_size=40), y=st.text(max_size=40))
def test_plain_password_matches_only_itself(x: str, y: str) -> None:
    secret = PasswordSecret("plain", x)
    assert password_matches(x, secret)
    if y != x:
        assert not password_matches(y, secret)


# --- lockout ------------------------------------------------------------------------


def test_no_attempts_not_locked() -> None:
    assert lockout_state([], T0) == LockoutState(locked_until=None, recent_failures=0)


def test_four_wrong_within_window_not_locked() -> None:
    attempts = [wrong(T0 + i * MIN) for i in range(4)]
    state = lockout_state(attempts, T0 + 4 * MIN)
    assert state == LockoutState(locked_until=None, recent_failures=4)


def test_fifth_wrong_locks_for_fifteen_minutes_from_the_fifth() -> None:
    fifth = T0 + 4 * MIN
    state = lockout_state(five_wrong_ending_at(fifth), fifth)
    assert state == LockoutState(locked_until=fifth + 15 * MIN, recent_failures=0)


def test_still_locked_one_second_before_lockout_ends() -> None:
    fifth = T0 + 4 * MIN
    state = lockout_state(five_wrong_ending_at(fifth), fifth + 14 * MIN + 59 * SEC)
    assert state.locked_until == fifth + 15 * MIN


def test_unlocked_exactly_when_lockout_ends() -> None:
    fifth = T0 + 4 * MIN
    state = lockout_state(five_wrong_ending_at(fifth), fifth + 15 * MIN)
    assert state == LockoutState(locked_until=None, recent_failures=0)


def test_five_wrong_spanning_exactly_fifteen_minutes_locks() -> None:
    attempts = [wrong(T0 + i * timedelta(minutes=3, seconds=45)) for i in range(5)]
    fifth = attempts[-1].at
    assert fifth - attempts[0].at == 15 * MIN
    assert lockout_state(attempts, fifth).locked_until == fifth + 15 * MIN


def test_five_wrong_spanning_fifteen_minutes_and_one_second_not_locked() -> None:
    attempts = [wrong(T0 + i * MIN) for i in range(4)] + [wrong(T0 + 15 * MIN + SEC)]
    state = lockout_state(attempts, T0 + 15 * MIN + SEC)
    assert state == LockoutState(locked_until=None, recent_failures=4)


def test_six_wrong_within_window_lock_from_the_fifth() -> None:
    attempts = [wrong(T0 + i * MIN) for i in range(6)]
    state = lockout_state(attempts, T0 + 5 * MIN)
    assert state.locked_until == T0 + 4 * MIN + 15 * MIN


def test_attempts_during_lockout_are_not_counted() -> None:
    fifth = T0 + 4 * MIN
    during = [locked_out(fifth + i * MIN) for i in range(1, 10)]
    during += [wrong(fifth + 14 * MIN)]  # even a logged wrong password inside is ignored
    attempts = five_wrong_ending_at(fifth) + during
    assert lockout_state(attempts, fifth + 14 * MIN + 59 * SEC).locked_until == fifth + 15 * MIN
    assert lockout_state(attempts, fifth + 15 * MIN) == LockoutState(None, 0)


def test_one_wrong_after_lockout_ends_does_not_relock() -> None:
    fifth = T0 + 4 * MIN
    end = fifth + 15 * MIN
    attempts = five_wrong_ending_at(fifth) + [locked_out(fifth + 5 * MIN), wrong(end)]
    state = lockout_state(attempts, end + SEC)
    assert state == LockoutState(locked_until=None, recent_failures=1)


def test_failures_before_lockout_do_not_carry_over_after_it_ends() -> None:
    fifth = T0 + 4 * MIN
    end = fifth + 15 * MIN
    after = [wrong(end + i * MIN) for i in range(4)]
    state = lockout_state(five_wrong_ending_at(fifth) + after, end + 4 * MIN)
    assert state == LockoutState(locked_until=None, recent_failures=4)


def test_five_fresh_wrong_after_lockout_lock_again() -> None:
    fifth = T0 + 4 * MIN
    end = fifth + 15 * MIN
    second_fifth = end + 4 * MIN
    attempts = five_wrong_ending_at(fifth) + five_wrong_ending_at(second_fifth)
    assert lockout_state(attempts, second_fifth).locked_until == second_fifth + 15 * MIN


def test_success_clears_the_count() -> None:
    attempts = [wrong(T0 + i * MIN) for i in range(4)]
    attempts.append(success(T0 + 4 * MIN))
    attempts += [wrong(T0 + (5 + i) * MIN) for i in range(4)]
    state = lockout_state(attempts, T0 + 9 * MIN)
    assert state == LockoutState(locked_until=None, recent_failures=4)


def test_success_then_five_wrong_locks() -> None:
    attempts = [wrong(T0), success(T0 + MIN)] + five_wrong_ending_at(T0 + 6 * MIN)
    assert lockout_state(attempts, T0 + 6 * MIN).locked_until == T0 + 21 * MIN


def test_recent_failures_only_counts_failures_within_window_of_now() -> None:
    attempts = [wrong(T0), wrong(T0 + 10 * MIN)]
    assert lockout_state(attempts, T0 + 15 * MIN).recent_failures == 2
    assert lockout_state(attempts, T0 + 15 * MIN + SEC).recent_failures == 1
    assert lockout_state(attempts, T0 + 25 * MIN + SEC).recent_failures == 0


def test_attempts_stamped_out_of_order_count_in_log_order_at_the_latest_instant_so_far() -> None:
    fifth = T0 + 4 * MIN
    attempts = list(reversed(five_wrong_ending_at(fifth)))
    assert lockout_state(attempts, fifth).locked_until == fifth + 15 * MIN


def test_a_clock_behind_the_last_attempt_cannot_see_before_the_lockout() -> None:
    fifth = T0 + 4 * MIN
    state = lockout_state(five_wrong_ending_at(fifth), fifth - 30 * MIN)
    assert state == LockoutState(locked_until=fifth + 15 * MIN, recent_failures=0)


def test_naive_times_are_taken_as_utc() -> None:
    fifth = (T0 + 4 * MIN).replace(tzinfo=None)
    state = lockout_state(five_wrong_ending_at(fifth), T0 + 5 * MIN)
    assert state.locked_until == T0 + 19 * MIN


def test_custom_thresholds() -> None:
    attempts = [wrong(T0), wrong(T0 + MIN)]
    state = lockout_state(
        attempts, T0 + MIN, max_failures=2, window=timedelta(minutes=5), lockout=timedelta(hours=1)
    )
    assert state.locked_until == T0 + MIN + timedelta(hours=1)


def test_lockout_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        lockout_state([], T0, max_failures=0)
    with pytest.raises(ValueError):
        lockout_state([], T0, window=timedelta(0))


def test_a_recovery_locks_for_fifteen_minutes_from_its_place_in_the_log() -> None:
    attempts = [PasswordAttempt(T0, "recovered")]
    assert lockout_state(attempts, T0 + 14 * MIN + 59 * SEC) == LockoutState(T0 + 15 * MIN, 0, after_recovery=True)
    assert lockout_state(attempts, T0 + 15 * MIN) == LockoutState(None, 0)
    assert lockout_state(attempts, T0 + 15 * MIN + SEC) == LockoutState(None, 0)


def test_a_recovery_during_a_lockout_extends_it_and_clears_the_failures() -> None:
    fifth = T0 + 4 * MIN
    attempts = [*five_wrong_ending_at(fifth), PasswordAttempt(fifth + 10 * MIN, "recovered")]
    assert lockout_state(attempts, fifth + 24 * MIN + 59 * SEC).locked_until == fifth + 25 * MIN
    assert lockout_state(attempts, fifth + 25 * MIN) == LockoutState(None, 0)


def test_failures_before_a_recovery_do_not_carry_past_its_lockout() -> None:
    attempts = [
        *[PasswordAttempt(T0 + i * MIN, "wrong_password") for i in range(4)],
        PasswordAttempt(T0 + 4 * MIN, "recovered"),
        PasswordAttempt(T0 + 19 * MIN, "wrong_password"),
    ]
    assert lockout_state(attempts, T0 + 19 * MIN) == LockoutState(None, 1)


def test_a_recovery_stamped_in_the_past_still_locks_from_the_latest_instant_before_it() -> None:
    attempts = [PasswordAttempt(T0 + 10 * MIN, "success"), PasswordAttempt(T0, "recovered")]
    assert lockout_state(attempts, T0 + 24 * MIN + 59 * SEC).locked_until == T0 + 25 * MIN
