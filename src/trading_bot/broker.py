"""The Broker protocol the trading loop talks to, and a paper broker that fills at the asked price.

The paper broker keeps cash and open positions exactly (Decimal), so paper results
and the journal agree to the cent: after an open and a close, cash is the starting
cash plus the realized net P&L.
"""

from __future__ import annotations

import secrets

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from trading_bot.clock import SYSTEM_CLOCK, Clock, ensure_utc

ACTIONS = ("BUY", "SELL")


@dataclass(frozen=True)
class Fill:
    """One executed order. An exit fill carries the order id of the position it closes."""

    order_id: str
    symbol: str
    action: str
    quantity: int
    price: Decimal
    at: datetime


@dataclass(frozen=True)
class Position:
    """An open position: BUY is long, SELL is short."""

    order_id: str
    symbol: str
    action: str
    quantity: int
    entry_price: Decimal
    opened_at: datetime


class BrokerError(Exception):
    """The broker refused or failed an order; the loop counts these in its circuit breaker."""


@runtime_checkable
class Broker(Protocol):
    def place_order(self, symbol: str, action: str, quantity: int, price: Decimal, *, order_id: str) -> Fill:
        """Open a position under the bot's own (client) order id: BUY goes long, SELL goes short.

        The bot has journaled the `open` record under `order_id` before this call. Raise
        BrokerError when the broker refused the order (it never reached the market).
        """
        ...

    def close_position(self, order_id: str, price: Decimal) -> tuple[Fill, Decimal]:
        """Close a position; returns the exit fill and the realized net P&L."""
        ...

    def open_positions(self) -> list[Position]: ...

    @property
    def cash(self) -> Decimal: ...


class PaperBroker:
    """Simulated fills at the given price, with commission per order and exact cash.

    `fail_next` makes the next that many order calls raise BrokerError, so tests can
    drive the circuit breaker without a real broker. A long needs the cash to pay
    for it; a short credits its proceeds and is valued as a liability.
    """

    def __init__(
        self,
        starting_cash: Decimal = Decimal("10000"),
        *,
        commission: Decimal = Decimal("0"),
        clock: Clock = SYSTEM_CLOCK,
        id_prefix: str | None = None,
        fail_next: int = 0,
    ) -> None:
        starting_cash = _decimal(starting_cash, "starting_cash", ValueError)
        commission = _decimal(commission, "commission", ValueError)
        if commission < 0:
            raise ValueError(f"commission must not be negative, got {commission}")
        if id_prefix is None:
            # Unique per broker instance: a restarted bot must never reuse an order id
            # that the journal already holds.
            id_prefix = f"paper-{secrets.token_hex(4)}"
        if not id_prefix:
            raise ValueError("id_prefix must not be empty")
        self._cash = starting_cash
        self.commission = commission
        self._clock = clock
        self._id_prefix = id_prefix
        self._next_id = 1
        self._positions: dict[str, Position] = {}
        self.fail_next = fail_next

    @property
    def cash(self) -> Decimal:
        return self._cash

    def place_order(
        self, symbol: str, action: str, quantity: int, price: Decimal, *, order_id: str | None = None
    ) -> Fill:
        """Open a position at `price`; BUY pays price×qty + commission, SELL receives price×qty − commission.

        Without `order_id` the paper broker numbers the order itself."""
        self._maybe_fail()
        if not isinstance(symbol, str) or not symbol.strip():
            raise BrokerError("symbol must be a non-empty string")
        if action not in ACTIONS:
            raise BrokerError(f"action must be BUY or SELL, got {action!r}")
        _check_quantity(quantity)
        if order_id is not None and (not order_id or order_id in self._positions):
            raise BrokerError(f"order id {order_id!r} is empty or already in use")
        price = _price(price)
        notional = price * quantity
        if action == "BUY":
            cost = notional + self.commission
            if cost > self._cash:
                raise BrokerError(
                    f"insufficient cash: {quantity} {symbol} at {price} costs {cost}, cash is {self._cash}"
                )
            self._cash -= cost
        else:
            self._cash += notional - self.commission
        if order_id is None:
            order_id = f"{self._id_prefix}-{self._next_id:06d}"
            self._next_id += 1
        now = ensure_utc(self._clock.now())
        self._positions[order_id] = Position(
            order_id=order_id,
            symbol=symbol,
            action=action,
            quantity=quantity,
            entry_price=price,
            opened_at=now,
        )
        return Fill(order_id, symbol, action, quantity, price, now)

    def close_position(self, order_id: str, price: Decimal) -> tuple[Fill, Decimal]:
        """Close at `price`; net P&L is the gross move less the commission of both orders."""
        self._maybe_fail()
        position = self._positions.get(order_id)
        if position is None:
            raise BrokerError(f"no open position with order id {order_id!r}")
        price = _price(price)
        quantity = position.quantity
        if position.action == "BUY":
            gross = (price - position.entry_price) * quantity
            self._cash += price * quantity - self.commission
            exit_action = "SELL"
        else:
            gross = (position.entry_price - price) * quantity
            self._cash -= price * quantity + self.commission
            exit_action = "BUY"
        del self._positions[order_id]
        net = gross - 2 * self.commission
        fill = Fill(order_id, position.symbol, exit_action, quantity, price, ensure_utc(self._clock.now()))
        return fill, net

    def restore(self, position: Position) -> None:
        """Take back a position the journal shows open after a restart (paper positions live
        in memory): its cash effect is applied as if it had been opened here."""
        if position.order_id in self._positions:
            return
        notional = position.entry_price * position.quantity
        if position.action == "BUY":
            self._cash -= notional + self.commission
        else:
            self._cash += notional - self.commission
        self._positions[position.order_id] = position

    def open_positions(self) -> list[Position]:
        """Open positions in the order they were opened."""
        return list(self._positions.values())

    def equity(self, marks: Mapping[str, Decimal] | None = None) -> Decimal:
        """Cash plus open positions at `marks` (entry price for unmarked symbols); shorts count negative."""
        marks = marks or {}
        total = self._cash
        for position in self._positions.values():
            mark = _price(marks.get(position.symbol, position.entry_price))
            value = mark * position.quantity
            total += value if position.action == "BUY" else -value
        return total

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise BrokerError("simulated broker failure")


def _check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise BrokerError(f"quantity must be a whole number of shares, got {quantity!r}")
    if quantity <= 0:
        raise BrokerError(f"quantity must be positive, got {quantity}")


def _price(price: Decimal) -> Decimal:
    value = _decimal(price, "price", BrokerError)
    if value <= 0:
        raise BrokerError(f"price must be positive, got {value}")
    return value


def _decimal(value: Decimal, name: str, error: type[Exception]) -> Decimal:
    """Decimal or int only: a float price would make paper P&L disagree with the journal."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise error(f"{name} must be a Decimal, got {type(value).__name__}")
    result = Decimal(value)
    if not result.is_finite():
        raise error(f"{name} must be a finite number")
    return result
