"""The trading loop end to end: real PaperBroker, real journal files in tmp_path (SPEC §6, §7, §10)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from trading_bot.app import Desk
from trading_bot.bot import TradingBot, UnknownPosition
from trading_bot.broker import PaperBroker
from trading_bot.clock import FixedClock
from trading_bot.config import Config
from trading_bot.mode_switcher import LiveModeRefused
from trading_bot.phase.cli import main
from trading_bot.phase.models import Phase

D = Decimal
UTC = timezone.utc
WriteJournal = Callable[..., Path]


@pytest.fixture
def config(config_path: Path) -> Config:
    return Config.from_env_and_json(config_path, environ={})


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def broker(clock: FixedClock) -> PaperBroker:
    return PaperBroker(clock=clock)


PASSWORD = "pw for tests"


def desk_bot(config_path: Path, clock: FixedClock, broker: PaperBroker | None = None) -> TradingBot:
    """A bot as the product assembles it (a restart is simply another call)."""
    desk = Desk.open(config_path, clock=clock, environ={"PHASE_OVERRIDE_PASSWORD": PASSWORD}, broker=broker or PaperBroker(clock=clock))
    return desk.bot


def move_to(config_path: Path, clock: FixedClock, phase: str) -> None:
    """The operator moves the desk with a password override."""
    import io

    code = main(
        ["--config", str(config_path), "override", "--to", phase, "--operator", "test", "--reason", "setup", "--password-stdin"],
        stdin=io.StringIO(PASSWORD + "\n"), stdout=io.StringIO(), stderr=io.StringIO(),
        environ={"PHASE_OVERRIDE_PASSWORD": PASSWORD}, clock=clock,
    )
    assert code == 0


@pytest.fixture
def bot(config_path: Path, broker: PaperBroker, clock: FixedClock) -> TradingBot:
    return desk_bot(config_path, clock, broker)


def journal_lines(logs_dir: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted((logs_dir / "trades").glob("*.jsonl")):
        lines.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return lines


def journal_files(logs_dir: Path) -> list[Path]:
    trades = logs_dir / "trades"
    return sorted(trades.iterdir()) if trades.exists() else []


def opened(bot: TradingBot, price: str = "33.33") -> str:
    result = bot.execute_trade("AAPL", "BUY", D(price))
    assert result.accepted and result.record is not None, result.reason
    return result.record.order_id


# --- entries -------------------------------------------------------------------------------


def test_entry_journals_an_open_record_with_phase_operator_and_mode(bot: TradingBot, logs_dir: Path) -> None:
    opened(bot)
    [line] = journal_lines(logs_dir)
    assert {key: line[key] for key in ("outcome", "phase", "operator_id", "execution_mode", "symbol", "action")} == {
        "outcome": "open", "phase": "experience", "operator_id": "bot", "execution_mode": "PAPER",
        "symbol": "AAPL", "action": "BUY",
    }


def test_entry_buys_whole_shares_of_the_phase_size(bot: TradingBot, logs_dir: Path) -> None:
    result = bot.execute_trade("AAPL", "BUY", D("33.33"))
    assert result.record is not None
    assert (result.record.quantity, result.record.price) == (3, D("33.33"))
    assert journal_lines(logs_dir)[0]["quantity"] == 3


def test_entry_is_written_to_the_file_of_its_utc_date(bot: TradingBot, logs_dir: Path) -> None:
    opened(bot)
    assert [path.name for path in journal_files(logs_dir)] == ["2026-03-10.jsonl"]


def test_entry_timestamp_is_the_clock_time(bot: TradingBot, logs_dir: Path) -> None:
    opened(bot)
    assert journal_lines(logs_dir)[0]["timestamp"] == "2026-03-10T15:00:00Z"


def test_entry_places_the_order_with_the_broker(bot: TradingBot, broker: PaperBroker) -> None:
    order_id = opened(bot)
    assert [(p.order_id, p.quantity) for p in broker.open_positions()] == [(order_id, 3)]


def test_entry_outside_trading_hours_is_refused_and_not_journaled(
    bot: TradingBot, clock: FixedClock, logs_dir: Path, broker: PaperBroker
) -> None:
    clock.set(datetime(2026, 3, 10, 10, 59, tzinfo=UTC))  # 06:59 EDT
    result = bot.execute_trade("AAPL", "BUY", D("33.33"))
    assert not result.accepted
    assert result.refusal is not None and result.refusal.code == "trading_hours"
    assert result.reason == "outside trading hours (07:00–16:00 EDT on trading days)"
    assert journal_files(logs_dir) == []
    assert broker.open_positions() == []


def test_entry_that_buys_zero_shares_is_refused_with_a_clear_message(bot: TradingBot, logs_dir: Path) -> None:
    result = bot.execute_trade("BRK", "BUY", D("150"))
    assert not result.accepted
    assert result.reason == "$100.00 buys 0 whole shares at $150.00; order refused"
    assert journal_files(logs_dir) == []


def test_check_entry_places_nothing(bot: TradingBot, logs_dir: Path, broker: PaperBroker) -> None:
    assert bot.check_entry("AAPL", "BUY", D("33.33")).allowed
    assert (journal_files(logs_dir), broker.open_positions()) == ([], [])


def test_entry_larger_than_the_size_in_force_is_refused(bot: TradingBot, logs_dir: Path) -> None:
    result = bot.execute_trade("AAPL", "BUY", D("10"), dollars=D("100.01"))
    assert result.refusal is not None and result.refusal.code == "phase_position_size"
    assert journal_files(logs_dir) == []


# --- exits ---------------------------------------------------------------------------------


def test_close_journals_the_closed_record_for_the_same_order(bot: TradingBot, logs_dir: Path) -> None:
    order_id = opened(bot)
    bot.close_position(order_id, D("35.00"))
    opening, closing = journal_lines(logs_dir)
    assert closing["order_id"] == opening["order_id"] == order_id
    assert {key: closing[key] for key in ("outcome", "net_profit_loss", "exit_price", "exit_timestamp")} == {
        "outcome": "win", "net_profit_loss": "5.01", "exit_price": "35.00", "exit_timestamp": "2026-03-10T15:00:00Z",
    }


def test_close_below_entry_is_a_loss(bot: TradingBot) -> None:
    closed = bot.close_position(opened(bot), D("33.00"))
    assert (closed.outcome, closed.net_pnl) == ("loss", D("-0.99"))


def test_close_at_entry_is_breakeven(bot: TradingBot) -> None:
    closed = bot.close_position(opened(bot), D("33.33"))
    assert closed.outcome == "breakeven"


def test_closed_trade_is_no_longer_open_in_the_journal(bot: TradingBot) -> None:
    bot.close_position(opened(bot), D("35"))
    assert bot.journal.open_trades() == []
    assert len(bot.journal.closed_trades) == 1


def test_close_is_allowed_outside_trading_hours(bot: TradingBot, clock: FixedClock) -> None:
    order_id = opened(bot)
    clock.set(datetime(2026, 3, 11, 1, 0, tzinfo=UTC))
    assert bot.close_position(order_id, D("35")).exit_timestamp == datetime(2026, 3, 11, 1, 0, tzinfo=UTC)


def test_emergency_exit_is_flagged(bot: TradingBot, logs_dir: Path) -> None:
    bot.close_position(opened(bot), D("30"), emergency_exit=True, operator_id="alice")
    closing = journal_lines(logs_dir)[-1]
    assert (closing["emergency_exit"], closing["operator_id"]) == (True, "alice")


def test_ordinary_close_is_not_flagged(bot: TradingBot, logs_dir: Path) -> None:
    bot.close_position(opened(bot), D("30"))
    assert journal_lines(logs_dir)[-1]["emergency_exit"] is False


def test_close_of_an_unknown_order_raises(bot: TradingBot) -> None:
    with pytest.raises(UnknownPosition) as caught:
        bot.close_position("paper-999999", D("10"))
    assert caught.value.order_id == "paper-999999"


def test_second_close_of_the_same_order_raises(bot: TradingBot) -> None:
    order_id = opened(bot)
    bot.close_position(order_id, D("35"))
    with pytest.raises(UnknownPosition):
        bot.close_position(order_id, D("36"))


# --- restarts and equity -------------------------------------------------------------------


def test_restarted_bot_sees_the_journal(
    bot: TradingBot, config_path: Path, broker: PaperBroker, logs_dir: Path, clock: FixedClock
) -> None:
    order_id = opened(bot)
    restarted = desk_bot(config_path, clock, broker)
    restarted.journal.refresh()
    record = restarted.journal.record(order_id)
    assert record is not None and record.phase is Phase.EXPERIENCE
    assert restarted.close_position(order_id, D("35")).outcome == "win"


def test_equity_counts_closed_trades_outside_experience(
    config_path: Path, logs_dir: Path, clock: FixedClock, write_journal: WriteJournal
) -> None:
    write_journal(
        logs_dir / "trades" / "2026-03-09.jsonl",
        {"order_id": "p-1", "phase": "proof", "timestamp": "2026-03-09T14:00:00Z", "outcome": "win",
         "exit_timestamp": "2026-03-09T15:00:00Z", "net_profit_loss": "250.00"},
        {"order_id": "e-1", "phase": "experience", "timestamp": "2026-03-09T14:00:00Z", "outcome": "loss",
         "exit_timestamp": "2026-03-09T15:00:00Z", "net_profit_loss": "-75.00"},
    )
    bot = desk_bot(config_path, clock)
    decision = bot.check_entry("AAPL", "BUY", D("33.33"))
    assert decision.allowed
    snapshot = decision.state
    assert (snapshot.equity, snapshot.equity_at_session_open, snapshot.session_pnl) == (
        D("10250.00"), D("10250.00"), D("0"),
    )


def test_session_pnl_counts_only_this_sessions_real_money_trades(
    config_path: Path, logs_dir: Path, clock: FixedClock, write_journal: WriteJournal
) -> None:
    write_journal(
        logs_dir / "trades" / "2026-03-10.jsonl",
        {"order_id": "p-1", "phase": "trial", "timestamp": "2026-03-10T13:00:00Z", "outcome": "loss",
         "exit_timestamp": "2026-03-10T14:00:00Z", "net_profit_loss": "-120.00"},
        {"order_id": "e-1", "phase": "experience", "timestamp": "2026-03-10T13:00:00Z", "outcome": "loss",
         "exit_timestamp": "2026-03-10T14:00:00Z", "net_profit_loss": "-75.00"},
    )
    bot = desk_bot(config_path, clock)
    snapshot = bot.phase.gate.trading_state()
    assert (snapshot.equity, snapshot.equity_at_session_open, snapshot.session_pnl) == (
        D("9880.00"), D("10000"), D("-120.00"),
    )


def test_real_money_losses_before_a_restart_shrink_the_position_cap(
    config_path: Path, logs_dir: Path, clock: FixedClock, write_journal: WriteJournal
) -> None:
    write_journal(
        logs_dir / "trades" / "2026-03-09.jsonl",
        {"order_id": "p-1", "phase": "proof", "timestamp": "2026-03-09T14:00:00Z", "outcome": "loss",
         "exit_timestamp": "2026-03-09T15:00:00Z", "net_profit_loss": "-8100.00"},
    )
    bot = desk_bot(config_path, clock)
    result = bot.execute_trade("AAPL", "BUY", D("33.33"))
    assert result.refusal is not None
    assert result.reason == "position $100.00 exceeds 5.0% of equity ($95.00 of $1900.00)"


def test_experience_losses_do_not_shrink_the_position_cap(
    config_path: Path, logs_dir: Path, clock: FixedClock, write_journal: WriteJournal
) -> None:
    write_journal(
        logs_dir / "trades" / "2026-03-09.jsonl",
        {"order_id": "e-1", "phase": "experience", "timestamp": "2026-03-09T14:00:00Z", "outcome": "loss",
         "exit_timestamp": "2026-03-09T15:00:00Z", "net_profit_loss": "-8100.00"},
    )
    bot = desk_bot(config_path, clock)
    assert bot.execute_trade("AAPL", "BUY", D("33.33")).accepted


# --- broker failures and live mode ---------------------------------------------------------


def test_broker_failure_is_reported_and_journaled_as_rejected(bot: TradingBot, broker: PaperBroker, logs_dir: Path) -> None:
    broker.fail_next = 1
    result = bot.execute_trade("AAPL", "BUY", D("33.33"))
    assert (result.accepted, result.code, result.reason) == (False, "broker", "broker error: simulated broker failure")
    opening, rejection = journal_lines(logs_dir)
    assert opening["order_id"] == rejection["order_id"]
    assert (opening["outcome"], rejection["outcome"], rejection["rejection_reason"]) == ("open", "rejected", "simulated broker failure")
    assert (bot.journal.open_trades(), broker.open_positions()) == ([], [])


def test_a_rejected_order_still_counts_as_an_entry(config_path: Path, clock: FixedClock) -> None:
    move_to(config_path, clock, "proof")
    broker = PaperBroker(clock=clock, fail_next=1)
    bot = desk_bot(config_path, clock, broker)
    assert bot.execute_trade("AAPL", "BUY", D("10")).code == "broker"
    assert bot.execute_trade("AAPL", "BUY", D("10")).code == "phase_entry_limit"


def test_five_broker_failures_trip_the_breaker_and_refuse_further_entries(
    bot: TradingBot, broker: PaperBroker, logs_dir: Path
) -> None:
    broker.fail_next = 5
    for _ in range(5):
        assert bot.execute_trade("AAPL", "BUY", D("33.33")).refusal.code == "broker"  # type: ignore[union-attr]
    assert broker.fail_next == 0
    result = bot.execute_trade("AAPL", "BUY", D("33.33"))
    assert result.refusal is not None and result.refusal.code == "broker_breaker"
    assert result.reason == "broker circuit breaker tripped: 5 failures within 60s (last: simulated broker failure)"
    assert (bot.journal.open_trades(), broker.open_positions()) == ([], [])


def test_four_broker_failures_do_not_trip_the_breaker(bot: TradingBot, broker: PaperBroker) -> None:
    broker.fail_next = 4
    for _ in range(4):
        bot.execute_trade("AAPL", "BUY", D("33.33"))
    assert bot.execute_trade("AAPL", "BUY", D("33.33")).accepted


def test_live_mode_is_refused_in_experience(bot: TradingBot) -> None:
    with pytest.raises(LiveModeRefused) as caught:
        bot.mode.switch_to_live()
    assert caught.value.reason == "live trading is not allowed in the Experience phase (paper only)"
    assert bot.mode.mode == "paper"


def test_live_mode_is_allowed_in_proof(config_path: Path, logs_dir: Path, clock: FixedClock) -> None:
    move_to(config_path, clock, "proof")
    bot = desk_bot(config_path, clock)
    bot.mode.switch_to_live()
    assert bot.mode.is_live


def test_config_saying_live_does_not_trade_live_in_experience(
    config_path: Path, logs_dir: Path, clock: FixedClock
) -> None:
    Config.from_env_and_json(config_path, environ={}).with_updates({("trading", "mode"): "live"}).save()
    try:
        bot = desk_bot(config_path, clock)
    except LiveModeRefused:
        return  # refusing to start live is one acceptable answer
    bot.execute_trade("AAPL", "BUY", D("33.33"))
    assert bot.mode.mode == "paper"
    assert all(line["execution_mode"] == "PAPER" for line in journal_lines(logs_dir))


def test_flatten_closes_every_open_position_as_an_emergency_exit(config_path: Path, logs_dir: Path, clock: FixedClock) -> None:
    bot = desk_bot(config_path, clock)
    first = bot.execute_trade("AAPL", "BUY", D("10"))
    second = bot.execute_trade("MSFT", "BUY", D("20"))
    closed = bot.flatten({"AAPL": D("11"), "MSFT": D("19")}, operator_id="alice")
    assert [record.order_id for record in closed] == [first.record.order_id, second.record.order_id]
    assert all(record.emergency_exit and record.operator_id == "alice" for record in closed)
    assert bot.journal.open_trades() == []


def test_flatten_without_a_price_for_an_open_symbol_raises_before_closing_it(config_path: Path, logs_dir: Path, clock: FixedClock) -> None:
    bot = desk_bot(config_path, clock)
    bot.execute_trade("AAPL", "BUY", D("10"))
    with pytest.raises(KeyError):
        bot.flatten({})
    assert len(bot.journal.open_trades()) == 1


def test_a_restarted_bot_can_close_a_paper_position_opened_before_the_restart(
    config_path: Path, logs_dir: Path, clock: FixedClock
) -> None:
    first = desk_bot(config_path, clock)
    entry = first.execute_trade("AAPL", "BUY", D("10"))
    restarted = desk_bot(config_path, clock)
    closed = restarted.close_position(entry.record.order_id, D("11"))
    assert (closed.outcome, closed.net_pnl) == ("win", D("10"))
