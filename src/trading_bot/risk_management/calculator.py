"""Dollars to whole shares and the portfolio cap, in exact Decimal arithmetic (§6).

Floats are refused: a size that is off by a binary rounding error can buy one share
more or less than the trader asked for.
"""

from __future__ import annotations

from decimal import Decimal

from trading_bot.money import ZERO, distinct_pair

HUNDRED = Decimal(100)


class ZeroShares(Exception):
    """The dollar size buys no whole share; the order is refused rather than rounded up."""

    def __init__(self, dollars: Decimal, price: Decimal) -> None:
        self.dollars = dollars
        self.price = price
        shown_dollars, shown_price = distinct_pair(dollars, price, places=2)
        super().__init__(
            f"${shown_dollars} buys 0 whole shares at ${shown_price}; order refused"
        )


def shares_for(dollars: Decimal, price: Decimal) -> int:
    """Whole shares that `dollars` buys at `price`, rounded down (never spend more than asked)."""
    dollars = _exact(dollars, "dollars")
    price = _exact(price, "price")
    if price <= ZERO:
        raise ValueError(f"price must be positive, got {price}")
    if dollars < ZERO:
        raise ValueError(f"dollars must not be negative, got {dollars}")
    shares = int(dollars // price)  # integer part, exact; floor because both are positive
    if shares == 0:
        raise ZeroShares(dollars, price)
    return shares


def portfolio_cap(equity: Decimal, max_pct: Decimal | None) -> Decimal | None:
    """The largest size `max_pct`% of equity allows; None when no cap is configured.

    Zero or negative equity gives a cap of 0: nothing may be risked.
    """
    if max_pct is None:
        return None
    equity = _exact(equity, "equity")
    max_pct = _exact(max_pct, "max_pct")
    if max_pct < ZERO:
        raise ValueError(f"max_pct must not be negative, got {max_pct}")
    return max(ZERO, equity * max_pct / HUNDRED)


def capped_size(size: Decimal, equity: Decimal, max_pct: Decimal | None) -> Decimal:
    """The size in force after the portfolio cap; the caller refuses it if below the minimum."""
    size = _exact(size, "size")
    cap = portfolio_cap(equity, max_pct)
    return size if cap is None else min(size, cap)


def position_value(quantity: int, price: Decimal) -> Decimal:
    """Market value of `quantity` shares at `price` (negative quantity for a short)."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise TypeError(f"quantity must be an int, got {type(quantity).__name__}")
    return _exact(price, "price") * quantity


def _exact(value: Decimal, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"{name} must be a Decimal, got {type(value).__name__}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{name} must be a finite number")
    return result
