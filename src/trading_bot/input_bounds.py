"""The bounds on every number, timestamp and JSON nesting the bot reads from a file or the
command line, checked before the value is used.

Python's Decimal and int accept numbers whose arithmetic never ends (`1E+100000000`
becomes a hundred-million-digit integer on `int()`), and its JSON readers recurse once
per nesting level; a typo or a hostile line must be one refusal, not a hang or a
traceback. The limits are far beyond any real trading value.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final

# The longest text a number may be written with, and its significant digits.
MAX_NUMBER_CHARS: Final = 40
MAX_SIGNIFICANT_DIGITS: Final = 34
# |x| below 10^15 for money and every other amount; no digit finer than 10^-18.
MONEY_LIMIT: Final = Decimal("1E+15")
FINEST_EXPONENT: Final = -18
# Counts (trades, sessions, windows) fit a signed 64-bit integer.
COUNT_LIMIT: Final = 2**63
# Objects and arrays nested at most this deep (the outermost object is level 1).
MAX_JSON_DEPTH: Final = 32
# Timestamps from 1970 through the end of year 9999, UTC.
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST: Final = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
MAX_TIMESTAMP_CHARS: Final = 40


def bounded_number(value: Decimal) -> Decimal:
    """A finite Decimal whose arithmetic is cheap: at most 34 significant digits, below
    10^19 in size (room for a 64-bit count) and none finer than 10^-18; ValueError
    otherwise. It is checked from its parts, without any arithmetic on it."""
    if not value.is_finite():
        raise ValueError("must be a finite number")
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) > MAX_SIGNIFICANT_DIGITS:
        raise ValueError(f"has too many digits (at most {MAX_SIGNIFICANT_DIGITS})")
    if exponent > 19 or exponent < FINEST_EXPONENT - MAX_SIGNIFICANT_DIGITS:
        raise ValueError("exponent out of range")
    if value and value.adjusted() >= 19:
        raise ValueError("must be below 10^19 in size")
    if value and value.adjusted() < FINEST_EXPONENT:
        raise ValueError("is too small (finer than 10^-18)")
    return value


def number_from_text(text: str) -> Decimal:
    """A Decimal from number text, its length bounded before it is parsed."""
    stripped = text.strip()
    if len(stripped) > MAX_NUMBER_CHARS:
        raise ValueError(f"number written with more than {MAX_NUMBER_CHARS} characters")
    try:
        return bounded_number(Decimal(stripped))
    except InvalidOperation:
        raise ValueError(f"not a number: {stripped!r}") from None


def bounded_count(value: Decimal | int) -> int:
    """A whole number that fits a signed 64-bit integer (its sign is the caller's rule)."""
    if isinstance(value, int):
        number = value
    else:
        bounded_number(value)
        if value != value.to_integral_value():
            raise ValueError("must be a whole number")
        number = int(value)
    if not -COUNT_LIMIT <= number < COUNT_LIMIT:
        raise ValueError("must be a whole number that fits 64 bits (below 2^63 in size)")
    return number


def bounded_money(value: Decimal) -> Decimal:
    """An amount below 10^15 in size."""
    if abs(value) >= MONEY_LIMIT:
        raise ValueError("must be below 10^15 in size")
    return value


def bounded_moment(moment: datetime) -> datetime:
    """A timestamp from 1970 through 9999 (UTC)."""
    if not EARLIEST <= moment <= LATEST:
        raise ValueError("must be between 1970 and 9999")
    return moment


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether decoded JSON nests objects and arrays deeper than `limit` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def raw_json_may_nest_too_deep(raw: bytes) -> bool:
    """A cheap pre-check on a line: fewer opening brackets than the limit cannot nest too deep."""
    return raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH


def first_duplicate_key(text: str) -> tuple[str, int] | None:
    """The first key written twice in one JSON object, as a dotted path, and its line.

    JSON readers keep the last of two equal keys while a person reads the first, so a
    second copy could quietly change a value. `text` must already be valid JSON; keys are
    compared decoded, so an escape cannot disguise a duplicate.
    """
    objects: list[tuple[set[str], list[str]] | None] = []  # per open container; None for arrays
    path: list[str] = []
    expect_key = False
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char == '"':
            end = index + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            top = objects[-1] if objects else None
            if expect_key and top is not None:
                key = json.loads(text[index : end + 1])
                if key in top[0]:
                    return ".".join([*path, key]), text.count("\n", 0, index) + 1
                top[0].add(key)
                top[1][:] = [key]
                expect_key = False
            index = end + 1
            continue
        if char == "{":
            _enter(objects, path)
            objects.append((set(), []))
            expect_key = True
        elif char == "[":
            _enter(objects, path)
            objects.append(None)
        elif char in "}]":
            objects.pop()
            if objects and objects[-1] is not None:
                path.pop()
        elif char == ",":
            expect_key = bool(objects) and objects[-1] is not None
        index += 1
    return None


def _enter(objects: list[tuple[set[str], list[str]] | None], path: list[str]) -> None:
    """Before a nested container opens: inside an object, its key joins the path."""
    if objects and objects[-1] is not None:
        path.append(objects[-1][1][0])


_BLANK_AFTER_QUOTE: Final = re.compile(rb'"[ \t\r]')


def may_hold_duplicate_keys(raw: bytes, data: Any) -> bool:
    """A cheap test on one decoded line: False only if no key can have been written twice.

    Every key is a string followed by a colon, so with no blank between a closing quote
    and what follows, each key accounts for one `":` in the raw bytes; more of them than
    the decoded object has keys means a duplicate, or a nested object, or a `":` inside a
    value, and the full check decides. Keys are compared decoded, so escapes cannot hide one.
    """
    if not isinstance(data, dict) or _BLANK_AFTER_QUOTE.search(raw):
        return True
    return raw.count(b'":') != len(data)
