"""`python -m trading_bot.phase` as a whole process: exit codes, streams, piped passwords.

These run on the real clock in a fresh desk (config.json copied into tmp_path, no trades),
so nothing here depends on frozen time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "config.json"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copyfile(SHIPPED_CONFIG, tmp_path / "config.json")
    return tmp_path


def run_phase(workdir: Path, *args: str, stdin: str = "", password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    """One `python -m trading_bot.phase …` in `workdir`, with only our phase variables set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHASE_")}
    if password is not None:
        env["PHASE_OVERRIDE_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "trading_bot.phase", *args],
        cwd=workdir,
        input=stdin,
        capture_output=True,
        text=True,
        errors="backslashreplace",  # a message may quote a file name that is not UTF-8
        env=env,
        timeout=60,
    )


def history(workdir: Path) -> list[dict[str, object]]:
    path = workdir / "logs" / "phase" / "phase-history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_status_with_config_in_the_working_directory_exits_0(workdir: Path) -> None:
    result = run_phase(workdir, "status")
    assert result.returncode == 0, result.stderr
    assert "Experience (experience)" in result.stdout
    assert result.stderr == ""


def test_status_json_is_one_json_object_on_stdout(workdir: Path) -> None:
    result = run_phase(workdir, "status", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert (payload["phase"], payload["position_size"]) == ("experience", "100.00")


def test_missing_config_exits_2_with_one_line(workdir: Path) -> None:
    result = run_phase(workdir, "--config", "missing.json", "status")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "missing.json" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "logs").exists()


def test_bad_usage_exits_2_without_a_traceback(workdir: Path) -> None:
    result = run_phase(workdir, "frobnicate")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_override_with_the_password_piped_moves_the_phase(workdir: Path) -> None:
    result = run_phase(
        workdir, "override", "--to", "proof", "--operator", "alice", "--reason", "migrating", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert result.returncode == 0, result.stderr
    transition = history(workdir)[-1]
    assert (transition["type"], transition["kind"], transition["to_phase"], transition["operator_id"]) == (
        "transition",
        "override",
        "proof",
        "alice",
    )
    assert json.loads((workdir / "config.json").read_text())["phase_progression"]["current_phase"] == "proof"


def test_override_with_a_wrong_password_piped_exits_1(workdir: Path) -> None:
    result = run_phase(
        workdir, "override", "--to", "proof", "--operator", "alice", "--reason", "migrating", "--password-stdin", stdin="guess\n"
    )
    assert result.returncode == 1
    assert "wrong password" in result.stderr
    assert all(line["type"] != "transition" for line in history(workdir))


def test_override_without_a_configured_password_names_both_variables(workdir: Path) -> None:
    result = run_phase(
        workdir, "override", "--to", "proof", "--operator", "alice", "--reason", "r", "--password-stdin", stdin=PASSWORD + "\n", password=None
    )
    assert result.returncode == 1
    assert "PHASE_OVERRIDE_PASSWORD" in result.stderr and "PHASE_OVERRIDE_PASSWORD_HASH" in result.stderr


def at_a_terminal(workdir: Path, *args: str, prompt: bytes) -> tuple[int, str]:
    """Run a command on a real pseudo-terminal, wait for its prompt, then type Ctrl-D
    (end of input) as an operator changing their mind would; its exit code and output."""
    import pty
    import select

    leader, follower = pty.openpty()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHASE_")}
    env["PHASE_OVERRIDE_PASSWORD"] = PASSWORD
    process = subprocess.Popen(
        [sys.executable, "-m", "trading_bot.phase", *args],
        cwd=workdir, stdin=follower, stdout=follower, stderr=follower, env=env, start_new_session=True,
    )
    os.close(follower)
    seen = b""
    try:
        while prompt not in seen:
            ready, _, _ = select.select([leader], [], [], 60)
            assert ready, f"no prompt within 60 s; seen {seen!r}"
            seen += os.read(leader, 4096)
        os.write(leader, b"\x04")
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            assert ready, f"no end within 60 s; seen {seen!r}"
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the follower side closed: the process is gone
                break
            if not chunk:
                break
            seen += chunk
        code = process.wait(timeout=60)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, seen.decode("utf-8", "backslashreplace")


def test_end_of_input_at_the_hash_password_prompt_is_one_line_and_exit_2(workdir: Path) -> None:
    code, seen = at_a_terminal(workdir, "hash-password", prompt=b"New override password: ")
    assert code == 2, seen
    assert "Traceback" not in seen
    assert seen.rstrip().endswith("usage: input ended before an answer was given; nothing printed")


def test_end_of_input_at_the_override_password_prompt_records_nothing(workdir: Path) -> None:
    code, seen = at_a_terminal(workdir, "override", "--to", "proof", "--operator", "alice", "--reason", "test", prompt=b"Override password: ")
    assert code == 2, seen
    assert "Traceback" not in seen
    assert seen.rstrip().endswith("usage: input ended before an answer was given; nothing recorded")
    assert history(workdir) == []
