"""Enforcement before every trade (SPEC §7), through the real bot loop and `check-trade`."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tests.phase.conftest import Desk, advance_to
from trading_bot.mode_switcher import LiveModeRefused

LIMIT_REACHED = "1/1 trades this session (proof); next trade allowed"


def entry_refusals(desk: Desk) -> list[dict[str, Any]]:
    return [line for line in desk.overrides() if line["type"] == "entry_refused"]


def journal_lines(desk: Desk) -> list[dict[str, Any]]:
    lines = []
    for path in sorted((desk.logs_dir / "trades").glob("*.jsonl")):
        lines.extend(json.loads(text) for text in path.read_text(encoding="utf-8").splitlines() if text.strip())
    return lines


def journal_file(desk: Desk):  # noqa: ANN201 - a Path
    [path] = sorted((desk.logs_dir / "trades").glob("*.jsonl"))
    return path


def trip_breaker(desk: Desk) -> None:
    """Three losses in trial: down to proof with the breaker tripped."""
    desk.trades(-5, -5, -5)
    assert desk.app.state().phase.value == "proof"


def refused(desk: Desk) -> str:
    result = desk.enter()
    assert not result.accepted
    assert result.reason is not None
    return result.reason


# ---- one entry per session in proof ------------------------------------------------------


def test_proof_allows_one_entry_per_session(desk: Desk) -> None:
    advance_to(desk, "proof")
    assert desk.enter().accepted
    assert refused(desk).startswith(LIMIT_REACHED)


def test_limit_message_names_count_limit_and_next_open(desk: Desk) -> None:
    advance_to(desk, "proof")  # Monday 2026-03-02 10:00 EST
    assert desk.enter().accepted
    assert refused(desk) == "1/1 trades this session (proof); next trade allowed 2026-03-03 07:00 EST (in 21h 0m)"


def test_a_closed_trade_still_counts_against_the_limit(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.trade(5)
    desk.at(datetime(2026, 3, 2, 16, 0, tzinfo=timezone.utc))
    assert refused(desk) == "1/1 trades this session (proof); next trade allowed 2026-03-03 07:00 EST (in 20h 0m)"


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 3, 13), "2026-03-16 07:00 EDT (in 71h 0m)"),  # Friday → Monday
        (date(2026, 4, 2), "2026-04-06 07:00 EDT (in 95h 0m)"),  # Thursday → Monday, Good Friday closed
        (date(2026, 3, 6), "2026-03-09 07:00 EDT (in 70h 0m)"),  # Friday EST → Monday EDT
    ],
    ids=["weekend", "good-friday", "dst"],
)
def test_next_allowed_entry_skips_weekends_holidays_and_follows_dst(desk: Desk, day: date, expected: str) -> None:
    advance_to(desk, "proof")
    desk.open_session(day)  # 08:00 local
    assert desk.enter().accepted
    assert refused(desk) == f"{LIMIT_REACHED} {expected}"


def test_before_the_open_the_previous_sessions_count_still_applies(desk: Desk) -> None:
    advance_to(desk, "proof")
    assert desk.enter().accepted
    desk.at(datetime(2026, 3, 3, 11, 30, tzinfo=timezone.utc))  # Tuesday 06:30 EST
    assert refused(desk) == f"{LIMIT_REACHED} 2026-03-03 07:00 EST (in 30m)"
    desk.at(datetime(2026, 3, 3, 12, 0, tzinfo=timezone.utc))
    assert desk.enter().accepted


def test_the_phase_limit_is_checked_before_the_trading_hours(desk: Desk) -> None:
    advance_to(desk, "proof")
    assert desk.enter().accepted
    desk.at(datetime(2026, 3, 2, 22, 0, tzinfo=timezone.utc))  # 17:00 New York, after end_time
    assert refused(desk).startswith(LIMIT_REACHED)


def test_next_session_allows_an_entry_again(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.trade(5)
    desk.next_session()
    assert desk.enter().accepted


def test_the_session_count_survives_a_restart(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.trade(5)
    desk.start()
    assert refused(desk).startswith(LIMIT_REACHED)


def test_a_mid_session_downgrade_does_not_free_an_entry(desk: Desk) -> None:
    advance_to(desk, "trial")
    trip_breaker(desk)
    desk.cli("acknowledge", "--operator", "alice")
    assert refused(desk).startswith("3/1 trades this session (proof); next trade allowed 2026-03-03 07:00 EST")


def test_unlimited_phases_have_no_session_limit(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(*[5] * 6)
    assert desk.enter().accepted


# ---- exits are never blocked ----------------------------------------------------------------


def test_closing_is_allowed_once_the_limit_is_reached(desk: Desk) -> None:
    advance_to(desk, "proof")
    entry = desk.enter()
    refused(desk)
    record = desk.close(entry, 5)
    assert record.outcome == "win"


def test_an_ordinary_close_is_allowed_while_the_breaker_is_tripped(desk: Desk) -> None:
    advance_to(desk, "trial")
    entry = desk.enter()
    trip_breaker(desk)
    record = desk.close(entry, 5)
    assert record.outcome == "win"


def test_emergency_exit_is_allowed_while_the_breaker_is_tripped_and_recorded(desk: Desk) -> None:
    advance_to(desk, "trial")
    entry = desk.enter()
    trip_breaker(desk)
    record = desk.close(entry, -2, emergency=True)
    assert record.emergency_exit
    [line] = [line for line in desk.overrides() if line["type"] == "emergency_exit"]
    assert line["order_id"] == record.order_id
    assert line["operator_id"] == "bot"


def test_emergency_exit_records_the_operator_who_forced_it(desk: Desk) -> None:
    advance_to(desk, "trial")
    entry = desk.enter()
    assert entry.record is not None
    desk.tick()
    desk.bot.close_position(entry.record.order_id, Decimal("9"), emergency_exit=True, operator_id="alice")
    [line] = [line for line in desk.overrides() if line["type"] == "emergency_exit"]
    assert line["operator_id"] == "alice"


def test_check_trade_allows_an_emergency_exit_while_the_breaker_is_tripped(desk: Desk) -> None:
    advance_to(desk, "trial")
    trip_breaker(desk)
    code, payload = desk.cli_json("check-trade", "--emergency-exit")
    assert code == 0
    assert payload["allowed"] is True


# ---- the order of refusals --------------------------------------------------------------------


def _corrupt_history(desk: Desk) -> None:
    path = desk.logs_dir / "phase" / "phase-history.jsonl"
    text = path.read_text(encoding="utf-8")
    assert "test setup" in text
    path.write_text(text.replace("test setup", "test setuP", 1), encoding="utf-8")


def test_damaged_phase_log_refuses_entries(desk: Desk) -> None:
    advance_to(desk, "trial")
    _corrupt_history(desk)
    reason = refused(desk)
    assert reason.startswith("phase log damaged")
    assert entry_refusals(desk)[-1]["check"] == "phase_records"


def test_damaged_phase_log_beats_a_tripped_breaker(desk: Desk) -> None:
    advance_to(desk, "trial")
    trip_breaker(desk)
    _corrupt_history(desk)
    desk.next_session()
    assert refused(desk).startswith("phase log damaged")


def test_damaged_phase_log_still_allows_exits(desk: Desk) -> None:
    advance_to(desk, "trial")
    first, second = desk.enter(), desk.enter()
    _corrupt_history(desk)
    assert desk.close(first, -2, emergency=True).emergency_exit
    assert desk.close(second, 5).outcome == "win"


def test_invalid_journal_line_beats_a_tripped_breaker(desk: Desk) -> None:
    advance_to(desk, "trial")
    trip_breaker(desk)
    with journal_file(desk).open("a", encoding="utf-8") as handle:
        handle.write("this is not json\n")
    assert "journal has an invalid line" in refused(desk)


def test_check_trade_allows_an_emergency_exit_while_the_logs_are_damaged(desk: Desk) -> None:
    advance_to(desk, "trial")
    _corrupt_history(desk)
    code, payload = desk.cli_json("check-trade", "--emergency-exit")
    assert code == 0
    assert payload["allowed"] is True


def test_breaker_beats_live_mode_in_experience(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.trades(-5, -5, -5, per_session=1)  # down to experience, breaker tripped
    desk.edit_config({("trading", "mode"): "live"})
    code, payload = desk.cli_json("check-trade")
    assert code == 1
    assert "breaker" in payload["reason"]


def test_live_mode_in_experience_is_refused_once_the_breaker_is_clear(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.trades(-5, -5, -5, per_session=1)
    desk.edit_config({("trading", "mode"): "live"})
    assert desk.cli("acknowledge", "--operator", "alice")[0] == 0
    code, payload = desk.cli_json("check-trade")
    assert code == 1
    assert payload["reason"] == "live trading is not allowed in the Experience phase (paper only)"


def test_live_mode_beats_the_session_limit(desk: Desk) -> None:
    desk.edit_config({("phase_progression", "experience", "max_trades_per_day"): 1})
    desk.trade(5)
    desk.edit_config({("trading", "mode"): "live"})
    code, payload = desk.cli_json("check-trade")
    assert (code, payload["reason"]) == (1, "live trading is not allowed in the Experience phase (paper only)")
    desk.edit_config({("trading", "mode"): "paper"})
    code, payload = desk.cli_json("check-trade")
    assert code == 1
    assert payload["reason"].startswith("1/1 trades this session (experience)")


def test_session_limit_beats_the_size_refusal(desk: Desk) -> None:
    desk.edit_config({("phase_progression", "scaling", "max_trades_per_day"): 1})
    advance_to(desk, "scaling")
    assert desk.enter().accepted
    desk.edit_config({("account", "starting_equity"): 3000})
    assert refused(desk).startswith("1/1 trades this session (scaling)")
    desk.next_session()
    assert "below the scaling minimum" in refused(desk)


def test_breaker_beats_the_session_limit(desk: Desk) -> None:
    advance_to(desk, "trial")
    trip_breaker(desk)
    assert "breaker" in refused(desk)


# ---- live mode ---------------------------------------------------------------------------------


def test_going_live_in_experience_is_refused(desk: Desk) -> None:
    with pytest.raises(LiveModeRefused, match="paper only"):
        desk.bot.mode.switch_to_live()
    assert desk.bot.mode.mode == "paper"


def test_a_live_config_in_experience_starts_the_bot_on_paper(desk: Desk) -> None:
    desk.edit_config({("trading", "mode"): "live"})
    assert desk.bot.mode.mode == "paper"
    entry = desk.enter()
    assert entry.accepted and entry.record is not None
    assert entry.record.execution_mode == "paper"


def test_live_entries_are_allowed_in_proof(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.bot.mode.switch_to_live()
    entry = desk.enter()
    assert entry.accepted, entry.reason
    assert journal_lines(desk)[-1]["execution_mode"] == "LIVE"


# ---- the order's size ----------------------------------------------------------------------------


@pytest.mark.parametrize(("dollars", "allowed"), [("99.99", True), ("100", True), ("100.01", False)])
def test_an_order_above_the_size_in_force_is_refused(desk: Desk, dollars: str, allowed: bool) -> None:
    advance_to(desk, "proof")
    result = desk.bot.execute_trade("AAPL", "BUY", Decimal("10"), dollars=Decimal(dollars))
    assert result.accepted is allowed, result.reason
    if not allowed:
        assert result.reason == "order size $100.01 exceeds the size in force $100.00 (proof)"


# ---- an invalid journal line -------------------------------------------------------------------------


def test_an_invalid_journal_line_refuses_new_entries(desk: Desk) -> None:
    desk.trade(5)
    with journal_file(desk).open("a", encoding="utf-8") as handle:
        handle.write("this is not json\n")
    assert "journal has an invalid line" in refused(desk)


def test_an_invalid_journal_line_still_allows_closing_an_open_position(desk: Desk) -> None:
    entry = desk.enter()
    with journal_file(desk).open("a", encoding="utf-8") as handle:
        handle.write("this is not json\n")
    record = desk.close(entry, 5)
    assert record.outcome == "win"
    assert journal_lines_after_garbage(desk)[-1]["outcome"] == "win"


def journal_lines_after_garbage(desk: Desk) -> list[dict[str, Any]]:
    texts = journal_file(desk).read_text(encoding="utf-8").splitlines()
    return [json.loads(text) for text in texts[texts.index("this is not json") + 1 :]]


# ---- check-trade --------------------------------------------------------------------------------------

CHECK_TRADE_KEYS = {"allowed", "reason", "phase", "position_size", "trades_this_session", "max_trades_per_day", "next_trade_allowed_at"}


def test_check_trade_json_when_the_session_limit_is_reached(desk: Desk) -> None:
    advance_to(desk, "proof")
    assert desk.enter().accepted
    code, payload = desk.cli_json("check-trade")
    assert code == 1
    assert CHECK_TRADE_KEYS <= set(payload)
    assert payload["allowed"] is False
    assert payload["reason"].startswith(LIMIT_REACHED)
    assert payload["phase"] == "proof"
    assert payload["position_size"] == "100.00"
    assert payload["trades_this_session"] == 1
    assert payload["max_trades_per_day"] == 1
    assert datetime.fromisoformat(payload["next_trade_allowed_at"].replace("Z", "+00:00")) == datetime(2026, 3, 3, 12, 0, tzinfo=timezone.utc)


def test_check_trade_json_when_allowed(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trade(5)
    code, payload = desk.cli_json("check-trade")
    assert code == 0
    assert CHECK_TRADE_KEYS <= set(payload)
    assert payload["allowed"] is True
    assert payload["phase"] == "trial"
    assert payload["position_size"] == "200.00"
    assert payload["trades_this_session"] == 1
    assert payload["max_trades_per_day"] is None
    assert payload["next_trade_allowed_at"] is None


def test_check_trade_sets_no_next_time_for_other_refusals(desk: Desk) -> None:
    advance_to(desk, "trial")
    trip_breaker(desk)
    code, payload = desk.cli_json("check-trade")
    assert code == 1
    assert "breaker" in payload["reason"]
    assert payload["next_trade_allowed_at"] is None


def test_check_trade_records_nothing(desk: Desk) -> None:
    advance_to(desk, "proof")
    assert desk.enter().accepted
    desk.cli("status")  # apply anything due first
    before = desk.snapshot_files()
    code, _, _ = desk.cli("check-trade")
    assert code == 1
    assert desk.snapshot_files() == before


# ---- records of refusals and of the phase ---------------------------------------------------------------


def test_every_refused_entry_is_one_override_line_with_the_reason(desk: Desk) -> None:
    advance_to(desk, "proof")
    assert desk.enter().accepted
    reasons = [refused(desk) for _ in range(3)]
    lines = entry_refusals(desk)
    assert [line["reason"] for line in lines] == reasons
    assert {line["operator_id"] for line in lines} == {"bot"}
    assert {line["check"] for line in lines} == {"phase_entry_limit"}


def test_a_breaker_refusal_is_recorded_with_its_reason(desk: Desk) -> None:
    advance_to(desk, "trial")
    trip_breaker(desk)
    desk.next_session()
    reason = refused(desk)
    [line] = entry_refusals(desk)
    assert (line["operator_id"], line["reason"]) == ("bot", reason)


def test_a_risk_check_refusal_is_recorded_too(desk: Desk) -> None:
    desk.at(datetime(2026, 3, 2, 22, 0, tzinfo=timezone.utc))  # 17:00 New York, after end_time
    reason = refused(desk)
    assert "outside trading hours" in reason
    [line] = entry_refusals(desk)
    assert (line["operator_id"], line["reason"]) == ("bot", reason)


def test_allowed_entries_record_no_refusal(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(5, 5)
    assert entry_refusals(desk) == []


def test_every_journal_record_carries_the_phase_in_force(desk: Desk) -> None:
    desk.trade(5)
    advance_to(desk, "trial")
    desk.trades(-5, -5, -5)  # down to proof
    desk.cli("acknowledge", "--operator", "alice")
    desk.next_session()
    desk.trade(5)
    phases = [(line["outcome"], line["phase"]) for line in journal_lines(desk)]
    assert phases == [
        ("open", "experience"),
        ("win", "experience"),
        *[("open", "trial"), ("loss", "trial")] * 3,
        ("open", "proof"),
        ("win", "proof"),
    ]


def test_emergency_exiting_the_session_entry_does_not_free_another_entry_in_proof(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.next_session()
    desk.trade(-10, emergency=True)
    second = desk.enter()
    assert not second.accepted
    assert second.reason is not None and second.reason.startswith("1/1 trades this session (proof)")


def test_a_hand_written_emergency_exit_without_an_entry_adds_no_entry_in_proof(desk: Desk) -> None:
    """A closed line flagged emergency_exit, with its own order_id and no open record, is not an entry (§7)."""
    advance_to(desk, "proof")
    desk.tick(5)
    now = desk.now()
    record = {
        "timestamp": (now - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exit_timestamp": (now - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "symbol": "AAPL",
        "action": "BUY",
        "quantity": 10,
        "price": "10",
        "order_id": "hand-flatten-1",
        "outcome": "loss",
        "net_profit_loss": "-5",
        "execution_mode": "PAPER",
        "phase": "proof",
        "emergency_exit": True,
        "manual_override": False,
        "operator_id": "ops",
    }
    path = desk.logs_dir / "trades" / "hand-entered.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    desk.tick()
    assert desk.enter().accepted
