"""The README's "Use it from your own bot" example runs as written (on a desk in tmp_path)."""

from __future__ import annotations

import re
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

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
