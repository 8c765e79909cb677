from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from trading_bot.broker import Broker, BrokerError, Fill, PaperBroker, Position
from trading_bot.clock import FixedClock
from trading_bot.error_handling.circuit_breaker import CircuitBreaker

D = Decimal
T0 = datetime(2026, 3, 10, 14, 30, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def broker(clock: FixedClock) -> PaperBroker:
    return PaperBroker(D("10000"), clock=clock, id_prefix="paper")


def test_paper_broker_satisfies_the_broker_protocol(broker: PaperBroker) -> None:
    assert isinstance(broker, Broker)


def test_place_order_fills_at_the_given_price_and_clock_time(broker: PaperBroker) -> None:
    fill = broker.place_order("AAPL", "BUY", 3, D("33.33"))
    assert fill == Fill("paper-000001", "AAPL", "BUY", 3, D("33.33"), T0)


def test_order_ids_are_sequential(broker: PaperBroker) -> None:
    first = broker.place_order("AAPL", "BUY", 1, D("10"))
    second = broker.place_order("MSFT", "SELL", 1, D("10"))
    assert (first.order_id, second.order_id) == ("paper-000001", "paper-000002")


def test_id_prefix_replaces_paper(clock: FixedClock) -> None:
    broker = PaperBroker(clock=clock, id_prefix="sim")
    assert broker.place_order("AAPL", "BUY", 1, D("10")).order_id == "sim-000001"


def test_open_order_appears_in_open_positions(broker: PaperBroker) -> None:
    broker.place_order("AAPL", "SELL", 2, D("50"))
    assert broker.open_positions() == [Position("paper-000001", "AAPL", "SELL", 2, D("50"), T0)]


def test_buying_reduces_cash_by_notional(broker: PaperBroker) -> None:
    broker.place_order("AAPL", "BUY", 3, D("33.33"))
    assert broker.cash == D("9900.01")


def test_selling_short_increases_cash_by_notional(broker: PaperBroker) -> None:
    broker.place_order("AAPL", "SELL", 3, D("33.33"))
    assert broker.cash == D("10099.99")


def test_long_pnl_is_exit_minus_entry_times_quantity(broker: PaperBroker) -> None:
    fill = broker.place_order("AAPL", "BUY", 3, D("33.33"))
    _, pnl = broker.close_position(fill.order_id, D("33.44"))
    assert pnl == D("0.33")


def test_long_loss_is_negative(broker: PaperBroker) -> None:
    fill = broker.place_order("AAPL", "BUY", 7, D("10.10"))
    _, pnl = broker.close_position(fill.order_id, D("10.03"))
    assert pnl == D("-0.49")


def test_short_pnl_is_entry_minus_exit_times_quantity(broker: PaperBroker) -> None:
    fill = broker.place_order("AAPL", "SELL", 3, D("33.33"))
    _, pnl = broker.close_position(fill.order_id, D("33.10"))
    assert pnl == D("0.69")


def test_short_loses_when_price_rises(broker: PaperBroker) -> None:
    fill = broker.place_order("AAPL", "SELL", 4, D("20"))
    _, pnl = broker.close_position(fill.order_id, D("20.25"))
    assert pnl == D("-1.00")


def test_exit_fill_is_the_opposite_action_under_the_same_order_id(broker: PaperBroker, clock: FixedClock) -> None:
    entry = broker.place_order("AAPL", "BUY", 3, D("33.33"))
    clock.set(T0 + timedelta(hours=1))
    exit_fill, _ = broker.close_position(entry.order_id, D("34"))
    assert exit_fill == Fill(entry.order_id, "AAPL", "SELL", 3, D("34"), T0 + timedelta(hours=1))


def test_closing_covers_a_short_with_a_buy(broker: PaperBroker) -> None:
    entry = broker.place_order("AAPL", "SELL", 3, D("33.33"))
    exit_fill, _ = broker.close_position(entry.order_id, D("30"))
    assert exit_fill.action == "BUY"


def test_closed_position_leaves_open_positions(broker: PaperBroker) -> None:
    fill = broker.place_order("AAPL", "BUY", 1, D("10"))
    broker.close_position(fill.order_id, D("11"))
    assert broker.open_positions() == []


def test_commission_is_charged_on_entry_and_exit(clock: FixedClock) -> None:
    broker = PaperBroker(D("10000"), commission=D("1.25"), clock=clock)
    fill = broker.place_order("AAPL", "BUY", 10, D("20"))
    _, pnl = broker.close_position(fill.order_id, D("21"))
    assert pnl == D("7.50")


def test_commission_is_deducted_from_cash_on_entry(clock: FixedClock) -> None:
    broker = PaperBroker(D("10000"), commission=D("1.25"), clock=clock)
    broker.place_order("AAPL", "SELL", 10, D("20"))
    assert broker.cash == D("10198.75")


@pytest.mark.parametrize("action", ["BUY", "SELL"])
@pytest.mark.parametrize("exit_price", [D("19.37"), D("20"), D("23.61")])
def test_cash_after_round_trip_is_starting_cash_plus_pnl(clock: FixedClock, action: str, exit_price: Decimal) -> None:
    broker = PaperBroker(D("10000"), commission=D("0.35"), clock=clock)
    fill = broker.place_order("AAPL", action, 13, D("20.11"))
    _, pnl = broker.close_position(fill.order_id, exit_price)
    assert broker.cash == D("10000") + pnl


def test_closing_an_unknown_order_is_a_broker_error(broker: PaperBroker) -> None:
    with pytest.raises(BrokerError, match="paper-999999"):
        broker.close_position("paper-999999", D("10"))


def test_closing_twice_is_a_broker_error(broker: PaperBroker) -> None:
    fill = broker.place_order("AAPL", "BUY", 1, D("10"))
    broker.close_position(fill.order_id, D("10"))
    with pytest.raises(BrokerError):
        broker.close_position(fill.order_id, D("10"))


@pytest.mark.parametrize("quantity", [0, -1])
def test_non_positive_quantity_is_a_broker_error(broker: PaperBroker, quantity: int) -> None:
    with pytest.raises(BrokerError):
        broker.place_order("AAPL", "BUY", quantity, D("10"))


@pytest.mark.parametrize("price", [D("0"), D("-0.01")])
def test_non_positive_entry_price_is_a_broker_error(broker: PaperBroker, price: Decimal) -> None:
    with pytest.raises(BrokerError):
        broker.place_order("AAPL", "BUY", 1, price)


def test_non_positive_exit_price_is_a_broker_error_and_keeps_the_position(broker: PaperBroker) -> None:
    fill = broker.place_order("AAPL", "BUY", 1, D("10"))
    with pytest.raises(BrokerError):
        broker.close_position(fill.order_id, D("0"))
    assert len(broker.open_positions()) == 1


def test_unknown_action_is_a_broker_error(broker: PaperBroker) -> None:
    with pytest.raises(BrokerError):
        broker.place_order("AAPL", "HOLD", 1, D("10"))


def test_float_price_is_a_broker_error(broker: PaperBroker) -> None:
    with pytest.raises(BrokerError):
        broker.place_order("AAPL", "BUY", 1, 10.5)  # type: ignore[arg-type]


def test_buying_more_than_cash_is_a_broker_error(clock: FixedClock) -> None:
    broker = PaperBroker(D("100"), clock=clock)
    with pytest.raises(BrokerError, match="insufficient cash"):
        broker.place_order("AAPL", "BUY", 2, D("50.01"))
    assert broker.cash == D("100")


def test_equity_without_marks_values_positions_at_entry(broker: PaperBroker) -> None:
    broker.place_order("AAPL", "BUY", 3, D("33.33"))
    broker.place_order("MSFT", "SELL", 2, D("50"))
    assert broker.equity() == D("10000")


def test_equity_with_marks_values_long_and_short_at_the_mark(broker: PaperBroker) -> None:
    broker.place_order("AAPL", "BUY", 3, D("33.33"))
    broker.place_order("MSFT", "SELL", 2, D("50"))
    assert broker.equity({"AAPL": D("34.33"), "MSFT": D("49")}) == D("10005")


def test_equity_uses_entry_price_for_unmarked_symbols(broker: PaperBroker) -> None:
    broker.place_order("AAPL", "BUY", 3, D("33.33"))
    broker.place_order("MSFT", "SELL", 2, D("50"))
    assert broker.equity({"AAPL": D("33.00")}) == D("9999.01")


def test_fail_next_raises_that_many_simulated_failures_then_works(broker: PaperBroker) -> None:
    broker.fail_next = 2
    for _ in range(2):
        with pytest.raises(BrokerError, match="simulated broker failure"):
            broker.place_order("AAPL", "BUY", 1, D("10"))
    assert broker.place_order("AAPL", "BUY", 1, D("10")).order_id == "paper-000001"


def test_simulated_failure_changes_nothing(broker: PaperBroker) -> None:
    broker.fail_next = 1
    with pytest.raises(BrokerError):
        broker.place_order("AAPL", "BUY", 1, D("10"))
    assert (broker.cash, broker.open_positions()) == (D("10000"), [])


def test_repeated_broker_failures_trip_the_circuit_breaker(clock: FixedClock) -> None:
    broker = PaperBroker(clock=clock, fail_next=5, id_prefix="paper")
    breaker = CircuitBreaker(threshold=5, window=timedelta(seconds=60), clock=clock)
    for second in range(5):
        clock.set(T0 + timedelta(seconds=second))
        try:
            broker.place_order("AAPL", "BUY", 1, D("10"))
        except BrokerError as error:
            breaker.record_failure(str(error))
    assert breaker.state.reason == "5 failures within 60s (last: simulated broker failure)"
