"""Password overrides (SPEC §8): moving to any phase, resetting a stint, the lockout.

Every test drives the real CLI (`trading_bot.phase.cli.main`, in-process) against a real
desk in tmp_path and reads the real override log and phase history back.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from tests.phase.conftest import DESK_START, PASSWORD, Desk, advance_to
from trading_bot.phase.manager import PhaseRefused
from trading_bot.phase.models import Phase

HASH_VAR = "PHASE_OVERRIDE_PASSWORD_HASH"
PLAIN_VAR = "PHASE_OVERRIDE_PASSWORD"
WRONG = "tr0ub4dor&3 is not it"


# ---- helpers -----------------------------------------------------------------------------


def override(desk: Desk, *target: str, password: str = PASSWORD, operator: str = "alice", reason: str = "operator decision") -> tuple[int, str, str]:
    """`override <target> --operator … --reason … --password-stdin`, password on stdin."""
    return desk.cli("override", *target, "--operator", operator, "--reason", reason, "--password-stdin", stdin=password + "\n")


def attempts(desk: Desk) -> list[dict[str, Any]]:
    return [line for line in desk.overrides() if line["type"] == "override_attempt"]


def outcomes(desk: Desk) -> list[str]:
    return [line["outcome"] for line in attempts(desk)]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def status(desk: Desk) -> dict[str, Any]:
    code, payload = desk.cli_json("status")
    assert code == 0, payload
    return payload


def override_incidents(desk: Desk) -> int:
    readiness = status(desk)["readiness"]
    assert readiness is not None
    (criterion,) = [c for c in readiness["criteria"] if c["name"] == "override_incidents"]
    return criterion["actual"]


def five_wrong(desk: Desk, *, minutes_apart: int = 1) -> datetime:
    """Five wrong passwords `minutes_apart` apart; returns the time of the fifth."""
    for index in range(5):
        if index:
            desk.tick(minutes_apart)
        code, _, _ = override(desk, "--reset-progress", password=WRONG)
        assert code == 1
    return desk.now()


def config_json(desk: Desk) -> dict[str, Any]:
    return json.loads(desk.config_path.read_text(encoding="utf-8"))


def hash_of(desk: Desk, password: str) -> str:
    code, out, err = desk.cli("hash-password", "--password-stdin", stdin=password + "\n")
    assert code == 0, err
    return out.strip()


# ---- a successful override ---------------------------------------------------------------


def test_override_with_the_password_exits_0(desk: Desk) -> None:
    code, out, err = override(desk, "--to", "proof")
    assert code == 0, err
    assert "proof" in out


def test_override_records_one_override_transition_with_new_size_and_unchanged_breaker(desk: Desk) -> None:
    override(desk, "--to", "proof")
    (line,) = desk.transitions()
    assert line["kind"] == "override"
    assert (line["from_phase"], line["to_phase"]) == ("experience", "proof")
    assert line["position_size"] == "100.00"
    assert line["breaker"]["tripped"] is False


def test_successful_override_writes_exactly_one_success_line_with_who_when_what_why(desk: Desk) -> None:
    override(desk, "--to", "trial", operator="alice", reason="moving a migrated bot")
    (line,) = attempts(desk)
    assert line["outcome"] == "success"
    assert line["operator_id"] == "alice"
    assert line["timestamp"] == stamp(desk.now())
    assert line["action"] == "to:trial"
    assert line["reason"] == "moving a migrated bot"


def test_override_can_skip_up_from_experience_to_scaling(desk: Desk) -> None:
    code, _, err = override(desk, "--to", "scaling")
    assert code == 0, err
    line = desk.transitions()[-1]
    assert (line["from_phase"], line["to_phase"], line["position_size"]) == ("experience", "scaling", "200.00")
    assert status(desk)["phase"] == "scaling"


def test_override_can_roll_back_from_scaling_to_proof(desk: Desk) -> None:
    advance_to(desk, "scaling")
    desk.tick(5)
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    line = desk.transitions()[-1]
    assert (line["kind"], line["from_phase"], line["to_phase"], line["position_size"]) == ("override", "scaling", "proof", "100.00")
    assert status(desk)["phase"] == "proof"


def test_override_to_the_current_phase_is_exit_2_and_writes_nothing(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.cli("status")  # everything due is applied first, so only the override could write
    before = desk.snapshot_files()
    code, out, err = override(desk, "--to", "proof")
    assert code == 2
    assert out == ""
    assert "proof" in err
    assert desk.snapshot_files() == before


def test_override_to_the_current_phase_on_a_fresh_desk_writes_nothing(desk: Desk) -> None:
    before = desk.snapshot_files()
    code, _, _ = override(desk, "--to", "experience")
    assert code == 2
    assert desk.snapshot_files() == before


# ---- --reset-progress ----------------------------------------------------------------------


def test_reset_progress_starts_a_new_stint_in_the_same_phase_keeping_the_size(desk: Desk) -> None:
    advance_to(desk, "scaling")
    desk.trades(10, 10, 10, 10, 10)  # 5 consecutive wins: $200 → $300
    assert status(desk)["position_size"] == "300.00"
    before = status(desk)
    desk.tick(10)
    code, out, err = override(desk, "--reset-progress")
    assert code == 0, err
    line = desk.transitions()[-1]
    assert (line["kind"], line["from_phase"], line["to_phase"]) == ("reset", "scaling", "scaling")
    assert line["position_size"] == "300.00"
    after = status(desk)
    assert after["phase"] == "scaling"
    assert after["position_size"] == "300.00"
    assert after["stint_since"] == stamp(desk.now()).replace(".000000Z", "Z")
    assert after["stint_since"] != before["stint_since"]
    assert after["phase_since"] == before["phase_since"]


def test_reset_progress_is_recorded_as_a_reset_progress_attempt(desk: Desk) -> None:
    override(desk, "--reset-progress", reason="strategy changed")
    (line,) = attempts(desk)
    assert (line["outcome"], line["action"], line["reason"]) == ("success", "reset_progress", "strategy changed")


# ---- wrong passwords and secrecy ---------------------------------------------------------


def test_wrong_password_exits_1_records_wrong_password_and_no_transition(desk: Desk) -> None:
    code, out, err = override(desk, "--to", "proof", password=WRONG)
    assert code == 1
    assert "wrong password" in err
    (line,) = attempts(desk)
    assert line["outcome"] == "wrong_password"
    assert line["operator_id"] == "alice"
    assert line["action"] == "to:proof"
    assert desk.transitions() == []
    assert status(desk)["phase"] == "experience"


def test_the_password_never_appears_in_any_file_or_output(desk: Desk) -> None:
    outputs: list[str] = []
    for target, password in (
        (("--to", "proof"), WRONG),
        (("--to", "proof"), PASSWORD),
        (("--reset-progress",), PASSWORD),
        (("--to", "experience"), WRONG),
        (("--to", "experience"), PASSWORD),
    ):
        desk.tick()
        code, out, err = override(desk, *target, password=password)
        outputs += [out, err]
    desk.trades(5, -3)
    for command in (("status",), ("status", "--json"), ("verify",), ("check-trade", "--json")):
        _, out, err = desk.cli(*command)
        outputs += [out, err]
    assert outcomes(desk) == ["wrong_password", "success", "success", "wrong_password", "success"]
    for secret in (PASSWORD, WRONG):
        for path in desk.root.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        assert not any(secret in text for text in outputs)


# ---- lockout -----------------------------------------------------------------------------


def test_sixth_attempt_after_five_wrong_is_locked_out_even_with_the_right_password(desk: Desk) -> None:
    five_wrong(desk)
    desk.tick()
    code, _, err = override(desk, "--to", "proof")
    assert code == 1
    assert "locked" in err
    assert outcomes(desk) == ["wrong_password"] * 5 + ["locked_out"]
    assert desk.transitions() == []


def test_locked_out_attempt_is_one_line_with_who_when_what_why(desk: Desk) -> None:
    five_wrong(desk)
    desk.tick()
    override(desk, "--to", "trial", operator="bob", reason="try again")
    line = attempts(desk)[-1]
    assert line["outcome"] == "locked_out"
    assert (line["operator_id"], line["action"], line["reason"]) == ("bob", "to:trial", "try again")
    assert line["timestamp"] == stamp(desk.now())


def test_still_locked_at_14_59_after_the_fifth_wrong_password(desk: Desk) -> None:
    fifth = five_wrong(desk)
    desk.at(fifth + timedelta(minutes=14, seconds=59))
    code, _, _ = override(desk, "--to", "proof")
    assert code == 1
    assert outcomes(desk)[-1] == "locked_out"


def test_unlocked_at_15_00_after_the_fifth_wrong_password(desk: Desk) -> None:
    fifth = five_wrong(desk)
    desk.at(fifth + timedelta(minutes=15))
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    assert outcomes(desk)[-1] == "success"


def test_attempts_during_a_lockout_are_recorded_but_not_counted(desk: Desk) -> None:
    fifth = five_wrong(desk)
    for minute in range(1, 6):  # five more wrong passwords inside the lockout
        desk.at(fifth + timedelta(minutes=minute))
        assert override(desk, "--reset-progress", password=WRONG)[0] == 1
    desk.at(fifth + timedelta(minutes=15))
    override(desk, "--reset-progress", password=WRONG)
    desk.tick()
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    assert outcomes(desk) == ["wrong_password"] * 5 + ["locked_out"] * 5 + ["wrong_password", "success"]


def test_four_wrong_then_a_success_then_four_wrong_is_not_locked(desk: Desk) -> None:
    for _ in range(4):
        override(desk, "--reset-progress", password=WRONG)
        desk.tick()
    assert override(desk, "--reset-progress")[0] == 0
    for _ in range(4):
        desk.tick()
        override(desk, "--reset-progress", password=WRONG)
    desk.tick()
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    assert outcomes(desk) == ["wrong_password"] * 4 + ["success"] + ["wrong_password"] * 4 + ["success"]


def test_five_wrong_spread_over_fifteen_minutes_and_one_second_do_not_lock(desk: Desk) -> None:
    first = desk.now()
    for offset in (timedelta(0), timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=3), timedelta(minutes=15, seconds=1)):
        desk.at(first + offset)
        assert override(desk, "--reset-progress", password=WRONG)[0] == 1
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    assert outcomes(desk)[-1] == "success"


def test_lockout_holds_across_a_restart(desk: Desk) -> None:
    five_wrong(desk)
    desk.tick()
    desk.start()  # a new process: the lockout comes back from the override log alone
    with pytest.raises(PhaseRefused, match="locked"):
        desk.manager.override(
            target=Phase.PROOF,
            reset_progress=False,
            operator_id="carol",
            reason="after a restart",
            read_password=lambda: PASSWORD,
        )
    assert outcomes(desk)[-1] == "locked_out"
    assert status(desk)["phase"] == "experience"


# ---- where the password comes from -------------------------------------------------------


@pytest.mark.parametrize("unset", ["absent", "empty strings"])
def test_no_password_configured_is_refused_naming_both_variables(desk: Desk, unset: str) -> None:
    desk.env.clear()
    if unset == "empty strings":
        desk.env.update({PLAIN_VAR: "", HASH_VAR: ""})
    code, _, err = override(desk, "--to", "proof")
    assert code == 1
    assert PLAIN_VAR in err and HASH_VAR in err
    (line,) = attempts(desk)
    assert line["outcome"] != "success"
    assert (line["operator_id"], line["action"]) == ("alice", "to:proof")
    assert desk.transitions() == []


def test_hash_password_prints_a_scrypt_value(desk: Desk) -> None:
    code, out, err = desk.cli("hash-password", "--password-stdin", stdin="pw\n")
    assert code == 0, err
    assert out.startswith("scrypt$")
    assert len(out.strip().split("$")) == 6
    assert "pw" not in out.strip().split("$")[:4]


def test_override_works_with_a_password_hash(desk: Desk) -> None:
    desk.env.clear()
    desk.env[HASH_VAR] = hash_of(desk, "pw")
    code, _, err = override(desk, "--to", "proof", password="pw")
    assert code == 0, err
    assert desk.transitions()[-1]["to_phase"] == "proof"


def test_the_hash_wins_over_a_plain_password_when_both_are_set(desk: Desk) -> None:
    desk.env[HASH_VAR] = hash_of(desk, "pw")  # PHASE_OVERRIDE_PASSWORD stays set as well
    assert override(desk, "--to", "proof", password=PASSWORD)[0] == 1
    assert override(desk, "--to", "proof", password="pw")[0] == 0
    assert outcomes(desk) == ["wrong_password", "success"]


def test_a_dotenv_file_beside_config_json_supplies_the_hash(desk: Desk) -> None:
    desk.env.clear()
    (desk.root / ".env").write_text(f"# override secret\n{HASH_VAR}={hash_of(desk, 'pw')}\n", encoding="utf-8")
    desk.start()
    code, _, err = override(desk, "--to", "proof", password="pw")
    assert code == 0, err
    assert status(desk)["phase"] == "proof"


def test_an_empty_hash_is_unset_so_the_plain_password_is_used(desk: Desk) -> None:
    desk.env[HASH_VAR] = ""
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    assert outcomes(desk) == ["success"]


@pytest.mark.parametrize("form", [("--password", PASSWORD), (f"--password={PASSWORD}",)])
def test_the_password_is_never_accepted_as_a_command_line_value(desk: Desk, form: tuple[str, ...]) -> None:
    advance_to(desk, "proof")
    desk.cli("status")
    before = desk.snapshot_files()
    code, out, _ = desk.cli("override", "--to", "trial", "--operator", "alice", "--reason", "r", *form)
    assert code == 2
    assert out == ""
    assert desk.snapshot_files() == before


@pytest.mark.parametrize("form", [("--password", PASSWORD), (f"--password={PASSWORD}",)])
def test_a_password_given_on_the_command_line_is_not_echoed_back(desk: Desk, form: tuple[str, ...]) -> None:
    code, out, err = desk.cli("override", "--to", "trial", "--operator", "alice", "--reason", "r", *form)
    assert code == 2
    assert PASSWORD not in out + err


def test_a_bare_password_flag_is_not_an_option(desk: Desk) -> None:
    code, _, _ = desk.cli("override", "--to", "trial", "--operator", "alice", "--reason", "r", "--password", stdin=PASSWORD + "\n")
    assert code == 2
    assert desk.transitions() == []


def test_without_a_terminal_and_without_password_stdin_is_exit_2_and_writes_nothing(desk: Desk) -> None:
    before = desk.snapshot_files()
    code, out, err = desk.cli("override", "--to", "proof", "--operator", "alice", "--reason", "r", stdin=PASSWORD + "\n")
    assert code == 2
    assert out == ""
    assert "--password-stdin" in err
    assert desk.snapshot_files() == before


# ---- what an override does and does not change -------------------------------------------


def trip_breaker_by_downgrade(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.trades(-20, -20, -20, per_session=1)
    line = desk.transitions()[-1]
    assert (line["kind"], line["to_phase"], line["breaker"]["tripped"]) == ("downgrade", "experience", True)


def test_an_override_does_not_clear_a_tripped_breaker(desk: Desk) -> None:
    trip_breaker_by_downgrade(desk)
    desk.tick()
    code, out, err = override(desk, "--to", "proof")
    assert code == 0, err
    assert "still tripped" in out
    line = desk.transitions()[-1]
    assert (line["kind"], line["to_phase"], line["breaker"]["tripped"]) == ("override", "proof", True)
    assert status(desk)["circuit_breaker"]["tripped"] is True
    code, check = desk.cli_json("check-trade")
    assert (code, check["allowed"]) == (1, False)


def test_a_reset_does_not_clear_a_tripped_breaker(desk: Desk) -> None:
    trip_breaker_by_downgrade(desk)
    desk.tick()
    assert override(desk, "--reset-progress")[0] == 0
    assert desk.transitions()[-1]["breaker"]["tripped"] is True
    assert status(desk)["circuit_breaker"]["tripped"] is True


def test_an_override_into_experience_forces_paper_mode(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.edit_config({("trading", "mode"): "live"})
    assert config_json(desk)["trading"]["mode"] == "live"
    code, _, err = override(desk, "--to", "experience")
    assert code == 0, err
    assert desk.transitions()[-1]["mode"] == "paper"
    assert config_json(desk)["trading"]["mode"] == "paper"
    assert status(desk)["mode"] == "paper"


def test_an_override_into_a_live_phase_keeps_live_mode(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.edit_config({("trading", "mode"): "live"})
    assert override(desk, "--to", "trial")[0] == 0
    assert desk.transitions()[-1]["mode"] == "live"
    assert config_json(desk)["trading"]["mode"] == "live"


# ---- overrides as incidents of the experience gate ----------------------------------------


def test_the_override_that_began_the_stint_is_not_an_incident_of_it(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.tick(5)
    advance_to(desk, "experience")
    assert outcomes(desk) == ["success", "success"]
    assert override_incidents(desk) == 0


def test_a_reset_progress_also_begins_a_stint_and_is_not_an_incident_of_it(desk: Desk) -> None:
    """Observed: every successful override begins a stint, so none is ever counted in the stint
    it began; a reset even drops an earlier loosening edit from the new stint's count."""
    advance_to(desk, "proof")
    desk.tick(5)
    advance_to(desk, "experience")
    desk.tick(5)
    desk.edit_config({("phase_progression", "experience", "advancement_criteria", "min_win_rate"): "0.55"})
    assert override_incidents(desk) == 1  # the loosening edit, made inside the stint
    desk.tick(5)
    assert override(desk, "--reset-progress")[0] == 0
    assert desk.transitions()[-1]["kind"] == "reset"
    assert override_incidents(desk) == 0


def test_with_a_running_clock_the_override_that_began_the_stint_is_not_an_incident_of_it(tmp_path: Path) -> None:
    with freeze_time(DESK_START, tick=True) as frozen:
        desk = Desk(tmp_path, frozen, {PLAIN_VAR: PASSWORD})
        advance_to(desk, "proof")
        advance_to(desk, "experience")
        assert override_incidents(desk) == 0


# ---- a recovery of the override log never lifts a lockout ---------------------------------


OVERRIDES_LOG = "phase-overrides.jsonl"


def overrides_path(desk: Desk) -> Path:
    return desk.logs_dir / "phase" / OVERRIDES_LOG


def damage_first_wrong_password_line(desk: Desk) -> None:
    """Change one byte of the first wrong-password line, so `recover` drops it and all after."""
    path = overrides_path(desk)
    lines = path.read_bytes().splitlines(keepends=True)
    first = next(i for i, raw in enumerate(lines) if b'"wrong_password"' in raw)
    lines[first] = lines[first].replace(b'"reason":"operator decision"', b'"reason":"operator decisioN"', 1)
    path.write_bytes(b"".join(lines))


def cut_wrong_password_lines_and_head(desk: Desk) -> None:
    """Cut every line from the first wrong password on and delete the head that would notice."""
    path = overrides_path(desk)
    lines = path.read_bytes().splitlines(keepends=True)
    first = next(i for i, raw in enumerate(lines) if b'"wrong_password"' in raw)
    path.write_bytes(b"".join(lines[:first]))
    config = config_json(desk)
    del config["phase_progression"]["overrides_head"]
    desk.config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")


@pytest.mark.parametrize("erase", [damage_first_wrong_password_line, cut_wrong_password_lines_and_head])
def test_erasing_the_wrong_passwords_and_recovering_keeps_overrides_locked(desk: Desk, erase: Any) -> None:
    five_wrong(desk)
    desk.tick()
    erase(desk)
    code, out, err = desk.cli("recover")
    assert code == 0, err
    assert "wrong_password" not in [line.get("outcome") for line in desk.overrides()]
    desk.tick()
    code, _, err = override(desk, "--to", "scaling")
    assert code == 1
    assert "locked" in err
    assert status(desk)["phase"] == "experience"


@pytest.mark.parametrize("erase", [damage_first_wrong_password_line, cut_wrong_password_lines_and_head])
def test_a_recovery_of_the_override_log_locks_for_a_full_fifteen_minutes(desk: Desk, erase: Any) -> None:
    five_wrong(desk)
    erase(desk)
    desk.tick(20)  # the original lockout would have ended by now
    recovered_at = desk.now()
    assert desk.cli("recover")[0] == 0
    desk.at(recovered_at + timedelta(minutes=14, seconds=59))
    assert override(desk, "--to", "proof")[0] == 1
    assert outcomes(desk)[-1] == "locked_out"
    desk.at(recovered_at + timedelta(minutes=15))
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    assert outcomes(desk)[-1] == "success"


def test_a_clock_set_back_after_a_recovery_does_not_lift_its_lockout(desk: Desk) -> None:
    five_wrong(desk)
    damage_first_wrong_password_line(desk)
    desk.tick(20)
    recovered_at = desk.now()
    assert desk.cli("recover")[0] == 0
    desk.at(recovered_at - timedelta(hours=1))
    assert override(desk, "--to", "proof")[0] == 1
    assert outcomes(desk)[-1] == "locked_out"


def test_the_recovered_line_counts_the_wrong_passwords_it_dropped(desk: Desk) -> None:
    five_wrong(desk)
    damage_first_wrong_password_line(desk)
    desk.tick()
    assert desk.cli("recover")[0] == 0
    recovered = [line for line in desk.overrides() if line["type"] == "recovered"]
    assert [line["dropped_wrong_passwords"] for line in recovered] == [5]
