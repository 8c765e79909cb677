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
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from freezegun import freeze_time

from tests.phase.conftest import DESK_START, ENTRY_PRICE, PASSWORD, Desk, advance_to
from trading_bot.bot import TradeResult
from trading_bot.durable_files import GENERATION_FILE, LOCK_FILE_NAME, NotARegularFile

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


# ---- the caches in logs/.derived/ ------------------------------------------------------------

DERIVED_FILES = ["state.json", "entry_sessions.json", "settings.json", "generation", "journal.sqlite3", "journal.sqlite3.vouched"]


def _index_refused(name: str, shape: str) -> bool:
    """A journal index that cannot be opened halts entries (with its name), as a full disk
    does; every other cache is read around or replaced."""
    return name == "journal.sqlite3" and shape in ("fifo", "directory")


def _entry_as_expected(desk: Desk, name: str, shape: str) -> TradeResult:
    result = no_hang(desk.enter)
    if _index_refused(name, shape):
        assert not result.accepted and name in (result.reason or ""), (result.code, result.reason)
    else:
        assert result.accepted, result.reason
    assert_every_position_journaled(desk)
    return result


@pytest.mark.parametrize("shape", ["fifo", "directory", "/dev/null", "/dev/zero"])
@pytest.mark.parametrize("name", DERIVED_FILES)
def test_a_hostile_cache_costs_no_exit_and_no_answer_a_fresh_process_would_give(desk: Desk, name: str, shape: str) -> None:
    first, second = two_entries(desk)
    cache = desk.logs_dir / ".derived" / name
    make_thing(cache, shape)

    assert no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE + 1)).outcome == "win"
    assert desk.bot.unwritten == [] and journal_outcomes(desk)[order_id(first)] == "win"
    desk.tick()
    _entry_as_expected(desk, name, shape)

    desk.start()  # the restart meets the thing too (a link to a device halted every entry)
    opened = {order for order, outcome in journal_outcomes(desk).items() if outcome == "open"}
    assert {position.order_id for position in desk.broker.open_positions()} == opened
    desk.tick()
    _entry_as_expected(desk, name, shape)
    desk.tick()
    no_hang(lambda: desk.bot.flatten({"AAPL": ENTRY_PRICE}))
    assert desk.bot.unwritten == [] and desk.broker.open_positions() == []
    assert "open" not in journal_outcomes(desk).values()

    remove_thing(cache)
    desk.tick()
    assert no_hang(desk.enter).accepted
    desk.start()
    assert no_hang(lambda: desk.app.check_entry("AAPL", "BUY", ENTRY_PRICE)).allowed


# ---- a journal file that is a link to another journal file -----------------------------------


def test_a_journal_file_linked_to_another_counts_its_trades_once_and_keeps_the_limit(desk: Desk) -> None:
    """A second name for a journal file (an operator's "backup" link in the folder) shows
    each record twice; identical records collapse, so the proof phase's one entry a day is
    still one, before and after a restart, and each closed trade counts once."""
    advance_to(desk, "proof")
    trades = desk.logs_dir / "trades"
    first = desk.enter()
    assert first.accepted, first.reason
    today = desk.bot.journal_writer.path_for(desk.now())
    (trades / "2026-02-27.jsonl").symlink_to(today.name)
    desk.tick()
    refused = no_hang(desk.enter)
    assert not refused.accepted and refused.code == "phase_entry_limit", (refused.code, refused.reason)
    closed = no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE + 1))
    assert closed.outcome == "win"
    desk.tick()
    assert not no_hang(desk.enter).accepted

    desk.start()
    assert desk.broker.open_positions() == []
    assert not no_hang(desk.enter).accepted
    assert len(desk.app.journal.closed_trades) == 1
    assert desk.app.state().entries_used == 1
    desk.next_session()
    assert no_hang(desk.enter).accepted
    desk.tick()
    assert not no_hang(desk.enter).accepted
    assert_every_position_journaled(desk)


# ---- a torn last line whose recovery file name is taken --------------------------------------


@pytest.mark.parametrize("shape", ["fifo", "directory", "/dev/null", "dangling"])
def test_a_torn_line_is_set_aside_beside_a_recovery_name_already_taken(desk: Desk, shape: str, tmp_path: Path) -> None:
    """The fragment goes to the next free name, never into what holds the name (a dangling
    link there was written through, to a file outside the journal folder)."""
    first, _ = two_entries(desk)
    today = desk.bot.journal_writer.path_for(desk.now())
    with open(today, "ab") as handle:
        handle.write(b'{"torn": ')
    stamp = desk.now().strftime("%Y%m%dT%H%M%S%f")
    taken = today.with_name(f"{today.name}.torn-{stamp}")
    outside = tmp_path / "outside-the-journal-folder"
    if shape == "dangling":
        taken.symlink_to(outside)
    else:
        make_thing(taken, shape)

    placed = no_hang(desk.enter)
    assert placed.accepted, placed.reason
    kept = today.with_name(f"{today.name}.torn-{stamp}-1")
    assert kept.read_bytes() == b'{"torn": '
    assert today.read_bytes().endswith(b"\n")
    assert taken.is_symlink() or (taken.is_dir() if shape == "directory" else taken.exists())
    assert not outside.exists()
    assert no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE)).outcome == "breakeven"
    assert_every_position_journaled(desk)
    desk.start()
    assert len(desk.broker.open_positions()) == 2
    assert no_hang(desk.enter).accepted


# ---- today's journal file as a directory -----------------------------------------------------


def test_a_directory_as_todays_journal_file_refuses_entries_by_name_and_holds_closes(desk: Desk) -> None:
    """The journal itself cannot be written: the entry is refused naming the file, a close
    is done at the broker and its record waits (first in line once there is a file)."""
    first, second = two_entries(desk)
    desk.next_session()
    today = desk.bot.journal_writer.path_for(desk.now())
    make_thing(today, "directory")

    refused = no_hang(desk.enter)
    assert not refused.accepted and refused.code == "logs_unwritable", (refused.code, refused.reason)
    assert today.name in (refused.reason or ""), refused.reason
    closed = no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE - 1))
    assert closed.outcome == "loss" and [record.order_id for record in desk.bot.unwritten] == [order_id(first)]
    assert [position.order_id for position in desk.broker.open_positions()] == [order_id(second)]
    assert no_hang(lambda: desk.bot.flatten({"AAPL": ENTRY_PRICE})) != []  # the other position goes too
    assert desk.broker.open_positions() == []
    still = no_hang(desk.enter)
    assert not still.accepted and "2 record(s) waiting" in (still.reason or ""), still.reason

    remove_thing(today)
    desk.tick()
    placed = no_hang(desk.enter)
    assert placed.accepted, placed.reason
    assert journal_outcomes(desk) == {order_id(first): "loss", order_id(second): "breakeven", order_id(placed): "open"}
    desk.start()
    assert [position.order_id for position in desk.broker.open_positions()] == [order_id(placed)]


# ---- a high-water in the future ----------------------------------------------------------------


def test_a_high_water_in_the_future_halts_entries_and_lets_exits_go(desk: Desk) -> None:
    """As the README's trust model says: entries wait for the clock, closes are stamped at
    the raised instant in plain view, and a restart answers the same."""
    first, second = two_entries(desk)
    (desk.logs_dir / "high_water").write_text("2026-03-09T15:00:00.000000Z\n")

    refused = no_hang(desk.enter)
    assert not refused.accepted and refused.code == "clock_behind", (refused.code, refused.reason)
    assert len(desk.broker.open_positions()) == 2
    closed = no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE + 1))
    assert closed.exit_timestamp is not None and closed.exit_timestamp.isoformat().startswith("2026-03-09T15:00")
    assert journal_outcomes(desk)[order_id(first)] == "win"
    desk.start()
    assert [position.order_id for position in desk.broker.open_positions()] == [order_id(second)]
    again = no_hang(desk.enter)
    assert not again.accepted and again.code == "clock_behind", (again.code, again.reason)
    assert [record.order_id for record in no_hang(lambda: desk.bot.flatten({"AAPL": ENTRY_PRICE}))] == [order_id(second)]
    assert "open" not in journal_outcomes(desk).values()
    desk.at(datetime(2026, 3, 9, 15, 1, tzinfo=timezone.utc))
    placed = no_hang(desk.enter)
    assert placed.accepted, placed.reason


# ---- .env beside config.json -------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["fifo", "/dev/zero"])
def test_a_dot_env_that_is_no_file_stops_a_restart_by_name_and_not_the_running_bot(desk: Desk, shape: str) -> None:
    """`.env` is read when the desk opens: a restart stops at once with the file named (it
    is never waited on or read to the end); the running bot trades and exits on."""
    first, _ = two_entries(desk)
    env_file = desk.root / ".env"
    make_thing(env_file, shape)

    assert no_hang(desk.enter).accepted
    assert no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE)).outcome == "breakeven"
    assert desk.bot.unwritten == []
    assert_every_position_journaled(desk)
    with pytest.raises(NotARegularFile) as refused:
        no_hang(desk.start)
    assert refused.value.filename == str(env_file)

    remove_thing(env_file)
    no_hang(desk.start)
    assert len(desk.broker.open_positions()) == 2
    assert no_hang(desk.enter).accepted


# ---- the journal index's write-ahead log deleted under a running bot -------------------------


def test_a_write_ahead_log_deleted_under_a_running_bot_costs_other_processes_a_rebuild_not_a_halt(desk: Desk) -> None:
    """`logs/.derived/` may be emptied at any moment. The running bot keeps writing its index
    into the deleted log; a second process (a restart before the old one exits, the CLI)
    found the index shorter than SQLite expected and halted every entry as "cannot be
    written". It is damage, not a disk refusing writes: that process rebuilds the index."""
    first, second = two_entries(desk)
    (desk.logs_dir / ".derived" / "journal.sqlite3-wal").unlink()
    placed = no_hang(desk.enter)  # the running bot goes on
    assert placed.accepted, placed.reason
    desk.tick()
    running = desk.bot

    desk.start()  # a second process on the desk while the first still runs
    assert sorted(p.order_id for p in desk.broker.open_positions()) == sorted(order_id(e) for e in (first, second, placed))
    again = no_hang(desk.enter)
    assert again.accepted, again.reason
    code, _, err = desk.cli("status")
    assert code == 0, err
    desk.tick()
    assert no_hang(lambda: running.close_position(order_id(first), ENTRY_PRICE + 1)).outcome == "win"
    assert running.unwritten == []
    desk.tick()
    assert len(no_hang(lambda: desk.bot.flatten({"AAPL": ENTRY_PRICE}))) == 3
    assert "open" not in journal_outcomes(desk).values()


# ---- the caches' folder itself is no folder --------------------------------------------------


@pytest.mark.parametrize("shape", ["garbage", "fifo", "/dev/null"])
def test_a_derived_folder_that_is_no_folder_halts_entries_by_name_and_journals_exits(desk: Desk, shape: str) -> None:
    """No cache can be kept: entries are refused naming `logs/.derived` (the index cannot be
    opened), but a close is journaled at once (the generation marker's folder refused it,
    and the close waited in memory, lost at a restart)."""
    first, second = two_entries(desk)
    derived = desk.logs_dir / ".derived"
    make_thing(derived, shape)

    closed = no_hang(lambda: desk.bot.close_position(order_id(first), ENTRY_PRICE + 1))
    assert closed.outcome == "win"
    assert desk.bot.unwritten == [] and journal_outcomes(desk)[order_id(first)] == "win"
    desk.tick()
    refused = no_hang(desk.enter)
    assert not refused.accepted and ".derived" in (refused.reason or ""), (refused.code, refused.reason)
    desk.start()
    assert [position.order_id for position in desk.broker.open_positions()] == [order_id(second)]
    desk.tick()
    refused_again = no_hang(desk.enter)
    assert not refused_again.accepted and ".derived" in (refused_again.reason or ""), refused_again.reason
    assert [record.order_id for record in no_hang(lambda: desk.bot.flatten({"AAPL": ENTRY_PRICE}))] == [order_id(second)]
    assert desk.bot.unwritten == [] and journal_outcomes(desk) == {order_id(first): "win", order_id(second): "breakeven"}

    remove_thing(derived)
    desk.tick()
    placed = no_hang(desk.enter)
    assert placed.accepted, placed.reason
    desk.start()
    assert [position.order_id for position in desk.broker.open_positions()] == [order_id(placed)]
