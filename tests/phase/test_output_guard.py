"""`--output` of export and report never lands on the desk's own records: the config,
anything in the logs folder (or PHASE_HISTORY_DIR), or an existing `.jsonl` file."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Desk

MARCH = ("--start", "2026-03-01", "--end", "2026-03-31")
COMMANDS = {"export": ("export", *MARCH), "report": ("report",)}


def _journal_file(desk: Desk) -> Path:
    files = sorted((desk.logs_dir / "trades").glob("*.jsonl"))
    assert files, "the desk has a journal file"
    return files[0]


def _refused(desk: Desk, command: str, target: Path) -> str:
    desk.trade(3)
    desk.next_session()  # a session summary is due: a command that ran would record it
    before = desk.snapshot_files()
    code, out, err = desk.cli(*COMMANDS[command], "--output", str(target))
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert desk.snapshot_files() == before
    return err


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    "where",
    [
        "config.json",
        "logs/phase/phase-history.jsonl",
        "logs/phase/new-file.csv",
        "logs/trades/new-file.html",
        "logs/new-file.csv",
        "logs",
        "elsewhere/../logs/phase/phase-history.jsonl",
    ],
)
def test_output_on_the_config_or_in_the_logs_folder_is_refused(desk: Desk, command: str, where: str) -> None:
    (desk.root / "elsewhere").mkdir()
    err = _refused(desk, command, desk.root / where)
    assert "--output" in err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_output_on_a_journal_file_is_refused(desk: Desk, command: str) -> None:
    desk.trade(1)
    err = _refused(desk, command, _journal_file(desk))
    assert "--output" in err


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("points_at", ["config.json", "logs/phase/phase-history.jsonl", "logs/not-yet-there.csv"])
def test_a_symlink_to_the_records_is_followed_and_refused(desk: Desk, command: str, points_at: str) -> None:
    link = desk.root / "innocent.csv"
    link.symlink_to(desk.root / points_at)
    _refused(desk, command, link)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_symlinked_folder_into_the_logs_is_refused(desk: Desk, command: str) -> None:
    (desk.root / "shortcut").symlink_to(desk.logs_dir, target_is_directory=True)
    _refused(desk, command, desk.root / "shortcut" / "out.csv")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_phase_history_dir_from_the_environment_is_protected_too(desk: Desk, command: str) -> None:
    history = desk.root / "history-elsewhere"
    history.mkdir()
    desk.env["PHASE_HISTORY_DIR"] = str(history)
    desk.start()
    _refused(desk, command, history / "out.csv")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_existing_jsonl_file_anywhere_is_refused(desk: Desk, command: str) -> None:
    other = desk.root / "another-bot.jsonl"
    other.write_text('{"a": 1}\n', encoding="utf-8")
    _refused(desk, command, other)
    assert other.read_text(encoding="utf-8") == '{"a": 1}\n'


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("name", ["fresh.jsonl", "out.csv", "sub/report.html"])
def test_a_new_file_outside_the_records_is_written(desk: Desk, command: str, name: str) -> None:
    (desk.root / "sub").mkdir()
    desk.trade(3)
    target = desk.root / name
    code, _, err = desk.cli(*COMMANDS[command], "--output", str(target))
    assert code == 0, err
    assert target.read_text(encoding="utf-8")


def test_an_existing_export_beside_the_desk_is_replaced(desk: Desk) -> None:
    desk.trade(3)
    target = desk.root / "march.csv"
    target.write_text("old\n", encoding="utf-8")
    code, _, err = desk.cli(*COMMANDS["export"], "--output", str(target))
    assert code == 0, err
    assert target.read_text(encoding="utf-8").startswith("date,phase")
