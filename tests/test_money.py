"""Fixed text formats for money and ratios, the "more digits" rule and exact parsing (SPEC §4)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading_bot.money import distinct_pair, money_str, ratio_str, to_decimal

D = Decimal


# ---- ROUND_HALF_EVEN ----------------------------------------------------------------------


def test_money_half_cent_rounds_down_to_the_even_cent() -> None:
    assert money_str(D("0.125")) == "0.12"


def test_money_half_cent_rounds_up_to_the_even_cent() -> None:
    assert money_str(D("0.135")) == "0.14"


def test_ratio_half_step_rounds_down_to_the_even_digit() -> None:
    assert ratio_str(D("0.00005")) == "0.0000"


def test_ratio_half_step_rounds_up_to_the_even_digit() -> None:
    assert ratio_str(D("0.00015")) == "0.0002"


def test_money_always_has_two_places() -> None:
    assert money_str(D("100")) == "100.00"


def test_ratio_always_has_four_places() -> None:
    assert ratio_str(D("0.7")) == "0.7000"


# ---- distinct_pair: a failure never prints two equal numbers ---------------------------------


def test_distinct_pair_adds_digits_when_the_numbers_would_print_equal() -> None:
    assert distinct_pair(D("1.49995"), D("1.5")) == ("1.49995", "1.50000")


def test_distinct_pair_keeps_four_places_when_they_already_differ() -> None:
    assert distinct_pair(D("0.5918"), D("0.60")) == ("0.5918", "0.6000")


def test_distinct_pair_keeps_four_places_for_equal_numbers() -> None:
    assert distinct_pair(D("5.00"), D("5")) == ("5.0000", "5.0000")


# ---- to_decimal ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False], ids=["true", "false"])
def test_to_decimal_rejects_booleans(value: bool) -> None:
    with pytest.raises(ValueError):
        to_decimal(value)


@pytest.mark.parametrize("value", ["NaN", "nan", "sNaN", D("NaN"), float("nan")], ids=["NaN", "nan", "sNaN", "decimal", "float"])
def test_to_decimal_rejects_nan(value: object) -> None:
    with pytest.raises(ValueError):
        to_decimal(value)


@pytest.mark.parametrize("value", ["Infinity", "-inf", D("Infinity"), float("inf")], ids=["Infinity", "-inf", "decimal", "float"])
def test_to_decimal_rejects_infinity(value: object) -> None:
    with pytest.raises(ValueError):
        to_decimal(value)


@pytest.mark.parametrize("value", ["abc", "", "1,5", "0.65%"], ids=["word", "empty", "comma", "percent"])
def test_to_decimal_rejects_non_numeric_strings(value: str) -> None:
    with pytest.raises(ValueError):
        to_decimal(value)


@pytest.mark.parametrize("value", [None, [1], {"a": 1}], ids=["none", "list", "dict"])
def test_to_decimal_rejects_other_types(value: object) -> None:
    with pytest.raises(ValueError):
        to_decimal(value)


def test_to_decimal_reads_a_string_exactly() -> None:
    result = to_decimal("0.65")
    assert result == D("0.65")
    assert str(result) == "0.65"
