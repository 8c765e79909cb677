"""The operator's command line (SPEC §11, §13): every command, every exit code, every refusal.

Each test drives `trading_bot.phase.cli.main` on the desk (real bot, real files, frozen
clock) and reads the real logs back; "nothing written" is a byte-for-byte snapshot of
every file under the desk.
"""

from __future__ import annotations

import getpass
import io
import json
import multiprocessing
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from filelock import FileLock
from freezegun import freeze_time

from trading_bot.phase.cli import main

if TYPE_CHECKING:
    from tests.phase.conftest import Desk

CRITERION_NAMES = {
    "profitable_sessions",
    "trading_days",
    "missed_days_streak",
    "trades",
    "win_rate",
    "avg_rr",
    "max_drawdown_pct",
    "override_incidents",
}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
SCRYPT_VALUE = re.compile(r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$")


# ---- desk set-ups --------------------------------------------------------------------


def override_to(desk: Desk, phase: str) -> None:
    """Move the desk to a phase with a password override (a test's starting point)."""
    password = desk.env["PHASE_OVERRIDE_PASSWORD"]
    code, _, err = desk.cli("override", "--to", phase, "--operator", "setup", "--reason", "test setup", "--password-stdin", stdin=password + "\n")
    assert code == 0, err
    desk.start()


def trip_breaker(desk: Desk) -> None:
    """Three losses in proof: the bot downgrades to experience and trips the breaker."""
    override_to(desk, "proof")
    desk.trades(-5, -5, -5, per_session=1)


def loosen_experience_gate(desk: Desk) -> None:
    """Easy experience criteria, set before the first run records the baseline (no incident)."""
    criteria = ("phase_progression", "experience", "advancement_criteria")
    desk.edit_config(
        {
            (*criteria, "min_sessions"): 1,
            (*criteria, "session_window"): 10,
            (*criteria, "min_win_rate"): Decimal("0.5"),
            (*criteria, "min_avg_rr"): Decimal("1.0"),
        }
    )


def ready_for_proof(desk: Desk) -> None:
    """One profitable, completed session under easy criteria: the proof gate passes."""
    loosen_experience_gate(desk)
    desk.trades(10)
    desk.next_session()


def summarised_sessions(desk: Desk) -> None:
    """Two completed sessions (2026-03-02: +10 and -5; 2026-03-03: +7) with their summaries written."""
    desk.trades(10, -5)
    desk.next_session()
    desk.trades(7)
    desk.next_session()
    code, _, err = desk.cli("status")
    assert code == 0, err


def history_path(desk: Desk) -> Path:
    return desk.logs_dir / "phase" / "phase-history.jsonl"


def tamper_history_line(desk: Desk, line_no: int, **changes: Any) -> bytes:
    """Change a history line's payload, keep its old hash; returns the damaged file's bytes."""
    path = history_path(desk)
    lines = path.read_bytes().splitlines(keepends=True)
    obj = json.loads(lines[line_no - 1])
    obj.update(changes)
    lines[line_no - 1] = (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode()
    path.write_bytes(b"".join(lines))
    return path.read_bytes()


def damaged_history(desk: Desk) -> bytes:
    """Three history lines (two summaries and an override), the middle one edited."""
    summarised_sessions(desk)
    override_to(desk, "proof")
    assert len(desk.history()) >= 3
    return tamper_history_line(desk, 2, journal_net_pnl="999.00")


def status_json(desk: Desk, *args: str) -> dict[str, Any]:
    code, payload = desk.cli_json("status", *args)
    assert code == 0, payload
    return payload


def assert_one_usage_line(code: int, out: str, err: str) -> None:
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err


class Terminal(io.StringIO):
    """Standard input that says it is a terminal, with the operator's typed answer."""

    def isatty(self) -> bool:
        return True


def run_on_terminal(desk: Desk, *args: str, typed: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(desk.config_path), *args], stdin=Terminal(typed), stdout=out, stderr=err, environ=desk.env)
    return code, out.getvalue(), err.getvalue()


# ---- status ----------------------------------------------------------------------------


def test_status_names_phase_mode_size_and_breaker(desk: Desk) -> None:
    code, out, _ = desk.cli("status")
    assert code == 0
    assert "Experience (experience)" in out
    assert "Mode         paper" in out
    assert "Size         $100.00" in out
    assert "Breaker      ok" in out


def test_status_shows_entries_against_an_unlimited_limit(desk: Desk) -> None:
    desk.trade(10)
    _, out, _ = desk.cli("status")
    assert "Entries      1/unlimited this session" in out


def test_status_shows_each_criterion_with_mark_and_both_numbers(desk: Desk) -> None:
    _, out, _ = desk.cli("status")
    assert "Next phase   Proof of Concept (proof): not ready" in out
    assert "  ✗ profitable sessions 0 < required 20" in out
    assert "  ✓ override incidents 0 ≤ allowed 0 since the stint began" in out


def test_status_shows_ready_when_the_gate_passes(desk: Desk) -> None:
    ready_for_proof(desk)
    _, out, _ = desk.cli("status")
    assert "Proof of Concept (proof): READY" in out
    assert "  ✓ profitable sessions 1 ≥ required 1" in out


def test_status_with_a_passing_gate_and_a_tripped_breaker_says_to_acknowledge_first(desk: Desk) -> None:
    criteria = ("phase_progression", "experience", "advancement_criteria")
    desk.edit_config({(*criteria, "min_sessions"): 0, (*criteria, "min_win_rate"): None, (*criteria, "min_avg_rr"): None})
    trip_breaker(desk)
    code, out, _ = desk.cli("status")
    assert code == 0
    assert (
        "Next phase   Proof of Concept (proof): the gate passes, but no advance while the breaker is tripped: "
        "`acknowledge` it, then python -m trading_bot.phase advance --to proof\n"
    ) in out
    assert "READY" not in out
    payload = status_json(desk)
    assert (payload["readiness"]["ready"], payload["suggested_advance"]) == (True, False)
    desk.cli("acknowledge", "--operator", "alice")
    assert "Next phase   Proof of Concept (proof): READY — advance with: python -m trading_bot.phase advance --to proof\n" in desk.cli("status")[1]


def test_status_with_a_passing_gate_on_damaged_logs_says_recover_first(desk: Desk) -> None:
    ready_for_proof(desk)
    desk.cli("status")
    tamper_history_line(desk, 1, journal_net_pnl="999.00")
    code, out, _ = desk.cli("status")
    assert code == 1
    assert (
        "Next phase   Proof of Concept (proof): the gate passes on the records that could be read, "
        "but no advance until the phase logs are restored: run `recover`\n"
    ) in out
    assert "READY" not in out
    code, payload = desk.cli_json("status")
    assert (code, payload["readiness"]["ready"], payload["suggested_advance"]) == (1, True, False)


def test_status_gives_countdown_when_session_limit_reached(desk: Desk) -> None:
    override_to(desk, "proof")
    desk.trade(5)  # Monday 10:00 EST; the clock ends at 10:02
    _, out, _ = desk.cli("status")
    assert "Entries      1/1 this session — next entry 2026-03-03 07:00 EST (in 20h 58m)" in out


def test_status_shows_tripped_breaker_with_its_reason(desk: Desk) -> None:
    trip_breaker(desk)
    code, out, _ = desk.cli("status")
    assert code == 0
    assert "Breaker      TRIPPED since 2026-03-04 08:01 EST: downgraded proof → experience: 3 consecutive losses" in out
    assert "acknowledge" in out


def test_status_shows_pending_config_request(desk: Desk) -> None:
    desk.edit_config({("phase_progression", "current_phase"): "trial"})
    _, out, _ = desk.cli("status")
    assert "Experience (experience)" in out
    assert "config.json asks for trial" in out


def test_status_json_has_the_required_keys_and_types(desk: Desk) -> None:
    desk.trade(10)
    payload = status_json(desk)
    assert payload["phase"] == "experience"
    assert payload["phase_since"] is None and payload["stint_since"] is None
    assert payload["mode"] == "paper"
    assert payload["position_size"] == "100.00"
    assert type(payload["trades_this_session"]) is int and payload["trades_this_session"] == 1
    assert payload["max_trades_per_day"] is None
    assert payload["next_trade_allowed_at"] is None
    assert payload["circuit_breaker"] == {"tripped": False, "reason": None, "since": None}
    assert payload["pending_request"] is None
    assert payload["next_phase"] == "proof"


def test_status_json_readiness_is_the_validate_transition_object(desk: Desk) -> None:
    payload = status_json(desk)
    _, gate = desk.cli_json("validate-transition", "--to", "proof")
    assert payload["readiness"] == gate


def test_status_json_at_the_session_limit_gives_limit_and_next_allowed_time(desk: Desk) -> None:
    override_to(desk, "proof")
    desk.trade(5)
    payload = status_json(desk)
    assert payload["phase"] == "proof"
    assert ISO_UTC.match(payload["phase_since"]) and ISO_UTC.match(payload["stint_since"])
    assert payload["trades_this_session"] == 1
    assert type(payload["max_trades_per_day"]) is int and payload["max_trades_per_day"] == 1
    assert payload["next_trade_allowed_at"] == "2026-03-03T12:00:00Z"


def test_status_json_reports_a_tripped_breaker(desk: Desk) -> None:
    trip_breaker(desk)
    breaker = status_json(desk)["circuit_breaker"]
    assert breaker["tripped"] is True
    assert "3 consecutive losses" in breaker["reason"]
    assert breaker["since"] == "2026-03-04T13:01:00Z"


def test_status_json_reports_a_pending_request(desk: Desk) -> None:
    desk.edit_config({("phase_progression", "current_phase"): "trial"})
    payload = status_json(desk)
    assert payload["phase"] == "experience"
    assert payload["pending_request"] == {"requested_phase": "trial"}


def test_status_json_at_the_top_of_the_ladder_has_no_next_phase(desk: Desk) -> None:
    override_to(desk, "scaling")
    payload = status_json(desk)
    assert payload["next_phase"] is None
    assert payload["readiness"] is None


def test_status_exits_1_and_still_reports_when_a_phase_log_is_damaged(desk: Desk) -> None:
    summarised_sessions(desk)
    tamper_history_line(desk, 1, journal_net_pnl="999.00")
    code, out, _ = desk.cli("status")
    assert code == 1
    assert "Experience (experience)" in out
    assert "DAMAGE" in out and "phase-history.jsonl:1" in out


def test_status_json_exits_1_when_a_phase_log_is_damaged(desk: Desk) -> None:
    summarised_sessions(desk)
    tamper_history_line(desk, 1, journal_net_pnl="999.00")
    code, payload = desk.cli_json("status")
    assert code == 1
    assert payload["phase"] == "experience"


# ---- validate-transition -------------------------------------------------------------------


def test_validate_transition_exits_0_when_ready(desk: Desk) -> None:
    ready_for_proof(desk)
    code, out, _ = desk.cli("validate-transition", "--to", "proof")
    assert code == 0
    assert "experience → proof: READY" in out


def test_validate_transition_exits_1_when_not_ready(desk: Desk) -> None:
    code, out, _ = desk.cli("validate-transition", "--to", "proof")
    assert code == 1
    assert "NOT READY" in out
    assert "✗ profitable sessions 0 < required 20" in out


def test_validate_transition_json_has_the_required_shape(desk: Desk) -> None:
    desk.trades(10, -5)
    code, gate = desk.cli_json("validate-transition", "--to", "proof")
    assert code == 1
    assert (gate["from_phase"], gate["to_phase"], gate["ready"]) == ("experience", "proof", False)
    for criterion in gate["criteria"]:
        assert set(criterion) >= {"name", "actual", "required", "met", "detail"}
        assert criterion["name"] in CRITERION_NAMES
        assert isinstance(criterion["met"], bool) and isinstance(criterion["detail"], str)
    assert [c["name"] for c in gate["criteria"]] == ["profitable_sessions", "win_rate", "avg_rr", "override_incidents"]
    assert gate["failures"] == [c["detail"] for c in gate["criteria"] if not c["met"]]


def test_validate_transition_json_writes_ratios_as_strings_and_counts_as_integers(desk: Desk) -> None:
    desk.trades(10, -5)
    _, gate = desk.cli_json("validate-transition", "--to", "proof")
    by_name = {c["name"]: c for c in gate["criteria"]}
    assert by_name["win_rate"]["actual"] == "0.5000" and by_name["win_rate"]["required"] == "0.6000"
    assert by_name["avg_rr"]["actual"] == "2.0000"
    assert type(by_name["profitable_sessions"]["actual"]) is int


def test_validate_transition_to_an_unknown_phase_is_bad_usage(desk: Desk) -> None:
    code, out, err = desk.cli("validate-transition", "--to", "moon")
    assert_one_usage_line(code, out, err)
    assert "unknown phase" in err and "moon" not in err  # what was typed is never echoed


def test_validate_transition_to_a_phase_that_is_not_next_is_refused(desk: Desk) -> None:
    code, out, err = desk.cli("validate-transition", "--to", "trial")
    assert code == 1
    assert out == ""
    assert "phases advance one at a time" in err and "use override" in err


# ---- advance --------------------------------------------------------------------------------


def test_advance_without_terminal_or_yes_is_bad_usage_and_writes_nothing(desk: Desk) -> None:
    ready_for_proof(desk)
    desk.cli("status")
    before = desk.snapshot_files()
    code, out, err = desk.cli("advance", "--to", "proof")
    assert_one_usage_line(code, out, err)
    assert "--yes" in err
    assert desk.snapshot_files() == before


def test_advance_with_yes_and_failing_gates_exits_1(desk: Desk) -> None:
    code, _, err = desk.cli("advance", "--to", "proof", "--yes")
    assert code == 1
    assert "profitable sessions 0 < required 20" in err
    assert status_json(desk)["phase"] == "experience"


def test_advance_with_failing_gates_records_the_refusal_with_its_failures(desk: Desk) -> None:
    desk.cli("advance", "--to", "proof", "--yes", "--operator", "alice")
    refused = desk.overrides()[-1]
    assert refused["type"] == "advance_refused"
    assert refused["operator_id"] == "alice"
    assert refused["to_phase"] == "proof"
    assert "profitable sessions 0 < required 20" in refused["failures"]


def test_advance_operator_defaults_to_the_login_name(desk: Desk) -> None:
    desk.cli("advance", "--to", "proof", "--yes")
    refused = desk.overrides()[-1]
    assert refused["type"] == "advance_refused"
    assert refused["operator_id"] == getpass.getuser()


def test_advance_to_a_phase_that_is_not_next_is_refused_and_recorded(desk: Desk) -> None:
    code, _, err = desk.cli("advance", "--to", "trial", "--yes")
    assert code == 1
    assert "phases advance one at a time" in err and "use override" in err
    assert desk.overrides()[-1]["type"] == "advance_refused"


def test_advance_while_the_breaker_is_tripped_is_refused(desk: Desk) -> None:
    trip_breaker(desk)
    code, _, err = desk.cli("advance", "--to", "proof", "--yes")
    assert code == 1
    assert "breaker" in err and "acknowledge" in err
    assert desk.overrides()[-1]["type"] == "advance_refused"


def test_advance_with_yes_and_passing_gates_moves_up_one_phase(desk: Desk) -> None:
    ready_for_proof(desk)
    code, out, err = desk.cli("advance", "--to", "proof", "--yes", "--operator", "alice")
    assert code == 0, err
    assert "advanced to proof" in out
    transition = desk.transitions()[-1]
    assert (transition["kind"], transition["from_phase"], transition["to_phase"]) == ("advance", "experience", "proof")
    assert transition["operator_id"] == "alice"
    assert status_json(desk)["phase"] == "proof"


def test_advance_answered_yes_on_a_terminal_advances(desk: Desk) -> None:
    ready_for_proof(desk)
    code, out, err = run_on_terminal(desk, "advance", "--to", "proof", typed="y\n")
    assert code == 0, err
    assert "Advance experience → proof? [y/N]" in out
    assert desk.transitions()[-1]["to_phase"] == "proof"


def test_advance_answered_no_on_a_terminal_exits_1_and_is_recorded(desk: Desk) -> None:
    ready_for_proof(desk)
    code, _, err = run_on_terminal(desk, "advance", "--to", "proof", typed="n\n")
    assert code == 1
    assert "cancelled" in err
    assert desk.transitions() == []
    refused = desk.overrides()[-1]
    assert refused["type"] == "advance_refused"
    assert "answered no" in refused["reason"]


# ---- override -------------------------------------------------------------------------------


def test_override_with_the_password_moves_to_any_phase(desk: Desk) -> None:
    password = desk.env["PHASE_OVERRIDE_PASSWORD"]
    code, out, err = desk.cli("override", "--to", "trial", "--operator", "alice", "--reason", "migrating", "--password-stdin", stdin=password + "\n")
    assert code == 0, err
    assert "now in trial" in out
    assert status_json(desk)["phase"] == "trial"


def test_override_with_a_wrong_password_exits_1_and_is_recorded(desk: Desk) -> None:
    code, _, err = desk.cli("override", "--to", "trial", "--operator", "alice", "--reason", "r", "--password-stdin", stdin="guess\n")
    assert code == 1
    assert "wrong password" in err
    attempt = desk.overrides()[-1]
    assert (attempt["type"], attempt["outcome"], attempt["operator_id"]) == ("override_attempt", "wrong_password", "alice")
    assert desk.transitions() == []


def test_override_reset_progress_starts_a_new_stint_in_the_same_phase(desk: Desk) -> None:
    password = desk.env["PHASE_OVERRIDE_PASSWORD"]
    code, _, err = desk.cli("override", "--reset-progress", "--operator", "alice", "--reason", "fresh start", "--password-stdin", stdin=password + "\n")
    assert code == 0, err
    transition = desk.transitions()[-1]
    assert (transition["kind"], transition["to_phase"]) == ("reset", "experience")


def test_override_to_the_current_phase_is_bad_usage_and_writes_nothing(desk: Desk) -> None:
    desk.cli("status")
    before = desk.snapshot_files()
    password = desk.env["PHASE_OVERRIDE_PASSWORD"]
    code, out, err = desk.cli("override", "--to", "experience", "--operator", "a", "--reason", "r", "--password-stdin", stdin=password + "\n")
    assert_one_usage_line(code, out, err)
    assert desk.snapshot_files() == before


def test_override_without_terminal_or_password_stdin_is_bad_usage(desk: Desk) -> None:
    code, out, err = desk.cli("override", "--to", "trial", "--operator", "a", "--reason", "r")
    assert_one_usage_line(code, out, err)
    assert "--password-stdin" in err


def test_override_password_is_not_accepted_on_the_command_line(desk: Desk) -> None:
    password = desk.env["PHASE_OVERRIDE_PASSWORD"]
    code, out, err = desk.cli("override", "--to", "trial", "--operator", "a", "--reason", "r", "--password", password)
    assert_one_usage_line(code, out, err)


def test_override_never_writes_the_password_anywhere(desk: Desk) -> None:
    override_to(desk, "trial")
    password = desk.env["PHASE_OVERRIDE_PASSWORD"].encode()
    assert not [name for name, data in desk.snapshot_files().items() if password in data]


# ---- acknowledge -----------------------------------------------------------------------------


def test_acknowledge_with_nothing_tripped_exits_0_and_records_nothing(desk: Desk) -> None:
    desk.trade(10)
    desk.cli("status")
    before = desk.snapshot_files()
    code, out, _ = desk.cli("acknowledge", "--operator", "alice")
    assert code == 0
    assert "nothing recorded" in out
    assert desk.snapshot_files() == before


def test_acknowledge_clears_a_tripped_breaker(desk: Desk) -> None:
    trip_breaker(desk)
    code, _, err = desk.cli("acknowledge", "--operator", "alice", "--note", "reviewed the losses")
    assert code == 0, err
    assert status_json(desk)["circuit_breaker"]["tripped"] is False


def test_acknowledge_is_recorded_with_operator_and_note(desk: Desk) -> None:
    trip_breaker(desk)
    desk.cli("acknowledge", "--operator", "alice", "--note", "reviewed the losses")
    line = desk.history()[-1]
    assert (line["operator_id"], line["note"]) == ("alice", "reviewed the losses")
    assert "3 consecutive losses" in line["cleared_reason"]


def test_acknowledge_requires_an_operator(desk: Desk) -> None:
    code, out, err = desk.cli("acknowledge")
    assert_one_usage_line(code, out, err)


# ---- check-trade ---------------------------------------------------------------------------


def test_check_trade_allowed_exits_0(desk: Desk) -> None:
    code, out, _ = desk.cli("check-trade")
    assert code == 0
    assert "allowed: new entry of up to $100.00 (experience)" in out


def test_check_trade_json_has_the_required_shape(desk: Desk) -> None:
    code, payload = desk.cli_json("check-trade")
    assert code == 0
    assert payload == {
        "allowed": True,
        "reason": None,
        "phase": "experience",
        "position_size": "100.00",
        "trades_this_session": 0,
        "max_trades_per_day": None,
        "next_trade_allowed_at": None,
        "code": None,
        "status": "active",
    }


def test_check_trade_at_the_session_limit_exits_1_with_the_next_allowed_time(desk: Desk) -> None:
    override_to(desk, "proof")
    desk.trade(5)
    code, payload = desk.cli_json("check-trade")
    assert code == 1
    assert payload["allowed"] is False
    assert payload["reason"].startswith("1/1 trades this session (proof); next trade allowed 2026-03-03 07:00 EST")
    assert (payload["trades_this_session"], payload["max_trades_per_day"]) == (1, 1)
    assert payload["next_trade_allowed_at"] == "2026-03-03T12:00:00Z"


def test_check_trade_with_the_breaker_tripped_exits_1(desk: Desk) -> None:
    trip_breaker(desk)
    code, out, _ = desk.cli("check-trade")
    assert code == 1
    assert out.startswith("refused: phase circuit breaker tripped")


def test_check_trade_for_an_emergency_exit_is_allowed_while_the_breaker_is_tripped(desk: Desk) -> None:
    trip_breaker(desk)
    code, payload = desk.cli_json("check-trade", "--emergency-exit")
    assert code == 0
    assert payload["allowed"] is True


def test_check_trade_for_an_emergency_exit_is_allowed_while_the_logs_are_damaged(desk: Desk) -> None:
    damaged_history(desk)
    code, _, _ = desk.cli("check-trade", "--emergency-exit")
    assert code == 0


def test_check_trade_with_damaged_logs_refuses_entries(desk: Desk) -> None:
    damaged_history(desk)
    code, out, _ = desk.cli("check-trade")
    assert code == 1
    assert "phase log damaged" in out


@pytest.mark.parametrize("args", [(), ("--emergency-exit",)], ids=["entry", "emergency-exit"])
def test_check_trade_records_nothing(desk: Desk, args: tuple[str, ...]) -> None:
    trip_breaker(desk)  # a refused entry: the bot would record it, check-trade must not
    desk.cli("status")
    before = desk.snapshot_files()
    desk.cli("check-trade", *args)
    assert desk.snapshot_files() == before


# ---- verify ----------------------------------------------------------------------------------


def test_verify_intact_exits_0(desk: Desk) -> None:
    summarised_sessions(desk)
    code, payload = desk.cli_json("verify")
    assert code == 0
    assert payload == {"intact": True, "problems": []}


def test_verify_an_edited_line_exits_1_naming_file_and_line(desk: Desk) -> None:
    damaged_history(desk)
    code, payload = desk.cli_json("verify")
    assert code == 1
    assert payload["intact"] is False
    problem = payload["problems"][0]
    assert problem["file"] == "phase-history.jsonl"
    assert type(problem["line"]) is int and problem["line"] == 2
    assert "hash" in problem["reason"]


def test_verify_an_edited_override_log_line_exits_1(desk: Desk) -> None:
    summarised_sessions(desk)
    path = desk.logs_dir / "phase" / "phase-overrides.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"operator_id":"config.json"', b'"operator_id":"mallory"', 1))
    code, payload = desk.cli_json("verify")
    assert code == 1
    assert [(p["file"], p["line"]) for p in payload["problems"]] == [("phase-overrides.jsonl", 1)]


def test_verify_a_journal_trade_edited_after_its_session_summary_exits_1_naming_the_session(desk: Desk) -> None:
    summarised_sessions(desk)
    journal = desk.logs_dir / "trades" / "2026-03-02.jsonl"
    text = journal.read_text()
    assert text.count('"net_profit_loss":"10"') == 1
    # The +10 win becomes a +12 win: still a consistent, valid journal line.
    text = text.replace('"net_profit_loss":"10","profit_loss":"10"', '"net_profit_loss":"12","profit_loss":"12"')
    journal.write_text(text.replace('"exit_price":"11"', '"exit_price":"11.2"'))
    code, payload = desk.cli_json("verify")
    assert code == 1
    assert any("2026-03-02" in p["reason"] for p in payload["problems"]), payload


def test_verify_a_history_cut_short_exits_1(desk: Desk) -> None:
    summarised_sessions(desk)
    override_to(desk, "proof")
    path = history_path(desk)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    code, payload = desk.cli_json("verify")
    assert code == 1
    assert any("cut short" in p["reason"] for p in payload["problems"]), payload


def test_verify_text_lists_one_problem_per_line(desk: Desk) -> None:
    damaged_history(desk)
    code, out, _ = desk.cli("verify")
    assert code == 1
    assert out.startswith("phase-history.jsonl:2: ")


# ---- recover ----------------------------------------------------------------------------------


def test_recover_with_nothing_damaged_exits_0_and_says_so(desk: Desk) -> None:
    summarised_sessions(desk)
    code, out, _ = desk.cli("recover")
    assert code == 0
    assert "nothing to recover" in out


def test_recover_keeps_the_damaged_copy_aside(desk: Desk) -> None:
    damaged = damaged_history(desk)
    code, _, err = desk.cli("recover")
    assert code == 0, err
    aside = list(history_path(desk).parent.glob("phase-history.jsonl.damaged-*"))
    assert [path.read_bytes() for path in aside] == [damaged]


def test_recover_records_a_recovered_line(desk: Desk) -> None:
    damaged_history(desk)
    desk.cli("recover")
    last = desk.history()[-1]
    assert last["type"] == "recovered"
    assert last["dropped_from_line"] == 2


def test_recover_trips_the_breaker(desk: Desk) -> None:
    damaged_history(desk)
    desk.cli("recover")
    assert status_json(desk)["circuit_breaker"]["tripped"] is True


def test_recover_leaves_no_phantom_config_request(desk: Desk) -> None:
    damaged_history(desk)
    desk.cli("recover")
    assert status_json(desk)["pending_request"] is None


def test_verify_is_intact_after_recover(desk: Desk) -> None:
    damaged_history(desk)
    desk.cli("recover")
    code, payload = desk.cli_json("verify")
    assert code == 0
    assert payload == {"intact": True, "problems": []}


# ---- hash-password -----------------------------------------------------------------------------


def test_hash_password_prints_one_scrypt_value(desk: Desk) -> None:
    code, out, err = desk.cli("hash-password", "--password-stdin", stdin="s3cret phrase\n")
    assert code == 0, err
    assert out.count("\n") == 1
    assert SCRYPT_VALUE.match(out.strip()), out
    assert "s3cret" not in out


def test_hash_password_value_unlocks_an_override(desk: Desk) -> None:
    _, out, _ = desk.cli("hash-password", "--password-stdin", stdin="s3cret phrase\n")
    desk.env.clear()
    desk.env["PHASE_OVERRIDE_PASSWORD_HASH"] = out.strip()
    code, _, err = desk.cli("override", "--to", "proof", "--operator", "a", "--reason", "r", "--password-stdin", stdin="s3cret phrase\n")
    assert code == 0, err


def test_hash_password_of_an_empty_password_is_bad_usage(desk: Desk) -> None:
    code, out, err = desk.cli("hash-password", "--password-stdin", stdin="\n")
    assert_one_usage_line(code, out, err)


# ---- --as-of -----------------------------------------------------------------------------------

# The as-of desk: Monday 2026-03-02 a +10 win; Tuesday 08:00 EST (13:00Z) an override to
# proof, then a +5 trade entered at 13:01Z and closed at 13:02Z.
BEFORE_OVERRIDE = "2026-03-03T12:30:00Z"
WHILE_OPEN = "2026-03-03T13:01:30Z"


def as_of_desk(desk: Desk) -> None:
    desk.trades(10)
    desk.next_session()
    desk.cli("status")
    override_to(desk, "proof")
    desk.tick()
    entry = desk.enter()
    assert entry.accepted, entry.reason
    desk.close(entry, 5)
    desk.next_session()  # Wednesday: a session summary is now due, and nothing has applied it yet


def test_status_as_of_before_an_override_sees_the_phase_then(desk: Desk) -> None:
    as_of_desk(desk)
    payload = status_json(desk, "--as-of", BEFORE_OVERRIDE)
    assert payload["phase"] == "experience"
    assert payload["phase_since"] is None


def test_status_as_of_before_an_override_shows_no_pending_request(desk: Desk) -> None:
    as_of_desk(desk)
    assert status_json(desk, "--as-of", BEFORE_OVERRIDE)["pending_request"] is None


def test_status_as_of_sees_a_trade_closed_later_as_still_open(desk: Desk) -> None:
    as_of_desk(desk)
    then = status_json(desk, "--as-of", WHILE_OPEN)
    trades_then = {c["name"]: c for c in then["readiness"]["criteria"]}["trades"]
    assert (then["phase"], then["trades_this_session"], trades_then["actual"]) == ("proof", 1, 0)
    now = status_json(desk)
    assert {c["name"]: c for c in now["readiness"]["criteria"]}["trades"]["actual"] == 1


def test_check_trade_as_of_sees_the_entry_limit_then(desk: Desk) -> None:
    as_of_desk(desk)
    code, payload = desk.cli_json("check-trade", "--as-of", WHILE_OPEN)
    assert code == 1
    assert payload["next_trade_allowed_at"] == "2026-03-04T12:00:00Z"


def test_validate_transition_as_of_before_an_override_evaluates_the_phase_then(desk: Desk) -> None:
    as_of_desk(desk)
    code, out, err = desk.cli("validate-transition", "--to", "trial", "--as-of", BEFORE_OVERRIDE)
    assert code == 1
    assert "phases advance one at a time" in err


@pytest.mark.parametrize(
    "args",
    [
        ("status", "--json"),
        ("status",),
        ("validate-transition", "--to", "trial"),
        ("check-trade",),
        ("check-trade", "--emergency-exit"),
        ("verify",),
    ],
    ids=lambda args: "-".join(args),
)
def test_as_of_writes_nothing_at_all(desk: Desk, args: tuple[str, ...]) -> None:
    as_of_desk(desk)
    before = desk.snapshot_files()
    code, _, err = desk.cli(*args, "--as-of", WHILE_OPEN)
    assert code in (0, 1), err
    assert desk.snapshot_files() == before


def test_as_of_without_a_time_zone_is_bad_usage(desk: Desk) -> None:
    code, out, err = desk.cli("status", "--as-of", "2026-03-02T10:00")
    assert_one_usage_line(code, out, err)
    assert "time zone" in err


@pytest.mark.parametrize("value", ["yesterday", "2026-13-45T10:00Z", "2026-03-02T25:00:00+00:00"])
def test_as_of_that_is_not_a_timestamp_is_bad_usage(desk: Desk, value: str) -> None:
    code, out, err = desk.cli("status", "--as-of", value)
    assert_one_usage_line(code, out, err)


def test_as_of_is_not_taken_by_commands_that_write(desk: Desk) -> None:
    code, out, err = desk.cli("acknowledge", "--operator", "a", "--as-of", "2026-03-02T10:00:00Z")
    assert_one_usage_line(code, out, err)


# ---- bad input: config.json ----------------------------------------------------------------------

# (description, shipped text, replacement, field) — each edit lands on one line of the shipped file.
CONFIG_BREAKAGES = [
    ("wrong type", '"max_trades_per_day": 1,', '"max_trades_per_day": "many",', "phase_progression.proof.max_trades_per_day"),
    ("unknown phase", '"current_phase": "experience"', '"current_phase": "expert"', "phase_progression.current_phase"),
    ("unknown key", '"min_sessions": 30,', '"min_sesions": 30,', "phase_progression.proof.advancement_criteria.min_sesions"),
    ("negative threshold", '"min_trades": 50,', '"min_trades": -50,', "phase_progression.proof.advancement_criteria.min_trades"),
    ("win rate above 1", '"min_win_rate": 0.60,', '"min_win_rate": 1.60,', "phase_progression.experience.advancement_criteria.min_win_rate"),
    ("end before start", '"end_time": "16:00"', '"end_time": "06:00"', "trading.hours.end_time"),
]


def break_config(desk: Desk, old: str, new: str) -> int:
    """Apply a hand edit to config.json; returns the 1-based line it landed on."""
    text = desk.config_path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    line = text[: text.index(old)].count("\n") + 1
    desk.config_path.write_text(text.replace(old, new), encoding="utf-8")
    return line


def desk_with_work_due(desk: Desk) -> None:
    """A desk whose next command would write (a session summary is due)."""
    desk.trades(10)
    desk.cli("status")
    desk.next_session()


@pytest.mark.parametrize(("old", "new", "field"), [case[1:] for case in CONFIG_BREAKAGES], ids=[case[0] for case in CONFIG_BREAKAGES])
def test_malformed_config_is_one_line_naming_file_line_and_field(desk: Desk, old: str, new: str, field: str) -> None:
    line = break_config(desk, old, new)
    code, out, err = desk.cli("status")
    assert_one_usage_line(code, out, err)
    assert err.startswith(f"{desk.config_path}:{line}: {field}: "), err
    assert len(err.strip()) > len(f"{desk.config_path}:{line}: {field}: ")


@pytest.mark.parametrize(("old", "new"), [case[1:3] for case in CONFIG_BREAKAGES], ids=[case[0] for case in CONFIG_BREAKAGES])
def test_malformed_config_writes_nothing(desk: Desk, old: str, new: str) -> None:
    desk_with_work_due(desk)
    break_config(desk, old, new)
    before = desk.snapshot_files()
    desk.cli("status")
    assert desk.snapshot_files() == before


def test_config_that_is_not_json_is_one_line_naming_the_line(desk: Desk) -> None:
    line = break_config(desk, '"position_size": 200,', '"position_size": ,')
    code, out, err = desk.cli("status")
    assert_one_usage_line(code, out, err)
    assert err.startswith(f"{desk.config_path}:{line}: ")


def test_missing_config_is_bad_usage(desk: Desk) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(desk.root / "missing.json"), "status"], stdin=io.StringIO(), stdout=out, stderr=err, environ=desk.env)
    assert_one_usage_line(code, out.getvalue(), err.getvalue())
    assert "missing.json" in err.getvalue()


# ---- bad input: the journal -------------------------------------------------------------------------


def append_journal_line(desk: Desk, **fields: Any) -> tuple[Path, int]:
    """Add a hand-written line to Monday's journal file; returns the file and the line number."""
    record = {"timestamp": "2026-03-02T15:30:00Z", "symbol": "AAPL", "action": "BUY", "quantity": 1, "price": "10", "order_id": "hand-1", "outcome": "open"}
    record.update(fields)
    path = desk.logs_dir / "trades" / "2026-03-02.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return path, len(path.read_text(encoding="utf-8").splitlines())


def test_invalid_journal_line_is_one_line_naming_file_line_and_field(desk: Desk) -> None:
    desk.trade(10)
    path, line = append_journal_line(desk, outcome="maybe")
    code, out, err = desk.cli("status")
    assert_one_usage_line(code, out, err)
    assert err.startswith(f"{path}:{line}: outcome: ")


def test_invalid_journal_line_writes_nothing(desk: Desk) -> None:
    desk_with_work_due(desk)
    append_journal_line(desk, outcome="maybe")
    before = desk.snapshot_files(records_only=True)
    assert desk.cli("check-trade")[0] == 2
    assert desk.snapshot_files(records_only=True) == before


def test_journal_trade_dated_after_now_is_bad_input(desk: Desk) -> None:
    desk.trade(10)
    path, line = append_journal_line(desk, timestamp="2026-03-09T15:00:00Z")
    code, out, err = desk.cli("status")
    assert_one_usage_line(code, out, err)
    assert err.startswith(f"{path}:{line}: timestamp: ")


def test_journal_trade_dated_after_now_is_bad_input_even_with_as_of(desk: Desk) -> None:
    desk.trade(10)
    append_journal_line(desk, timestamp="2026-03-09T15:00:00Z")
    code, out, err = desk.cli("status", "--as-of", "2026-03-02T15:10:00Z")
    assert_one_usage_line(code, out, err)


# ---- bad usage and the process boundary ---------------------------------------------------------------


def test_unknown_command_is_bad_usage(desk: Desk) -> None:
    code, out, err = desk.cli("frobnicate")
    assert_one_usage_line(code, out, err)


def test_no_command_is_bad_usage(desk: Desk) -> None:
    code, out, err = desk.cli()
    assert_one_usage_line(code, out, err)


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["status", "--bogus"], ["validate-transition"], ["--logs-dir"], ["--help"], ["status", "--help"]],
    ids=lambda argv: " ".join(argv) or "(none)",
)
def test_main_returns_a_code_and_never_raises_system_exit(desk: Desk, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # capsys swallows the help text, which argparse prints to sys.stdout.
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(desk.config_path), *argv], stdin=io.StringIO(), stdout=out, stderr=err, environ=desk.env)
    assert code == (0 if "--help" in argv else 2)


# ---- busy --------------------------------------------------------------------------------------------


def _hold_logs_lock(lock_path: str, held: Any, release: Any) -> None:
    """Run in another process: hold the logs lock until told to let go (30 s at most)."""
    with FileLock(lock_path):
        held.set()
        release.wait(30)


def test_a_writer_that_cannot_get_the_lock_within_10s_gives_up_busy(desk: Desk) -> None:
    trip_breaker(desk)
    history_before = history_path(desk).read_bytes()
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_logs_lock, args=(str(desk.logs_dir / ".phase.lock"), held, release))
    holder.start()
    try:
        assert held.wait(30), "the other process never got the lock"
        # The lock's 10 s wait must run on the real clock, not the frozen one.
        with freeze_time(desk.now(), ignore=["filelock"]):
            code, out, err = desk.cli("acknowledge", "--operator", "alice")
    finally:
        release.set()
        holder.join(30)
    assert code == 1
    assert out == ""
    assert "busy" in err
    assert history_path(desk).read_bytes() == history_before


# ---- known gaps --------------------------------------------------------------------------------------


def test_an_override_records_no_criteria_edit_when_nobody_edited_the_criteria(desk: Desk) -> None:
    override_to(desk, "proof")
    desk.cli("status")
    assert [line["type"] for line in desk.overrides() if line["type"] == "criteria_edit"] == []
