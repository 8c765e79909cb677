"""Hostile things in the desk's folders while the bot trades: a FIFO, a directory, a link to
a device or garbage where the logs lock, the high-water, a cache or a journal file should be.

The bot never hangs (every call runs under `signal.alarm`), never places an order its
journal does not hold, never lets a cache or a bookkeeping file keep an exit out of the
journal, refuses an entry with a reason naming the file, and answers as a fresh process
does once the thing is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from freezegun import freeze_time

from tests.phase.conftest import DESK_START, ENTRY_PRICE, PASSWORD, Desk
from trading_bot.bot import TradeResult
from trading_bot.durable_files import GENERATION_FILE, LOCK_FILE_NAME

T = TypeVar("T")


class _Hung(Exception):
    pass


def _hung(signum: int, frame: object) -> None:
    raise _Hung("the bot waited on a desk file")


def no_hang(call: Callable[[], T]) -> T:
    """Run one bot call; a wait on a FIFO fails the test instead of stalling the suite."""
    previous = signal.signal(signal.SIGALRM, _hung)
    signal.alarm(60)
    try:
        return call()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def journal_outcomes(desk: Desk) -> dict[str, str]:
    """Each order id's last outcome in the journal files, read straight from the disk."""
    outcomes: dict[str, str] = {}
    for path in sorted((desk.logs_dir / "trades").glob("*.jsonl")):
        if not path.is_file():
            continue
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            outcomes[record["order_id"]] = record["outcome"]
    return outcomes


def assert_every_position_journaled(desk: Desk) -> None:
    """No order is placed that the journal does not hold as open."""
    held = journal_outcomes(desk)
    for position in desk.broker.open_positions():
        assert held.get(position.order_id) == "open", (position.order_id, held)


def make_thing(path: Path, shape: str) -> None:
    """Put a hostile thing where a desk file belongs."""
    remove_thing(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if shape == "fifo":
        os.mkfifo(path)
    elif shape == "directory":
        path.mkdir()
        (path / "stray").write_text("not ours\n")
    elif shape.startswith("/dev/"):
        path.symlink_to(shape)
    elif shape == "garbage":
        path.write_text("not a timestamp\n")
    else:
        raise ValueError(shape)


def remove_thing(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with freeze_time(DESK_START) as frozen:
        yield Desk(tmp_path, frozen, {"PHASE_OVERRIDE_PASSWORD": PASSWORD})


def two_entries(desk: Desk) -> tuple[TradeResult, TradeResult]:
    first = desk.enter()
    desk.tick()
    second = desk.enter()
    desk.tick()
    assert first.accepted and second.accepted, (first.reason, second.reason)
    return first, second


def order_id(entry: TradeResult) -> str:
    assert entry.record is not None
    return entry.record.order_id


# ---- the logs lock as a directory ------------------------------------------------------------


@pytest.mark.parametrize("shape", ["directory", "fifo"])
def test_a_logs_lock_that_is_no_file_refuses_entries_by_name_and_lets_exits_go(desk: Desk, shape: str) -> None:
    """A directory cannot be locked: the entry is refused naming the lock (it raised
    IsADirectoryError into the trading loop) and a close is kept until it can be written.
    A FIFO can be locked like a file (it is opened without waiting): trading goes on."""
    first, second = two_entries(desk)
    lock = desk.logs_dir / LOCK_FILE_NAME
    make_thing(lock, shape)
    lockable = shape == "fifo"

    entry = no_hang(desk.enter)
    if lockable:
        assert entry.accepted, entry.reason
    else:
        assert not entry.accepted and entry.code == "logs_unwritable", (entry.code, entry.reason)
        assert LOCK_FILE_NAME in (entry.reason or ""), entry.reason
    assert len(desk.broker.open_positions()) == (3 if lockable else 2)
    closed = no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE + 1))
    assert closed.outcome == "win"
    assert order_id(first) not in [position.order_id for position in desk.broker.open_positions()]
    assert_every_position_journaled(desk)
    assert len(desk.bot.unwritten) == (0 if lockable else 1)

    remove_thing(lock)
    desk.tick()
    placed = no_hang(desk.enter)
    assert placed.accepted, placed.reason
    assert journal_outcomes(desk)[order_id(first)] == "win"  # a held-back close is written first
    assert_every_position_journaled(desk)
    opened = {order for order, outcome in journal_outcomes(desk).items() if outcome == "open"}
    desk.start()
    assert {position.order_id for position in desk.broker.open_positions()} == opened >= {order_id(second), order_id(placed)}


def test_a_directory_as_the_logs_lock_at_a_restart_refuses_entries_and_restores_positions(desk: Desk) -> None:
    first, second = two_entries(desk)
    lock = desk.logs_dir / LOCK_FILE_NAME
    make_thing(lock, "directory")
    no_hang(desk.start)
    assert sorted(position.order_id for position in desk.broker.open_positions()) == sorted([order_id(first), order_id(second)])
    refused = no_hang(desk.enter)
    assert not refused.accepted and LOCK_FILE_NAME in (refused.reason or ""), refused.reason
    assert len(no_hang(lambda: desk.bot.flatten({"AAPL": ENTRY_PRICE}))) == 2
    assert desk.broker.open_positions() == []
    remove_thing(lock)
    desk.tick()
    placed = no_hang(desk.enter)
    assert placed.accepted, placed.reason
    assert journal_outcomes(desk) == {order_id(first): "breakeven", order_id(second): "breakeven", order_id(placed): "open"}


# ---- the generation marker as a directory ----------------------------------------------------


def test_a_directory_as_the_generation_marker_keeps_no_exit_out_of_the_journal(desk: Desk) -> None:
    """The marker is a cache: readers take a directory as "changed" and read the records in
    full, so writes go on (it kept every close in memory and refused every entry)."""
    first, second = two_entries(desk)
    marker = desk.logs_dir / GENERATION_FILE
    make_thing(marker, "directory")

    closed = no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE - 1))
    assert closed.outcome == "loss"
    assert desk.bot.unwritten == []
    assert journal_outcomes(desk)[order_id(first)] == "loss"
    placed = no_hang(desk.enter)
    assert placed.accepted, placed.reason
    assert_every_position_journaled(desk)
    desk.tick()
    flattened = no_hang(lambda: desk.bot.flatten({"AAPL": ENTRY_PRICE + 1}))
    assert sorted(record.order_id for record in flattened) == sorted([order_id(second), order_id(placed)])
    assert desk.bot.unwritten == [] and desk.broker.open_positions() == []
    assert set(journal_outcomes(desk).values()) == {"loss", "win"}

    desk.start()
    desk.tick()
    assert desk.broker.open_positions() == []
    again = no_hang(desk.enter)
    assert again.accepted, again.reason
    assert_every_position_journaled(desk)
    remove_thing(marker)
    desk.tick()
    assert no_hang(desk.enter).accepted
    assert_every_position_journaled(desk)


# ---- the high-water file ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["directory", "/dev/null", "/dev/zero"])
def test_a_high_water_that_cannot_be_raised_refuses_entries_by_name_and_journals_exits(desk: Desk, shape: str) -> None:
    """The high-water is bookkeeping: without it an entry is refused (naming the file), but a
    close is journaled at once (it was held in memory, and lost at a restart)."""
    first, second = two_entries(desk)
    high_water = desk.logs_dir / "high_water"
    make_thing(high_water, shape)

    closed = no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE + 1))
    assert closed.outcome == "win"
    assert desk.bot.unwritten == []
    assert journal_outcomes(desk)[order_id(first)] == "win"
    desk.tick()
    refused = no_hang(desk.enter)
    assert not refused.accepted and refused.code == "logs_unwritable", (refused.code, refused.reason)
    assert "high_water" in (refused.reason or ""), refused.reason
    assert [position.order_id for position in desk.broker.open_positions()] == [order_id(second)]

    desk.start()  # a restart restores the open position from the journal, and only it
    assert [position.order_id for position in desk.broker.open_positions()] == [order_id(second)]
    desk.tick()
    refused_again = no_hang(desk.enter)
    assert not refused_again.accepted and "high_water" in (refused_again.reason or ""), refused_again.reason
    flattened = no_hang(lambda: desk.bot.flatten({"AAPL": ENTRY_PRICE - 1}))
    assert [record.order_id for record in flattened] == [order_id(second)]
    assert desk.bot.unwritten == [] and desk.broker.open_positions() == []
    assert journal_outcomes(desk) == {order_id(first): "win", order_id(second): "loss"}

    remove_thing(high_water)
    desk.tick()
    placed = no_hang(desk.enter)
    assert placed.accepted, placed.reason
    assert_every_position_journaled(desk)
    desk.start()
    assert [position.order_id for position in desk.broker.open_positions()] == [order_id(placed)]
    assert no_hang(lambda: desk.app.check_entry("AAPL", "BUY", ENTRY_PRICE)).allowed


@pytest.mark.parametrize("shape", ["fifo", "garbage"])
def test_a_high_water_fifo_or_garbage_is_replaced_by_the_next_instant(desk: Desk, shape: str) -> None:
    first, _ = two_entries(desk)
    high_water = desk.logs_dir / "high_water"
    make_thing(high_water, shape)
    desk.tick(5)
    placed = no_hang(desk.enter)
    assert placed.accepted, placed.reason
    assert high_water.is_file() and high_water.read_text().startswith("2026-03-02T15:07")
    assert no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE)).outcome is not None
    desk.start()
    assert no_hang(desk.enter).accepted
    assert_every_position_journaled(desk)
