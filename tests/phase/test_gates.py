"""The gates for climbing the ladder (SPEC §5), each criterion at, below and above its threshold.

Every number here is produced by the real bot loop (entries through the validation chain,
closes the phase system sees at once) and read back through the command line
(`validate-transition --json`, `status --json`), never handed to a validator directly.
Calendar expectations are counted by hand (NYSE 2026: Good Friday is 3 April), not
asked of the calendar module under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time

from tests.phase.conftest import PASSWORD, Desk, advance_to

EXPERIENCE_CRITERIA = ("phase_progression", "experience", "advancement_criteria")
PROOF_CRITERIA = ("phase_progression", "proof", "advancement_criteria")
PROOF_ENTRIES_PER_SESSION = ("phase_progression", "proof", "max_trades_per_day")

# Monday 2026-03-02 is the desk's first session (EST: New York = UTC-5 until 8 March).
MONDAY = date(2026, 3, 2)


# ---- helpers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Emergency:
    """A round trip closed with --emergency-exit (a flagged trade)."""

    pnl: str | int


def play(desk: Desk, *sessions: list[Any]) -> None:
    """Trade each list of P&Ls in its own session (the desk moves to the next session between lists)."""
    for index, pnls in enumerate(sessions):
        if index:
            desk.next_session()
        for pnl in pnls:
            if isinstance(pnl, Emergency):
                desk.trade(pnl.pnl, emergency=True)
            else:
                desk.trade(pnl)


def gate(desk: Desk, to: str) -> tuple[int, dict[str, Any]]:
    return desk.cli_json("validate-transition", "--to", to)


def criterion(report: dict[str, Any], name: str) -> dict[str, Any]:
    found = [item for item in report["criteria"] if item["name"] == name]
    assert len(found) == 1, report["criteria"]
    return found[0]


def measured(desk: Desk, to: str, name: str) -> dict[str, Any]:
    return criterion(gate(desk, to)[1], name)


def set_experience_criteria(desk: Desk, **criteria: Any) -> None:
    """Set experience thresholds before anything is recorded, so they are the baseline, not an edit."""
    assert desk.overrides() == [], "must run before the first recorded line"
    desk.edit_config({(*EXPERIENCE_CRITERIA, key): value for key, value in criteria.items()})


def set_proof_criteria(desk: Desk, **criteria: Any) -> None:
    desk.edit_config({(*PROOF_CRITERIA, key): value for key, value in criteria.items()})


def password_override(desk: Desk, *args: str, password: str = PASSWORD) -> tuple[int, str, str]:
    return desk.cli(*args, "--operator", "ops", "--reason", "gate test", "--password-stdin", stdin=password + "\n")


def reset_progress(desk: Desk) -> None:
    code, _, err = password_override(desk, "override", "--reset-progress")
    assert code == 0, err
    desk.start()


def with_ticking_clock(desk: Desk, action: Any) -> None:
    """Run `action` on a clock that moves on between reads, as the system clock does."""
    later = desk.now() + timedelta(minutes=5)
    with freeze_time(desk.now(), auto_tick_seconds=0.25):
        action()
    desk.at(later)
    desk.start()


def write_journal_line(desk: Desk, record: dict[str, Any]) -> None:
    """A line written into the trade journal by hand (another tool, or a person)."""
    path = desk.logs_dir / "trades" / "hand-entered.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def manual_override_trade(desk: Desk, order_id: str) -> None:
    """A closed, profitable trade flagged manual_override, entered and closed minutes ago."""
    now = desk.now()
    write_journal_line(
        desk,
        {
            "timestamp": utc(now - timedelta(minutes=3)),
            "exit_timestamp": utc(now - timedelta(minutes=2)),
            "symbol": "AAPL",
            "action": "BUY",
            "quantity": 10,
            "price": "10",
            "order_id": order_id,
            "outcome": "win",
            "net_profit_loss": "30",
            "execution_mode": "PAPER",
            "phase": "experience",
            "emergency_exit": False,
            "manual_override": True,
            "operator_id": "ops",
        },
    )
    desk.tick()


def suggestions(desk: Desk) -> list[dict[str, Any]]:
    return [line for line in desk.history() if line["type"] == "suggestion"]


def three_profitable_sessions(desk: Desk) -> None:
    """Passes an experience gate lowered to 3 sessions: 3 wins + 2 losses, R:R 1.5, 3 profitable sessions."""
    play(desk, [30, -20], [30, -20], [30])


# ---- experience → proof: profitable sessions -------------------------------------------


def nineteen_winning_sessions(desk: Desk) -> None:
    play(desk, *([30] for _ in range(19)))


def test_nineteen_profitable_sessions_are_not_enough_at_the_shipped_default(desk: Desk) -> None:
    nineteen_winning_sessions(desk)
    code, report = gate(desk, "proof")
    sessions = criterion(report, "profitable_sessions")
    assert code == 1
    assert (sessions["actual"], sessions["required"], sessions["met"]) == (19, 20, False)
    assert report["failures"] == ["profitable sessions 19 < required 20"]


def test_twentieth_profitable_session_opens_the_experience_gate_at_the_shipped_default(desk: Desk) -> None:
    nineteen_winning_sessions(desk)
    desk.next_session()
    desk.trade(30)
    code, report = gate(desk, "proof")
    assert code == 0
    assert report["ready"] is True
    assert (report["from_phase"], report["to_phase"], report["failures"]) == ("experience", "proof", [])
    assert criterion(report, "profitable_sessions")["actual"] == 20


def test_session_netting_exactly_zero_is_not_profitable(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    play(desk, [30], ["30.00", "-30.00"])
    assert measured(desk, "proof", "profitable_sessions")["actual"] == 1


def test_session_netting_one_cent_is_profitable(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    play(desk, [30], ["30.01", "-30.00"])
    assert measured(desk, "proof", "profitable_sessions")["actual"] == 2


def test_session_netting_minus_one_cent_is_not_profitable(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    play(desk, [30], ["29.99", "-30.00"])
    assert measured(desk, "proof", "profitable_sessions")["actual"] == 1


def test_several_trades_in_one_session_make_one_profitable_session(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    play(desk, [30, 30, 30])
    assert measured(desk, "proof", "profitable_sessions")["actual"] == 1


# ---- experience → proof: win rate over the session window ------------------------------


def test_win_rate_of_exactly_060_meets_the_experience_gate(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    code, report = gate(desk, "proof")
    win_rate = criterion(report, "win_rate")
    assert (win_rate["actual"], win_rate["required"], win_rate["met"]) == ("0.6000", "0.6000", True)
    assert code == 0


def test_win_rate_just_below_060_fails_naming_both_numbers(desk: Desk) -> None:
    """29 wins of 49 is 0.5918: one win short of 30 of 50 = 0.60."""
    set_experience_criteria(desk, min_sessions=3)
    play(desk, [40] * 10 + [-20] * 7, [40] * 10 + [-20] * 7, [40] * 9 + [-20] * 6)
    code, report = gate(desk, "proof")
    win_rate = criterion(report, "win_rate")
    assert code == 1
    assert (win_rate["actual"], win_rate["met"]) == ("0.5918", False)
    assert "win rate 0.5918 < required 0.6000" in win_rate["detail"]
    assert report["failures"] == [win_rate["detail"]]


def test_one_more_win_lifts_win_rate_to_exactly_060(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    play(desk, [40] * 10 + [-20] * 7, [40] * 10 + [-20] * 7, [40] * 10 + [-20] * 6)
    win_rate = measured(desk, "proof", "win_rate")
    assert (win_rate["actual"], win_rate["met"]) == ("0.6000", True)


def test_win_rate_pools_only_the_last_session_window_sessions(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3, session_window=10)
    play(desk, [-20], *([30] for _ in range(10)))
    win_rate = measured(desk, "proof", "win_rate")
    assert (win_rate["actual"], win_rate["met"]) == ("1.0000", True)
    assert "over the last 10 sessions with trades (window 10)" in win_rate["detail"]


def test_sessions_without_trades_do_not_use_up_the_session_window(desk: Desk) -> None:
    """The loss 13 sessions back is still among the last 10 sessions that had a trade."""
    set_experience_criteria(desk, min_sessions=3, session_window=10)
    play(desk, [-20], *([30] for _ in range(4)))
    for _ in range(3):
        desk.next_session()  # three sessions with no trade at all
    play(desk, [], *([30] for _ in range(5)))
    win_rate = measured(desk, "proof", "win_rate")
    assert win_rate["actual"] == "0.9000"
    assert "over the last 10 sessions with trades (window 10)" in win_rate["detail"]


def test_session_with_only_a_flagged_trade_does_not_use_up_the_session_window(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3, session_window=10)
    play(desk, [-20], *([30] for _ in range(4)), [Emergency(30)], *([30] for _ in range(5)))
    win_rate = measured(desk, "proof", "win_rate")
    assert win_rate["actual"] == "0.9000"


def test_fewer_sessions_than_the_window_pool_the_sessions_that_exist(desk: Desk) -> None:
    play(desk, [30, -20], [30], [-20])
    win_rate = measured(desk, "proof", "win_rate")
    assert win_rate["actual"] == "0.5000"
    assert "over the last 3 sessions with trades (window 20)" in win_rate["detail"]


# ---- experience → proof: average R:R ---------------------------------------------------


def test_rr_of_exactly_15_meets_the_experience_gate(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    rr = measured(desk, "proof", "avg_rr")
    assert (rr["actual"], rr["required"], rr["met"]) == ("1.5000", "1.5000", True)


def test_rr_just_below_15_fails_naming_both_numbers(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    play(desk, ["29.99", -20], ["29.99", -20], ["29.99"])
    code, report = gate(desk, "proof")
    rr = criterion(report, "avg_rr")
    assert code == 1
    assert (rr["actual"], rr["met"]) == ("1.4995", False)
    assert "average R:R 1.4995 < required 1.5000" in rr["detail"]
    assert report["failures"] == [rr["detail"]]


def test_rr_that_rounds_to_the_requirement_is_printed_with_more_digits(desk: Desk) -> None:
    """(329.99 / 11) / 20 = 1.4999545…: equal to 1.5000 at four places, so a fifth is shown."""
    set_experience_criteria(desk, min_sessions=3)
    play(desk, [30, 30, 30, 30, -20], [30, 30, 30, 30, -20], [30, 30, "29.99"])
    rr = measured(desk, "proof", "avg_rr")
    assert rr["met"] is False
    assert "average R:R 1.49995 < required 1.50000" in rr["detail"]


def test_rr_over_the_session_window_ignores_older_sessions(desk: Desk) -> None:
    """A bad R:R session drops out of a 10-session window."""
    set_experience_criteria(desk, min_sessions=3, session_window=10)
    play(desk, [5, -20], *([30, -20] for _ in range(10)))
    rr = measured(desk, "proof", "avg_rr")
    assert (rr["actual"], rr["met"]) == ("1.5000", True)


def test_no_losing_trades_leave_rr_undefined_but_met_when_there_are_wins(desk: Desk) -> None:
    play(desk, [30], [30])
    rr = measured(desk, "proof", "avg_rr")
    assert (rr["actual"], rr["met"]) == (None, True)
    assert "no losing trades" in rr["detail"]


def test_losses_without_wins_give_rr_zero_and_fail(desk: Desk) -> None:
    play(desk, [-20])
    rr = measured(desk, "proof", "avg_rr")
    assert (rr["actual"], rr["met"]) == ("0.0000", False)
    assert "0.0000 < required 1.5000" in rr["detail"]


def test_breakevens_alone_leave_rr_undefined_and_unmet(desk: Desk) -> None:
    play(desk, [0])
    report = gate(desk, "proof")[1]
    rr = criterion(report, "avg_rr")
    assert (rr["actual"], rr["met"]) == (None, False)
    assert criterion(report, "win_rate")["actual"] == "0.0000"


# ---- missing data never helps ---------------------------------------------------------


def test_empty_experience_stint_leaves_win_rate_and_rr_unmet(desk: Desk) -> None:
    code, report = gate(desk, "proof")
    win_rate, rr = criterion(report, "win_rate"), criterion(report, "avg_rr")
    assert code == 1
    assert (win_rate["actual"], win_rate["met"]) == (None, False)
    assert (rr["actual"], rr["met"]) == (None, False)
    assert "no closed trades" in win_rate["detail"]
    assert "no closed trades" in rr["detail"]


def test_empty_experience_stint_has_no_profitable_sessions(desk: Desk) -> None:
    sessions = measured(desk, "proof", "profitable_sessions")
    assert (sessions["actual"], sessions["met"]) == (0, False)


def test_only_flagged_trades_leave_win_rate_and_rr_unmet(desk: Desk) -> None:
    play(desk, [Emergency(30)], [Emergency(30)])
    report = gate(desk, "proof")[1]
    assert criterion(report, "win_rate")["met"] is False
    assert criterion(report, "avg_rr")["met"] is False


def test_empty_proof_stint_leaves_trades_win_rate_and_rr_unmet(desk: Desk) -> None:
    advance_to(desk, "proof")
    code, report = gate(desk, "trial")
    assert code == 1
    assert (criterion(report, "trades")["actual"], criterion(report, "trades")["met"]) == (0, False)
    assert (criterion(report, "win_rate")["actual"], criterion(report, "win_rate")["met"]) == (None, False)
    assert (criterion(report, "avg_rr")["actual"], criterion(report, "avg_rr")["met"]) == (None, False)


# ---- flagged trades ------------------------------------------------------------------


def test_emergency_exits_are_left_out_of_win_rate_and_rr(desk: Desk) -> None:
    play(desk, [30, 30, -20, Emergency(-40)])
    report = gate(desk, "proof")[1]
    assert criterion(report, "win_rate")["actual"] == "0.6667"
    assert criterion(report, "avg_rr")["actual"] == "1.5000"


def test_emergency_exit_loss_counts_against_session_profitability(desk: Desk) -> None:
    play(desk, [30, Emergency(-40)])
    assert measured(desk, "proof", "profitable_sessions")["actual"] == 0


def test_emergency_exit_gain_counts_toward_session_profitability(desk: Desk) -> None:
    play(desk, [-20, Emergency(30)])
    assert measured(desk, "proof", "profitable_sessions")["actual"] == 1


# ---- experience → proof: override incidents --------------------------------------------


def test_loosening_criteria_edit_after_the_stint_began_counts_as_an_incident(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    desk.tick()
    desk.edit_config({(*EXPERIENCE_CRITERIA, "min_win_rate"): "0.55"})
    code, report = gate(desk, "proof")
    incidents = criterion(report, "override_incidents")
    assert code == 1
    assert (incidents["actual"], incidents["required"], incidents["met"]) == (1, 0, False)
    assert incidents["detail"] == "override incidents 1 > allowed 0 since the stint began"


def test_tightening_criteria_edit_is_not_an_incident(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    desk.tick()
    desk.edit_config({(*EXPERIENCE_CRITERIA, "min_win_rate"): "0.55"})
    desk.tick()
    assert measured(desk, "proof", "override_incidents")["actual"] == 1
    desk.edit_config({(*EXPERIENCE_CRITERIA, "min_win_rate"): "0.60"})
    assert measured(desk, "proof", "override_incidents")["actual"] == 1


def test_incidents_up_to_the_allowed_number_meet_the_gate(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3, max_override_incidents=1)
    three_profitable_sessions(desk)
    desk.tick()
    desk.edit_config({(*EXPERIENCE_CRITERIA, "min_win_rate"): "0.55"})
    code, report = gate(desk, "proof")
    incidents = criterion(report, "override_incidents")
    assert (incidents["actual"], incidents["required"], incidents["met"]) == (1, 1, True)
    assert code == 0


def test_one_incident_more_than_allowed_fails_the_gate(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3, max_override_incidents=1)
    three_profitable_sessions(desk)
    desk.tick()
    desk.edit_config({(*EXPERIENCE_CRITERIA, "min_win_rate"): "0.55"})
    desk.cli("status")  # the running system sees each edit (two unseen edits are one recorded edit)
    desk.tick()
    desk.edit_config({(*EXPERIENCE_CRITERIA, "min_avg_rr"): "1.4"})
    incidents = measured(desk, "proof", "override_incidents")
    assert (incidents["actual"], incidents["met"]) == (2, False)
    assert incidents["detail"] == "override incidents 2 > allowed 1 since the stint began"


def test_trade_flagged_manual_override_in_the_stint_counts_as_an_incident(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    manual_override_trade(desk, "hand-1")
    code, report = gate(desk, "proof")
    incidents = criterion(report, "override_incidents")
    assert code == 1
    assert (incidents["actual"], incidents["met"]) == (1, False)


def test_trade_flagged_manual_override_is_left_out_of_win_rate(desk: Desk) -> None:
    play(desk, [30, -20])
    manual_override_trade(desk, "hand-1")
    assert measured(desk, "proof", "win_rate")["actual"] == "0.5000"


def test_manual_override_trade_before_the_stint_began_is_not_counted(desk: Desk) -> None:
    desk.trade(30)
    manual_override_trade(desk, "hand-1")
    desk.tick()
    reset_progress(desk)
    assert measured(desk, "proof", "override_incidents")["actual"] == 0


def test_loosening_edit_before_a_progress_reset_is_not_counted(desk: Desk) -> None:
    desk.trade(30)
    desk.tick()
    desk.edit_config({(*EXPERIENCE_CRITERIA, "min_win_rate"): "0.55"})
    assert measured(desk, "proof", "override_incidents")["actual"] == 1
    desk.tick()
    reset_progress(desk)
    assert measured(desk, "proof", "override_incidents")["actual"] == 0


def test_wrong_password_override_is_not_an_incident(desk: Desk) -> None:
    desk.trade(30)
    code, _, _ = password_override(desk, "override", "--to", "proof", password="not the password")
    assert code == 1
    assert measured(desk, "proof", "override_incidents")["actual"] == 0


def test_progress_reset_starts_a_new_stint_without_counting_itself(desk: Desk) -> None:
    desk.trade(30)
    desk.tick()
    reset_progress(desk)
    incidents = measured(desk, "proof", "override_incidents")
    assert (incidents["actual"], incidents["met"]) == (0, True)


def test_progress_reset_starts_an_empty_stint(desk: Desk) -> None:
    play(desk, [30], [30])
    desk.tick()
    reset_progress(desk)
    report = gate(desk, "proof")[1]
    assert criterion(report, "profitable_sessions")["actual"] == 0
    assert criterion(report, "win_rate")["actual"] is None


def test_override_into_experience_starts_a_stint_without_counting_itself(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.tick()
    advance_to(desk, "experience")
    incidents = measured(desk, "proof", "override_incidents")
    assert (incidents["actual"], incidents["met"]) == (0, True)


def test_progress_reset_on_a_moving_clock_does_not_count_itself(desk: Desk) -> None:
    desk.trade(30)
    desk.tick()
    with_ticking_clock(desk, lambda: password_override(desk, "override", "--reset-progress"))
    assert desk.transitions()[-1]["kind"] == "reset"
    assert measured(desk, "proof", "override_incidents")["actual"] == 0


def test_override_into_experience_on_a_moving_clock_does_not_count_itself(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.tick()
    with_ticking_clock(desk, lambda: password_override(desk, "override", "--to", "experience"))
    assert desk.transitions()[-1]["to_phase"] == "experience"
    assert measured(desk, "proof", "override_incidents")["actual"] == 0


# ---- proof → trial: trading days --------------------------------------------------------


def proof_from_monday(desk: Desk) -> None:
    """Proof stint begun Monday 2 March 10:00 New York."""
    advance_to(desk, "proof")


def test_twenty_nine_trading_days_are_not_enough_at_the_shipped_default(desk: Desk) -> None:
    """2 March → 10 April 2026: 22 March days, 1–2 April, (Good Friday), 6–10 April = 29."""
    proof_from_monday(desk)
    desk.open_session(date(2026, 4, 10))
    days = measured(desk, "trial", "trading_days")
    assert (days["actual"], days["required"], days["met"]) == (29, 30, False)
    assert days["detail"] == "trading days in the stint 29 < required 30"


def test_thirtieth_trading_day_meets_the_shipped_default(desk: Desk) -> None:
    proof_from_monday(desk)
    desk.open_session(date(2026, 4, 13))
    days = measured(desk, "trial", "trading_days")
    assert (days["actual"], days["met"]) == (30, True)


def test_weekend_after_the_twenty_ninth_day_is_still_twenty_nine(desk: Desk) -> None:
    """Saturday belongs to Friday's session: no new trading day until Monday's open."""
    proof_from_monday(desk)
    desk.at(datetime(2026, 4, 11, 16, 0, tzinfo=timezone.utc))
    assert measured(desk, "trial", "trading_days")["actual"] == 29


def start_proof_at(desk: Desk, day: date, local_hour: int, local_minute: int) -> None:
    """Override into proof at a New York wall-clock time on `day` (EST in early March)."""
    desk.day = day
    desk.at(datetime(day.year, day.month, day.day, local_hour + 5, local_minute, tzinfo=timezone.utc))
    advance_to(desk, "proof")


def test_stint_begun_before_end_time_counts_its_first_day(desk: Desk) -> None:
    start_proof_at(desk, date(2026, 3, 3), 15, 59)
    desk.open_session(date(2026, 3, 4))
    assert measured(desk, "trial", "trading_days")["actual"] == 2


def test_stint_begun_after_end_time_counts_from_the_next_trading_day(desk: Desk) -> None:
    start_proof_at(desk, date(2026, 3, 3), 16, 1)
    desk.open_session(date(2026, 3, 4))
    assert measured(desk, "trial", "trading_days")["actual"] == 1


def test_stint_begun_after_end_time_has_no_trading_day_yet(desk: Desk) -> None:
    start_proof_at(desk, date(2026, 3, 3), 16, 1)
    desk.tick(5)
    assert measured(desk, "trial", "trading_days")["actual"] == 0


def test_stint_begun_on_a_weekend_counts_from_monday(desk: Desk) -> None:
    desk.at(datetime(2026, 3, 7, 15, 0, tzinfo=timezone.utc))  # Saturday
    advance_to(desk, "proof")
    desk.open_session(date(2026, 3, 9))
    assert measured(desk, "trial", "trading_days")["actual"] == 1


# ---- proof → trial: missed days ----------------------------------------------------------


def test_three_missed_days_in_a_row_are_allowed_at_the_shipped_default(desk: Desk) -> None:
    proof_from_monday(desk)
    desk.trade(40)  # Monday
    desk.open_session(date(2026, 3, 6))  # Tuesday–Thursday without an entry
    desk.trade(40)
    desk.open_session(date(2026, 3, 9))
    streak = measured(desk, "trial", "missed_days_streak")
    assert (streak["actual"], streak["required"], streak["met"]) == (3, 3, True)


def test_four_missed_days_in_a_row_fail_naming_both_numbers(desk: Desk) -> None:
    proof_from_monday(desk)
    desk.trade(40)  # Monday
    desk.open_session(date(2026, 3, 9))  # Tuesday–Friday without an entry
    desk.trade(40)
    streak = measured(desk, "trial", "missed_days_streak")
    assert (streak["actual"], streak["met"]) == (4, False)
    assert streak["detail"] == "longest run of trading days without an entry 4 > allowed 3"


def test_the_current_session_is_not_yet_a_missed_day(desk: Desk) -> None:
    proof_from_monday(desk)
    desk.trade(40)  # Monday
    desk.open_session(date(2026, 3, 6), minutes=500)  # Friday afternoon, no entry yet today
    assert measured(desk, "trial", "missed_days_streak")["actual"] == 3


def test_weekends_and_holidays_are_not_missed_days(desk: Desk) -> None:
    """Thursday 2 April, then Good Friday and the weekend, then 6–8 April missed: a run of 3."""
    desk.open_session(date(2026, 4, 1))
    advance_to(desk, "proof")
    desk.trade(40)
    desk.open_session(date(2026, 4, 2))
    desk.trade(40)
    desk.open_session(date(2026, 4, 9))
    desk.trade(40)
    desk.open_session(date(2026, 4, 10))
    assert measured(desk, "trial", "missed_days_streak")["actual"] == 3


def downgraded_into_proof_on_monday(desk: Desk) -> None:
    """Three trial losses: the bot drops to proof and trips the phase breaker (Monday 2 March)."""
    advance_to(desk, "trial")
    desk.trades(-20, -20, -20)
    last = desk.transitions()[-1]
    assert (last["kind"], last["to_phase"], last["breaker"]["tripped"]) == ("downgrade", "proof", True)


def acknowledge(desk: Desk) -> None:
    code, _, err = desk.cli("acknowledge", "--operator", "ops")
    assert code == 0, err
    desk.start()


def test_days_while_the_phase_breaker_was_tripped_are_not_missed_days(desk: Desk) -> None:
    downgraded_into_proof_on_monday(desk)
    desk.open_session(date(2026, 3, 9))  # a week with the breaker tripped
    acknowledge(desk)
    desk.trade(40)
    desk.open_session(date(2026, 3, 10))
    streak = measured(desk, "trial", "missed_days_streak")
    assert (streak["actual"], streak["met"]) == (0, True)


def test_days_after_the_breaker_is_acknowledged_count_as_missed(desk: Desk) -> None:
    downgraded_into_proof_on_monday(desk)
    desk.open_session(date(2026, 3, 9))
    acknowledge(desk)
    desk.open_session(date(2026, 3, 16))  # 10–13 March: breaker clear, no entry
    streak = measured(desk, "trial", "missed_days_streak")
    assert (streak["actual"], streak["met"]) == (4, False)


# ---- proof → trial: closed trades ------------------------------------------------------


def winning_pattern(count: int) -> list[int]:
    """Win, win, loss, …: win rate 2/3, R:R 2.0, never two losses in a row."""
    return [-20 if index % 3 == 2 else 40 for index in range(count)]


def proof_unlimited_entries(desk: Desk) -> None:
    proof_from_monday(desk)
    desk.edit_config({PROOF_ENTRIES_PER_SESSION: None})


def test_forty_nine_trades_are_not_enough_at_the_shipped_default(desk: Desk) -> None:
    proof_unlimited_entries(desk)
    desk.trades(*winning_pattern(49))
    trades = measured(desk, "trial", "trades")
    assert (trades["actual"], trades["required"], trades["met"]) == (49, 50, False)
    assert trades["detail"] == "closed trades in the stint 49 < required 50"


def test_fiftieth_trade_meets_the_shipped_default(desk: Desk) -> None:
    proof_unlimited_entries(desk)
    desk.trades(*winning_pattern(50))
    trades = measured(desk, "trial", "trades")
    assert (trades["actual"], trades["met"]) == (50, True)


def test_flagged_trades_do_not_count_toward_the_trade_minimum(desk: Desk) -> None:
    proof_unlimited_entries(desk)
    set_proof_criteria(desk, min_trades=3)
    play(desk, [40, 40, Emergency(40)])
    trades = measured(desk, "trial", "trades")
    assert (trades["actual"], trades["met"]) == (2, False)


def test_trades_before_the_proof_stint_do_not_count(desk: Desk) -> None:
    desk.trades(40, 40, 40)
    desk.tick()
    proof_unlimited_entries(desk)
    desk.trade(40)
    assert measured(desk, "trial", "trades")["actual"] == 1


# ---- proof → trial: win rate and R:R over the trade window -------------------------------


# 13 wins, 7 losses, never two losses in a row: win rate 0.65; wins 36 / losses 20 = R:R 1.8.
THIRTEEN_OF_TWENTY = ["W", "W", "L"] * 6 + ["W", "L"]


def proof_window_of_twenty(desk: Desk) -> None:
    proof_unlimited_entries(desk)
    set_proof_criteria(desk, min_trades=20, trade_window=20)


def pnls(pattern: list[str], win: str | int, loss: str | int) -> list[str | int]:
    return [win if mark == "W" else loss for mark in pattern]


def test_proof_win_rate_of_exactly_065_meets(desk: Desk) -> None:
    proof_window_of_twenty(desk)
    desk.trades(*pnls(THIRTEEN_OF_TWENTY, 36, -20))
    win_rate = measured(desk, "trial", "win_rate")
    assert (win_rate["actual"], win_rate["required"], win_rate["met"]) == ("0.6500", "0.6500", True)


def test_proof_win_rate_one_win_short_of_065_fails_naming_both_numbers(desk: Desk) -> None:
    proof_window_of_twenty(desk)
    twelve_of_twenty = ["W", "W", "L"] * 4 + ["W", "L"] * 4
    desk.trades(*pnls(twelve_of_twenty, 36, -20))
    win_rate = measured(desk, "trial", "win_rate")
    assert (win_rate["actual"], win_rate["met"]) == ("0.6000", False)
    assert "win rate 0.6000 < required 0.6500 over the last 20 trades (window 20)" == win_rate["detail"]


def test_proof_rr_of_exactly_18_meets(desk: Desk) -> None:
    proof_window_of_twenty(desk)
    desk.trades(*pnls(THIRTEEN_OF_TWENTY, 36, -20))
    rr = measured(desk, "trial", "avg_rr")
    assert (rr["actual"], rr["required"], rr["met"]) == ("1.8000", "1.8000", True)


def test_proof_rr_just_below_18_fails_naming_both_numbers(desk: Desk) -> None:
    proof_window_of_twenty(desk)
    desk.trades(*pnls(THIRTEEN_OF_TWENTY, "35.99", -20))
    rr = measured(desk, "trial", "avg_rr")
    assert (rr["actual"], rr["met"]) == ("1.7995", False)
    assert "average R:R 1.7995 < required 1.8000" in rr["detail"]


def test_proof_window_counts_only_the_last_trades(desk: Desk) -> None:
    proof_unlimited_entries(desk)
    set_proof_criteria(desk, trade_window=5)
    desk.trades(-20, 40, -20, 40, 40, 40, 40, 40)
    win_rate = measured(desk, "trial", "win_rate")
    assert win_rate["actual"] == "1.0000"
    assert "over the last 5 trades (window 5)" in win_rate["detail"]


def test_proof_window_skips_flagged_trades(desk: Desk) -> None:
    proof_unlimited_entries(desk)
    set_proof_criteria(desk, trade_window=5)
    play(desk, [-20, 40, 40, 40, 40, Emergency(-20), 40])
    assert measured(desk, "trial", "win_rate")["actual"] == "1.0000"


def test_fewer_trades_than_the_window_pool_the_trades_that_exist(desk: Desk) -> None:
    proof_unlimited_entries(desk)
    desk.trades(40, -20, 40)
    win_rate = measured(desk, "trial", "win_rate")
    assert win_rate["actual"] == "0.6667"
    assert "over the last 3 trades (window 50)" in win_rate["detail"]


def test_proof_gate_passes_at_the_shipped_defaults(desk: Desk) -> None:
    """30 trading days with an entry each (2 a day for 20 days, then 1), 50 trades, 0.68 and 2.0."""
    proof_from_monday(desk)
    desk.edit_config({PROOF_ENTRIES_PER_SESSION: 2})
    pattern = iter(winning_pattern(50))
    for day in range(30):
        if day:
            desk.next_session()
        for _ in range(2 if day < 20 else 1):
            desk.trade(next(pattern))
    code, report = gate(desk, "trial")
    assert desk.day == date(2026, 4, 13)
    assert code == 0, report["failures"]
    assert [(c["name"], c["actual"]) for c in report["criteria"]] == [
        ("trading_days", 30),
        ("missed_days_streak", 0),
        ("trades", 50),
        ("win_rate", "0.6800"),
        ("avg_rr", "2.0000"),
    ]


# ---- trial → scaling: max drawdown ------------------------------------------------------


def trial_with_drawdown(desk: Desk, last_loss: str) -> None:
    """Equity when the trial stint begins: 10000 + 40 (proof) = 10040 (the +50 of experience is simulated).

    Trial: −190, −190 (Wednesday), +10 and `last_loss` (Thursday): never three losses in a row,
    no session losing 5%. A last loss of 132.00 leaves 9538, a drawdown of 502 / 10040 = 5% exactly.
    """
    desk.trade(50)
    advance_to(desk, "proof")
    desk.next_session()  # proof's one entry per session: the experience entry used Monday's
    desk.trade(40)
    desk.next_session()
    advance_to(desk, "trial")
    desk.trades(-190, -190)
    desk.next_session()
    desk.trades(10, last_loss)
    assert [t["kind"] for t in desk.transitions()] == ["override", "override"], "no downgrade may interfere"


def test_drawdown_of_exactly_5_percent_fails_the_trial_gate(desk: Desk) -> None:
    trial_with_drawdown(desk, "-132.00")
    drawdown = measured(desk, "scaling", "max_drawdown_pct")
    assert (drawdown["actual"], drawdown["required"], drawdown["met"]) == ("5.0000", "5.0000", False)
    assert drawdown["detail"] == "max drawdown in the stint 5.0000% ≥ limit 5.0000%"


def test_drawdown_just_below_5_percent_meets_the_trial_gate(desk: Desk) -> None:
    trial_with_drawdown(desk, "-131.99")
    drawdown = measured(desk, "scaling", "max_drawdown_pct")
    assert (drawdown["actual"], drawdown["met"]) == ("4.9999", True)


def test_drawdown_just_above_5_percent_fails_the_trial_gate(desk: Desk) -> None:
    trial_with_drawdown(desk, "-132.01")
    drawdown = measured(desk, "scaling", "max_drawdown_pct")
    assert (drawdown["actual"], drawdown["met"]) == ("5.0001", False)


def test_drawdown_of_4_99_percent_meets_the_trial_gate(desk: Desk) -> None:
    """A last loss of 131.00 leaves 9539: 501 / 10040 = 4.99003…%."""
    trial_with_drawdown(desk, "-131.00")
    drawdown = measured(desk, "scaling", "max_drawdown_pct")
    assert (drawdown["actual"], drawdown["met"]) == ("4.9900", True)


def test_drawdown_keeps_its_maximum_after_equity_recovers(desk: Desk) -> None:
    trial_with_drawdown(desk, "-132.00")
    desk.next_session()
    desk.trades(190, 190, 190)
    drawdown = measured(desk, "scaling", "max_drawdown_pct")
    assert (drawdown["actual"], drawdown["met"]) == ("5.0000", False)


def test_trial_stint_without_trades_has_zero_drawdown(desk: Desk) -> None:
    advance_to(desk, "trial")
    drawdown = measured(desk, "scaling", "max_drawdown_pct")
    assert (drawdown["actual"], drawdown["met"]) == ("0.0000", True)


# ---- commands: one rung at a time, advance, suggestions ---------------------------------


def test_validate_transition_skipping_a_phase_is_refused(desk: Desk) -> None:
    code, out, err = desk.cli("validate-transition", "--to", "scaling", "--json")
    assert code == 1
    payload = json.loads(out)
    assert (payload["from_phase"], payload["to_phase"], payload["ready"]) == ("experience", "scaling", False)
    assert "phases advance one at a time" in payload["failures"][0]
    assert "phases advance one at a time" in err
    assert "use override" in err


def test_validate_transition_skipping_a_phase_says_the_spec_sentence(desk: Desk) -> None:
    _, _, err = desk.cli("validate-transition", "--to", "scaling")
    assert err == (
        "refused: phases advance one at a time; use override "
        "(from experience the next phase is proof, not scaling; to skip a rung: override --to scaling)\n"
    )


def test_validate_transition_to_the_phase_below_is_refused(desk: Desk) -> None:
    advance_to(desk, "proof")
    code, out, err = desk.cli("validate-transition", "--to", "experience")
    assert (code, out) == (1, "")
    assert err == (
        "refused: phases advance one at a time; use override (proof → experience is a step down: advance only climbs, "
        "and the next phase is trial; to step down: override --to experience)\n"
    )


def test_validate_transition_to_the_current_phase_is_refused(desk: Desk) -> None:
    code, _, err = desk.cli("validate-transition", "--to", "experience")
    assert code == 1
    assert err == (
        "refused: phases advance one at a time; use override (already in experience, and the next phase is proof; "
        "to start a new experience stint: override --reset-progress)\n"
    )


def test_advance_to_the_current_phase_says_so_and_records_the_reason(desk: Desk) -> None:
    advance_to(desk, "trial")
    code, _, err = desk.cli("advance", "--to", "trial", "--operator", "ops", "--yes")
    assert code == 1
    assert "(already in trial, and the next phase is scaling; to start a new trial stint: override --reset-progress)" in err
    refused = [line for line in desk.overrides() if line["type"] == "advance_refused"][-1]
    assert refused["failures"] == [err.removeprefix("refused: ").rstrip("\n")]


def test_at_the_top_of_the_ladder_an_advance_says_there_is_nothing_above(desk: Desk) -> None:
    advance_to(desk, "scaling")
    _, _, same = desk.cli("validate-transition", "--to", "scaling")
    _, _, lower = desk.cli("validate-transition", "--to", "proof")
    assert same == "refused: phases advance one at a time; use override (scaling is the top of the ladder: there is no phase to advance to)\n"
    assert lower.endswith("(scaling is the top of the ladder: there is no phase to advance to; to step down: override --to proof)\n")


def test_advance_with_a_failed_gate_is_refused(desk: Desk) -> None:
    play(desk, [30, -20])
    code, _, err = desk.cli("advance", "--to", "proof", "--operator", "ops", "--yes")
    assert code == 1
    assert "profitable sessions 1 < required 20" in err
    assert desk.transitions() == []


def test_advance_with_a_failed_gate_is_recorded_naming_both_numbers(desk: Desk) -> None:
    play(desk, [30, -20], [30, -20], [30, -20])
    desk.cli("advance", "--to", "proof", "--operator", "ops", "--yes")
    refusals = [line for line in desk.overrides() if line["type"] == "advance_refused"]
    assert len(refusals) == 1
    assert (refusals[0]["operator_id"], refusals[0]["to_phase"]) == ("ops", "proof")
    assert "profitable sessions 3 < required 20" in refusals[0]["failures"]
    assert any("win rate 0.5000 < required 0.6000" in failure for failure in refusals[0]["failures"])


def test_advance_with_a_passing_gate_records_one_advance_transition(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    code, out, err = desk.cli("advance", "--to", "proof", "--operator", "ops", "--yes")
    assert code == 0, err
    transitions = desk.transitions()
    assert len(transitions) == 1
    line = transitions[0]
    assert (line["kind"], line["from_phase"], line["to_phase"], line["position_size"]) == ("advance", "experience", "proof", "100.00")
    assert line["operator_id"] == "ops"


def test_advance_moves_the_bot_into_the_next_phase(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    desk.cli("advance", "--to", "proof", "--operator", "ops", "--yes")
    desk.start()
    code, status = desk.cli_json("status")
    assert (status["phase"], status["position_size"], status["next_phase"]) == ("proof", "100.00", "trial")
    desk.next_session()
    assert desk.trade(40).phase.value == "proof"


def test_advance_skipping_a_phase_is_refused_and_recorded(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    code, _, err = desk.cli("advance", "--to", "trial", "--operator", "ops", "--yes")
    assert code == 1
    assert "phases advance one at a time" in err
    assert desk.transitions() == []
    assert [line["to_phase"] for line in desk.overrides() if line["type"] == "advance_refused"] == ["trial"]


def test_status_suggests_the_advance_when_the_gate_passes(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    code, status = desk.cli_json("status")
    assert code == 0
    assert status["next_phase"] == "proof"
    assert status["readiness"]["ready"] is True
    assert status["suggested_advance"] is True
    assert "READY — advance with: python -m trading_bot.phase advance --to proof" in desk.cli("status")[1]


def test_status_readiness_is_the_validate_transition_report(desk: Desk) -> None:
    play(desk, [30, -20], [30])
    _, status = desk.cli_json("status")
    _, report = gate(desk, "proof")
    assert status["readiness"] == report


def test_no_suggestion_while_the_gate_fails(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    play(desk, [30, -20], [30, -20])
    desk.cli("status")
    _, status = desk.cli_json("status")
    assert status["readiness"]["ready"] is False
    assert suggestions(desk) == []
    assert "advance --to proof" not in desk.cli("status")[1]


def test_passing_gate_is_suggested_once_with_its_metrics(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    desk.cli("status")
    lines = suggestions(desk)
    assert len(lines) == 1
    assert (lines[0]["from_phase"], lines[0]["to_phase"]) == ("experience", "proof")
    assert [c["name"] for c in lines[0]["criteria"]] == ["profitable_sessions", "win_rate", "avg_rr", "override_incidents"]
    assert all(c["met"] for c in lines[0]["criteria"])
    assert (lines[0]["metrics"]["trades"], lines[0]["metrics"]["win_rate"]) == (5, "0.6000")


def test_suggestion_is_not_repeated_by_later_commands_or_trades(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    desk.cli("status")
    desk.cli("status", "--json")
    gate(desk, "proof")
    desk.next_session()
    desk.trade(30)
    desk.cli("status")
    assert len(suggestions(desk)) == 1


def test_each_stint_gets_its_own_suggestion(desk: Desk) -> None:
    set_experience_criteria(desk, min_sessions=3)
    three_profitable_sessions(desk)
    desk.cli("status")
    desk.tick()
    reset_progress(desk)
    desk.next_session()
    three_profitable_sessions(desk)
    desk.cli("status")
    lines = suggestions(desk)
    assert len(lines) == 2
    assert lines[0]["stint_seq"] != lines[1]["stint_seq"]


# ---- trial → scaling: trading days -------------------------------------------------------


TRIAL_CRITERIA = ("phase_progression", "trial", "advancement_criteria")


def test_fifty_nine_trading_days_are_not_enough_for_the_trial_gate(desk: Desk) -> None:
    """2 March → 22 May 2026: 22 March days, 21 April days (Good Friday closed), 1–22 May = 16: 59."""
    advance_to(desk, "trial")
    desk.open_session(date(2026, 5, 22))
    days = measured(desk, "scaling", "trading_days")
    assert (days["actual"], days["required"], days["met"]) == (59, 60, False)
    assert days["detail"] == "trading days in the stint 59 < required 60"


def test_memorial_day_is_not_the_sixtieth_trading_day(desk: Desk) -> None:
    """Monday 25 May 2026 is Memorial Day: the exchange is closed, still 59."""
    advance_to(desk, "trial")
    desk.at(datetime(2026, 5, 25, 15, 0, tzinfo=timezone.utc))
    assert measured(desk, "scaling", "trading_days")["actual"] == 59


def test_sixtieth_trading_day_meets_the_trial_gate(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.open_session(date(2026, 5, 26))
    days = measured(desk, "scaling", "trading_days")
    assert (days["actual"], days["met"]) == (60, True)


def test_sixty_first_trading_day_still_meets_the_trial_gate(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.open_session(date(2026, 5, 27))
    days = measured(desk, "scaling", "trading_days")
    assert (days["actual"], days["met"]) == (61, True)


# ---- trial → scaling: closed trades ------------------------------------------------------


def test_ninety_nine_trades_are_not_enough_for_the_trial_gate(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(*winning_pattern(99))
    trades = measured(desk, "scaling", "trades")
    assert (trades["actual"], trades["required"], trades["met"]) == (99, 100, False)
    assert trades["detail"] == "closed trades in the stint 99 < required 100"


def test_hundredth_trade_meets_the_trial_gate(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(*winning_pattern(100))
    trades = measured(desk, "scaling", "trades")
    assert (trades["actual"], trades["met"]) == (100, True)


# ---- trial → scaling: win rate and R:R over the trade window -------------------------------


# 7 wins of 10, never two losses in a row: win rate 0.70; wins 40 / losses 20 = R:R 2.0.
SEVEN_OF_TEN = ["W", "W", "W", "L", "W", "W", "W", "L", "W", "L"]
SIX_OF_TEN = ["W", "L", "W", "L", "W", "W", "L", "W", "L", "W"]


def trial_window_of_ten(desk: Desk) -> None:
    """Trial's trade window lowered to 10 before anything is recorded (the baseline, not an edit)."""
    assert desk.overrides() == [], "must run before the first recorded line"
    desk.edit_config({(*TRIAL_CRITERIA, "trade_window"): 10})
    advance_to(desk, "trial")


def test_trial_win_rate_of_exactly_070_meets(desk: Desk) -> None:
    trial_window_of_ten(desk)
    desk.trades(*pnls(SEVEN_OF_TEN, 40, -20))
    win_rate = measured(desk, "scaling", "win_rate")
    assert (win_rate["actual"], win_rate["required"], win_rate["met"]) == ("0.7000", "0.7000", True)


def test_trial_win_rate_one_win_short_of_070_fails_naming_both_numbers(desk: Desk) -> None:
    trial_window_of_ten(desk)
    desk.trades(*pnls(SIX_OF_TEN, 40, -20))
    win_rate = measured(desk, "scaling", "win_rate")
    assert (win_rate["actual"], win_rate["met"]) == ("0.6000", False)
    assert win_rate["detail"] == "win rate 0.6000 < required 0.7000 over the last 10 trades (window 10)"


def test_trial_win_rate_counts_only_the_last_window_of_trades(desk: Desk) -> None:
    """Two early losses fall out of the window of 10: the last 10 are 7 of 10."""
    trial_window_of_ten(desk)
    desk.trades(*pnls(["L", "W", "L", "W", *SEVEN_OF_TEN], 40, -20))
    assert measured(desk, "scaling", "win_rate")["actual"] == "0.7000"


def test_trial_rr_of_exactly_20_meets(desk: Desk) -> None:
    trial_window_of_ten(desk)
    desk.trades(*pnls(SEVEN_OF_TEN, 40, -20))
    rr = measured(desk, "scaling", "avg_rr")
    assert (rr["actual"], rr["required"], rr["met"]) == ("2.0000", "2.0000", True)


def test_trial_rr_just_below_20_fails_naming_both_numbers(desk: Desk) -> None:
    trial_window_of_ten(desk)
    desk.trades(*pnls(SEVEN_OF_TEN, "39.99", -20))
    rr = measured(desk, "scaling", "avg_rr")
    assert (rr["actual"], rr["met"]) == ("1.9995", False)
    assert "average R:R 1.9995 < required 2.0000" in rr["detail"]


def test_trial_rr_just_above_20_meets(desk: Desk) -> None:
    trial_window_of_ten(desk)
    desk.trades(*pnls(SEVEN_OF_TEN, "40.01", -20))
    rr = measured(desk, "scaling", "avg_rr")
    assert (rr["actual"], rr["met"]) == ("2.0005", True)


# ---- trial → scaling: every criterion at once ---------------------------------------------


def test_trial_gate_passes_at_the_shipped_defaults(desk: Desk) -> None:
    """60 trading days with an entry each (2 a day for 40 days, then 1), 100 trades at 7 of 10, R:R 2.0.

    Equity starts at 10000; each loss of 20 comes right after a new peak, the lowest peak being
    10120 (three wins): max drawdown 20 / 10120 = 0.1976%.
    """
    advance_to(desk, "trial")
    pattern = iter(pnls(SEVEN_OF_TEN * 10, 40, -20))
    for day in range(60):
        if day:
            desk.next_session()
        for _ in range(2 if day < 40 else 1):
            desk.trade(next(pattern))
    code, report = gate(desk, "scaling")
    assert desk.day == date(2026, 5, 26)
    assert code == 0, report["failures"]
    assert (report["from_phase"], report["to_phase"], report["ready"], report["failures"]) == ("trial", "scaling", True, [])
    assert [(c["name"], c["actual"], c["met"]) for c in report["criteria"]] == [
        ("trading_days", 60, True),
        ("trades", 100, True),
        ("win_rate", "0.7000", True),
        ("avg_rr", "2.0000", True),
        ("max_drawdown_pct", "0.1976", True),
    ]
    assert [t["kind"] for t in desk.transitions()] == ["override"], "no downgrade may interfere"


# ---- stint membership by phase (SPEC §2) ---------------------------------------------------


def hand_closed_trade(desk: Desk, order_id: str, pnl: str, *, entered: datetime, exited: datetime, phase: str | None) -> None:
    """A closed trade written into the journal by hand; `phase=None` leaves the field out."""
    record: dict[str, Any] = {
        "timestamp": utc(entered),
        "exit_timestamp": utc(exited),
        "symbol": "AAPL",
        "action": "BUY",
        "quantity": 10,
        "price": "10",
        "order_id": order_id,
        "outcome": "win" if pnl[0] != "-" else "loss",
        "net_profit_loss": pnl,
        "execution_mode": "PAPER",
        "emergency_exit": False,
        "manual_override": False,
        "operator_id": "ops",
    }
    if phase is not None:
        record["phase"] = phase
    write_journal_line(desk, record)


def proof_with_two_losses_then_an_experience_loss(desk: Desk) -> None:
    """Proof: +40, −20, −20 by the bot, then a hand-written experience loss entered inside the stint.

    Counted, it would be proof's third loss in a row (a downgrade) and a 4th trade.
    """
    proof_unlimited_entries(desk)
    desk.trades(40, -20, -20)
    desk.tick(5)
    now = desk.now()
    hand_closed_trade(desk, "hand-exp", "-20", entered=now - timedelta(minutes=3), exited=now - timedelta(minutes=2), phase="experience")
    desk.tick()


def test_trade_of_another_phase_inside_the_stint_does_not_count_toward_proof_trades(desk: Desk) -> None:
    proof_with_two_losses_then_an_experience_loss(desk)
    report = gate(desk, "trial")[1]
    assert criterion(report, "trades")["actual"] == 3
    assert criterion(report, "win_rate")["actual"] == "0.3333"


def test_trade_of_another_phase_inside_the_stint_does_not_trigger_a_downgrade(desk: Desk) -> None:
    proof_with_two_losses_then_an_experience_loss(desk)
    code, status = desk.cli_json("status")
    assert code == 0
    assert (status["phase"], status["circuit_breaker"]["tripped"]) == ("proof", False)
    assert [t["kind"] for t in desk.transitions()] == ["override"]
    assert desk.enter().accepted


def test_trade_without_phase_entered_before_the_stint_is_not_in_it(desk: Desk) -> None:
    """Entered in experience, closed (by hand, no phase field) after the move into proof."""
    entered = desk.now()
    desk.tick()
    proof_unlimited_entries(desk)
    desk.trade(40)
    desk.tick()
    hand_closed_trade(desk, "hand-old", "-20", entered=entered, exited=desk.now() - timedelta(minutes=1), phase=None)
    desk.tick()
    report = gate(desk, "trial")[1]
    assert criterion(report, "trades")["actual"] == 1
    assert criterion(report, "win_rate")["actual"] == "1.0000"


def test_trade_without_phase_entered_inside_the_stint_takes_the_phase_in_force(desk: Desk) -> None:
    proof_unlimited_entries(desk)
    desk.trade(40)
    desk.tick(5)
    now = desk.now()
    hand_closed_trade(desk, "hand-new", "-20", entered=now - timedelta(minutes=3), exited=now - timedelta(minutes=2), phase=None)
    desk.tick()
    report = gate(desk, "trial")[1]
    assert criterion(report, "trades")["actual"] == 2
    assert criterion(report, "win_rate")["actual"] == "0.5000"


# ---- proof → trial: missed days around a breaker period, the 16:00 boundary ----------------


def trip_breaker_by_recovering_the_override_log(desk: Desk) -> None:
    """Damage a terminated override-log line and `recover`: the breaker trips (SPEC §10), the stint stays."""
    path = desk.logs_dir / "phase" / "phase-overrides.jsonl"
    text = path.read_text(encoding="utf-8")
    assert "test setup" in text
    path.write_text(text.replace("test setup", "test setuP", 1), encoding="utf-8")
    code, _, err = desk.cli("recover")
    assert code == 0, err
    desk.start()
    _, status = desk.cli_json("status")
    assert (status["phase"], status["circuit_breaker"]["tripped"]) == ("proof", True)


def test_breaker_days_neither_count_nor_break_a_run_of_missed_days(desk: Desk) -> None:
    """Entry Monday 2 March; 3–4 March missed; breaker tripped 5–9 March; 10–11 March missed: a run of 4."""
    proof_from_monday(desk)
    desk.trade(40)
    desk.open_session(date(2026, 3, 5))
    trip_breaker_by_recovering_the_override_log(desk)
    desk.open_session(date(2026, 3, 9))
    acknowledge(desk)
    desk.open_session(date(2026, 3, 12))
    stint_since = desk.cli_json("status")[1]["stint_since"]
    assert stint_since.startswith("2026-03-02"), "the recovery must not start a new stint"
    streak = measured(desk, "trial", "missed_days_streak")
    assert (streak["actual"], streak["met"]) == (4, False)


def test_stint_begun_at_exactly_end_time_does_not_count_that_day(desk: Desk) -> None:
    start_proof_at(desk, date(2026, 3, 3), 16, 0)
    desk.open_session(date(2026, 3, 4))
    assert measured(desk, "trial", "trading_days")["actual"] == 1
