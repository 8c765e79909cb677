"""The override password (SPEC §8): where it comes from, how it is checked, when it is locked.

The secret lives only in the environment (a `.env` file counts), preferably as a salted
scrypt hash so no plain secret need be stored. Checks are constant-time, and the
lockout is a pure function of the override log so it holds across processes and restarts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from trading_bot.clock import ensure_utc

PASSWORD_VAR = "PHASE_OVERRIDE_PASSWORD"
HASH_VAR = "PHASE_OVERRIDE_PASSWORD_HASH"

SCRYPT_PREFIX = "scrypt"
SALT_BYTES = 16
KEY_BYTES = 32
# Bounds on a stored hash's parameters: wide enough for any sane hash, narrow enough that
# a typo in N cannot make a password check allocate gigabytes or run for minutes.
_MAX_SCRYPT_MEMORY = 1 << 30  # bytes of working memory, 128·r·(N + p + 2)
_MAX_P = 16
_MIN_SALT_BYTES = 8
_MIN_KEY_BYTES, _MAX_KEY_BYTES = 16, 64
_MAXMEM_MARGIN = 1 << 20
_INT_MAX = 2**31 - 1  # hashlib.scrypt refuses a larger maxmem
_DIGITS = re.compile(r"[0-9]{1,12}\Z")  # a cost beyond 12 digits is a typo, never a parse

# "recovered" is not an attempt: it is a recovery of the override log, which may have
# dropped wrong passwords, so it counts as the start of a full lockout.
Outcome = Literal["success", "wrong_password", "locked_out", "recovered"]


class PasswordNotConfigured(Exception):
    """Neither variable is set, so no override can ever be authorised."""

    def __init__(self) -> None:
        super().__init__(
            f"overrides are impossible: set {HASH_VAR} (or {PASSWORD_VAR}) "
            "in the environment or .env"
        )


class BadPasswordHash(Exception):
    """The hash variable is set but malformed. The message names the bad part, never the value."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"{HASH_VAR} is malformed: {problem}")


@dataclass(frozen=True)
class PasswordSecret:
    """The configured secret; `value` is kept out of repr so it cannot leak into logs."""

    kind: Literal["hash", "plain"]
    value: str = field(repr=False)


@dataclass(frozen=True)
class _ScryptHash:
    """A parsed `scrypt$N$r$p$salt$key` value."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def make_password_hash(
    password: str, *, n: int = 2**15, r: int = 8, p: int = 1, salt: bytes | None = None
) -> str:
    """A `PHASE_OVERRIDE_PASSWORD_HASH` value for `password`, so only the hash need be stored.

    Format: `scrypt$N$r$p$<salt base64>$<key base64>` (standard base64, padded), with a
    16-byte random salt unless one is given (tests pass one to get a fixed output).
    """
    if password == "":
        raise ValueError("refusing to hash an empty password")
    _check_params(n, r, p, error=ValueError)
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    elif len(salt) == 0:
        raise ValueError("salt must not be empty")
    key = _derive(password, salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES)
    return "$".join([SCRYPT_PREFIX, str(n), str(r), str(p), _b64(salt), _b64(key)])


def secret_from_environment(env: Mapping[str, str]) -> PasswordSecret:
    """The secret to check against: the hash if set, else the plain password.

    An empty value is unset (SPEC §8). The hash is validated here, eagerly, so a bad
    value is reported when the operator configures it rather than as "wrong password".
    """
    hashed = env.get(HASH_VAR, "").strip()
    if hashed:
        _parse_hash(hashed)
        return PasswordSecret("hash", hashed)
    plain = env.get(PASSWORD_VAR, "")
    if plain:
        return PasswordSecret("plain", plain)
    raise PasswordNotConfigured()


def password_matches(candidate: str, secret: PasswordSecret) -> bool:
    """Whether `candidate` is the configured password, compared in constant time.

    The plain secret is compared via SHA-256 digests so the comparison time does not
    reveal the secret's length. The candidate's bytes are zeroed after use; Python's
    immutable `str` cannot be wiped, so this is best effort (SPEC §8).
    """
    if secret.kind == "hash":
        stored = _parse_hash(secret.value)
        derived = _derive(
            candidate, salt=stored.salt, n=stored.n, r=stored.r, p=stored.p,
            dklen=len(stored.key),
        )
        return hmac.compare_digest(derived, stored.key)
    buffer = bytearray(candidate, "utf-8")
    try:
        candidate_digest = hashlib.sha256(buffer).digest()
    finally:
        _wipe(buffer)
    secret_digest = hashlib.sha256(secret.value.encode("utf-8")).digest()
    return hmac.compare_digest(candidate_digest, secret_digest)


@dataclass(frozen=True)
class PasswordAttempt:
    """One override attempt as the override log records it."""

    at: datetime
    outcome: Outcome


@dataclass(frozen=True)
class LockoutState:
    """Whether overrides are refused at some moment, and how many failures count so far."""

    locked_until: datetime | None
    recent_failures: int
    after_recovery: bool = False


def lockout_state(
    attempts: Iterable[PasswordAttempt],
    now: datetime,
    *,
    max_failures: int = 5,
    window: timedelta = timedelta(minutes=15),
    lockout: timedelta = timedelta(minutes=15),
) -> LockoutState:
    """The lockout at `now`, derived from the override log so it survives restarts.

    Attempts are walked in log order, each at the latest instant recorded so far, and
    `now` is never taken earlier than the last attempt: a clock moved back can neither
    lift a lockout nor hide guesses stamped in the past. A wrong password is counted
    unless it falls inside a lockout; when it makes `max_failures` counted failures
    within `window` (the first of them at or after the last one minus `window`),
    overrides are locked from that failure until it plus `lockout` (exclusive end).
    Anything recorded during a lockout is not counted, whatever its outcome. A success
    clears the count. The count is also cleared when a lockout starts, so once it ends
    the operator starts fresh: failures from before the lockout never carry over.
    A "recovered" entry (the override log was restored or accepted short) starts a full
    lockout at its place in the log, whatever came before: the lines it dropped may
    have held wrong passwords, and damaging the log must never be a way to lift a lockout.
    `recent_failures` is the number of counted failures within `window` of `now`
    (0 while locked). Callers pass only the attempts recorded by `now` (an `--as-of`
    view filters the log first).
    """
    if max_failures < 1:
        raise ValueError("max_failures must be at least 1")
    if window <= timedelta(0) or lockout <= timedelta(0):
        raise ValueError("window and lockout must be positive")
    timeline: list[tuple[datetime, str]] = []
    latest: datetime | None = None
    for attempt in attempts:
        at = ensure_utc(attempt.at)
        latest = at if latest is None or at > latest else latest
        timeline.append((latest, attempt.outcome))
    now = ensure_utc(now) if latest is None else max(ensure_utc(now), latest)
    failures: list[datetime] = []
    lock_end: datetime | None = None
    by_recovery = False
    for at, outcome in timeline:
        if outcome == "recovered":
            if lock_end is None or at + lockout >= lock_end:
                lock_end, by_recovery = at + lockout, True
            failures.clear()
            continue
        if lock_end is not None:
            if at < lock_end:
                continue
            lock_end = None
        if outcome == "success":
            failures.clear()
        elif outcome == "wrong_password":
            failures = [f for f in failures if f >= at - window]
            failures.append(at)
            if len(failures) >= max_failures:
                lock_end, by_recovery = at + lockout, False
                failures.clear()
        # "locked_out" outside a lockout (a process with other settings wrote it) is
        # neither a failure nor a success, so it changes nothing.
    if lock_end is not None and now < lock_end:
        return LockoutState(locked_until=lock_end, recent_failures=0, after_recovery=by_recovery)
    return LockoutState(
        locked_until=None,
        recent_failures=sum(1 for f in failures if f >= now - window),
    )


def _parse_hash(value: str) -> _ScryptHash:
    """Parse and validate a hash value; each failure names the part, never the value."""
    parts = value.split("$")
    if len(parts) != 6:
        raise BadPasswordHash(
            "expected 6 '$'-separated parts: scrypt$N$r$p$<salt base64>$<key base64>"
        )
    prefix, n_text, r_text, p_text, salt_text, key_text = parts
    if prefix != SCRYPT_PREFIX:
        raise BadPasswordHash("must start with 'scrypt$'")
    n = _parse_int(n_text, "N")
    r = _parse_int(r_text, "r")
    p = _parse_int(p_text, "p")
    _check_params(n, r, p, error=BadPasswordHash)
    salt = _parse_b64(salt_text, "salt")
    key = _parse_b64(key_text, "key")
    if len(salt) < _MIN_SALT_BYTES:
        raise BadPasswordHash(f"salt is shorter than {_MIN_SALT_BYTES} bytes")
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise BadPasswordHash(
            f"key must be {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} bytes long"
        )
    return _ScryptHash(n=n, r=r, p=p, salt=salt, key=key)


def _parse_int(text: str, name: str) -> int:
    if not _DIGITS.match(text):
        raise BadPasswordHash(f"{name} is not a decimal integer of 1 to 12 digits")
    return int(text)


def _parse_b64(text: str, name: str) -> bytes:
    if not text:
        raise BadPasswordHash(f"{name} is empty")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadPasswordHash(f"{name} is not valid base64") from None


def _check_params(n: int, r: int, p: int, *, error: type[Exception]) -> None:
    """scrypt needs N a power of two above 1; the caps keep a typo from eating the machine."""
    if n < 2 or n & (n - 1):
        raise error("N must be a power of 2 greater than 1")
    if r < 1:
        raise error("r must be at least 1")
    if not 1 <= p <= _MAX_P:
        raise error(f"p must be between 1 and {_MAX_P}")
    if _scrypt_memory(n, r, p) > _MAX_SCRYPT_MEMORY:
        raise error(f"N and r need more than {_MAX_SCRYPT_MEMORY >> 20} MiB of memory")


def _scrypt_memory(n: int, r: int, p: int) -> int:
    """Bytes OpenSSL's scrypt allocates (its V and B arrays)."""
    return 128 * r * (n + p + 2)


def _derive(password: str, *, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    """scrypt with a `maxmem` sized to fit, wiping the password bytes afterwards."""
    maxmem = min(2 * _scrypt_memory(n, r, p) + _MAXMEM_MARGIN, _INT_MAX)
    buffer = bytearray(password, "utf-8")
    try:
        return hashlib.scrypt(buffer, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)
    finally:
        _wipe(buffer)


def _wipe(buffer: bytearray) -> None:
    """Overwrite a buffer that held password bytes (best effort: copies may exist)."""
    for index in range(len(buffer)):
        buffer[index] = 0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
