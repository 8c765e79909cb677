"""A system clock that steps back (NTP): records stay in order, a close never precedes its
entry, the bot never rejects its own journal, and a lockout cannot be lifted by the clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.phase.conftest import PASSWORD, Desk
from trading_bot.clock import CLOCK_TOLERANCE, FixedClock
from trading_bot.durable_files import LogsLock
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


def test_a_clock_far_in_the_past_halts_entries_and_as_of_views_alike(desk: Desk) -> None:
    desk.trade(5)
    recorded = desk.now()
    desk.at(datetime(2001, 1, 2, 15, 0, tzinfo=UTC))
    code, out, err = desk.cli("check-trade")
    assert (code, out) == (2, "") and "future" in err and err.count("\n") == 1
    refused = desk.enter()
    assert not refused.accepted and "future" in (refused.reason or "")
    code, out, err = desk.cli("status", "--as-of", recorded.isoformat())
    assert (code, out) == (2, "") and "--as-of" in err
    code, out, err = desk.cli("status", "--as-of", "2001-01-02T14:00:00Z")
    assert code == 2 and "future" in err and err.count("\n") == 1
