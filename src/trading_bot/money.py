"""Decimal parsing and the fixed text formats for money (2 places) and ratios (4 places)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from trading_bot.input_bounds import bounded_number, number_from_text

CENT = Decimal("0.01")
RATIO_STEP = Decimal("0.0001")
ZERO = Decimal(0)


def to_decimal(value: object) -> Decimal:
    """Exact Decimal from a JSON number, a string or an int; floats go through their repr.

    Raises ValueError for anything that is not a finite number, and for a number whose
    size or digits are out of bounds (see `input_bounds`), before any arithmetic on it.
    """
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, Decimal):
        return bounded_number(value)
    if isinstance(value, int):
        if value.bit_length() > 64:
            raise ValueError("must be below 10^19 in size")
        return bounded_number(Decimal(value))
    if isinstance(value, float):
        return number_from_text(repr(value))
    if isinstance(value, str):
        return number_from_text(value)
    raise ValueError(f"must be a number, got {type(value).__name__}")


def money_str(value: Decimal) -> str:
    """Money as written to JSON and CSV: 2 decimal places, banker's rounding."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_EVEN))


def ratio_str(value: Decimal) -> str:
    """Ratios and percentages as written to JSON and CSV: 4 decimal places."""
    return str(value.quantize(RATIO_STEP, rounding=ROUND_HALF_EVEN))


def distinct_pair(actual: Decimal, required: Decimal, places: int = 4) -> tuple[str, str]:
    """Format two numbers for a message, adding digits until they no longer print equal."""
    for digits in range(places, 29):
        step = Decimal(1).scaleb(-digits)
        left = str(actual.quantize(step, rounding=ROUND_HALF_EVEN))
        right = str(required.quantize(step, rounding=ROUND_HALF_EVEN))
        if left != right or actual == required:
            return left, right
    return str(actual), str(required)
