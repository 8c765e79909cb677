"""A reader that goes away (`status | true`, `export … | head -1`) is not bad input: the
command stops quietly with 141, the shell's code for a writer ended by SIGPIPE."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import PASSWORD, Desk
from trading_bot.clock import FixedClock
from trading_bot.phase.cli import EXIT_OUTPUT_CLOSED, main

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "config.json"


class ClosedPipe(io.StringIO):
    """A stdout whose reader has gone: every write fails as a closed pipe does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def _run_closed(desk: Desk, *args: str, stdin: str = "") -> tuple[int, str]:
    err = io.StringIO()
    code = main(["--config", str(desk.config_path), *args], stdin=io.StringIO(stdin), stdout=ClosedPipe(), stderr=err, environ=desk.env)
    return code, err.getvalue()


def test_the_code_is_the_shells_sigpipe_code() -> None:
    assert EXIT_OUTPUT_CLOSED == 128 + 13


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--json"),
        ("check-trade",),
        ("verify",),
        ("validate-transition", "--to", "proof"),
        ("export", "--start", "2026-03-01", "--end", "2026-03-31"),
    ],
)
def test_a_closed_stdout_exits_141_with_nothing_on_stderr(desk: Desk, args: tuple[str, ...]) -> None:
    desk.trade(3)
    code, err = _run_closed(desk, *args)
    assert code == EXIT_OUTPUT_CLOSED
    assert err == ""


def test_a_command_that_records_keeps_its_record_when_the_reader_is_gone(desk: Desk) -> None:
    code, err = _run_closed(desk, "override", "--to", "proof", "--operator", "ops", "--reason", "test", "--password-stdin", stdin=PASSWORD + "\n")
    assert (code, err) == (EXIT_OUTPUT_CLOSED, "")
    assert desk.transitions()[-1]["to_phase"] == "proof"


def test_hash_password_and_replay_stop_quietly_too(tmp_path: Path) -> None:
    trades = tmp_path / "plain.csv"
    trades.write_text("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,1\n", encoding="utf-8")
    now = FixedClock(datetime(2026, 12, 1, 11, 0, tzinfo=timezone.utc))
    for args, stdin in ((["hash-password", "--password-stdin"], "a password\n"), (["replay", "--trades", str(trades)], "")):
        err = io.StringIO()
        code = main(args, stdin=io.StringIO(stdin), stdout=ClosedPipe(), stderr=err, environ={}, clock=now)
        assert (code, err.getvalue()) == (EXIT_OUTPUT_CLOSED, "")


def test_a_real_bad_config_is_still_exit_2_naming_the_file(desk: Desk) -> None:
    desk.config_path.write_text("{", encoding="utf-8")
    code, err = _run_closed(desk, "status")
    assert code == 2 and "config.json" in err


def test_the_process_with_a_closed_pipe_exits_141_and_says_nothing(tmp_path: Path) -> None:
    shutil.copyfile(SHIPPED_CONFIG, tmp_path / "config.json")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHASE_")}
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "trading_bot.phase", "status"],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == EXIT_OUTPUT_CLOSED
    assert done.stderr == b""
