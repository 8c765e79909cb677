"""The SPEC §12 benchmark keeps running: a tiny run prints every figure with its goal.

Nothing here judges a time (speed is the benchmark's business, never a test's); only that
each figure is measured and printed, so the script cannot rot unnoticed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_phase.py"

FIGURES = (
    "plain `json.loads` loop over the desk's",
    "first start: `status`, whole process, no phase logs and no derived state",
    "`status`, whole process, warm,",
    "`status`, whole process, warm: peak RSS",
    "`validate-transition --to proof --json`, whole process, warm",
    "`export` CSV",
    "bot start, warm, in process",
    "one appended trade (750 B), then `status`",
    "pre-trade check, 100 trades",
    "pre-trade check, 200 trades",
    "pre-trade check ratio large / small",
    "session metrics, 100 trades",
    "full rebuild: derived state deleted, fresh PhaseManager.state(), 200 lines",
    "full rebuild speed / plain loop",
    "full rebuild peak memory",
)


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_phase", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_phase"] = module
    spec.loader.exec_module(module)
    return module


def test_the_fixture_builder_writes_the_trades_it_is_asked_for(tmp_path: Path) -> None:
    bench = load_benchmark()
    calendar = bench.MarketCalendar()
    fixture = bench.build_fixture(tmp_path / "desk", 200, "day", calendar)
    lines = [line for path in sorted(fixture.trades_dir.glob("*.jsonl")) for line in path.read_bytes().splitlines()]
    assert (fixture.trades, len(lines), fixture.files) == (200, 200, 25)
    assert {len(line) + 1 for line in lines} == {bench.LINE_BYTES}
    assert fixture.first_session < fixture.last_session < calendar.session_of(bench.NOW)


def test_a_tiny_run_prints_every_figure_with_its_goal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark()
    code = bench.main([
        "--trades-large", "200", "--trades-small", "100", "--desk-trades", "200", "--runs", "1", "--first-runs", "1",
        "--repeats", "1", "--batch", "10", "--rebuild-repeats", "1", "--workdir", str(tmp_path / "bench"),
    ])
    out = capsys.readouterr().out
    assert code == 0
    table = out[out.index("figure "):]
    missing = [figure for figure in FIGURES if figure not in table]
    assert missing == []
    assert "machine at start: " in out and "machine at end: " in out and "load average" in out
