"""Shared fixtures: the shipped config in tmp_path, a fixed clock, and journal-line writing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from trading_bot.clock import FixedClock

# A loaded 2-core CI machine must not turn a slow first example (the holiday tables are
# built on first use) into a failure: correctness is asserted, speed is benchmarked.
settings.register_profile("project", deadline=None, print_blob=True)
settings.load_profile("project")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = REPO_ROOT / "config.json"
# 2026-03-10 is a Tuesday; 15:00 UTC is 11:00 EDT, inside the default 07:00–16:00 hours.
CLOCK_START = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A copy of the repository's shipped config.json, byte for byte."""
    target = tmp_path / "config.json"
    shutil.copyfile(SHIPPED_CONFIG, target)
    return target


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(CLOCK_START)


def journal_fields(**fields: Any) -> dict[str, Any]:
    """One journal record's fields: an open BUY of 1 share at 10 unless fields say otherwise."""
    record: dict[str, Any] = {
        "timestamp": "2026-03-10T14:00:00Z",
        "symbol": "AAPL",
        "action": "BUY",
        "quantity": 1,
        "price": "10.00",
        "order_id": "o-1",
        "outcome": "open",
    }
    record.update(fields)
    return record


def journal_line(**fields: Any) -> str:
    """One journal line: an open BUY of 1 share at 10 unless fields say otherwise."""
    return json.dumps(journal_fields(**fields)) + "\n"


def write_journal_lines(path: Path, *records: dict[str, Any], torn_tail: str | None = None) -> Path:
    """Append journal lines (each a dict of fields over the defaults) to `path`.

    `torn_tail`, if given, is appended without a trailing newline, as a crash leaves it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        for fields in records:
            handle.write(journal_line(**fields))
        if torn_tail is not None:
            handle.write(torn_tail)
    return path


@pytest.fixture
def write_journal() -> Callable[..., Path]:
    """`write_journal(path, {fields}, ..., torn_tail=None)` appends journal lines."""
    return write_journal_lines
