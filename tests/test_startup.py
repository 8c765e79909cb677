"""A command loads only what it needs: `status` is typed dozens of times a day, and every
module it imports is paid for at every start (SPEC §12: ≤ 0.4 s a whole process)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import SHIPPED_CONFIG

NOT_FOR_READING = (
    "trading_bot.bot",
    "trading_bot.broker",
    "trading_bot.phase.report",
    "trading_bot.phase.replay",
    "trading_bot.phase.simulation",
    "trading_bot.phase.export",
    "holidays",
    "dateutil",
    "concurrent.futures.process",  # the rebuild's worker processes: only a rebuild starts them
    "multiprocessing",
    "trading_bot.phase.password",  # only an override reads a password
)

PROGRAM = """
import io, json, sys
from trading_bot.phase.cli import main
out, err = io.StringIO(), io.StringIO()
code = main(sys.argv[1:], stdout=out, stderr=err)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("trading_bot", "holidays", "dateutil", "concurrent", "multiprocessing"))
print(json.dumps({"code": code, "err": err.getvalue(), "loaded": loaded}))
"""


def run(config: Path, *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROGRAM, "--config", str(config), *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def desk(tmp_path: Path) -> Path:
    config = tmp_path / "config.json"
    shutil.copyfile(SHIPPED_CONFIG, config)
    return config


def test_status_and_validate_transition_load_neither_the_bot_nor_reports_nor_the_holidays_package(tmp_path: Path) -> None:
    config = desk(tmp_path)
    for args in (("status",), ("status", "--json"), ("validate-transition", "--to", "proof", "--json")):
        result = run(config, *args)
        assert result["code"] in (0, 1), result["err"]
        loaded = set(result["loaded"])  # type: ignore[arg-type]
        assert sorted(loaded & set(NOT_FOR_READING)) == [], args
        assert "trading_bot.phase.manager" in loaded  # the command did run


def test_export_and_report_load_their_modules_when_they_run_and_advance_never_needs_the_bot(tmp_path: Path) -> None:
    config = desk(tmp_path)
    result = run(config, "export", "--start", "2026-01-05", "--end", "2026-01-09")
    assert result["code"] == 0, result["err"]
    assert "trading_bot.phase.export" in result["loaded"]  # type: ignore[operator]
    result = run(config, "report", "--output", str(tmp_path / "report.html"))
    assert result["code"] == 0, result["err"]
    assert "trading_bot.phase.report" in result["loaded"]  # type: ignore[operator]
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!")
    result = run(config, "advance", "--to", "proof", "--yes", "--operator", "")
    assert result["code"] == 2 and "--operator must not be empty" in str(result["err"])
    assert "trading_bot.bot" not in result["loaded"]  # type: ignore[operator]
