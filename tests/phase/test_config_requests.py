"""config.json edited by people (SPEC §8, §10): phase requests, the mirror, criteria edits.

An edit of `current_phase` is only a request; the history stays the truth, the mirror
follows it (and is rolled forward when it merely lags), and every edit of the criteria is
recorded, loosening ones as override incidents.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest

from tests.phase.conftest import PASSWORD, Desk, advance_to
from trading_bot.config import Config

PHASE = ("phase_progression", "current_phase")
EXPERIENCE_CRITERIA = ("phase_progression", "experience", "advancement_criteria")
MIN_WIN_RATE = (*EXPERIENCE_CRITERIA, "min_win_rate")
MIN_WIN_RATE_PATH = "phase_progression.experience.advancement_criteria.min_win_rate"


# ---- helpers -----------------------------------------------------------------------------


def status(desk: Desk) -> dict[str, Any]:
    code, payload = desk.cli_json("status")
    assert code == 0, payload
    return payload


def override(desk: Desk, *target: str) -> tuple[int, str, str]:
    return desk.cli("override", *target, "--operator", "alice", "--reason", "confirm", "--password-stdin", stdin=PASSWORD + "\n")


def lines_of(desk: Desk, kind: str) -> list[dict[str, Any]]:
    return [line for line in desk.overrides() if line["type"] == kind]


def config_json(desk: Desk) -> dict[str, Any]:
    return json.loads(desk.config_path.read_text(encoding="utf-8"))


def head_of_history(desk: Desk) -> dict[str, Any]:
    last = desk.history()[-1]
    return {"seq": last["seq"], "hash": last["hash"]}


def dig(tree: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        tree = tree[key]
    return tree


def differences(before: Any, after: Any, path: str = "") -> set[str]:
    """Dotted paths whose values differ (numbers compared as exact decimals)."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: set[str] = set()
        for key in before.keys() | after.keys():
            found |= differences(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return found
    if before is not None and after is not None and not isinstance(before, (bool, dict)):
        try:
            return set() if Decimal(str(before)) == Decimal(str(after)) else {path}
        except ArithmeticError:
            pass
    return set() if before == after else {path}


def baseline_on_saved_config(desk: Desk) -> None:
    """Save config.json once (as the bot's mirror would), then record the baseline from it."""
    desk.edit_config({})
    assert desk.cli("status")[0] == 0
    assert len(lines_of(desk, "criteria_baseline")) == 1
    assert lines_of(desk, "criteria_edit") == []


def edit_and_run(desk: Desk, updates: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """A hand edit, then a command; returns the one criteria_edit line it produced."""
    desk.edit_config(updates)
    assert desk.cli("status")[0] == 0
    (edit,) = lines_of(desk, "criteria_edit")
    return edit


def override_incidents(desk: Desk) -> int:
    (criterion,) = [c for c in status(desk)["readiness"]["criteria"] if c["name"] == "override_incidents"]
    return criterion["actual"]


# ---- current_phase edits are requests ------------------------------------------------------


def test_editing_current_phase_does_not_change_the_phase(desk: Desk) -> None:
    desk.edit_config({PHASE: "proof"})
    assert status(desk)["phase"] == "experience"
    assert desk.transitions() == []


def test_status_shows_the_pending_request(desk: Desk) -> None:
    desk.edit_config({PHASE: "proof"})
    assert status(desk)["pending_request"] == {"requested_phase": "proof"}


def test_status_text_names_the_pending_request(desk: Desk) -> None:
    desk.edit_config({PHASE: "proof"})
    code, out, _ = desk.cli("status")
    assert code == 0
    assert "config.json asks for proof" in out


def test_entries_stay_sized_and_limited_as_experience_while_a_request_is_pending(desk: Desk) -> None:
    desk.edit_config({PHASE: "proof", ("phase_progression", "experience", "position_size"): 150})
    desk.trade(5)
    desk.trade(5)  # a second entry this session: proof would refuse it (1 a session)
    code, check = desk.cli_json("check-trade")
    assert code == 0
    assert check["allowed"] is True
    assert check["phase"] == "experience"
    assert check["max_trades_per_day"] is None
    assert check["trades_this_session"] == 2
    assert check["position_size"] == "150.00"


def test_the_request_is_recorded_once_while_pending(desk: Desk) -> None:
    desk.edit_config({PHASE: "proof"})
    for _ in range(3):
        status(desk)
    (request,) = lines_of(desk, "config_phase_request")
    assert request["requested_phase"] == "proof"
    assert request["recorded_phase"] == "experience"


def test_a_new_requested_value_is_recorded_again(desk: Desk) -> None:
    desk.edit_config({PHASE: "proof"})
    status(desk)
    desk.edit_config({PHASE: "trial"})
    status(desk)
    status(desk)
    assert [line["requested_phase"] for line in lines_of(desk, "config_phase_request")] == ["proof", "trial"]
    assert status(desk)["pending_request"] == {"requested_phase": "trial"}


def test_editing_the_value_back_cancels_the_request(desk: Desk) -> None:
    desk.edit_config({PHASE: "proof"})
    status(desk)
    desk.edit_config({PHASE: "experience"})
    after = status(desk)
    assert after["pending_request"] is None
    assert after["phase"] == "experience"
    (cancelled,) = lines_of(desk, "config_phase_request_cancelled")
    assert cancelled["requested_phase"] == "proof"


def test_confirming_with_override_applies_the_request_and_clears_it(desk: Desk) -> None:
    desk.edit_config({PHASE: "proof"})
    status(desk)
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    after = status(desk)
    assert (after["phase"], after["pending_request"]) == ("proof", None)
    assert config_json(desk)["phase_progression"]["current_phase"] == "proof"
    status(desk)
    assert len(lines_of(desk, "config_phase_request")) == 1


def test_confirming_with_advance_applies_the_request_and_clears_it(desk: Desk) -> None:
    disabled = {(*EXPERIENCE_CRITERIA, key): None for key in ("min_sessions", "min_win_rate", "min_avg_rr", "max_override_incidents")}
    desk.edit_config({**disabled, PHASE: "proof"})
    status(desk)
    code, _, err = desk.cli("advance", "--to", "proof", "--operator", "alice", "--yes")
    assert code == 0, err
    after = status(desk)
    assert (after["phase"], after["pending_request"]) == ("proof", None)
    assert desk.transitions()[-1]["kind"] == "advance"


def test_a_config_naming_proof_with_an_empty_history_is_a_request(desk: Desk) -> None:
    desk.edit_config({PHASE: "proof"})
    payload = status(desk)
    assert payload["phase"] == "experience"
    assert payload["pending_request"] == {"requested_phase": "proof"}
    assert desk.transitions() == []
    assert len(lines_of(desk, "config_phase_request")) == 1
    assert config_json(desk)["phase_progression"]["current_phase"] == "proof"  # left alone


def test_a_hand_edit_naming_an_older_phase_under_the_current_head_is_a_request(desk: Desk) -> None:
    advance_to(desk, "proof")
    advance_to(desk, "trial")
    desk.edit_config({PHASE: "proof"})  # the head config.json records is still the current one
    payload = status(desk)
    assert (payload["phase"], payload["pending_request"]) == ("trial", {"requested_phase": "proof"})
    assert config_json(desk)["phase_progression"]["current_phase"] == "proof"


# ---- the mirror ------------------------------------------------------------------------------


def test_the_mirror_after_a_transition_names_the_new_phase_and_the_history_head(desk: Desk) -> None:
    advance_to(desk, "proof")
    progression = config_json(desk)["phase_progression"]
    assert progression["current_phase"] == "proof"
    assert progression["history_head"] == head_of_history(desk)


def test_the_mirror_head_follows_every_transition(desk: Desk) -> None:
    advance_to(desk, "proof")
    first = head_of_history(desk)
    advance_to(desk, "scaling")
    progression = config_json(desk)["phase_progression"]
    assert progression["current_phase"] == "scaling"
    assert progression["history_head"] == head_of_history(desk) != first


def test_a_mirror_that_lags_the_first_transition_is_rolled_forward(desk: Desk) -> None:
    status(desk)
    previous = desk.config_path.read_bytes()  # names experience, records no head
    advance_to(desk, "proof")
    desk.config_path.write_bytes(previous)  # a crash between the history append and the mirror
    payload = status(desk)
    assert (payload["phase"], payload["pending_request"]) == ("proof", None)
    progression = config_json(desk)["phase_progression"]
    assert progression["current_phase"] == "proof"
    assert progression["history_head"] == head_of_history(desk)
    assert lines_of(desk, "config_phase_request") == []


def test_a_mirror_that_lags_a_later_transition_is_rolled_forward(desk: Desk) -> None:
    advance_to(desk, "proof")
    previous = desk.config_path.read_bytes()  # names proof and the head of that override
    advance_to(desk, "trial")
    desk.config_path.write_bytes(previous)
    code, check = desk.cli_json("check-trade")
    assert (code, check["phase"]) == (0, "trial")
    progression = config_json(desk)["phase_progression"]
    assert progression["current_phase"] == "trial"
    assert progression["history_head"] == head_of_history(desk)
    assert status(desk)["pending_request"] is None
    assert lines_of(desk, "config_phase_request") == []


def test_a_lagging_mirror_is_rolled_forward_when_the_bot_restarts_and_trades(desk: Desk) -> None:
    advance_to(desk, "proof")
    previous = desk.config_path.read_bytes()
    advance_to(desk, "trial")
    desk.config_path.write_bytes(previous)
    desk.start()
    assert desk.enter().accepted
    assert config_json(desk)["phase_progression"]["current_phase"] == "trial"
    assert config_json(desk)["phase_progression"]["history_head"] == head_of_history(desk)


def test_unknown_keys_elsewhere_in_config_json_survive_every_mirror_save(desk: Desk) -> None:
    raw = config_json(desk)
    extras = {
        ("notifications",): {"email": "ops@example.com", "on": ["downgrade", "breaker"]},
        ("trading", "broker"): {"name": "paper", "api_base": "https://paper.example"},
        ("account", "currency"): "USD",
        ("risk_management", "max_open_positions"): 3,
    }
    for path, value in extras.items():
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    desk.config_path.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    desk.start()

    def survived() -> bool:
        saved = config_json(desk)
        return all(dig(saved, ".".join(path)) == value for path, value in extras.items())

    steps = [
        lambda: advance_to(desk, "proof"),
        lambda: desk.edit_config({("trading", "mode"): "live"}),
        lambda: advance_to(desk, "trial"),
        lambda: advance_to(desk, "experience"),  # mirrors mode → paper as well
        lambda: override(desk, "--reset-progress"),
        lambda: desk.cli("status"),
    ]
    for step in steps:
        desk.tick()
        step()
        assert survived()
    assert config_json(desk)["trading"]["mode"] == "paper"
    assert config_json(desk)["phase_progression"]["history_head"] == head_of_history(desk)


# ---- criteria edits -------------------------------------------------------------------------


def test_the_first_run_records_a_criteria_baseline(desk: Desk) -> None:
    status(desk)
    (baseline,) = lines_of(desk, "criteria_baseline")
    assert Decimal(dig(baseline["criteria"], MIN_WIN_RATE_PATH)) == Decimal("0.60")
    assert Decimal(baseline["criteria"]["account"]["starting_equity"]) == 10000
    assert baseline["criteria"]["trading"]["hours"]["start_time"] == "07:00"
    assert lines_of(desk, "criteria_edit") == []


def test_an_unchanged_config_records_nothing_more(desk: Desk) -> None:
    baseline_on_saved_config(desk)
    count = len(desk.overrides())
    status(desk)
    status(desk)
    assert len(desk.overrides()) == count


def test_a_mirror_save_alone_records_no_criteria_edit(desk: Desk) -> None:
    advance_to(desk, "proof")  # records the baseline, then saves the mirror
    status(desk)
    assert lines_of(desk, "criteria_edit") == []


def test_tightening_min_win_rate_is_recorded_with_before_and_after_and_is_no_incident(desk: Desk) -> None:
    baseline_on_saved_config(desk)
    edit = edit_and_run(desk, {MIN_WIN_RATE: "0.65"})
    assert differences(edit["before"], edit["after"]) == {MIN_WIN_RATE_PATH}
    assert Decimal(dig(edit["before"], MIN_WIN_RATE_PATH)) == Decimal("0.60")
    assert Decimal(dig(edit["after"], MIN_WIN_RATE_PATH)) == Decimal("0.65")
    assert edit["counts_as_incident"] is False
    assert override_incidents(desk) == 0


def test_loosening_min_win_rate_counts_as_an_override_incident(desk: Desk) -> None:
    baseline_on_saved_config(desk)
    edit = edit_and_run(desk, {MIN_WIN_RATE: "0.55"})
    assert Decimal(dig(edit["before"], MIN_WIN_RATE_PATH)) == Decimal("0.60")
    assert Decimal(dig(edit["after"], MIN_WIN_RATE_PATH)) == Decimal("0.55")
    assert edit["counts_as_incident"] is True
    assert override_incidents(desk) == 1


def test_a_loosening_edit_blocks_the_experience_gate(desk: Desk) -> None:
    baseline_on_saved_config(desk)
    edit_and_run(desk, {MIN_WIN_RATE: "0.55"})
    (criterion,) = [c for c in status(desk)["readiness"]["criteria"] if c["name"] == "override_incidents"]
    assert (criterion["actual"], criterion["required"], criterion["met"]) == (1, 0, False)


def test_a_loosening_edit_inside_a_stint_counts_for_that_stint(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.tick(5)
    advance_to(desk, "experience")
    desk.tick(5)
    status(desk)
    before = len([line for line in lines_of(desk, "criteria_edit") if line["counts_as_incident"]])
    desk.edit_config({MIN_WIN_RATE: "0.55"})
    status(desk)
    assert len([line for line in lines_of(desk, "criteria_edit") if line["counts_as_incident"]]) == before + 1
    assert override_incidents(desk) == 1


def test_disabling_a_criterion_with_null_is_loosening(desk: Desk) -> None:
    baseline_on_saved_config(desk)
    edit = edit_and_run(desk, {MIN_WIN_RATE: None})
    assert dig(edit["after"], MIN_WIN_RATE_PATH) is None
    assert edit["counts_as_incident"] is True
    assert override_incidents(desk) == 1


@pytest.mark.parametrize(
    ("key", "value", "loosens"),
    [
        (("experience", "advancement_criteria", "min_sessions"), 10, True),
        (("experience", "advancement_criteria", "min_avg_rr"), "2.0", False),
        (("experience", "advancement_criteria", "max_override_incidents"), 2, True),
        (("proof", "advancement_criteria", "max_missed_days"), 5, True),
        (("proof", "advancement_criteria", "min_trades"), 60, False),
        (("trial", "advancement_criteria", "max_drawdown_pct"), "4.0", False),
        (("trial", "advancement_criteria", "max_drawdown_pct"), None, True),
    ],
)
def test_a_gate_criterion_edit_loosens_in_the_easier_direction(desk: Desk, key: tuple[str, ...], value: Any, loosens: bool) -> None:
    baseline_on_saved_config(desk)
    edit = edit_and_run(desk, {("phase_progression", *key): value})
    dotted = "phase_progression." + ".".join(key)
    assert differences(edit["before"], edit["after"]) == {dotted}
    assert edit["counts_as_incident"] is loosens
    assert edit["loosened"] == ([dotted] if loosens else [])


def test_a_downgrade_trigger_edit_is_recorded_but_is_no_gate_incident(desk: Desk) -> None:
    baseline_on_saved_config(desk)
    edit = edit_and_run(desk, {("phase_progression", "proof", "downgrade_triggers", "consecutive_losses"): 5})
    assert differences(edit["before"], edit["after"]) == {"phase_progression.proof.downgrade_triggers.consecutive_losses"}
    assert edit["counts_as_incident"] is False


def test_editing_starting_equity_is_recorded(desk: Desk) -> None:
    baseline_on_saved_config(desk)
    edit = edit_and_run(desk, {("account", "starting_equity"): 25000})
    assert differences(edit["before"], edit["after"]) == {"account.starting_equity"}
    assert Decimal(edit["before"]["account"]["starting_equity"]) == 10000
    assert Decimal(edit["after"]["account"]["starting_equity"]) == 25000


def test_editing_trading_hours_is_recorded(desk: Desk) -> None:
    baseline_on_saved_config(desk)
    edit = edit_and_run(desk, {("trading", "hours", "start_time"): "08:00"})
    assert differences(edit["before"], edit["after"]) == {"trading.hours.start_time"}
    assert (edit["before"]["trading"]["hours"]["start_time"], edit["after"]["trading"]["hours"]["start_time"]) == ("07:00", "08:00")


def test_each_edit_is_compared_with_the_last_recorded_snapshot(desk: Desk) -> None:
    baseline_on_saved_config(desk)
    desk.edit_config({MIN_WIN_RATE: "0.65"})
    status(desk)
    desk.edit_config({MIN_WIN_RATE: "0.62"})
    status(desk)
    first, second = lines_of(desk, "criteria_edit")
    assert Decimal(dig(second["before"], MIN_WIN_RATE_PATH)) == Decimal("0.65")
    assert Decimal(dig(second["after"], MIN_WIN_RATE_PATH)) == Decimal("0.62")
    assert (first["counts_as_incident"], second["counts_as_incident"]) == (False, True)


def test_editing_mode_alone_is_not_a_criteria_edit(desk: Desk) -> None:
    advance_to(desk, "proof")
    status(desk)
    count = len(lines_of(desk, "criteria_edit"))
    desk.edit_config({("trading", "mode"): "live"})
    status(desk)
    assert len(lines_of(desk, "criteria_edit")) == count


# ---- bad input --------------------------------------------------------------------------------


def config_with_unknown_key(desk: Desk) -> int:
    """Write a typo into the proof criteria by hand; returns its line number."""
    text = desk.config_path.read_text(encoding="utf-8")
    assert '"trade_window": 50,' in text
    text = text.replace('"trade_window": 50,', '"trade_window": 50, "min_win_rat": 0.5,', 1)
    desk.config_path.write_text(text, encoding="utf-8")
    return next(number for number, line in enumerate(text.splitlines(), start=1) if '"min_win_rat"' in line)


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("check-trade",),
        ("override", "--to", "trial", "--operator", "alice", "--reason", "r", "--password-stdin"),
    ],
)
def test_an_unknown_key_inside_phase_progression_is_exit_2_and_writes_nothing(desk: Desk, command: tuple[str, ...]) -> None:
    advance_to(desk, "proof")
    status(desk)
    line = config_with_unknown_key(desk)
    before = desk.snapshot_files()
    code, out, err = desk.cli(*command, stdin=PASSWORD + "\n")
    assert code == 2
    assert out == ""
    assert re.fullmatch(
        rf"\S*config\.json:{line}: phase_progression\.proof\.advancement_criteria\.min_win_rat: unknown key.*\n",
        err,
    ), err
    assert desk.snapshot_files() == before


def test_an_unknown_key_on_a_fresh_desk_writes_no_logs(desk: Desk) -> None:
    config_with_unknown_key(desk)
    before = desk.snapshot_files()
    code, out, err = desk.cli("status", "--json")
    assert code == 2
    assert out == ""
    assert "unknown key" in err
    assert desk.snapshot_files() == before


def test_a_running_bot_never_saves_over_a_hand_edit_of_config_json(desk: Desk) -> None:
    desk.trade(30)
    edited = Config.from_env_and_json(desk.config_path, environ=desk.env).with_updates(
        {
            ("phase_progression", "experience", "advancement_criteria", "min_win_rate"): Decimal("0.75"),
            ("phase_progression", "current_phase"): "proof",
        }
    )
    edited.save()  # by hand, while the bot keeps running on what it loaded at start
    desk.tick()
    desk.trade(30)  # the close makes the bot write its mirror
    saved = json.loads(desk.config_path.read_text(encoding="utf-8"))
    assert saved["phase_progression"]["experience"]["advancement_criteria"]["min_win_rate"] == 0.75
    assert saved["phase_progression"]["current_phase"] == "proof"
    requests = [line for line in desk.overrides() if line["type"] == "config_phase_request"]
    assert [line["requested_phase"] for line in requests] == ["proof"]
    edits = [line for line in desk.overrides() if line["type"] == "criteria_edit"]
    assert len(edits) == 1 and edits[0]["counts_as_incident"] is False
