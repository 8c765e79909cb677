"""The one assembly end to end: a desk opened from a config path, real files, a fixed clock.

A config edit reaches every part at once; a journal without `phase` gives one equity
everywhere; a journal that cannot be written refuses entries but never blocks exits.
"""

from __future__ import annotations

import errno
import io
import json
import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from trading_bot.app import Desk, ReadOnlyDesk
from trading_bot.broker import PaperBroker
from trading_bot.clock import FixedClock
from trading_bot.config import Config
from trading_bot.phase.cli import main

D = Decimal
UTC = timezone.utc
PASSWORD = "desk test password"
ENV = {"PHASE_OVERRIDE_PASSWORD": PASSWORD}


def open_desk(config_path: Path, clock: FixedClock, broker: PaperBroker | None = None) -> Desk:
    return Desk.open(config_path, clock=clock, environ=ENV, broker=broker or PaperBroker(D("1000000"), clock=clock))


def cli(config_path: Path, clock: FixedClock, *args: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config_path), *args], stdin=io.StringIO(stdin), stdout=out, stderr=err, environ=ENV, clock=clock)
    return code, out.getvalue(), err.getvalue()


def move_to(config_path: Path, clock: FixedClock, phase: str) -> None:
    code, _, err = cli(config_path, clock, "override", "--to", phase, "--operator", "ops", "--reason", "setup", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err


def journal(config_path: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted((config_path.parent / "logs" / "trades").glob("*.jsonl")):
        lines.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return lines


# ---- one assembly ----------------------------------------------------------------------


def test_the_bot_and_the_phase_system_share_one_config_calendar_lock_and_journal(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    bot = desk.bot
    assert (bot.config, bot.calendar, bot.lock, bot.journal) == (desk.config, desk.calendar, desk.lock, desk.journal)
    assert bot.phase is desk.phase


def test_opening_a_desk_writes_nothing(config_path: Path, clock: FixedClock) -> None:
    before = config_path.read_bytes()
    Desk.open(config_path, clock=clock, environ=ENV)
    assert config_path.read_bytes() == before
    assert not (config_path.parent / "logs").exists()


def test_a_desk_seen_as_of_a_past_moment_reads_the_state_then_and_cannot_trade(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    assert desk.enter("AAPL", "BUY", D("10")).accepted
    past = Desk.open(config_path, clock=clock, environ=ENV, as_of=clock.now() - timedelta(minutes=1))
    assert past.state().entries_used == 0
    assert desk.state().entries_used == 1
    with pytest.raises(ReadOnlyDesk):
        past.enter("AAPL", "BUY", D("10"))


def test_end_time_edited_while_the_bot_runs_refuses_the_next_entry_in_the_bot_and_check_trade(
    config_path: Path, clock: FixedClock
) -> None:
    desk = open_desk(config_path, clock)
    clock.set(datetime(2026, 3, 10, 13, 50, tzinfo=UTC))  # 09:50 EDT
    assert desk.enter("AAPL", "BUY", D("10")).accepted
    Config.from_env_and_json(config_path, environ=ENV).with_updates({("trading", "hours", "end_time"): "10:00"}).save()
    clock.set(datetime(2026, 3, 10, 14, 0, tzinfo=UTC))  # 10:00 EDT, the new end
    result = desk.enter("AAPL", "BUY", D("10"))
    assert (result.accepted, result.code) == (False, "trading_hours")
    code, out, _ = cli(config_path, clock, "check-trade", "--json")
    assert (code, json.loads(out)["code"]) == (1, "trading_hours")


def test_end_time_one_minute_later_still_allows_the_entry(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    clock.set(datetime(2026, 3, 10, 14, 0, tzinfo=UTC))  # 10:00 EDT
    desk.state()
    Config.from_env_and_json(config_path, environ=ENV).with_updates({("trading", "hours", "end_time"): "10:01"}).save()
    assert desk.enter("AAPL", "BUY", D("10")).accepted
    assert cli(config_path, clock, "check-trade")[0] == 0


def test_a_risk_limit_edited_while_the_bot_runs_counts_at_once(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    assert desk.check_entry("AAPL", "BUY", D("10")).allowed
    Config.from_env_and_json(config_path, environ=ENV).with_updates({("risk_management", "max_position_pct"): "0.99"}).save()
    assert desk.check_entry("AAPL", "BUY", D("10")).code == "max_position_pct"


# ---- one equity --------------------------------------------------------------------------


def original_bot_lines(config_path: Path) -> None:
    """Journal lines as the original bot wrote them: no `phase`, no operator, no flags."""
    trades = config_path.parent / "logs" / "trades"
    trades.mkdir(parents=True)
    rows = [
        # Entered in the experience era (before the move to proof): simulated money.
        {"timestamp": "2026-03-03T15:00:00Z", "exit_timestamp": "2026-03-10T13:30:00Z", "net_profit_loss": "-5000.00", "outcome": "loss"},
        # Entered after the move to proof: real money.
        {"timestamp": "2026-03-06T15:10:00Z", "exit_timestamp": "2026-03-06T15:20:00Z", "net_profit_loss": "150.00", "outcome": "win"},
    ]
    with open(trades / "2026-03-10.jsonl", "w", encoding="utf-8") as handle:
        for number, row in enumerate(rows, start=1):
            handle.write(json.dumps({"symbol": "AAPL", "action": "BUY", "quantity": 10, "price": "10", "order_id": f"orig-{number}", **row}) + "\n")


def test_a_journal_without_phase_gives_the_risk_checks_and_the_phase_system_one_equity(config_path: Path, clock: FixedClock) -> None:
    clock.set(datetime(2026, 3, 5, 15, 0, tzinfo=UTC))
    move_to(config_path, clock, "proof")
    original_bot_lines(config_path)
    clock.set(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    desk = open_desk(config_path, clock)
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    code, out, _ = cli(config_path, clock, "status", "--json")
    assert (decision.state.equity, json.loads(out)["equity"]) == (D("10150.00"), "10150.00")
    assert decision.state.session_pnl == D("0")  # today's -$5,000 close was entered in experience: simulated
    assert decision.allowed, decision.reason


# ---- a journal that cannot be written ----------------------------------------------------


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every write to a file under a `logs` folder fails with ENOSPC while `full` is set."""

    class Disk:
        full = False

    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if Disk.full and "/logs/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    return Disk


def test_disk_full_during_an_entry_places_no_order_and_reports_the_refusal(
    config_path: Path, clock: FixedClock, full_disk: Any
) -> None:
    broker = PaperBroker(D("1000000"), clock=clock)
    desk = open_desk(config_path, clock, broker)
    desk.state()
    before = journal(config_path)
    full_disk.full = True
    result = desk.enter("AAPL", "BUY", D("10"))
    assert (result.accepted, result.code, result.refusal_recorded) == (False, "logs_unwritable", False)
    assert broker.open_positions() == []
    full_disk.full = False
    assert journal(config_path) == before


def test_exits_complete_while_the_journal_cannot_be_written_and_are_journaled_when_it_can(
    config_path: Path, clock: FixedClock, full_disk: Any
) -> None:
    broker = PaperBroker(D("1000000"), clock=clock)
    desk = open_desk(config_path, clock, broker)
    entry = desk.enter("AAPL", "BUY", D("10"))
    assert entry.record is not None
    full_disk.full = True
    closed = desk.close(entry.record.order_id, D("11"))
    assert (closed.outcome, broker.open_positions()) == ("win", [])
    assert desk.enter("AAPL", "BUY", D("10")).code == "logs_unwritable"  # entries wait for the close
    full_disk.full = False
    again = desk.enter("AAPL", "BUY", D("10"))
    assert again.accepted
    outcomes = [(line["order_id"], line["outcome"]) for line in journal(config_path)]
    assert outcomes == [(entry.record.order_id, "open"), (entry.record.order_id, "win"), (again.record.order_id, "open")]  # type: ignore[union-attr]


def test_a_refused_entry_does_not_rewrite_config_json(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    desk.state()
    before = (config_path.read_bytes(), os.stat(config_path).st_ino)
    result = desk.enter("AAPL", "BUY", D("1000"))  # $100 buys no whole share
    assert (result.code, result.refusal_recorded) == ("whole_shares", True)
    assert (config_path.read_bytes(), os.stat(config_path).st_ino) == before
