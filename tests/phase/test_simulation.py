"""`simulate`: the demo climbs the real ladder, writes only into its folder, and verifies."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from trading_bot.clock import FixedClock
from trading_bot.clock import parse_timestamp
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.cli import main
from trading_bot.phase.simulation import DEFAULT_SEED, DEFAULT_SESSIONS, SeededStrategy, sessions_before

# Tuesday 2026-12-01 11:00 UTC = 06:00 New York, before the open: Monday's session is current.
NOW = datetime(2026, 12, 1, 11, 0, tzinfo=timezone.utc)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str, cwd: Path | None = None, stderr: io.StringIO | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), stderr or io.StringIO()
    code = main(["simulate", *args], stdout=out, stderr=err, stdin=io.StringIO(""), environ={}, clock=FixedClock(NOW))
    return code, out.getvalue(), err.getvalue()


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), *args], stdout=out, stderr=err, stdin=io.StringIO(""), environ={}, clock=FixedClock(NOW))
    return code, out.getvalue(), err.getvalue()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One run with the defaults (the README's first command), shared by the tests below."""
    root = tmp_path_factory.mktemp("demo")
    code, out, err = run("--workdir", str(root / "desk"))
    assert code == 0, err
    yield root / "desk", out


def test_default_run_climbs_to_trial_with_a_refused_entry_and_a_downgrade_on_the_way(demo: tuple[Path, str]) -> None:
    desk, out = demo
    history = lines(desk / "logs" / "phase" / "phase-history.jsonl")
    moves = [(line["kind"], line["to_phase"]) for line in history if line["type"] == "transition"]
    assert ("advance", "trial") in moves
    first_trial = moves.index(("advance", "trial"))
    assert any(kind == "downgrade" for kind, _ in moves[:first_trial])
    refusals = [line for line in lines(desk / "logs" / "phase" / "phase-overrides.jsonl") if line["type"] == "entry_refused"]
    assert any("1/1 trades this session (proof)" in line["reason"] for line in refusals)
    assert "advance proof → trial" in out
    assert "downgrade proof → experience" in out
    assert "entry refused" in out


def test_every_advance_follows_a_passed_gate_and_every_downgrade_is_acknowledged(demo: tuple[Path, str]) -> None:
    desk, _ = demo
    history = lines(desk / "logs" / "phase" / "phase-history.jsonl")
    suggested = set()
    tripped = False
    for line in history:
        if line["type"] == "suggestion":
            suggested.add(line["to_phase"])
        if line["type"] == "transition" and line["kind"] == "advance":
            assert line["to_phase"] in suggested
            assert not tripped
            assert all(criterion["met"] for criterion in line["criteria"])
        if line["type"] == "transition" and line["kind"] == "downgrade":
            tripped = True
        if line["type"] == "breaker_ack":
            tripped = False


def test_what_it_leaves_passes_verify_and_is_dated_before_now(demo: tuple[Path, str]) -> None:
    desk, _ = demo
    code, out, err = cli(desk / "config.json", "verify", "--json")
    assert code == 0, out + err
    assert json.loads(out)["intact"] is True
    stamps = [parse_timestamp(line["timestamp"]) for name in ("phase-history.jsonl", "phase-overrides.jsonl") for line in lines(desk / "logs" / "phase" / name)]
    for journal in (desk / "logs" / "trades").glob("*.jsonl"):
        for record in lines(journal):
            stamps.append(parse_timestamp(record.get("exit_timestamp") or record["timestamp"]))
    assert max(stamps) <= NOW


def test_it_trades_the_sessions_that_closed_before_now(demo: tuple[Path, str]) -> None:
    desk, out = demo
    days = sessions_before(MarketCalendar(), NOW, 150)
    assert days[-1].isoformat() == "2026-11-27"  # Monday 11-30 is still open at 06:00; 11-26 is Thanksgiving
    assert f"{days[0].isoformat()} … 2026-11-27" in out
    assert sorted(p.name for p in (desk / "logs" / "trades").glob("*.jsonl"))[-1] == "2026-11-27.jsonl"


def test_it_prints_the_timeline_and_where_the_desk_is(demo: tuple[Path, str]) -> None:
    desk, out = demo
    assert "simulated 150 sessions" in out
    assert f"desk: {desk / 'config.json'}" in out
    assert f"report: {desk / 'report.html'}" in out
    assert (desk / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert out.strip().splitlines()[-3].startswith("final: trial")


def test_the_same_seed_tells_the_same_story_and_the_default_folder_is_new_each_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = run("--sessions", "25", "--seed", "3")
    second = run("--sessions", "25", "--seed", "3")
    assert first[0] == second[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["simulated-desk-1", "simulated-desk-2"]
    strip = lambda text: text.replace("simulated-desk-1", "X").replace("simulated-desk-2", "X")  # noqa: E731
    assert strip(first[1]) == strip(second[1])


def test_a_non_empty_workdir_is_refused_with_exit_2_and_nothing_written(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    code, out, err = run("--workdir", str(tmp_path), "--sessions", "3")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "is not empty" in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(("args", "fragment"), [(("--sessions", "0"), "between 1 and 2520"), (("--sessions", "2521"), "between 1 and 2520"), (("--seed", "-1"), "--seed -1"), (("--sessions", "ten"), "invalid int")])
def test_bad_arguments_are_exit_2_one_line_and_nothing_written(tmp_path: Path, args: tuple[str, ...], fragment: str) -> None:
    code, out, err = run("--workdir", str(tmp_path / "desk"), *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and fragment in err
    assert not (tmp_path / "desk").exists()


def test_one_session_is_the_smallest_run_and_still_verifies(tmp_path: Path) -> None:
    code, out, err = run("--workdir", str(tmp_path / "desk"), "--sessions", "1")
    assert code == 0, err
    assert "simulated 1 sessions" in out
    assert cli(tmp_path / "desk" / "config.json", "verify")[0] == 0


def test_a_progress_line_goes_to_a_terminal_only(tmp_path: Path) -> None:
    terminal = Terminal()
    code, out, _ = run("--workdir", str(tmp_path / "a"), "--sessions", "3", stderr=terminal)
    assert code == 0
    assert "session 3/3" in terminal.getvalue()
    assert "session 3/3" not in out
    code, _, err = run("--workdir", str(tmp_path / "b"), "--sessions", "3")
    assert code == 0 and err == ""


def test_the_strategy_is_a_function_of_its_seed() -> None:
    first, second, other = SeededStrategy(5), SeededStrategy(5), SeededStrategy(6)
    plan = [first.session() for _ in range(30)]
    assert plan == [second.session() for _ in range(30)]
    assert plan != [other.session() for _ in range(30)]


def test_phase_history_dir_in_the_environment_does_not_send_records_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "real-desk-phase-logs"
    monkeypatch.setenv("PHASE_HISTORY_DIR", str(elsewhere))
    code, _, err = run("--workdir", str(tmp_path / "desk"), "--sessions", "3")
    assert code == 0, err
    assert not elsewhere.exists()
    assert (tmp_path / "desk" / "logs" / "phase" / "phase-history.jsonl").exists()


def test_help_names_the_demo_defaults_and_a_run_without_seed_uses_the_default_seed(tmp_path: Path) -> None:
    code, out, _ = run("--help")
    words = " ".join(out.split())  # argparse wraps the help to the terminal's width
    assert code == 0
    assert f"the demo's {DEFAULT_SESSIONS})" in words and f"the demo's {DEFAULT_SEED})" in words
    code, out, _ = run("--workdir", str(tmp_path / "desk"), "--sessions", "2")
    assert code == 0
    assert f"(seed {DEFAULT_SEED})" in out
