from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading_bot.risk_management.calculator import (
    ZeroShares,
    capped_size,
    portfolio_cap,
    position_value,
    shares_for,
)

D = Decimal


def test_hundred_dollars_at_33_33_buys_three_shares() -> None:
    assert shares_for(D("100"), D("33.33")) == 3


def test_hundred_dollars_at_exactly_100_buys_one_share() -> None:
    assert shares_for(D("100"), D("100")) == 1


def test_hundred_dollars_at_100_01_is_refused_with_zero_shares() -> None:
    with pytest.raises(ZeroShares) as caught:
        shares_for(D("100"), D("100.01"))
    assert str(caught.value) == "$100.00 buys 0 whole shares at $100.01; order refused"
    assert caught.value.dollars == D("100")
    assert caught.value.price == D("100.01")


def test_zero_shares_message_at_250() -> None:
    with pytest.raises(ZeroShares, match=r"^\$100\.00 buys 0 whole shares at \$250\.00; order refused$"):
        shares_for(D("100"), D("250"))


def test_zero_shares_message_shows_more_digits_rather_than_two_equal_prices() -> None:
    with pytest.raises(ZeroShares) as caught:
        shares_for(D("100"), D("100.001"))
    assert str(caught.value) == "$100.000 buys 0 whole shares at $100.001; order refused"


def test_shares_are_exact_where_float_division_would_round_up() -> None:
    # 0.3 / 0.1 is 2.9999999999999996 in binary floating point; exact Decimal gives 3.
    assert shares_for(D("0.3"), D("0.1")) == 3


def test_shares_round_down_a_hair_below_a_whole_share() -> None:
    assert shares_for(D("199.99"), D("100")) == 1


def test_zero_dollars_buys_zero_shares() -> None:
    with pytest.raises(ZeroShares):
        shares_for(D("0"), D("10"))


@pytest.mark.parametrize("price", [D("0"), D("-1")])
def test_non_positive_price_is_a_value_error(price: Decimal) -> None:
    with pytest.raises(ValueError):
        shares_for(D("100"), price)


def test_negative_dollars_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        shares_for(D("-100"), D("10"))


def test_float_price_is_refused() -> None:
    with pytest.raises(TypeError):
        shares_for(D("100"), 33.33)  # type: ignore[arg-type]


@given(
    dollars=st.decimals(min_value=D("0.01"), max_value=D("1000000"), places=2),
    price=st.decimals(min_value=D("0.01"), max_value=D("10000"), places=2),
)
def test_shares_are_the_most_whole_shares_the_dollars_pay_for(dollars: Decimal, price: Decimal) -> None:
    try:
        shares = shares_for(dollars, price)
    except ZeroShares:
        assert dollars < price
    else:
        assert shares * price <= dollars < (shares + 1) * price


def test_portfolio_cap_is_pct_of_equity() -> None:
    assert portfolio_cap(D("10000"), D("5.0")) == D("500")


def test_portfolio_cap_is_none_without_a_pct() -> None:
    assert portfolio_cap(D("10000"), None) is None


def test_portfolio_cap_is_zero_for_negative_equity() -> None:
    assert portfolio_cap(D("-50"), D("5")) == D("0")


def test_negative_pct_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        portfolio_cap(D("10000"), D("-1"))


def test_capped_size_below_cap_is_unchanged() -> None:
    assert capped_size(D("200"), D("10000"), D("5")) == D("200")


def test_capped_size_at_cap_is_unchanged() -> None:
    assert capped_size(D("500"), D("10000"), D("5")) == D("500")


def test_capped_size_above_cap_is_the_cap() -> None:
    assert capped_size(D("2000"), D("10000"), D("5")) == D("500")


def test_capped_size_without_pct_is_unchanged() -> None:
    assert capped_size(D("2000"), D("10000"), None) == D("2000")


def test_capped_size_is_exact_for_fractional_cap() -> None:
    assert capped_size(D("600"), D("10000.10"), D("5")) == D("500.005")


def test_position_value_is_quantity_times_price() -> None:
    assert position_value(3, D("33.33")) == D("99.99")


def test_position_value_refuses_fractional_quantity() -> None:
    with pytest.raises(TypeError):
        position_value(1.5, D("10"))  # type: ignore[arg-type]
