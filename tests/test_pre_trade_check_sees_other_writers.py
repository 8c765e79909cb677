"""The pre-trade check reuses what it read only while nothing changed (SPEC §7, §12).

Between two checks the check asks two stats: the desk's generation (every write under
the logs lock, by any process, changes it) and config.json. Each test lets a second
writer on the same folder (a second desk in this process, a command, or a real forked
process) change one thing between two checks of the bot's desk, and the second check
must see it. `reuse_seconds` is set far above any test's length, so only the generation,
config.json and the clock can send a check back to the records: no test depends on
timing, and a check that reused a stale state would fail the test.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from trading_bot.app import Desk
from trading_bot.broker import PaperBroker
from trading_bot.clock import FixedClock
from trading_bot.config import Config
from trading_bot.durable_files import GENERATION_RESTART_BYTES, LogsLock, append_durably
from trading_bot.entry_checks import EntryDecision
from trading_bot.phase.cli import main
from trading_bot.phase.models import Phase

D = Decimal
UTC = timezone.utc
PASSWORD = "generation test password"
ENV = {"PHASE_OVERRIDE_PASSWORD": PASSWORD}
# 2026-03-10 is a Tuesday; 15:00 UTC is 11:00 EDT, inside the default 07:00–16:00 hours.
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
FOREVER = 10.0**9


def open_desk(config_path: Path, clock: FixedClock) -> Desk:
    desk = Desk.open(config_path, clock=clock, environ=ENV, broker=PaperBroker(D("1000000"), clock=clock))
    desk.phase.gate.reuse_seconds = FOREVER
    return desk


def cli(config_path: Path, clock: FixedClock, *args: str, stdin: str = "") -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config_path), *args], stdin=io.StringIO(stdin), stdout=out, stderr=err, environ=ENV, clock=clock)
    return code, out.getvalue() + err.getvalue()


def override_to(config_path: Path, clock: FixedClock, phase: str) -> None:
    code, text = cli(config_path, clock, "override", "--to", phase, "--operator", "ops", "--reason", "test", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, text


def settled(desk: Desk) -> EntryDecision:
    """Checks until one reuses the state read before: the first reads the records and may
    write what is due itself (a write the next check reads once), the third must reuse."""
    for _ in range(3):
        decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert desk.phase.gate.reused, "the third check of an unchanged desk still reads every record"
    return decision


def config_identity(config_path: Path) -> tuple[bytes, int, int]:
    stat = os.stat(config_path)
    return config_path.read_bytes(), stat.st_ino, stat.st_mtime_ns


@pytest.fixture
def trial(config_path: Path, clock: FixedClock) -> Path:
    """A desk in trial (real money, no entry limit), with only the risk limits in play."""
    Config.from_env_and_json(config_path, environ=ENV).with_updates(
        {("phase_progression", "trial", "downgrade_triggers", "max_daily_loss_pct"): None}
    ).save()
    override_to(config_path, clock, "trial")
    return config_path


# ---- a real second process ------------------------------------------------------------


def _writer(config_path: str, at: datetime, orders: Any) -> None:
    """A second bot process on the same desk: runs what it is told, answers when done."""
    clock = FixedClock(at)
    desk = Desk.open(config_path, clock=clock, environ=ENV, broker=PaperBroker(D("1000000"), clock=clock))
    while True:
        command, args = orders.recv()
        if command == "stop":
            return
        if command == "enter":
            result = desk.enter(*args[:3], dollars=args[3])
            orders.send(result.record.order_id if result.record is not None else result.reason)
        elif command == "close":
            desk.close(args[0], args[1])
            orders.send("closed")
        elif command == "clock":
            clock.set(args[0])
            orders.send("set")
        elif command == "die holding the lock after a close":
            order_id, price = args
            with desk.lock.held():
                desk.close(order_id, price)
                os._exit(9)  # killed before the hold ends: the generation is left odd


@pytest.fixture
def other_process(config_path: Path) -> Iterator[Any]:
    """`send(command, *args)` runs one command in a forked bot process and returns its answer."""
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe()
    process = context.Process(target=_writer, args=(str(config_path), NOW, there))
    process.start()

    def send(command: str, *args: Any) -> Any:
        here.send((command, args))
        if command.startswith("die"):
            process.join(timeout=60)
            return process.exitcode
        assert here.poll(60), f"the writer process did not answer {command!r}"
        return here.recv()

    send.process = process  # type: ignore[attr-defined]
    yield send
    if process.is_alive():
        here.send(("stop", ()))
        process.join(timeout=60)
    assert not process.is_alive()


# ---- each kind of change ---------------------------------------------------------------


def test_a_close_by_another_process_that_trips_the_daily_loss_limit_is_seen_by_the_next_check(
    trial: Path, clock: FixedClock, other_process: Any
) -> None:
    desk = open_desk(trial, clock)
    order_id = other_process("enter", "AAPL", "SELL", D("10"), D("200"))  # 20 shares short
    assert settled(desk).allowed
    config_before = config_identity(trial)
    assert other_process("close", order_id, D("25.01")) == "closed"  # a $300.20 loss: 3.002% of $10,000
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert (decision.code, desk.phase.gate.reused) == ("max_daily_loss_pct", False)
    assert config_identity(trial) == config_before  # the journal alone changed: the generation told


def test_a_close_just_under_the_daily_loss_limit_leaves_entries_allowed(trial: Path, clock: FixedClock, other_process: Any) -> None:
    desk = open_desk(trial, clock)
    order_id = other_process("enter", "AAPL", "SELL", D("10"), D("200"))
    assert settled(desk).allowed
    assert other_process("close", order_id, D("25")) == "closed"  # exactly $300: 3%, not above it
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert decision.allowed, decision.reason
    assert decision.state.session_pnl == D("-300")


def test_a_writer_killed_before_its_hold_ended_is_not_taken_as_unchanged(trial: Path, clock: FixedClock, other_process: Any) -> None:
    desk = open_desk(trial, clock)
    order_id = other_process("enter", "AAPL", "SELL", D("10"), D("200"))
    assert settled(desk).allowed
    assert other_process("die holding the lock after a close", order_id, D("30")) == 9
    assert desk.lock.generation() is None  # odd: a hold that wrote never ended
    first = desk.check_entry("AAPL", "BUY", D("10"))
    second = desk.check_entry("AAPL", "BUY", D("10"))
    assert (first.code, second.code) == ("max_daily_loss_pct", "max_daily_loss_pct")
    assert not desk.phase.gate.reused  # nothing is reused until a writer's hold settles it


def test_an_entry_by_another_process_uses_up_the_sessions_one_proof_entry(config_path: Path, clock: FixedClock, other_process: Any) -> None:
    override_to(config_path, clock, "proof")
    desk = open_desk(config_path, clock)
    assert settled(desk).allowed
    config_before = config_identity(config_path)
    assert other_process("enter", "AAPL", "BUY", D("10"), None).startswith("bot-")
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert (decision.code, decision.state.entries_used) == ("phase_entry_limit", 1)
    assert config_identity(config_path) == config_before


def test_a_downgrade_written_by_another_desk_is_seen_by_the_next_check(trial: Path, clock: FixedClock) -> None:
    desk = open_desk(trial, clock)
    other = open_desk(trial, clock)
    orders = []
    for _ in range(3):
        result = other.enter("AAPL", "BUY", D("10"), dollars=D("20"))
        assert result.record is not None, result.reason
        orders.append(result.record.order_id)
    for order_id in orders[:2]:
        other.close(order_id, D("9.99"))
    before = settled(desk)
    assert (before.allowed, before.state.phase) == (True, Phase.TRIAL)
    other.close(orders[2], D("9.99"))  # the third loss in a row: downgrade to proof, breaker tripped
    after = desk.check_entry("AAPL", "BUY", D("10"))
    assert (after.state.phase, after.code, desk.phase.gate.reused) == (Phase.PROOF, "phase_breaker", False)


def test_an_override_by_a_command_is_seen_by_the_next_check(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    before = settled(desk)
    assert (before.state.phase, before.dollars) == (Phase.EXPERIENCE, D("100"))
    override_to(config_path, clock, "trial")
    after = desk.check_entry("AAPL", "BUY", D("10"))
    assert (after.state.phase, after.dollars, after.shares) == (Phase.TRIAL, D("200"), 20)


def test_a_breaker_trip_and_its_acknowledgement_by_others_are_each_seen_by_the_next_check(trial: Path, clock: FixedClock) -> None:
    desk = open_desk(trial, clock)
    other = open_desk(trial, clock)
    assert settled(desk).allowed
    for _ in range(3):
        result = other.enter("AAPL", "BUY", D("10"), dollars=D("20"))
        assert result.record is not None, result.reason
        other.close(result.record.order_id, D("9.99"))
    assert desk.check_entry("AAPL", "BUY", D("10")).code == "phase_breaker"
    assert settled(desk).code == "phase_breaker"
    code, text = cli(trial, clock, "acknowledge", "--operator", "ops", "--note", "reviewed")
    assert code == 0, text
    after = desk.check_entry("AAPL", "BUY", D("10"))
    # The breaker no longer holds entries; proof's one entry a session (used three times
    # over in trial today) is the next check in the chain's order.
    assert (after.state.breaker.tripped, after.code, desk.phase.gate.reused) == (False, "phase_entry_limit", False)


def test_a_hand_edit_of_a_risk_limit_is_seen_by_the_next_check(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    assert settled(desk).allowed
    Config.from_env_and_json(config_path, environ=ENV).with_updates({("risk_management", "max_position_pct"): "0.99"}).save()
    assert desk.check_entry("AAPL", "BUY", D("10")).code == "max_position_pct"


# ---- the clock ---------------------------------------------------------------------------


def test_the_clock_stepping_back_past_the_high_water_halts_the_next_check(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    assert desk.enter("AAPL", "BUY", D("10")).accepted  # raises the high-water to NOW
    assert settled(desk).allowed
    clock.set(NOW - timedelta(minutes=5, seconds=1))  # one second past the tolerance
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert (decision.code, desk.phase.gate.reused) == ("clock_behind", False)


def test_the_clock_stepping_back_exactly_the_tolerance_still_allows_the_entry(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    assert desk.enter("AAPL", "BUY", D("10")).accepted
    assert settled(desk).allowed
    clock.set(NOW - timedelta(minutes=5))
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert decision.allowed, decision.reason


def test_a_high_water_raised_by_a_process_whose_clock_runs_ahead_halts_the_next_check(
    config_path: Path, clock: FixedClock, other_process: Any
) -> None:
    desk = open_desk(config_path, clock)
    assert settled(desk).allowed
    assert other_process("clock", NOW + timedelta(minutes=10)) == "set"
    assert other_process("enter", "AAPL", "BUY", D("10"), None).startswith("bot-")  # the high-water goes to NOW + 10 min
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert decision.code == "clock_behind", decision.reason


def test_the_next_session_reads_the_records_again(config_path: Path, clock: FixedClock) -> None:
    override_to(config_path, clock, "proof")
    desk = open_desk(config_path, clock)
    assert desk.enter("AAPL", "BUY", D("10")).accepted
    assert settled(desk).code == "phase_entry_limit"
    clock.set(datetime(2026, 3, 11, 11, 0, tzinfo=UTC))  # 07:00 EDT: the next session opens
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert (decision.allowed, decision.state.entries_used, desk.phase.gate.reused) == (True, 0, False)


def test_a_second_later_in_the_same_session_reuses_the_state_at_the_new_instant(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    settled(desk)
    clock.set(NOW + timedelta(seconds=1))
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert (decision.allowed, desk.phase.gate.reused, decision.state.at) == (True, True, NOW + timedelta(seconds=1))


# ---- what is not a write of the desk -------------------------------------------------------


def test_a_hand_edit_of_the_history_is_seen_by_the_placement_of_the_next_order(config_path: Path, clock: FixedClock) -> None:
    """A hand edit goes through no writer: the check may reuse its state for up to
    `reuse_seconds`, but the placement reads every record under the lock."""
    override_to(config_path, clock, "trial")
    desk = open_desk(config_path, clock)
    assert settled(desk).allowed
    history = config_path.parent / "logs" / "phase" / "phase-history.jsonl"
    with open(history, "ab") as handle:
        handle.write(b'{"not": "a chained line"}\n')
    result = desk.enter("AAPL", "BUY", D("10"))
    assert (result.accepted, result.code) == (False, "phase_records")


def test_with_the_reuse_window_closed_every_check_reads_the_records(config_path: Path, clock: FixedClock) -> None:
    override_to(config_path, clock, "trial")
    desk = open_desk(config_path, clock)
    desk.phase.gate.reuse_seconds = 0.0
    desk.check_entry("AAPL", "BUY", D("10"))
    history = config_path.parent / "logs" / "phase" / "phase-history.jsonl"
    with open(history, "ab") as handle:
        handle.write(b'{"not": "a chained line"}\n')
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert (decision.code, desk.phase.gate.reused) == ("phase_records", False)


def test_a_desk_seen_as_of_a_past_moment_never_reuses_a_check(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    assert desk.enter("AAPL", "BUY", D("10")).accepted
    past = Desk.open(config_path, clock=clock, environ=ENV, as_of=NOW - timedelta(minutes=1))
    past.phase.gate.reuse_seconds = FOREVER
    for _ in range(2):
        past.phase.gate.entry_decision()
    assert not past.phase.gate.reused


# ---- the generation itself ---------------------------------------------------------------


def test_a_hold_that_writes_changes_the_generation_and_one_that_only_reads_does_not(tmp_path: Path) -> None:
    lock = LogsLock(tmp_path)
    assert lock.generation() is None  # nothing written yet
    with lock.held():
        append_durably(tmp_path / "a.jsonl", b"1\n")
        assert lock.generation() is None  # a hold that wrote is open
    first = lock.generation()
    assert first is not None and first[1] % 2 == 0
    with lock.held():
        pass
    assert lock.generation() == first
    with lock.held(), lock.held():  # nested: the outermost hold settles it, once
        append_durably(tmp_path / "a.jsonl", b"2\n")
        append_durably(tmp_path / "a.jsonl", b"3\n")
    second = lock.generation()
    assert second is not None and second != first and second[1] == first[1] + 2


def test_a_second_lock_object_on_the_same_folder_sees_the_other_ones_writes(tmp_path: Path) -> None:
    mine, theirs = LogsLock(tmp_path), LogsLock(tmp_path)
    with theirs.held():
        append_durably(tmp_path / "a.jsonl", b"1\n")
    seen = mine.generation()
    with theirs.held():
        append_durably(tmp_path / "a.jsonl", b"2\n")
    assert mine.generation() not in (None, seen)


def test_a_long_generation_starts_over_as_a_new_file(tmp_path: Path) -> None:
    lock = LogsLock(tmp_path)
    lock.generation_path.parent.mkdir(parents=True)
    lock.generation_path.write_bytes(b"." * GENERATION_RESTART_BYTES)
    before = lock.generation()
    with lock.held():
        append_durably(tmp_path / "a.jsonl", b"1\n")
    after = lock.generation()
    assert before is not None and after is not None
    assert after[0] != before[0] and after[1] == 0


def test_a_deleted_generation_is_not_taken_as_unchanged(config_path: Path, clock: FixedClock) -> None:
    desk = open_desk(config_path, clock)
    assert desk.enter("AAPL", "BUY", D("10")).accepted
    settled(desk)
    desk.lock.generation_path.unlink()
    desk.check_entry("AAPL", "BUY", D("10"))
    assert not desk.phase.gate.reused


def test_a_close_written_to_a_new_journal_file_in_the_same_folder_tick_is_seen(trial: Path, clock: FixedClock) -> None:
    """A close after 20:00 New York lands in the next UTC day's file. If the folder's mtime
    does not move (the file came in the same coarse tick as the folder's last listing), the
    quick look at the files being written to cannot see it: the check must list again."""
    clock.set(datetime(2026, 3, 10, 19, 50, tzinfo=UTC))  # 15:50 EDT
    desk = open_desk(trial, clock)
    other = open_desk(trial, clock)
    entry = other.enter("AAPL", "SELL", D("10"), dollars=D("200"))
    assert entry.record is not None, entry.reason
    clock.set(datetime(2026, 3, 11, 0, 10, tzinfo=UTC))  # 20:10 EDT: the same session, a new UTC date
    settled(desk)
    trades = trial.parent / "logs" / "trades"
    listed_at = time.time_ns() + 60 * 10**9  # ahead of any listing this test makes: a tick the folder is "still in"
    os.utime(trades, ns=(listed_at, listed_at))
    desk.journal.refresh()  # the folder listed "in the same tick" as its mtime
    other.close(entry.record.order_id, D("30"))  # 20 shares short, $400 lost
    assert (trades / "2026-03-11.jsonl").exists()
    os.utime(trades, ns=(listed_at, listed_at))  # the new file left the folder's mtime as it was
    decision = desk.check_entry("AAPL", "BUY", D("10"))
    assert decision.state.session_pnl == D("-400")
