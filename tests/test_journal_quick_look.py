"""A quick look at the journal (the pre-trade check; a command's looks after its first full
one) stats the folder and the files written last instead of every file: it must still see
every line a writer appends, and every file a writer creates, the moment they are there."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.conftest import journal_fields, write_journal_lines
from trading_bot.durable_files import LogsLock
from trading_bot.logging.query_helper import TradeJournal


def _close(order: str, day: str) -> dict[str, object]:
    return journal_fields(
        order_id=order, timestamp=f"{day}T14:00:00Z", exit_timestamp=f"{day}T15:00:00Z",
        outcome="win", exit_price="11.00", profit_loss="1.00",
    )


def _desk(tmp_path: Path) -> tuple[Path, TradeJournal]:
    trades = tmp_path / "logs" / "trades"
    for number, day in enumerate(("2026-03-02", "2026-03-03", "2026-03-04"), start=1):
        write_journal_lines(trades / f"{day}.jsonl", _close(f"o-{number}", day))
    journal = TradeJournal(trades, lock=LogsLock(tmp_path / "logs"))
    journal.refresh()
    assert len(journal.closed_trades) == 3
    return trades, journal


def test_a_quick_look_sees_a_line_appended_to_the_file_written_last(tmp_path: Path) -> None:
    trades, journal = _desk(tmp_path)
    write_journal_lines(trades / "2026-03-04.jsonl", _close("o-4", "2026-03-04"))
    assert journal.refresh(quick=True).changed
    assert [trade.order_id for trade in journal.closed_trades] == ["o-1", "o-2", "o-3", "o-4"]


def test_a_quick_look_sees_a_new_file(tmp_path: Path) -> None:
    trades, journal = _desk(tmp_path)
    write_journal_lines(trades / "2026-03-05.jsonl", _close("o-5", "2026-03-05"))
    journal.refresh(quick=True)
    assert [trade.order_id for trade in journal.closed_trades][-1] == "o-5"


def test_a_new_file_that_left_the_folder_time_unchanged_is_seen_while_the_folder_is_unsettled(tmp_path: Path) -> None:
    """A folder's mtime moves in coarse ticks: a file created in the tick of the last
    listing leaves it as it was. A folder changed within a tick of the listing is listed
    again instead of trusted (here its time is set so, since a test cannot pick the tick)."""
    trades, journal = _desk(tmp_path)
    recent = time.time_ns() + 10_000_000_000  # after the listing below: never settled
    os.utime(trades, ns=(recent, recent))
    journal.refresh()  # lists the folder with that time
    write_journal_lines(trades / "2026-03-05.jsonl", _close("o-5", "2026-03-05"))
    os.utime(trades, ns=(recent, recent))  # the creation did not move the folder's time
    journal.refresh(quick=True)
    assert [trade.order_id for trade in journal.closed_trades][-1] == "o-5"


def test_an_edit_to_an_older_file_is_seen_by_the_next_full_look(tmp_path: Path) -> None:
    trades, journal = _desk(tmp_path)
    write_journal_lines(trades / "2026-03-02.jsonl", _close("o-6", "2026-03-02"))
    journal.refresh()
    assert "o-6" in [trade.order_id for trade in journal.closed_trades]
