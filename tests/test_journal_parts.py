"""A first build by worker processes: each stores its chunk of the journal, numbered from
zero, in a file of its own, and the building process copies the chunks in at offsets.
The result must be the index one process reading every line in order would write, and no
chunk file may outlive the build, whether it finished or failed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.test_journal_index import answers, fresh_answers, index_file
from tests.test_journal_rebuild import _LINES, _rebuilt, _write
from trading_bot.logging import journal_index
from trading_bot.logging.journal_index import BUILD_SUFFIX, _B_CLOSE, _B_ENTRY, _B_EXIT, _B_FILE, _B_FIRST, _B_ID, _B_LINE, _B_OUTCOME, _B_TS, _Tally
from trading_bot.logging.query_helper import TradeJournal

# ---- the numbering: a chunk tallied from zero, then absorbed at offsets ----------------------

_ITEM = st.one_of(
    # A valid line: its entry instant, its exit instant (None: open), outcome, whether it
    # is an entry (an emergency exit with no open is not), and its line number.
    st.tuples(
        st.integers(0, 9), st.none() | st.integers(0, 9), st.sampled_from(["win", "loss", "breakeven", "rejected"]),
        st.booleans(), st.integers(1, 3),
    ),
    st.just("problem"),
)


def _items(drawn: list[Any], file_number: int) -> list[Any]:
    """Parsed lines of one file as `parse_file(bulk=True)` gives them."""
    items: list[Any] = []
    for line, item in enumerate(drawn, start=1):
        if item == "problem":
            items.append((f"base/f{file_number}", line, "price", "not a number"))
            continue
        entry_us, exit_us, outcome, is_entry, _ = item
        row: list[Any] = [None] * 28
        row[_B_TS], row[_B_EXIT] = entry_us, exit_us
        row[_B_OUTCOME] = "open" if exit_us is None else outcome
        row[_B_FILE], row[_B_LINE] = f"f{file_number}", line
        row[_B_ENTRY] = 0 if is_entry else None
        items.append(row)
    return items


def _summary(tally: _Tally) -> tuple[Any, ...]:
    """What a tally hands on; the close count and last close only mean something in order."""
    closes = (tally.closes, tally.last_close) if tally.in_order else None
    return (tally.next_id, tally.entries, tally.in_order, closes, tally.latest, tally.problem)


def _numbers(row: list[Any]) -> tuple[Any, ...]:
    return (row[_B_ID], row[_B_FIRST], row[_B_ENTRY], row[_B_CLOSE])


@settings(max_examples=300, deadline=None)
@given(files=st.lists(st.lists(_ITEM, max_size=6), min_size=1, max_size=6), cuts=st.sets(st.integers(1, 5)))
@example(files=[[(1, 5, "win", True, 1)], [(1, 3, "win", True, 1)]], cuts={1})  # an earlier close after a boundary
@example(files=[[(1, 3, "win", True, 1)], [(1, 5, "win", True, 1)]], cuts={1})  # in order across it
@example(files=[["problem"], ["problem", (1, 2, "loss", True, 1)]], cuts={1})  # the first problem wins
@example(files=[[(4, None, "win", True, 1)], [(2, 4, "win", False, 1)]], cuts={1})  # a tie on the latest instant
def test_chunks_absorbed_at_their_offsets_number_every_row_as_one_tally(files: list[list[Any]], cuts: set[int]) -> None:
    whole = _Tally(next_id=7, entries=3, closes=2, last_close=(0, 0, "f", 0), latest=(1, "f", 0, "timestamp"))
    expected = [[_numbers(row) for row in whole.take(_items(drawn, number))] for number, drawn in enumerate(files)]
    bounds = [0, *sorted(cut for cut in cuts if cut < len(files)), len(files)]
    chunked = _Tally(next_id=7, entries=3, closes=2, last_close=(0, 0, "f", 0), latest=(1, "f", 0, "timestamp"))
    got: list[list[tuple[Any, ...]]] = []
    for start, stop in zip(bounds, bounds[1:]):
        part = _Tally()
        rows = [part.take(_items(files[number], number)) for number in range(start, stop)]
        id_offset, entry_offset, close_offset = chunked.absorb(part)
        for file_rows in rows:
            # What the copy into the index does to a chunk's numbers (SQL: NULL stays NULL).
            got.append([
                (row[_B_ID] + id_offset, row[_B_FIRST] + id_offset,
                 None if row[_B_ENTRY] is None else row[_B_ENTRY] + entry_offset,
                 None if row[_B_CLOSE] is None else row[_B_CLOSE] + close_offset)
                for row in file_rows
            ])
    assert _summary(chunked) == _summary(whole)
    assert [[row[:3] for row in rows] for rows in got] == [[row[:3] for row in rows] for rows in expected]
    if whole.in_order:  # otherwise every close is numbered anew after the load
        assert got == expected


# ---- the build itself --------------------------------------------------------------------


@pytest.fixture
def one_chunk_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers for any journal, and each file a chunk of its own (so a part file each)."""
    monkeypatch.setattr(journal_index, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(journal_index, "_CHUNK_BYTES", 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_LINES, torn=st.booleans())
@example(lines=[(1, "open", 0, 0), (1, "win", 2, 1), (2, "open", 0, 1), (2, "win", 0, 2)], torn=False)
@example(lines=[(1, "open", 0, 0), (1, "win", 0, 1), (1, "loss", 0, 2), (2, "invalid", 0, 2)], torn=True)
def test_a_build_from_part_files_answers_as_one_read_in_order(
    tmp_path_factory: pytest.TempPathFactory, one_chunk_a_file: None, monkeypatch: pytest.MonkeyPatch,
    lines: list[tuple[int, str, int, int]], torn: bool,
) -> None:
    root = tmp_path_factory.mktemp("journals")
    files = _write(root, lines, torn)
    by_parts = _rebuilt(root / "parts" / "logs" / "trades", files)
    monkeypatch.setattr(journal_index, "PARALLEL_BYTES", 1 << 40)
    assert by_parts == _rebuilt(root / "in-order" / "logs" / "trades", files)
    assert not list((root / "parts" / "logs").rglob(f"*{BUILD_SUFFIX}*"))


def _a_journal(trades_dir: Path) -> None:
    for day in range(10, 16):
        lines = []
        for number in range(3):
            order = f"o-{day}-{number}"
            lines.append(
                f'{{"timestamp":"2026-03-{day}T14:0{number}:00Z","symbol":"SPY","action":"BUY","quantity":1,'
                f'"price":"10","order_id":"{order}","outcome":"win","exit_timestamp":"2026-03-{day}T15:0{number}:00Z",'
                f'"net_profit_loss":"1.50"}}\n'
            )
        (trades_dir / f"2026-03-{day}.jsonl").write_text("".join(lines), encoding="utf-8")


def test_a_build_whose_worker_fails_leaves_no_part_or_build_file(
    tmp_path: Path, one_chunk_a_file: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades_dir = tmp_path / "logs" / "trades"
    trades_dir.mkdir(parents=True)
    _a_journal(trades_dir)
    real_parse_file = journal_index.parse_file

    def parse_file(path: str, *args: Any, **kwargs: Any) -> Any:
        if path.endswith("2026-03-14.jsonl"):
            raise OSError("the disk went away")
        return real_parse_file(path, *args, **kwargs)

    # Worker processes are forked from this one, so they parse with the failing reader.
    monkeypatch.setattr(journal_index, "parse_file", parse_file)
    journal = TradeJournal(trades_dir)
    with pytest.raises(OSError, match="the disk went away"):
        journal.refresh()
    journal.close()
    derived = index_file(trades_dir).parent
    assert not list(derived.glob(f"*{BUILD_SUFFIX}*"))
    assert not index_file(trades_dir).exists()
    monkeypatch.setattr(journal_index, "parse_file", real_parse_file)
    again = TradeJournal(trades_dir)
    again.refresh()
    try:
        assert answers(again) == fresh_answers(trades_dir)
        assert len(again.closed_trades) == 18
    finally:
        again.close()


_CHUNKS_ON_CORES = """
import os, sys
from trading_bot.logging.journal_index import _worker_chunks, usable_cores
os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: int(sys.argv[1])]))
files = sys.argv[2:]
tasks = [(path, os.path.basename(path), os.path.basename(path), 0, 0) for path in files]
print(usable_cores(), _worker_chunks(tasks, 1 << 40) is not None)
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or journal_index.usable_cores() < 2, reason="needs two cores and CPU affinity")
@pytest.mark.parametrize(("cores", "workers"), [(1, False), (2, True)])
def test_workers_start_only_when_this_process_may_run_on_two_cores(tmp_path: Path, cores: int, workers: bool) -> None:
    """A container or `taskset` that allows one core of a bigger machine gets no worker processes."""
    files = []
    for number in range(2):
        files.append(tmp_path / f"2026-03-1{number}.jsonl")
        files[-1].write_bytes(b"{}\n")
    result = subprocess.run(
        [sys.executable, "-c", _CHUNKS_ON_CORES, str(cores), *map(str, files)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert result.stdout.split() == [str(cores), str(workers)]
