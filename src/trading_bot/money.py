"""Decimal parsing and the fixed text formats for money (2 places) and ratios (4 places)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

CENT = Decimal("0.01")
RATIO_STEP = Decimal("0.0001")
ZERO = Decimal(0)


def to_decimal(value: object) -> Decimal:
    """Exact Decimal from a JSON number, a string or an int; floats go through their repr.

    Raises ValueError for anything that is not a finite number.
    """
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError(f"must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError("must be a finite number")
    return result


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
