"""Property: whatever config.json or a journal line says (extreme numbers, deep nesting,
odd unicode, odd timestamps), every command answers 0, 1 or 2, in bounded time, without
a traceback, and a command that answers 2 has written nothing."""

from __future__ import annotations

import io
import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.phase.conftest import PASSWORD, SHIPPED_CONFIG
from trading_bot.clock import FixedClock
from trading_bot.phase.cli import main

# A Tuesday inside trading hours; journal lines below are dated the same morning.
NOW = datetime(2026, 3, 10, 16, 0, tzinfo=timezone.utc)
# Each command gets this long before it counts as hung (a fixed build needs well under 1 s).
COMMAND_SECONDS = 20
COMMANDS = (
    ["status", "--json"],
    ["check-trade"],
    ["check-trade", "--emergency-exit"],
    ["verify"],
    ["acknowledge", "--operator", "prop"],
)
PLACEHOLDER = "__RAW_TOKEN__"


class Hung(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hung(f"a command ran longer than {COMMAND_SECONDS} s")


def files_under(root: Path) -> dict[str, bytes]:
    """The records under a desk; the journal index (`logs/.derived/`, a cache) is left out."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ".phase.lock" and ".derived" not in path.relative_to(root).parts
    }


def run_every_command(root: Path) -> None:
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for command in COMMANDS:
            before = files_under(root)
            out, err = io.StringIO(), io.StringIO()
            signal.alarm(COMMAND_SECONDS)
            try:
                code = main(
                    ["--config", str(root / "config.json"), *command],
                    stdin=io.StringIO(PASSWORD + "\n"),
                    stdout=out,
                    stderr=err,
                    environ={"PHASE_OVERRIDE_PASSWORD": PASSWORD},
                    clock=FixedClock(NOW),
                )
            finally:
                signal.alarm(0)
            assert code in (0, 1, 2), (command, code, err.getvalue())
            assert "Traceback" not in err.getvalue()
            if code == 2:
                assert out.getvalue() == "", command
                assert err.getvalue().count("\n") == 1, (command, err.getvalue())
                assert files_under(root) == before, f"{command} exited 2 but wrote"
    finally:
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def template_desk() -> Iterator[Path]:
    """A desk that has run once, copied for each example."""
    with tempfile.TemporaryDirectory(prefix="hostile-desk-") as folder:
        root = Path(folder)
        shutil.copyfile(SHIPPED_CONFIG, root / "config.json")
        code = main(["--config", str(root / "config.json"), "status"], stdout=io.StringIO(), stderr=io.StringIO(), environ={}, clock=FixedClock(NOW))
        assert code == 0
        yield root


def copy_of(template: Path, into: Path) -> Path:
    shutil.copytree(template, into, dirs_exist_ok=True)
    return into


# ---- what hostile values look like ---------------------------------------------------------

raw_numbers = st.sampled_from(
    [
        "1E+100000000", "1e-100000000", "-1E+100000000", "1e400", "-0", "0.0000000000000000000001",
        str(2**63), str(2**64), str(-(2**63) - 1), "9" * 5000, "1" + "0" * 40, "1e26", "1e27",
        "123456789012345678901234567890.123456789", "0", "1", "3", "0.55", "100",
    ]
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


raw_nesting = st.integers(min_value=1, max_value=1100).map(nested)
odd_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(["\n", "\u2028", "\x00", "\ufeff", "é", "𝔸"]),
    max_size=12,
)
raw_strings = st.one_of(odd_text.map(json.dumps), st.sampled_from(['"\\ud800"', '"1E+100000000"', '"NaN"', '"Infinity"', '"1e26"']))
odd_timestamps = st.sampled_from(
    [
        "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
        "2026-03-10T14:00:00Z", "2026-03-10T14:00:00", "2026-03-10T14:00:00+14:00", "2026-03-10T14:00:00-12:00",
        "2026-02-30T10:00:00Z", "2026-03-10T14:00:00.000000000000000000000001Z", "", "now", "2026-03-10",
        "2026-03-10T14:00:00\u2028Z", "+002026-03-10T14:00:00Z",
    ]
).map(json.dumps)
raw_values = st.one_of(raw_numbers, raw_nesting, raw_strings, odd_timestamps, st.sampled_from(["null", "true", "{}", "[]"]))

CONFIG_PATHS = [
    ("phase_progression", "proof", "max_trades_per_day"),
    ("phase_progression", "proof", "position_size"),
    ("phase_progression", "trial", "advancement_criteria", "min_trades"),
    ("phase_progression", "trial", "downgrade_triggers", "rolling_win_rate_min"),
    ("phase_progression", "scaling", "increase_on_win_streak", "every"),
    ("phase_progression", "history_head"),
    ("phase_progression", "overrides_head"),
    ("phase_progression", "current_phase"),
    ("account", "starting_equity"),
    ("risk_management", "max_position_pct"),
    ("trading", "hours", "start_time"),
    ("trading", "mode"),
    ("notes",),
]


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(path=st.sampled_from(CONFIG_PATHS), token=raw_values, key=st.one_of(st.none(), odd_text))
def test_hostile_config_json_never_hangs_crashes_or_writes_on_exit_2(
    template_desk: Path, path: tuple[str, ...], token: str, key: str | None
) -> None:
    with tempfile.TemporaryDirectory(prefix="hostile-config-") as folder:
        root = copy_of(template_desk, Path(folder))
        raw: dict[str, Any] = json.loads((root / "config.json").read_text(encoding="utf-8"))
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1] if key is None else key] = PLACEHOLDER
        (root / "config.json").write_text(json.dumps(raw, indent=2).replace(json.dumps(PLACEHOLDER), token), encoding="utf-8")
        run_every_command(root)


JOURNAL_FIELDS = ["quantity", "price", "net_profit_loss", "stop_loss", "timestamp", "exit_timestamp", "symbol", "order_id", "outcome", "note"]


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(
    replacements=st.dictionaries(st.sampled_from(JOURNAL_FIELDS), raw_values, min_size=1, max_size=3),
    closed=st.booleans(),
)
def test_hostile_journal_line_never_hangs_crashes_or_writes_on_exit_2(
    template_desk: Path, replacements: dict[str, str], closed: bool
) -> None:
    line: dict[str, Any] = {
        "timestamp": "2026-03-10T14:00:00Z", "symbol": "AAPL", "action": "BUY", "quantity": 1, "price": "10.00",
        "order_id": "o-1", "outcome": "open",
    }
    if closed:
        line.update(outcome="win", exit_timestamp="2026-03-10T15:00:00Z", net_profit_loss="5.00")
    for index, field in enumerate(replacements):
        line[field] = f"{PLACEHOLDER}{index}"
    text = json.dumps(line)
    for index, token in enumerate(replacements.values()):
        text = text.replace(json.dumps(f"{PLACEHOLDER}{index}"), token)
    with tempfile.TemporaryDirectory(prefix="hostile-journal-") as folder:
        root = copy_of(template_desk, Path(folder))
        trades = root / "logs" / "trades"
        trades.mkdir(parents=True, exist_ok=True)
        (trades / "2026-03-10.jsonl").write_text(text + "\n", encoding="utf-8", errors="surrogatepass")
        run_every_command(root)
