"""What an operator gets for the mistakes and accidents of real life: one line, no traceback,
and nothing recorded that did not happen."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.phase.conftest import PASSWORD, Desk, advance_to


def test_logs_dir_that_is_a_file_is_one_line_exit_2(desk: Desk) -> None:
    not_a_folder = desk.root / "not-a-folder"
    not_a_folder.write_text("x")
    code, out, err = desk.cli("--logs-dir", str(not_a_folder), "status")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_empty_password_on_stdin_is_exit_2_and_not_a_wrong_password(desk: Desk) -> None:
    desk.cli("status")
    before = desk.snapshot_files()
    code, _, err = desk.cli("override", "--to", "proof", "--operator", "al", "--reason", "r", "--password-stdin", stdin="\n")
    assert code == 2 and "empty password" in err
    assert desk.snapshot_files() == before


def test_empty_operator_is_exit_2_and_nothing_recorded(desk: Desk) -> None:
    desk.cli("status")
    before = desk.snapshot_files()
    code, _, err = desk.cli("override", "--to", "proof", "--operator", " ", "--reason", "r", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 2 and "--operator" in err
    assert desk.cli("acknowledge", "--operator", "")[0] == 2
    assert desk.snapshot_files() == before


def test_a_downgrade_landing_while_the_password_is_typed_is_not_undone_by_a_reset(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.next_session()
    desk.trades(-20, -20, per_session=1)
    desk.next_session()
    entry = desk.enter()

    def type_slowly() -> str:
        desk.close(entry, -20)  # the third loss lands while the operator types
        return PASSWORD

    desk.manager.sync_journal()
    try:
        desk.manager.override(target=None, reset_progress=True, operator_id="al", reason="r", read_password=type_slowly)
    except Exception as error:  # noqa: BLE001 - the refusal is what is expected
        refused = str(error)
    else:
        refused = ""
    assert "changed" in refused
    kinds = [(line["kind"], line["to_phase"]) for line in desk.transitions()]
    assert kinds[-1] == ("downgrade", "experience")
    attempts = [line for line in desk.overrides() if line["type"] == "override_attempt"]
    assert attempts[-1]["outcome"] == "refused"


def test_validate_transition_json_prints_an_object_when_refused(desk: Desk) -> None:
    code, out, _ = desk.cli("validate-transition", "--to", "trial", "--json")
    assert code == 1
    assert json.loads(out)["ready"] is False


def test_a_torn_line_in_an_older_journal_file_is_set_aside_by_the_next_command(desk: Desk) -> None:
    desk.trade(Decimal("30"))
    old = next((desk.logs_dir / "trades").glob("*.jsonl"))
    with open(old, "ab") as handle:
        handle.write(b'{"timestamp": "2026-03-02T15:30:00Z", "sym')
    desk.next_session()
    assert desk.cli("status")[0] == 0
    assert list((desk.logs_dir / "trades").glob("*.torn-*"))
    assert desk.cli("verify")[0] == 0


def test_recover_applies_what_is_due_first(desk: Desk) -> None:
    desk.trade(30)
    desk.next_session()
    code, out, _ = desk.cli("recover")
    assert code == 0 and "nothing to recover" in out
    assert any(line["type"] == "session_summary" for line in desk.history())


def test_a_bad_journal_line_before_an_open_position_still_lets_it_be_closed(desk: Desk) -> None:
    entry = desk.enter()
    journal = next((desk.logs_dir / "trades").glob("*.jsonl"))
    journal.write_bytes(b"{garbage}\n" + journal.read_bytes())
    desk.start()
    assert not desk.enter().accepted  # entries halt on the invalid line
    closed = desk.close(entry, 5)
    assert closed.outcome == "win"
    assert desk.bot.flatten({}) == []


def test_an_unreadable_phase_history_refuses_entries_and_still_lets_exits_through(desk: Desk) -> None:
    entry = desk.enter()
    history = desk.logs_dir / "phase" / "phase-history.jsonl"
    if history.exists():
        history.unlink()
    history.mkdir()  # the history can no longer be read as a file
    refused = desk.enter()
    assert not refused.accepted and refused.reason is not None and "cannot be read" in refused.reason
    closed = desk.close(entry, 5)
    assert closed.outcome == "win"
