"""The README says what the code does: its examples run as written ("Use it from your own
bot", the five-minute tour on the demo desk at the moment its output was taken, the replay
of the GOOG backtest, the Reading `status` desk) and print the lines it shows; its command
table is what `--help` says; its configuration reference is what config_schema.py reads."""

from __future__ import annotations

import argparse
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from datetime import date, datetime, time, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from trading_bot.clock import FixedClock
from trading_bot.phase.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Use it from your own bot"


def example_blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)


def run_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str) -> dict[str, Any]:
    (tmp_path / "desk").mkdir()
    shutil.copyfile(REPO_ROOT / "config.json", tmp_path / "desk" / "config.json")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    with freeze_time(moment):
        for block in example_blocks():
            exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the documented example
    return namespace


def test_the_readme_has_both_examples() -> None:
    assert len(example_blocks()) == 2


def test_inside_hours_the_example_enters_closes_and_reads_the_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run_example(tmp_path, monkeypatch, "2026-03-10 15:00:00")  # Tuesday 11:00 New York
    assert namespace["entry"].accepted
    assert (namespace["closed"].outcome, namespace["closed"].net_pnl) == ("win", Decimal("1.90"))
    state = namespace["state"]
    assert (state.phase.value, state.entries_used, state.status.value) == ("experience", 1, "active")
    assert namespace["live_desk"].bot.broker.cash == Decimal("50000")
    assert (tmp_path / "desk" / "logs" / "trades" / "2026-03-10.jsonl").exists()


def test_outside_hours_the_example_is_refused_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run_example(tmp_path, monkeypatch, "2026-03-14 15:00:00")  # a Saturday
    assert (namespace["entry"].accepted, namespace["entry"].code) == (False, "trading_hours")
    assert namespace["state"].status.value == "reducing"


# ---- the five-minute tour and the replay, compared line by line ------------------------------

TOUR = "## A five-minute tour of the simulated desk"
LADDER = "## The ladder in five minutes"
# The moment the tour's output was taken (the README says so): 06:00 New York, before the open.
TOUR_NOW = datetime(2026, 12, 1, 11, 0, tzinfo=timezone.utc)
README_DESK = "/home/you/trading-bot/simulated-desk-1"


def section(title: str, next_title: str) -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(title)
    return text[start : text.index(next_title, start)]


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL)


def documented_commands(block: str) -> list[tuple[list[str], int | None, list[str]]]:
    """Each `$ python -m trading_bot.phase …` line of a transcript: its arguments, the exit
    code its comment states (if any), and the output lines shown under it."""
    commands: list[tuple[list[str], int | None, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            typed, _, comment = line[2:].partition("  #")
            words = shlex.split(typed)
            assert words[:3] == ["python", "-m", "trading_bot.phase"], line
            stated = re.search(r"exit (\d+)", comment)
            commands.append((words[3:], int(stated.group(1)) if stated else None, []))
        else:
            commands[-1][2].append(line)
    return commands


def shown_as(documented: str, printed: str) -> bool:
    if documented.endswith("; ..."):
        return printed.startswith(documented[: -len("...")])
    return printed == documented


def assert_shows(documented: list[str], printed: list[str]) -> None:
    """Every documented line is printed, in order: a line `...` stands for any lines, a line
    ending in `; ...` for the rest of that line; every other line is compared whole."""
    position = 0
    skipping = False
    for expected in documented:
        if expected.strip() == "...":
            skipping = True
            continue
        while position < len(printed) and not shown_as(expected, printed[position]):
            assert skipping, f"README shows {expected!r}, the command printed {printed[position]!r}"
            position += 1
        assert position < len(printed), f"README shows {expected!r}, the command printed no such line"
        position += 1
        skipping = False
    assert skipping or position == len(printed), f"the command printed more than the README shows: {printed[position:]}"


def run_cli(args: list[str]) -> tuple[int, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdout=out, stderr=err, stdin=io.StringIO(""), environ={}, clock=FixedClock(TOUR_NOW))
    return code, (out.getvalue() + err.getvalue()).splitlines()


def test_the_tour_prints_what_the_readme_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, printed = run_cli(["simulate"])
    assert code == 0, printed
    desk = tmp_path / "simulated-desk-1"
    monkeypatch.chdir(desk)
    transcript = fenced_blocks(section(TOUR, "`export` gives one row"))[0]
    commands = documented_commands(transcript)
    assert [args[0] for args, _, _ in commands] == ["status", "advance", "export", "export", "report", "verify"]
    for args, stated_exit, documented in commands:
        code, printed = run_cli(args)
        assert code == (0 if stated_exit is None else stated_exit), (args, printed)
        assert_shows([line.replace(README_DESK, str(desk)) for line in documented], printed)
    assert (desk / "sessions.json").exists() and (desk / "report.html").exists()


def test_the_replay_of_the_goog_backtest_prints_what_the_readme_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's backtesting.py script runs in its own process (pandas stays out of this
    one), then `replay` runs on the file it wrote."""
    blocks = fenced_blocks(section("**What would the ladder have done with my backtest?**", LADDER))
    commands, documented = blocks[0], blocks[1]
    script = commands[commands.index("<<'PY'\n") + len("<<'PY'\n") : commands.index("\nPY\n")]
    made = subprocess.run([sys.executable, "-"], input=script, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    typed = commands.splitlines()[-1]
    assert typed == "python -m trading_bot.phase replay --trades goog.csv"
    monkeypatch.chdir(tmp_path)
    code, printed = run_cli(shlex.split(typed)[3:])
    assert code == 0, printed
    assert_shows(documented.splitlines(), printed)



def test_reading_status_shows_what_status_prints_on_that_proof_desk(tmp_path: Path) -> None:
    """The desk the README describes: proof by an override on 2026-03-30 at 08:00 New York,
    that day without an entry, then one winning trade of $30 a session up to and including
    2026-04-14's, closed by 08:02 (ten closed trades, a one-day run without an entry)."""
    from tests.phase.conftest import PASSWORD, Desk

    with freeze_time(datetime(2026, 3, 30, 12, 0, tzinfo=timezone.utc)) as frozen:
        desk = Desk(tmp_path, frozen, {"PHASE_OVERRIDE_PASSWORD": PASSWORD})
        code, _, err = desk.cli("override", "--to", "proof", "--operator", "alice", "--reason", "the README's desk", "--password-stdin", stdin=PASSWORD + "\n")
        assert code == 0, err
        desk.start()
        desk.day = date(2026, 3, 30)
        while desk.day < date(2026, 4, 14):
            desk.next_session()
            desk.trade(30)
        transcript = fenced_blocks(section("### Reading `status`", "### When the breaker trips"))[0]
        [(args, _, documented)] = documented_commands(transcript)
        code, out, err = desk.cli(*args)
    assert code == 0, err
    assert_shows(documented, out.splitlines())


# ---- the command table and `--help` -----------------------------------------------------------

PROG = "python -m trading_bot.phase"


def command_table() -> list[tuple[str, str]]:
    """(usage, exit codes) of each row of the README's command table, backticks removed."""
    rows = []
    for line in section("## Commands", "## Use it from your own bot").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows.append((cells[0].strip("`"), cells[2].replace("`", "")))
    return rows


def help_text(monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal's width
    out, err = io.StringIO(), io.StringIO()
    assert main([*args, "--help"], stdout=out, stderr=err) == 0, err.getvalue()
    return out.getvalue()


def test_the_command_table_names_every_command_the_cli_has() -> None:
    from trading_bot.phase.cli import build_parser

    choices = next(action.choices for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert sorted(usage.split()[0] for usage, _ in command_table()) == sorted(choices)


def test_each_command_s_help_has_the_usage_and_exit_codes_of_the_command_table(monkeypatch: pytest.MonkeyPatch) -> None:
    for usage, exits in command_table():
        name, _, options = usage.partition(" ")
        printed = help_text(monkeypatch, name)
        assert printed.startswith(f"usage: {PROG} {name} [-h]{' ' if options else ''}{options}\n"), printed
        assert f"\nexit: {exits}\n" in printed, printed


def test_the_global_options_are_those_the_readme_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = re.search(r"`(python -m trading_bot.phase \[.*?)`", section("## Commands", "| command |")).group(1)
    printed = help_text(monkeypatch).splitlines()[0]
    assert printed == "usage: " + documented.replace(f"{PROG} ", f"{PROG} [-h] ").replace("[options]", "...")


# ---- the configuration reference and config_schema.py -----------------------------------------

PHASES = ("experience", "proof", "trial", "scaling")
WHOLE_BLOCKS = ("increase_on_win_streak", "increase_on_win_rate")  # documented as one JSON object


def config_rows() -> list[tuple[list[str], list[str], str]]:
    """(backticked keys, backticked defaults, the default cell) of each configuration row."""
    table = section("| key | default | meaning |", "\n\n")
    rows = []
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows.append((re.findall(r"`([^`]+)`", cells[0]), re.findall(r"`([^`]+)`", cells[1]), cells[1]))
    return rows


def schema_default(path: list[str]) -> Any:
    from trading_bot.config_schema import Settings

    value: Any = Settings.model_validate({})
    for name in path:
        value = getattr(value, name)
    return value


def has_key(path: list[str]) -> bool:
    try:
        schema_default(path)
    except AttributeError:
        return False
    return True


def full_paths(key: str) -> list[list[str]]:
    """`<phase>.x` is every phase whose block has x; a key starting with a phase is inside
    phase_progression (the README says both)."""
    parts = key.split(".")
    if parts[0] == "<phase>":
        found = [["phase_progression", phase, *parts[1:]] for phase in PHASES if has_key(["phase_progression", phase, *parts[1:]])]
        assert found, key
        return found
    return [["phase_progression", *parts] if parts[0] in PHASES else parts]


def documented_keys(keys: list[str]) -> list[list[list[str]]]:
    """`a.b.c` / `d`: a short name is a sibling of the full key before it."""
    groups, last = [], ""
    for key in keys:
        if "." not in key:
            key = last.rsplit(".", 1)[0] + "." + key
        last = key
        groups.append(full_paths(key))
    return groups


def documented_value(text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except ValueError:
        return text


def comparable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {name: comparable(field) for name, field in value}
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, Enum):
        return value.value
    return value


def documented_defaults() -> dict[tuple[str, ...], Any]:
    defaults: dict[tuple[str, ...], Any] = {}
    for keys, values, cell in config_rows():
        if "written by the bot" in cell:
            continue
        groups = documented_keys(keys)
        per_phase = re.findall(r"((?:(?:experience|proof|trial|scaling)(?:, | and )?)+) `([^`]+)`", cell)
        if per_phase:
            assert len(groups) == 1, keys
            stated = {phase: documented_value(value) for phases, value in per_phase for phase in re.findall(r"[a-z]+", phases)}
            for path in groups[0]:
                defaults[tuple(path)] = stated[path[1]]
            continue
        assert len(values) == len(groups), (keys, values)
        for paths, value in zip(groups, values):
            for path in paths:
                defaults[tuple(path)] = documented_value(value)
    return defaults


def schema_keys(model: BaseModel, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    keys: set[tuple[str, ...]] = set()
    for name, value in model:
        if isinstance(value, BaseModel) and name not in WHOLE_BLOCKS:
            keys |= schema_keys(value, (*prefix, name))
        else:
            keys.add((*prefix, name))
    return keys


def test_every_documented_default_is_the_one_the_bot_reads() -> None:
    for path, stated in documented_defaults().items():
        assert comparable(schema_default(list(path))) == stated, ".".join(path)


def test_every_key_the_bot_reads_is_in_the_configuration_reference() -> None:
    from trading_bot.config_schema import Settings

    heads = {("phase_progression", "history_head"), ("phase_progression", "overrides_head")}
    assert set(documented_defaults()) | heads == schema_keys(Settings.model_validate({}))


def test_the_shipped_config_writes_out_every_documented_default() -> None:
    shipped = json.loads((REPO_ROOT / "config.json").read_text(encoding="utf-8"), parse_float=Decimal, parse_int=Decimal)
    for path, stated in documented_defaults().items():
        value: Any = shipped
        for name in path:
            value = value[name]
        assert value == stated, ".".join(path)
