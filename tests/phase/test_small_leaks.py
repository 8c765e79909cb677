"""Small leaks: no usage error echoes what could be a secret, odd bytes and odd keys stay
one line, a symlinked config.json stays a link, a second `open` for one order is a bad
line, and an emergency exit keeps its answer when the journal is bad."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.phase.conftest import PASSWORD, Desk
from trading_bot.phase.cli import main

SECRET = "hunter2"


def run_main(argv: list[str], stdin: io.TextIOBase | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdin=stdin or io.StringIO(""), stdout=out, stderr=err, environ={"PHASE_OVERRIDE_PASSWORD": PASSWORD})
    return code, out.getvalue(), err.getvalue()


# ---- usage errors never echo a value ------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--password", SECRET, "status"],
        [f"--password={SECRET}", "status"],
        [SECRET],
        ["status", "--password", SECRET],
        ["status", SECRET],
        ["override", "--to", SECRET, "--operator", "o", "--reason", "r"],
        ["status", "--as-of", SECRET],
        ["status", f"--json={SECRET}"],
        ["status", f"--as-of={SECRET}"],
        ["--config"],
        ["override", "--password-stdin", SECRET],
        [f"--pass={SECRET}", "status"],
        ["check-trade", f"--emergency={SECRET}"],
    ],
    ids=["option-before-command", "option-equals-before-command", "bare-value", "option-after-command",
         "extra-positional", "invalid-phase", "invalid-as-of", "flag-with-value", "as-of-equals", "missing-value",
         "stdin-flag-then-value", "abbreviation", "abbreviated-flag-with-value"],
)
def test_no_usage_error_echoes_a_value_that_could_be_a_secret(tmp_path: Path, argv: list[str]) -> None:
    code, out, err = run_main(["--config", str(tmp_path / "config.json"), *argv])
    assert code == 2 and out == ""
    assert SECRET not in err, err
    assert err.count("\n") == 1 and err.startswith("usage:"), err


# ---- standard input that is not UTF-8 -----------------------------------------------------


@pytest.mark.parametrize("command", [["override", "--to", "proof", "--operator", "o", "--reason", "r", "--password-stdin"], ["hash-password", "--password-stdin"]])
def test_non_utf8_bytes_on_password_stdin_are_one_line_exit_2(desk: Desk, command: list[str]) -> None:
    before = desk.snapshot_files()
    stdin = io.TextIOWrapper(io.BytesIO(b"\xff\xfehunter\x80\n"), encoding="utf-8")
    code, out, err = run_main(["--config", str(desk.config_path), *command], stdin=stdin)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "UTF-8" in err and "Traceback" not in err
    assert desk.snapshot_files() == before


def test_non_utf8_bytes_on_password_stdin_of_the_real_process(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHASE_")}
    result = subprocess.run(
        [sys.executable, "-m", "trading_bot.phase", "hash-password", "--password-stdin"],
        input=b"\xff\xfe\x80\n",
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr


# ---- a key with a newline -----------------------------------------------------------------


def test_a_key_containing_a_newline_stays_a_one_line_error(desk: Desk) -> None:
    raw = json.loads(desk.config_path.read_text(encoding="utf-8"))
    raw["phase_progression"]["proof"]["max_trades\nper_day"] = 1
    desk.config_path.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    code, out, err = desk.cli("status")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "max_trades\\nper_day" in err, err


# ---- a symlinked config.json ----------------------------------------------------------------


def test_saving_a_symlinked_config_writes_through_to_its_target_and_keeps_the_link(desk: Desk) -> None:
    real_dir = desk.root / "settings"
    real_dir.mkdir()
    target = real_dir / "config.json"
    target.write_bytes(desk.config_path.read_bytes())
    desk.config_path.unlink()
    desk.config_path.symlink_to(target)

    code, _, err = desk.cli("override", "--to", "proof", "--operator", "o", "--reason", "r", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    assert desk.config_path.is_symlink() and desk.config_path.resolve() == target.resolve()
    saved = json.loads(target.read_text(encoding="utf-8"))
    assert saved["phase_progression"]["current_phase"] == "proof"
    history = (real_dir / "logs" / "phase" / "phase-history.jsonl").read_bytes().splitlines()  # logs sit beside the real file
    assert saved["phase_progression"]["history_head"]["seq"] == len(history)
    assert not [path for path in real_dir.rglob("*.tmp")]  # no temp file left behind
    assert desk.cli("verify")[0] == 0
    assert desk.config_path.is_symlink()


# ---- a second `open` for one order ----------------------------------------------------------


def append_journal(desk: Desk, *lines: dict[str, object]) -> None:
    path = sorted((desk.logs_dir / "trades").glob("*.jsonl"))[-1]
    with open(path, "a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")


def first_open(desk: Desk) -> dict[str, object]:
    path = sorted((desk.logs_dir / "trades").glob("*.jsonl"))[-1]
    return json.loads(path.read_bytes().splitlines()[0])


def test_a_second_different_open_record_for_an_order_is_an_invalid_line(desk: Desk) -> None:
    assert desk.enter().accepted
    forged = dict(first_open(desk))
    forged["quantity"] = int(forged["quantity"]) + 1  # type: ignore[call-overload]
    append_journal(desk, forged)
    code, out, err = desk.cli("check-trade")
    assert (code, out) == (2, "") and "order_id" in err and "open" in err
    code, verdict = desk.cli_json("verify")
    assert code == 1 and any("open" in problem["reason"] for problem in verdict["problems"])
    assert not desk.enter().accepted


def test_an_identical_repeated_open_record_collapses(desk: Desk) -> None:
    assert desk.enter().accepted
    append_journal(desk, first_open(desk))
    code, check = desk.cli_json("check-trade")
    assert code in (0, 1) and "journal" not in (check["reason"] or "")
    assert desk.cli("verify")[0] == 0


# ---- an emergency exit with a bad journal line ----------------------------------------------


def test_emergency_exit_check_with_a_bad_journal_line_is_allowed_and_says_why_entries_halt(desk: Desk) -> None:
    assert desk.enter().accepted
    append_journal(desk, {"order_id": "x", "outcome": "what"})
    before = desk.snapshot_files(records_only=True)  # the journal index is a cache: it may be refreshed
    code, check = desk.cli_json("check-trade", "--emergency-exit")
    assert (code, check["allowed"]) == (0, True)
    assert "always allowed" in check["reason"] and "journal" in check["entries_halted"]
    code, out, err = desk.cli("check-trade", "--emergency-exit")
    assert code == 0 and out.startswith("allowed: emergency exit") and "journal" in out
    assert desk.snapshot_files(records_only=True) == before
    code, out, err = desk.cli("check-trade")
    assert code == 2 and out == ""
