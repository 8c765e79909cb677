"""A system clock that steps back (NTP): records stay in order, a close never precedes its
entry, the bot never rejects its own journal, and a lockout cannot be lifted by the clock."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import journal_line
from tests.phase.conftest import PASSWORD, SHIPPED_CONFIG, Desk, advance_to
from trading_bot.clock import CLOCK_TOLERANCE, FixedClock
from trading_bot.durable_files import LogsLock
from trading_bot.high_water import HIGH_WATER_STEP, LATEST_HIGH_WATER, HighWater
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.structured_logger import StructuredTradeLogger
from trading_bot.logging.trade_record import TradeRecord, parse_trade
from trading_bot.phase.chained_log import ChainedLog
from trading_bot.phase.password import PasswordAttempt, lockout_state

UTC = timezone.utc
T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def journal_lines(desk: Desk) -> list[dict[str, Any]]:
    return [
        json.loads(raw)
        for path in sorted((desk.logs_dir / "trades").glob("*.jsonl"))
        for raw in path.read_bytes().splitlines()
    ]


def open_record(order_id: str, at: datetime) -> TradeRecord:
    return TradeRecord(timestamp=at, symbol="AAPL", action="BUY", quantity=1, price=Decimal("10"), order_id=order_id)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- a close is never before its entry ---------------------------------------------------


def test_close_after_the_clock_stepped_back_is_stamped_at_its_entry_and_the_journal_stays_valid(desk: Desk) -> None:
    entry = desk.enter()
    assert entry.accepted and entry.record is not None
    entered_at = entry.record.timestamp
    desk.at(entered_at - timedelta(minutes=30))  # NTP steps the clock back
    closed = desk.close(entry, -5)

    written = journal_lines(desk)[-1]
    assert written["exit_timestamp"] == written["timestamp"]
    assert written["clock_reading"].startswith((entered_at - timedelta(minutes=29)).strftime("%Y-%m-%dT%H:%M"))
    assert closed.exit_timestamp == entered_at
    parse_trade(written, "journal", 2)  # the bot never writes a record it would reject
    desk.at(entered_at + timedelta(minutes=1))
    assert desk.cli("verify")[0] == 0
    code, check = desk.cli_json("check-trade")
    assert code == 0 and check["allowed"] is True


@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(0), timedelta(seconds=1)], ids=["before", "at", "after"])
def test_closed_takes_the_later_of_the_exit_asked_for_and_the_entry(offset: timedelta) -> None:
    closed = open_record("o-1", T).closed(exit_timestamp=T + offset, net_pnl=Decimal("1"))
    assert closed.exit_timestamp == max(T, T + offset)
    assert ("clock_reading" in closed.extra) is (offset < timedelta(0))


# ---- every journal line is no earlier than the line before it -----------------------------


@pytest.mark.parametrize("offset", [timedelta(microseconds=-1), timedelta(0), timedelta(microseconds=1)], ids=["before", "at", "after"])
def test_journal_line_is_never_stamped_before_the_line_before_it(tmp_path: Path, offset: timedelta) -> None:
    writer = StructuredTradeLogger(tmp_path / "trades", LogsLock(tmp_path))
    (tmp_path / "trades").mkdir()
    path = writer.log_trade(open_record("o-1", T), T)
    writer.log_trade(open_record("o-2", T + offset), T + offset)
    second = json.loads(path.read_bytes().splitlines()[1])
    assert parse_trade(second, "j", 2).timestamp == max(T, T + offset)
    assert ("clock_reading" in second) is (offset < timedelta(0))


def test_a_close_written_after_a_later_line_is_stamped_no_earlier_than_it(tmp_path: Path) -> None:
    (tmp_path / "trades").mkdir()
    writer = StructuredTradeLogger(tmp_path / "trades", LogsLock(tmp_path))
    path = writer.log_trade(open_record("o-1", T), T)
    writer.log_trade(open_record("o-2", T + timedelta(minutes=10)), T + timedelta(minutes=10))
    early_close = open_record("o-1", T).closed(exit_timestamp=T + timedelta(minutes=5), net_pnl=Decimal("1"))
    writer.log_trade(early_close, T + timedelta(minutes=5))
    third = json.loads(path.read_bytes().splitlines()[2])
    assert third["exit_timestamp"] == "2026-03-10T15:10:00Z"
    assert third["clock_reading"] == "2026-03-10T15:05:00Z"
    journal = TradeJournal(tmp_path / "trades")
    journal.refresh()
    assert journal.problem(T + timedelta(minutes=10)) is None


# ---- phase logs --------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [timedelta(microseconds=-1), timedelta(0), timedelta(microseconds=1)], ids=["before", "at", "after"])
def test_phase_log_line_is_never_stamped_before_the_line_before_it(tmp_path: Path, offset: timedelta) -> None:
    clock = FixedClock(T)
    log = ChainedLog(tmp_path / "h.jsonl", LogsLock(tmp_path), clock)
    log.append("first", {})
    clock.set(T + offset)
    line = log.append("second", {})
    assert line.timestamp == max(T, T + offset)
    assert line.data.get("stamp_raised_from") == (stamp(T + offset) if offset < timedelta(0) else None)
    assert log.verify() == []


def test_a_back_dated_record_is_stamped_at_the_line_before_and_keeps_the_asked_instant(tmp_path: Path) -> None:
    log = ChainedLog(tmp_path / "h.jsonl", LogsLock(tmp_path), FixedClock(T))
    log.append("first", {})
    line = log.append("summary", {"closed_at": stamp(T - timedelta(hours=3))}, T - timedelta(hours=3))
    assert line.timestamp == T and line.data["stamp_raised_from"] == stamp(T - timedelta(hours=3))


# ---- the password lockout ----------------------------------------------------------------


def wrong(desk: Desk) -> int:
    return desk.cli("override", "--to", "proof", "--operator", "m", "--reason", "r", "--password-stdin", stdin="guess\n")[0]


def right(desk: Desk) -> tuple[int, str, str]:
    return desk.cli("override", "--to", "proof", "--operator", "m", "--reason", "r", "--password-stdin", stdin=PASSWORD + "\n")


def test_moving_the_clock_back_30_minutes_does_not_lift_a_lockout(desk: Desk) -> None:
    for _ in range(5):
        assert wrong(desk) == 1
        desk.tick()
    locked_at = desk.now()
    desk.at(locked_at - timedelta(minutes=30))
    code, _, err = right(desk)
    assert code == 1 and "locked" in err
    assert desk.transitions() == []


def test_thirty_guesses_with_the_clock_an_hour_behind_still_lock(desk: Desk) -> None:
    assert desk.cli("status")[0] == 0
    desk.at(desk.now() - timedelta(hours=1))
    outcomes = []
    for _ in range(30):
        wrong(desk)
        desk.tick()
    outcomes = [line["outcome"] for line in desk.overrides() if line["type"] == "override_attempt"]
    assert outcomes[:5] == ["wrong_password"] * 5 and set(outcomes[5:]) == {"locked_out"}
    code, _, err = right(desk)
    assert code == 1 and "locked" in err


def test_lockout_counts_attempts_in_log_order_even_when_stamped_earlier() -> None:
    attempts = [PasswordAttempt(T, "success")] + [
        PasswordAttempt(T - timedelta(hours=1) + timedelta(seconds=index), "wrong_password") for index in range(30)
    ]
    state = lockout_state(attempts, T - timedelta(minutes=59))
    assert state.locked_until is not None and state.locked_until >= T


@pytest.mark.parametrize(("behind", "locked"), [(timedelta(minutes=14, seconds=59), True), (timedelta(minutes=15), False)])
def test_lockout_ends_15_minutes_after_the_fifth_failure_by_log_time(behind: timedelta, locked: bool) -> None:
    attempts = [PasswordAttempt(T + timedelta(seconds=index), "wrong_password") for index in range(5)]
    fifth = T + timedelta(seconds=4)
    assert (lockout_state(attempts, fifth + behind).locked_until is not None) is locked


# ---- the clock tolerance and --as-of -----------------------------------------------------


@pytest.mark.parametrize(
    ("ahead", "problem"),
    [(CLOCK_TOLERANCE - timedelta(microseconds=1), False), (CLOCK_TOLERANCE, False), (CLOCK_TOLERANCE + timedelta(microseconds=1), True)],
    ids=["below", "at", "above"],
)
def test_a_trade_is_future_dated_only_beyond_the_clock_tolerance(tmp_path: Path, ahead: timedelta, problem: bool) -> None:
    (tmp_path / "trades").mkdir()
    writer = StructuredTradeLogger(tmp_path / "trades", LogsLock(tmp_path))
    writer.log_trade(open_record("o-1", T + ahead), T + ahead)
    journal = TradeJournal(tmp_path / "trades")
    journal.refresh()
    assert (journal.problem(T) is not None) is problem


def test_as_of_later_than_the_real_clock_is_refused_as_bad_input(desk: Desk) -> None:
    desk.trade(5)
    later = desk.now() + CLOCK_TOLERANCE + timedelta(seconds=1)
    code, out, err = desk.cli("status", "--as-of", later.isoformat())
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "--as-of" in err and "after" in err
    code, _, err = desk.cli("status", "--as-of", desk.now().isoformat())
    assert code == 0, err


# ---- a step back beyond the tolerance: the desk still reads its own records --------------


def high_water(desk: Desk) -> datetime:
    recorded = HighWater(desk.logs_dir).read()
    assert recorded is not None
    return recorded


def every_command(desk: Desk) -> dict[str, tuple[int, str]]:
    """Each command's exit code and stderr (check-trade apart: entries wait for the clock)."""
    day = desk.calendar.session_of(high_water(desk)).isoformat()
    runs = {
        "status": desk.cli("status"),
        "acknowledge": desk.cli("acknowledge", "--operator", "m"),
        "recover": desk.cli("recover"),
        "export": desk.cli("export", "--start", day, "--end", day),
        "report": desk.cli("report", "--output", str(desk.root / "report.html")),
        "verify": desk.cli("verify"),
        "emergency exit check": desk.cli("check-trade", "--emergency-exit"),
    }
    return {name: (code, err) for name, (code, _, err) in runs.items()}


def clock_notes(desk: Desk) -> list[dict[str, Any]]:
    return [line for line in desk.overrides() if line["type"] == "clock_stepped_back"]


@pytest.mark.parametrize("step", [timedelta(minutes=30), timedelta(hours=3)], ids=["30min", "3h"])
def test_after_a_step_back_every_command_answers_as_it_did_before(desk: Desk, step: timedelta) -> None:
    desk.trade(5)
    before = every_command(desk)
    assert all("invalid" not in err for _, err in before.values())
    desk.at(desk.now() - step)
    after = every_command(desk)
    assert {name: code for name, (code, _) in after.items()} == {name: code for name, (code, _) in before.items()}
    assert all("invalid" not in err and "future" not in err for _, err in after.values())


@pytest.mark.parametrize("step", [timedelta(minutes=30), timedelta(hours=3)], ids=["30min", "3h"])
def test_after_a_step_back_entries_wait_for_the_clock_and_exits_go_on(desk: Desk, step: timedelta) -> None:
    held = desk.enter()
    assert held.accepted and held.record is not None
    desk.trade(5)
    latest = high_water(desk)
    desk.at(latest - step)

    code, check = desk.cli_json("check-trade")
    assert (code, check["allowed"]) == (1, False)
    assert check["code"] == "clock_behind" and latest.strftime("%Y-%m-%dT%H:%M") in check["reason"]
    refused = desk.enter()
    assert not refused.accepted and refused.code == "clock_behind"

    closed = desk.close(held, -3)
    assert closed.exit_timestamp is not None and closed.exit_timestamp >= held.record.timestamp
    desk.at(latest + timedelta(minutes=1))  # the clock caught up
    assert desk.enter().accepted
    assert desk.cli("verify")[0] == 0


def test_the_step_back_is_recorded_once_naming_the_reading_the_high_water_and_who_noticed(desk: Desk) -> None:
    desk.trade(5)
    latest = high_water(desk)
    desk.at(latest - timedelta(hours=3))
    desk.cli("status")
    desk.cli("check-trade")
    desk.enter()
    desk.start()
    desk.enter()
    notes = clock_notes(desk)
    assert len(notes) == 1
    assert notes[0]["clock_reading"] == stamp(latest - timedelta(hours=3))
    assert notes[0]["high_water"] == stamp(latest)
    assert notes[0]["noticed_by"].startswith("status")
    assert desk.cli("verify")[0] == 0


def test_a_later_step_back_from_a_new_high_water_is_recorded_again(desk: Desk) -> None:
    desk.trade(5)
    desk.at(high_water(desk) - timedelta(hours=1))
    desk.cli("status")
    desk.at(high_water(desk) + timedelta(days=1))
    desk.next_session()
    desk.trade(5)
    desk.at(high_water(desk) - timedelta(hours=1))
    desk.cli("status")
    assert [note["high_water"] for note in clock_notes(desk)] == sorted({note["high_water"] for note in clock_notes(desk)})
    assert len(clock_notes(desk)) == 2


@pytest.mark.parametrize(
    ("behind", "waits"),
    [(CLOCK_TOLERANCE - timedelta(seconds=1), False), (CLOCK_TOLERANCE, False), (CLOCK_TOLERANCE + timedelta(seconds=1), True)],
    ids=["below", "at", "above"],
)
def test_entries_wait_only_when_the_clock_is_behind_the_high_water_by_more_than_the_tolerance(
    desk: Desk, behind: timedelta, waits: bool
) -> None:
    desk.trade(5)
    latest = high_water(desk)
    desk.at(latest - behind)
    code, check = desk.cli_json("check-trade")
    assert (check.get("code") == "clock_behind") is waits
    assert (len(clock_notes(desk)) == 1) is waits


# ---- a hand-written line is still judged: against the high-water now ----------------------


def hand_written_close(desk: Desk, at: datetime) -> Path:
    """A person appends a winning close dated `at` to the journal."""
    path = desk.logs_dir / "trades" / "hand.jsonl"
    path.write_text(journal_line(order_id="forged-1", timestamp=stamp(at), exit_timestamp=stamp(at), outcome="win", net_profit_loss="50"))
    return path


@pytest.mark.parametrize(
    ("after", "refused"),
    [(CLOCK_TOLERANCE - timedelta(seconds=1), False), (CLOCK_TOLERANCE, False), (CLOCK_TOLERANCE + timedelta(seconds=1), True)],
    ids=["below", "at", "above"],
)
def test_a_hand_written_line_is_future_dated_beyond_the_tolerance_after_the_high_water(
    desk: Desk, after: timedelta, refused: bool
) -> None:
    desk.trade(5)
    latest = high_water(desk)
    desk.at(latest - timedelta(hours=3))  # the high-water, not the clock, is the later instant
    path = hand_written_close(desk, latest + after)
    code, out, err = desk.cli("status")
    if refused:
        assert (code, out) == (2, "")
        assert err.startswith(f"{path}:1: exit_timestamp:") and "future" in err and err.count("\n") == 1
    else:
        assert code == 0, err


def test_a_hand_raised_high_water_grants_no_more_than_a_present_dated_forged_line(desk: Desk) -> None:
    desk.trade(5)
    raised = desk.now() + timedelta(days=30)
    (desk.logs_dir / "high_water").write_text(stamp(raised) + "\n")
    hand_written_close(desk, raised)
    code, check = desk.cli_json("check-trade")
    # The forged line is read, as a present-dated one would be, but the desk now believes
    # its clock is a month behind: entries wait, and the audit trail says why.
    assert (code, check["code"]) == (1, "clock_behind")
    assert clock_notes(desk)[0]["high_water"] == stamp(raised)
    assert desk.cli("status")[0] == 0
    assert desk.cli("verify")[0] == 0


def test_a_high_water_at_the_end_of_the_calendar_is_not_read_and_a_line_dated_there_stays_refused(desk: Desk) -> None:
    desk.trade(5)
    (desk.logs_dir / "high_water").write_text(stamp(LATEST_HIGH_WATER) + "\n")
    assert HighWater(desk.logs_dir).read() is None
    assert desk.cli_json("check-trade")[0] == 0  # no trust extended: the clock alone judges
    path = hand_written_close(desk, datetime(9999, 12, 31, 23, 0, tzinfo=UTC))
    code, out, err = desk.cli("status")
    assert (code, out) == (2, "") and err.startswith(f"{path}:1: exit_timestamp:") and "Traceback" not in err


def test_a_high_water_just_below_the_ceiling_halts_entries_and_every_command_answers(desk: Desk) -> None:
    desk.trade(5)
    (desk.logs_dir / "high_water").write_text(stamp(LATEST_HIGH_WATER - timedelta(microseconds=1)) + "\n")
    hand_written_close(desk, LATEST_HIGH_WATER - timedelta(microseconds=1))
    code, check = desk.cli_json("check-trade")
    assert (code, check["code"]) == (1, "clock_behind")
    for command in ("status", "verify"):
        code, _, err = desk.cli(command)
        assert code in (0, 1) and "Traceback" not in err, err


@pytest.mark.parametrize("content", [b"", b"yesterday\n", b"9" * 100, b"\xff\xfe\n"], ids=["empty", "words", "long", "bytes"])
def test_an_unreadable_high_water_extends_no_trust_and_the_next_write_replaces_it(desk: Desk, content: bytes) -> None:
    desk.trade(5)
    latest = high_water(desk)
    (desk.logs_dir / "high_water").write_bytes(content)
    assert HighWater(desk.logs_dir).read() is None
    desk.at(latest - timedelta(hours=3))
    code, _, err = desk.cli("status")
    assert code == 2 and "future" in err  # judged against the clock alone, as before the high-water
    desk.at(latest + timedelta(minutes=2))
    desk.trade(5)
    assert high_water(desk) > latest


# ---- a clock far in the past, and --as-of -----------------------------------------------


def test_a_clock_far_in_the_past_halts_entries_naming_the_clock_while_commands_answer(desk: Desk) -> None:
    desk.trade(5)
    recorded = desk.now()
    desk.at(datetime(2001, 1, 2, 15, 0, tzinfo=UTC))
    code, check = desk.cli_json("check-trade")
    assert (code, check["code"]) == (1, "clock_behind")
    assert "the clock reads 2001-01-02T15:00:00" in check["reason"]
    refused = desk.enter()
    assert not refused.accepted and refused.code == "clock_behind"
    for command in ("status", "verify"):
        code, _, err = desk.cli(command)
        assert code == 0, err
    code, _, err = desk.cli("status", "--as-of", recorded.isoformat())
    assert code == 0, err
    code, _, err = desk.cli("status", "--as-of", "2001-01-02T14:00:00Z")
    assert code == 0, err


@pytest.mark.parametrize(
    ("after", "refused"),
    [(CLOCK_TOLERANCE - timedelta(seconds=1), False), (CLOCK_TOLERANCE, False), (CLOCK_TOLERANCE + timedelta(seconds=1), True)],
    ids=["below", "at", "above"],
)
def test_as_of_is_refused_only_beyond_the_tolerance_after_the_high_water(desk: Desk, after: timedelta, refused: bool) -> None:
    desk.trade(5)
    latest = high_water(desk)
    desk.at(latest - timedelta(hours=3))
    code, out, err = desk.cli("status", "--as-of", stamp(latest + after))
    if refused:
        assert (code, out) == (2, "") and "--as-of" in err and err.count("\n") == 1
    else:
        assert code == 0, err


# ---- the writers raise the high-water before they append ---------------------------------


@pytest.mark.parametrize(
    ("later", "rewritten"),
    [(HIGH_WATER_STEP - timedelta(microseconds=1), False), (HIGH_WATER_STEP, False), (HIGH_WATER_STEP + timedelta(microseconds=1), True)],
    ids=["below", "at", "above"],
)
def test_the_high_water_is_rewritten_only_beyond_its_step(tmp_path: Path, later: timedelta, rewritten: bool) -> None:
    mark = HighWater(tmp_path)
    mark.raise_to(T)
    mark.raise_to(T + later)
    assert HighWater(tmp_path).read() == (T + later if rewritten else T)


def test_the_high_water_never_moves_back(tmp_path: Path) -> None:
    mark = HighWater(tmp_path)
    mark.raise_to(T)
    mark.raise_to(T - timedelta(hours=3))
    assert HighWater(tmp_path).read() == T


def test_the_journal_writer_raises_the_high_water_before_its_line_lands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "trades").mkdir()
    writer = StructuredTradeLogger(tmp_path / "trades", LogsLock(tmp_path))
    real_open = os.open

    def disk_fails_on_the_journal(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith(".jsonl") and flags & os.O_WRONLY:  # the append, not the look at the last line
            raise OSError(errno.EIO, "input/output error", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", disk_fails_on_the_journal)
    with pytest.raises(OSError):
        writer.log_trade(open_record("o-1", T), T)
    monkeypatch.undo()
    assert not list((tmp_path / "trades").iterdir())
    assert HighWater(tmp_path).read() == T  # a crash after the raise leaves it ahead, never behind


def test_the_journal_writer_raises_the_high_water_to_the_instant_it_stamped(tmp_path: Path) -> None:
    (tmp_path / "trades").mkdir()
    writer = StructuredTradeLogger(tmp_path / "trades", LogsLock(tmp_path))
    writer.log_trade(open_record("o-1", T + timedelta(minutes=10)), T + timedelta(minutes=10))
    writer.log_trade(open_record("o-2", T), T)  # the clock stepped back: stamped at the line before
    assert HighWater(tmp_path).read() == T + timedelta(minutes=10)


def test_a_phase_log_append_raises_the_high_water(tmp_path: Path) -> None:
    log = ChainedLog(tmp_path / "phase" / "h.jsonl", LogsLock(tmp_path), FixedClock(T))
    line = log.append("first", {})
    assert HighWater(tmp_path).read() == line.timestamp == T


def test_a_close_after_a_step_back_into_a_summarised_session_counts_in_the_latest_one(desk: Desk) -> None:
    held = desk.enter()
    assert held.accepted and held.record is not None
    monday = desk.day
    desk.next_session()
    desk.trade(5)
    assert any(line["type"] == "session_summary" and line["date"] == monday.isoformat() for line in desk.history())
    latest = high_water(desk)
    reading = held.record.timestamp + timedelta(hours=2)  # the clock steps back into Monday
    desk.at(reading - timedelta(minutes=1))
    closed = desk.close(held, -3)  # close() ticks one minute first
    assert closed.exit_timestamp is not None and closed.exit_timestamp >= latest
    assert closed.exit_session == desk.calendar.session_of(latest) != monday
    written = [line for line in journal_lines(desk) if line["order_id"] == held.record.order_id and line["outcome"] != "open"]
    assert [line["clock_reading"] for line in written] == [stamp(reading).replace(".000000", "")]
    desk.at(latest + timedelta(minutes=10))
    code, out, err = desk.cli("verify")
    assert code == 0, out + err


def test_a_close_raised_twice_keeps_the_clock_reading_it_was_asked_for() -> None:
    closed = open_record("o-1", T).closed(exit_timestamp=T - timedelta(hours=1), net_pnl=Decimal("1"))
    raised = closed.stamped_no_earlier_than(T + timedelta(hours=1))
    assert raised.exit_timestamp == T + timedelta(hours=1)
    assert raised.extra["clock_reading"] == closed.extra["clock_reading"] == "2026-03-10T14:00:00Z"


def test_a_phase_log_line_raises_the_high_water_exactly_however_small_the_step(tmp_path: Path) -> None:
    clock = FixedClock(T)
    log = ChainedLog(tmp_path / "phase" / "h.jsonl", LogsLock(tmp_path), clock)
    log.append("first", {})
    clock.set(T + timedelta(microseconds=1))
    log.append("second", {})
    assert HighWater(tmp_path).read() == T + timedelta(microseconds=1)


def test_a_breaker_tripped_before_a_step_back_is_acknowledged_after_it(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.trades(-5, -5, -5, per_session=1)
    assert desk.transitions()[-1]["kind"] == "downgrade"
    latest = high_water(desk)
    desk.at(latest - timedelta(hours=3))
    code, _, err = desk.cli("acknowledge", "--operator", "m", "--note", "reviewed")
    assert code == 0, err
    acks = [line for line in desk.history() if line["type"] == "breaker_ack"]
    assert len(acks) == 1 and acks[0]["timestamp"] >= desk.history()[-2]["timestamp"]
    code, status = desk.cli_json("status")
    assert code == 0 and status["circuit_breaker"]["tripped"] is False
    assert status["entry_refusal_code"] == "clock_behind"
    assert desk.cli("verify")[0] == 0


def test_within_one_read_the_high_water_is_looked_at_once(tmp_path: Path) -> None:
    mark = HighWater(tmp_path)
    mark.raise_to(T)
    other_process = HighWater(tmp_path)
    with mark.one_read():
        assert mark.read() == T
        other_process.raise_to(T + timedelta(hours=1))
        assert mark.read() == T  # one answer for one pre-trade check
    assert mark.read() == T + timedelta(hours=1)


def test_whole_processes_on_a_clock_three_hours_behind_the_desk_read_its_journal(tmp_path: Path) -> None:
    """The desk wrote while its clock ran three hours ahead; NTP set it right. Real
    `python -m trading_bot.phase` processes on the real clock read what it wrote."""
    shutil.copyfile(SHIPPED_CONFIG, tmp_path / "config.json")
    ahead = datetime.now(UTC) + timedelta(hours=3)
    writer = StructuredTradeLogger(tmp_path / "logs" / "trades", LogsLock(tmp_path / "logs"))
    entry = open_record("o-1", ahead)
    writer.log_trade(entry, ahead)
    writer.log_trade(entry.closed(exit_timestamp=ahead + timedelta(minutes=5), net_pnl=Decimal("2")), ahead + timedelta(minutes=5))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHASE_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trading_bot.phase", *args], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60
        )

    status = run("status")
    assert (status.returncode, status.stderr) == (0, "")
    check = run("check-trade", "--json")
    assert check.returncode == 1 and json.loads(check.stdout)["code"] == "clock_behind"
    verify = run("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    overrides = [json.loads(raw) for raw in (tmp_path / "logs" / "phase" / "phase-overrides.jsonl").read_text().splitlines()]
    notes = [line for line in overrides if line["type"] == "clock_stepped_back"]
    assert len(notes) == 1 and notes[0]["noticed_by"].startswith("status (")
    assert notes[0]["high_water"] == stamp(ahead + timedelta(minutes=5))
