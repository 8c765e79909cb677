"""The session a record was counted in is written with it, so an hours edit never re-buckets the past.

An entry counted in Monday's session stays Monday's entry after `trading.hours` moves
(SPEC §7: a used entry is never given back), and `verify` compares session summaries
with the sessions the bot recorded, not with today's calendar (SPEC §10).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from trading_bot.app import Desk
from trading_bot.broker import PaperBroker
from trading_bot.clock import FixedClock
from trading_bot.errors import JournalError
from trading_bot.logging.trade_record import parse_trade
from trading_bot.phase.models import Phase

D = Decimal
UTC = timezone.utc
PASSWORD = "sessions test password"
MONDAY_0900_EST = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def proof_desk(folder: Path, clock: FixedClock) -> Desk:
    (folder / "config.json").write_text(
        json.dumps({"trading": {"mode": "paper"}, "phase_progression": {"current_phase": "experience"}}), encoding="utf-8"
    )
    desk = Desk.open(folder / "config.json", clock=clock, environ={"PHASE_OVERRIDE_PASSWORD": PASSWORD}, broker=PaperBroker(D("1000000"), clock=clock))
    desk.phase.override(target=Phase.PROOF, reset_progress=False, operator_id="ops", reason="setup", read_password=lambda: PASSWORD)
    return desk


def move_open_to(folder: Path, start_time: str) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["trading"]["hours"] = {"start_time": start_time, "end_time": "16:00", "timezone": "America/New_York"}
    path.write_text(json.dumps(config), encoding="utf-8")


def journal_lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted((folder / "logs" / "trades").glob("*.jsonl")) for line in path.read_text(encoding="utf-8").splitlines()]


def test_moving_the_open_later_does_not_give_back_a_used_proof_entry(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY_0900_EST)
    desk = proof_desk(tmp_path, clock)
    clock.set(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))  # 10:00 EST: the session's one entry
    assert desk.enter("AAPL", "BUY", D("10")).accepted
    clock.set(datetime(2026, 11, 30, 16, 0, tzinfo=UTC))  # 11:00 EST
    assert desk.enter("AAPL", "BUY", D("10")).code == "phase_entry_limit"
    move_open_to(tmp_path, "10:30")  # 10:00 would now fall in Friday's session
    again = desk.enter("AAPL", "BUY", D("10"))
    assert (again.accepted, again.code) == (False, "phase_entry_limit")
    assert [line["outcome"] for line in journal_lines(tmp_path)] == ["open"]


def test_the_bot_records_the_entry_session_and_keeps_it_on_the_close(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY_0900_EST)
    desk = proof_desk(tmp_path, clock)
    clock.set(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    order_id = desk.enter("AAPL", "BUY", D("10")).record.order_id
    clock.set(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))  # Tuesday: closed in the next session
    desk.close(order_id, D("11"))
    opened, closed = journal_lines(tmp_path)
    assert (opened["session"], "exit_session" in opened) == ("2026-11-30", False)
    assert (closed["session"], closed["exit_session"]) == ("2026-11-30", "2026-12-01")


def test_an_hours_edit_leaves_past_session_summaries_verified(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY_0900_EST)
    desk = proof_desk(tmp_path, clock)
    clock.set(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))  # 10:00 EST Monday
    order_id = desk.enter("AAPL", "BUY", D("10")).record.order_id
    clock.set(datetime(2026, 11, 30, 15, 10, tzinfo=UTC))
    desk.close(order_id, D("9"))
    clock.set(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))  # Tuesday: Monday's summary is written
    desk.phase.apply_due()
    assert desk.phase.verify() == []
    move_open_to(tmp_path, "10:30")  # Monday's 10:10 close would now be Friday's
    clock.set(datetime(2026, 12, 1, 16, 0, tzinfo=UTC))  # 11:00 EST Tuesday
    assert desk.state().session == date(2026, 12, 1)  # the desk has read the edit
    assert desk.phase.calendar.session_of(datetime(2026, 11, 30, 15, 10, tzinfo=UTC)) == date(2026, 11, 27)
    assert desk.phase.verify() == []


def test_a_summary_still_notices_a_deleted_close_after_an_hours_edit(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY_0900_EST)
    desk = proof_desk(tmp_path, clock)
    clock.set(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    order_id = desk.enter("AAPL", "BUY", D("10")).record.order_id
    clock.set(datetime(2026, 11, 30, 15, 10, tzinfo=UTC))
    desk.close(order_id, D("9"))
    clock.set(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    desk.phase.apply_due()
    move_open_to(tmp_path, "10:30")
    desk.state()
    path = next((tmp_path / "logs" / "trades").glob("*.jsonl"))
    path.write_text(path.read_text(encoding="utf-8").splitlines(keepends=True)[0], encoding="utf-8")
    problems = [problem.reason for problem in desk.phase.verify()]
    assert any("session 2026-11-30 summary records 1 trades" in message for message in problems)


# ---- the journal reader --------------------------------------------------------------------

LINE = {"timestamp": "2026-11-30T15:00:00Z", "symbol": "AAPL", "action": "BUY", "quantity": 1, "price": "10", "order_id": "o-1"}
CLOSE = {**LINE, "exit_timestamp": "2026-12-01T15:00:00Z", "outcome": "loss", "net_profit_loss": "-1"}


def test_a_line_without_recorded_sessions_reads_as_before() -> None:
    record = parse_trade(dict(CLOSE), "t.jsonl", 1)
    assert (record.session, record.exit_session) == (None, None)
    assert "session" not in record.to_json_dict()


def test_recorded_sessions_are_read_and_written_back() -> None:
    record = parse_trade({**CLOSE, "session": "2026-11-30", "exit_session": "2026-12-01"}, "t.jsonl", 1)
    assert (record.session, record.exit_session) == (date(2026, 11, 30), date(2026, 12, 1))
    written = record.to_json_dict()
    assert (written["session"], written["exit_session"]) == ("2026-11-30", "2026-12-01")
    assert "session" not in record.extra


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("session", "30/11/2026", "must be a date (YYYY-MM-DD)"),
        ("session", 20261130, "must be a date (YYYY-MM-DD)"),
        ("session", "2026-11-30T00:00:00" * 3, "must be a date (YYYY-MM-DD)"),
        ("exit_session", "2026-02-30", "must be a date (YYYY-MM-DD)"),
    ],
)
def test_a_malformed_recorded_session_names_its_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(JournalError) as caught:
        parse_trade({**CLOSE, field: value}, "t.jsonl", 7)
    assert (caught.value.line, caught.value.field, caught.value.message) == (7, field, message)


@pytest.mark.parametrize(
    ("days_before", "allowed"),
    [(-1, True), (-2, False), (7, True), (8, False)],
)
def test_a_recorded_session_lies_within_a_week_before_its_instant(days_before: int, allowed: bool) -> None:
    """A session opens at most a week before a moment in it (a long weekend plus holidays),
    and a time zone east of UTC can put it one calendar day after the UTC date."""
    session = (date(2026, 11, 30) - timedelta(days=days_before)).isoformat()
    for field, moment in (("session", "timestamp"), ("exit_session", "exit_timestamp")):
        data = {**CLOSE, field: session, moment: "2026-11-30T15:00:00Z", "timestamp": "2026-11-30T15:00:00Z"}
        if allowed:
            parse_trade(data, "t.jsonl", 1)
        else:
            with pytest.raises(JournalError) as caught:
                parse_trade(data, "t.jsonl", 1)
            assert caught.value.field == field
            assert caught.value.message == "must lie between a week before and a day after the record's instant"
