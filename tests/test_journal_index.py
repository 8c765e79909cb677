"""The derived journal index (logs/.derived/journal.sqlite3): incremental, checked against the
files, rebuilt when they do not match, and never a different answer than no index at all."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import shutil
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.conftest import journal_fields, journal_line, write_journal_lines
from tests.phase.conftest import Desk, advance_to, desk  # noqa: F401  (the desk fixture)
from trading_bot.logging import journal_index
from trading_bot.logging.journal_index import CODE_VERSION, INDEX_DIR_NAME, INDEX_FILE_NAME
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.durable_files import LogsLock, open_regular
from trading_bot.errors import JournalError
from trading_bot.logging.journal_index import row_from_record
from trading_bot.logging.trade_record import TradeRecord, parse_trade
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.trade_limiter import SessionEntries

WriteJournal = Callable[..., Path]


def closed(order_id: str, exit_at: str = "2026-03-10T15:00:00Z", pnl: str = "5.00", **more: Any) -> dict[str, Any]:
    outcome = "win" if not pnl.startswith("-") else "loss"
    return {"order_id": order_id, "outcome": outcome, "exit_timestamp": exit_at, "net_profit_loss": pnl, **more}


def index_file(trades_dir: Path) -> Path:
    return trades_dir.parent / INDEX_DIR_NAME / INDEX_FILE_NAME


def answers(journal: TradeJournal) -> tuple[Any, ...]:
    """Everything the journal says, as plain values (records compared field by field)."""
    problem = journal.problem()
    return (
        [(r, r.extra, r.file, r.line) for r in journal.closed_trades],
        [(r, r.file, r.line) for r in journal.entry_log],
        sorted(journal.entries),
        [(r, r.file, r.line) for r in journal.open_trades()],
        None if problem is None else problem.one_line(),
        journal.torn_tails(),
    )


def fresh_answers(trades_dir: Path) -> tuple[Any, ...]:
    """The answers of a journal that never saw an index: read in memory from the files."""
    journal = TradeJournal(trades_dir, read_only=True)
    journal.refresh()
    try:
        return answers(journal)
    finally:
        journal.close()


class Said:
    """The one-line warnings a journal gives (its `warn` channel)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
def trades_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "trades"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def said() -> Said:
    return Said()


def a_history(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "2026-03-10.jsonl", {}, closed("o-1"), {"order_id": "o-2", "timestamp": "2026-03-10T14:30:00Z"})
    write_journal(
        trades_dir / "2026-03-11.jsonl",
        closed("o-2", "2026-03-11T15:00:00Z", "-2.50", timestamp="2026-03-10T14:30:00Z"),
        {"order_id": "o-3", "timestamp": "2026-03-11T15:30:00Z", "note": {"why": [1, 2.5]}},
        closed("o-3", "2026-03-11T16:00:00Z", "1", timestamp="2026-03-11T15:30:00Z", note={"why": [1, 2.5]}),
    )


# ---- incremental -------------------------------------------------------------------------


class CountingReads:
    """Counts the bytes the index reads from journal files (wraps the files it opens)."""

    def __init__(self) -> None:
        self.bytes = 0

    def open(self, path: Any, mode: str = "rb") -> IO[Any]:
        handle = open_regular(path, mode)
        counter = self

        class Counted:
            def __enter__(self) -> Counted:
                return self

            def __exit__(self, *exc: object) -> None:
                handle.close()

            def seek(self, offset: int) -> int:
                return handle.seek(offset)

            def read(self, size: int = -1) -> bytes:
                data = handle.read(size)
                counter.bytes += len(data)
                return data

        return Counted()  # type: ignore[return-value]


def test_an_appended_line_is_read_alone_and_moves_the_offset_by_its_length(
    trades_dir: Path, write_journal: WriteJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_journal(trades_dir / "a.jsonl", {}, {"order_id": "o-2"})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    offset_before = _stored_offset(trades_dir, "a.jsonl")
    reads = CountingReads()
    monkeypatch.setattr(journal_index, "open_regular", reads.open)
    line = journal_line(**closed("o-2"))
    write_journal(path, closed("o-2"))
    delta = journal.refresh()
    assert [r.order_id for r in delta.new_closes] == ["o-2"] and not delta.rebuilt
    assert reads.bytes == len(line.encode())
    assert journal.lines_read == 3
    assert _stored_offset(trades_dir, "a.jsonl") == offset_before + len(line.encode())
    assert answers(journal) == fresh_answers(trades_dir)


def test_a_second_process_reads_nothing_from_a_warm_index(
    trades_dir: Path, write_journal: WriteJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_history(trades_dir, write_journal)
    first = TradeJournal(trades_dir)
    first.refresh()
    first.close()
    reads = CountingReads()
    monkeypatch.setattr(journal_index, "open_regular", reads.open)
    second = TradeJournal(trades_dir)
    second.refresh()
    assert reads.bytes == 0
    assert answers(second) == fresh_answers(trades_dir)


def test_a_warm_start_still_reports_the_first_invalid_line(trades_dir: Path, write_journal: WriteJournal) -> None:
    path = write_journal(trades_dir / "a.jsonl", {}, {"order_id": "o-2", "outcome": "maybe"}, {"order_id": "o-3", "price": "x"})
    TradeJournal(trades_dir).refresh()
    warm = TradeJournal(trades_dir)
    warm.refresh()
    problem = warm.problem()
    assert problem is not None and (problem.file, problem.line, problem.field) == (str(path), 2, "outcome")


def _stored_offset(trades_dir: Path, name: str) -> int:
    with sqlite3.connect(index_file(trades_dir)) as connection:
        (offset,) = connection.execute("SELECT offset FROM files WHERE name = ?", (name,)).fetchone()
    return int(offset)


# ---- the files changed under the index ---------------------------------------------------


def _edit_middle_same_size(path: Path) -> None:
    text = path.read_text()
    edited = text.replace('"o-2"', '"o-9"', 1)
    assert len(edited) == len(text) and edited != text
    stat = os.stat(path)
    path.write_text(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def _edit_middle_longer(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"AAPL"', '"AAPLX"')
    path.write_text("".join(lines) + journal_line(order_id="o-8"))


def _replace(path: Path) -> None:
    replacement = path.with_name(".replacement")
    replacement.write_text(path.read_text() + journal_line(order_id="o-7"))
    os.replace(replacement, path)


def _truncate(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))


def _delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    "change", [_edit_middle_same_size, _edit_middle_longer, _replace, _truncate, _delete], ids=lambda f: f.__name__.strip("_")
)
def test_a_changed_file_rebuilds_the_index_with_a_new_epoch(
    trades_dir: Path, write_journal: WriteJournal, change: Callable[[Path], None]
) -> None:
    a_history(trades_dir, write_journal)
    journal = TradeJournal(trades_dir)
    journal.refresh()
    epoch, generation = journal.epoch, journal.generation
    change(trades_dir / "2026-03-10.jsonl")
    assert journal.refresh().rebuilt
    assert (journal.epoch != epoch, journal.generation > generation) == (True, True)
    assert answers(journal) == fresh_answers(trades_dir)
    another = TradeJournal(trades_dir)
    another.refresh()
    assert answers(another) == fresh_answers(trades_dir)


def test_only_appends_keep_the_epoch_across_processes(trades_dir: Path, write_journal: WriteJournal) -> None:
    a_history(trades_dir, write_journal)
    journal = TradeJournal(trades_dir)
    journal.refresh()
    epoch = journal.epoch
    write_journal(trades_dir / "2026-03-12.jsonl", {"order_id": "o-4", "timestamp": "2026-03-12T15:00:00Z"})
    other = TradeJournal(trades_dir)
    other.refresh()
    journal.refresh()
    assert epoch == journal.epoch == other.epoch
    assert [r.order_id for r in other.entry_log[3:]] == ["o-4"]


def test_a_close_landing_before_the_last_changes_the_epoch(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "b.jsonl", closed("late", "2026-03-10T16:00:00Z"))
    journal = TradeJournal(trades_dir)
    journal.refresh()
    epoch = journal.epoch
    write_journal(trades_dir / "c.jsonl", closed("later", "2026-03-10T17:00:00Z"))
    journal.refresh()
    assert journal.epoch == epoch
    write_journal(trades_dir / "a.jsonl", closed("early", "2026-03-10T15:00:00Z"))
    journal.refresh()
    assert journal.epoch != epoch
    assert [r.order_id for r in journal.closed_trades] == ["early", "late", "later"]


# ---- the index file itself ---------------------------------------------------------------


def test_a_deleted_index_is_rebuilt_silently(trades_dir: Path, write_journal: WriteJournal, said: Said) -> None:
    a_history(trades_dir, write_journal)
    journal = TradeJournal(trades_dir, warn=said)
    journal.refresh()
    expected = answers(journal)
    shutil.rmtree(index_file(trades_dir).parent)
    journal.refresh()
    assert answers(journal) == expected
    assert index_file(trades_dir).exists()
    later = TradeJournal(trades_dir, warn=said)
    later.refresh()
    assert answers(later) == expected
    assert said.lines == []


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database, just bytes " * 200)


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _scribbled_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for at in range(4096, len(data), 512):
        data[at : at + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


def _old_schema(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = ? WHERE key = 'code_version'", (CODE_VERSION - 1,))


def indexed_history(trades_dir: Path, write_journal: WriteJournal, said: Said) -> tuple[Any, ...]:
    """Write `a_history`, index it in one process that then lets go; its answers."""
    a_history(trades_dir, write_journal)
    first = TradeJournal(trades_dir, warn=said)
    first.refresh()
    expected = answers(first)
    first.close()
    return expected


@pytest.mark.parametrize("damage", [_garbage, _cut, _scribbled_pages, _old_schema], ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_index_is_said_once_and_rebuilt(
    trades_dir: Path, write_journal: WriteJournal, said: Said, damage: Callable[[Path], None]
) -> None:
    expected = indexed_history(trades_dir, write_journal, said)
    damage(index_file(trades_dir))
    journal = TradeJournal(trades_dir, warn=said)
    journal.refresh()
    assert answers(journal) == expected
    assert len(said.lines) == 1 and "rebuilding it from the journal" in said.lines[0]
    assert str(index_file(trades_dir)) in said.lines[0]
    again = TradeJournal(trades_dir, warn=said)
    again.refresh()
    assert answers(again) == expected and len(said.lines) == 1


def test_an_index_moved_with_its_logs_names_the_new_place(tmp_path: Path, write_journal: WriteJournal) -> None:
    old = tmp_path / "old" / "trades"
    path = write_journal(old / "a.jsonl", {}, {"order_id": "o-1", "price": "x"})
    TradeJournal(old).refresh()
    shutil.move(str(tmp_path / "old"), str(tmp_path / "new"))
    moved = TradeJournal(tmp_path / "new" / "trades")
    moved.refresh()
    problem = moved.problem()
    assert problem is not None and problem.file == str(tmp_path / "new" / "trades" / path.name)
    assert all(r.file.startswith(str(tmp_path / "new")) for r in moved.entry_log)


def test_a_read_only_journal_writes_no_file(trades_dir: Path, write_journal: WriteJournal) -> None:
    a_history(trades_dir, write_journal)
    journal = TradeJournal(trades_dir, read_only=True)
    journal.refresh()
    assert len(journal.closed_trades) == 3
    assert not (trades_dir.parent / INDEX_DIR_NAME).exists()


# ---- lazy views ----------------------------------------------------------------------------


def test_views_slice_and_index_like_lists(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(
        trades_dir / "a.jsonl",
        *[closed(f"o-{n}", f"2026-03-10T15:{n:02d}:00Z") for n in range(40)],
    )
    journal = TradeJournal(trades_dir)
    journal.refresh()
    every = list(journal.closed_trades)
    assert [r.order_id for r in every] == [f"o-{n}" for n in range(40)]
    assert list(journal.closed_trades[35:]) == every[35:]
    assert list(journal.closed_trades[:3]) == every[:3]
    assert list(journal.closed_trades[5:8]) == every[5:8]
    assert journal.closed_trades[-1] == every[-1] and journal.closed_trades[17] == every[17]
    assert list(journal.closed_trades[::10]) == every[::10]
    assert len(journal.closed_trades[38:100]) == 2
    with pytest.raises(IndexError):
        journal.closed_trades[40]
    assert journal.entries["o-3"] == every[3] and "o-99" not in journal.entries
    with pytest.raises(KeyError):
        journal.entries["o-99"]


def test_a_view_follows_the_journal_as_it_grows(trades_dir: Path, write_journal: WriteJournal) -> None:
    path = write_journal(trades_dir / "a.jsonl", closed("o-1"))
    journal = TradeJournal(trades_dir)
    journal.refresh()
    view = journal.closed_trades
    assert len(view) == 1
    write_journal(path, closed("o-2", "2026-03-10T15:30:00Z"))
    journal.refresh()
    assert [r.order_id for r in view] == ["o-1", "o-2"]


def test_a_refreshed_journal_keeps_no_record_per_trade(trades_dir: Path) -> None:
    lines = []
    for n in range(3000):
        lines.append(journal_line(order_id=f"o-{n}", timestamp=f"2026-03-10T14:{n % 60:02d}:00Z"))
        lines.append(journal_line(**closed(f"o-{n}", f"2026-03-10T15:{n % 60:02d}:00Z", timestamp=f"2026-03-10T14:{n % 60:02d}:00Z")))
    (trades_dir / "2026-03-10.jsonl").write_text("".join(lines))
    gc.collect()
    before = _records_alive()
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert len(journal.closed_trades) == 3000 and len(journal.entries) == 3000
    total = sum(r.quantity for r in journal.closed_trades)
    assert total == 3000
    gc.collect()
    assert _records_alive() - before <= 1024  # at most one cached block of each view


def _records_alive() -> int:
    return sum(1 for thing in gc.get_objects() if isinstance(thing, TradeRecord))


# ---- every answer equals the answer without an index -----------------------------------------


def _history_of_several_phases(desk: Desk) -> None:
    desk.trades(10, 10, -5, 10, per_session=2)
    advance_to(desk, "proof")
    desk.next_session()
    desk.trades(10, 10, -5, -5, -5, per_session=1)  # three losses in a row: down to experience
    assert desk.cli("acknowledge", "--operator", "ops", "--note", "reviewed")[0] == 0
    desk.start()
    desk.next_session()
    desk.trade(10, emergency=True)
    advance_to(desk, "trial")
    desk.next_session()
    desk.trades(10, -5, 7, per_session=1)
    desk.next_session()


def _cli_answers(desk: Desk) -> list[tuple[int, str]]:
    runs = [
        ("status", "--json"),
        ("validate-transition", "--to", "scaling", "--json"),
        ("export", "--start", "2026-03-01", "--end", "2026-03-31"),
        ("export", "--start", "2026-03-01", "--end", "2026-03-31", "--format", "json"),
        ("check-trade", "--json"),
    ]
    out = []
    for args in runs:
        code, text, err = desk.cli(*args)
        out.append((code, text))
    return out


def test_every_answer_equals_the_answer_without_an_index(desk: Desk) -> None:
    _history_of_several_phases(desk)
    assert any(line["kind"] == "downgrade" for line in desk.transitions())
    _cli_answers(desk)  # what is due is written once
    warm = _cli_answers(desk)
    assert warm[0][0] == 0 and '"trial"' in warm[0][1] and warm[2][1].count("\n") > 8
    shutil.rmtree(desk.logs_dir / INDEX_DIR_NAME)
    cold = _cli_answers(desk)
    assert warm == cold
    desk.trade(3)  # one more line: read incrementally by the warm index
    desk.start()
    _cli_answers(desk)
    incremental = _cli_answers(desk)
    shutil.rmtree(desk.logs_dir / INDEX_DIR_NAME)
    assert incremental == _cli_answers(desk)
    assert incremental != warm


def test_as_of_answers_equal_with_and_without_an_index(desk: Desk) -> None:
    _history_of_several_phases(desk)
    moment = "2026-03-05T18:00:00Z"
    with_index = desk.cli("status", "--json", "--as-of", moment)
    shutil.rmtree(desk.logs_dir / INDEX_DIR_NAME, ignore_errors=True)
    assert desk.cli("status", "--json", "--as-of", moment) == with_index
    assert not (desk.logs_dir / INDEX_DIR_NAME).exists()



# ---- the fast parse agrees with the exact one --------------------------------------------------


def _exact_row(raw: bytes) -> list[Any] | str:
    """What the exact parse (`parse_trade`, no shortcut) makes of a line (decoded as the reader does)."""
    data = orjson.loads(raw)
    try:
        record = parse_trade(data, "d", 7)
    except JournalError as error:
        return error.one_line()
    return row_from_record(record, "n", 7, 0)


def _fast(raw: bytes) -> list[Any] | str:
    parsed = journal_index.parse_row(raw, "n", "d", 7, 0)
    return parsed.one_line() if isinstance(parsed, JournalError) else parsed


FIELD_VARIANTS: list[dict[str, Any]] = [
    {},
    {"price": "007.50"},
    {"price": "1e2"},
    {"price": 12.5},
    {"price": 1e-7},
    {"price": 3},
    {"price": "-1"},
    {"price": "0.0000000000000000001"},
    {"price": "999999999999999.5"},
    {"quantity": 2.0},
    {"quantity": "2"},
    {"quantity": True},
    {"quantity": 10**15},
    {"order_id": 12},
    {"order_id": ""},
    {"outcome": None},
    {"outcome": "won"},
    {"timestamp": "2026-03-10T14:00:00+00:00"},
    {"timestamp": "2026-03-10T14:00:00.5Z"},
    {"timestamp": "1969-12-31T23:59:59Z"},
    {"timestamp": "2026-02-30T14:00:00Z"},
    {"execution_mode": "LIVE"},
    {"execution_mode": ""},
    {"execution_mode": 1},
    {"phase": "proof"},
    {"phase": "expert"},
    {"emergency_exit": None, "manual_override": True},
    {"emergency_exit": 1},
    {"operator_id": 5},
    {"session": "2026-03-10"},
    {"session": "2026-03-01"},
    {"exit_session": "2026-03-10"},
    {"stop_loss": "9.5", "target": 11},
    {"stop_loss": "1E+20"},
    {"note": {"a": [1, {"b": 2.5}]}, "clock_reading": "2026-03-10T13:59:00Z"},
    {"outcome": "win", "exit_timestamp": "2026-03-10T15:00:00Z", "net_profit_loss": "5.004"},
    {"outcome": "breakeven", "exit_timestamp": "2026-03-10T15:00:00Z", "net_profit_loss": "0.004"},
    {"outcome": "win", "exit_timestamp": "2026-03-10T15:00:00Z", "net_profit_loss": None, "profit_loss": 5},
    {"outcome": "loss", "exit_timestamp": "2026-03-10T15:00:00Z", "net_profit_loss": "5"},
    {"outcome": "loss", "exit_timestamp": "2026-03-10T13:00:00Z", "net_profit_loss": "-5"},
    {"outcome": "rejected", "exit_timestamp": "2026-03-10T14:00:01Z", "exit_session": "2026-03-10"},
    {"outcome": "win", "exit_timestamp": "2026-03-10T15:00:00Z", "net_profit_loss": "1e400"},
]


@pytest.mark.parametrize("fields", FIELD_VARIANTS, ids=lambda f: json.dumps(f)[:60])
def test_the_fast_parse_makes_the_row_or_the_refusal_of_the_exact_parse(fields: dict[str, Any]) -> None:
    raw = journal_line(**fields).strip().encode()
    assert _fast(raw) == _exact_row(raw)
    compact = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert _fast(compact) == _exact_row(compact)


_HEAD = b'{"timestamp":"2026-03-10T14:00:00Z","action":"BUY","quantity":1,"price":"1","order_id":"o",'


@pytest.mark.parametrize(
    ("tail", "duplicate"),
    [
        (b'"symbol":"A","symbol":"B"}', "symbol"),
        (b'"symbol" : "A","symbol"\t:"B"}', "symbol"),
        (b'"symbol":"A","n":{"x":1,"x":2}}', "n.x"),
        (b'"symbol":"A","sym\\u0062ol":"B"}', "symbol"),
        (b'"symbol":"A","note":"a\\":b\\":c\\":d"}', None),
        (b'"symbol":"A","note":"x","n":{"x":1}}', None),
    ],
)
def test_duplicate_keys_are_found_however_the_line_is_spaced(tail: bytes, duplicate: str | None) -> None:
    parsed = journal_index.parse_row(_HEAD + tail, "n", "d", 7, 0)
    if duplicate is None:
        assert isinstance(parsed, list)
    else:
        assert isinstance(parsed, JournalError) and (parsed.field, "duplicate key" in parsed.message) == (duplicate, True)


@given(
    st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.floats(allow_nan=False, allow_infinity=False),
        st.from_regex(r"-?[0-9]{1,17}(\.[0-9]{0,20})?", fullmatch=True),
    )
)
def test_any_amount_is_read_as_the_exact_parse_reads_it(value: Any) -> None:
    raw = json.dumps(journal_fields(price=value, stop_loss=value)).encode()
    assert _fast(raw) == _exact_row(raw)


def test_a_rebuild_parsed_by_worker_processes_equals_one_read_in_order(
    trades_dir: Path, write_journal: WriteJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day in range(10, 20):
        write_journal(
            trades_dir / f"2026-03-{day}.jsonl",
            {"order_id": f"o-{day}", "timestamp": f"2026-03-{day}T14:00:00Z"},
            closed(f"o-{day}", f"2026-03-{day + 1}T15:00:00Z", timestamp=f"2026-03-{day}T14:00:00Z"),
            {"order_id": f"bad-{day}", "price": "x"} if day == 15 else {"order_id": f"p-{day}", "timestamp": f"2026-03-{day}T14:30:00Z"},
        )
    expected = fresh_answers(trades_dir)
    monkeypatch.setattr(journal_index, "PARALLEL_BYTES", 0)
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert answers(journal) == expected
    assert journal.problem() is not None and journal.problem().line == 3  # type: ignore[union-attr]


# ---- two processes at once -------------------------------------------------------------------


def _refresh_in_a_child(trades_dir: str, start: Any, results: Any) -> None:
    """A second process (the bot or a command): wait at the start line, then refresh."""
    journal = TradeJournal(Path(trades_dir))
    start.wait()
    journal.refresh()
    results.put(answers(journal))
    journal.close()


def _append_and_refresh_in_a_child(trades_dir: str) -> None:
    """Another process writes a close that lands before the last one, and indexes it."""
    write_journal_lines(Path(trades_dir) / "2026-03-09.jsonl", closed("early", "2026-03-10T14:30:00Z", timestamp="2026-03-09T15:00:00Z"))
    journal = TradeJournal(Path(trades_dir))
    journal.refresh()
    journal.close()


@pytest.mark.parametrize("index_state", ["behind", "deleted", "damaged"])
def test_two_processes_updating_the_index_at_once_agree_with_the_files(
    trades_dir: Path, write_journal: WriteJournal, index_state: str
) -> None:
    a_history(trades_dir, write_journal)
    TradeJournal(trades_dir).refresh()
    write_journal(trades_dir / "2026-03-12.jsonl", {"order_id": "o-4", "timestamp": "2026-03-12T15:00:00Z"}, closed("o-4", "2026-03-12T16:00:00Z", timestamp="2026-03-12T15:00:00Z"))
    if index_state == "deleted":
        shutil.rmtree(index_file(trades_dir).parent)
    elif index_state == "damaged":
        _garbage(index_file(trades_dir))
    expected = fresh_answers(trades_dir)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    results = context.Queue()
    lock = LogsLock(trades_dir.parent)
    children = [context.Process(target=_refresh_in_a_child, args=(str(trades_dir), start, results)) for _ in range(2)]
    with lock.held():  # both start while the lock is held: they update the index one after the other
        for child in children:
            child.start()
        start.wait()
    got = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    assert got == [expected, expected]
    with sqlite3.connect(index_file(trades_dir)) as connection:
        assert connection.execute("PRAGMA quick_check").fetchone() == ("ok",)
    after = TradeJournal(trades_dir)
    after.refresh()
    assert answers(after) == expected


def test_a_reader_keeps_its_picture_while_another_process_reorders_the_index(trades_dir: Path, write_journal: WriteJournal) -> None:
    a_history(trades_dir, write_journal)
    reader = TradeJournal(trades_dir)
    reader.refresh()
    picture = answers(reader)
    epoch = reader.epoch
    context = multiprocessing.get_context("spawn")
    writer = context.Process(target=_append_and_refresh_in_a_child, args=(str(trades_dir),))
    writer.start()
    writer.join(timeout=120)
    assert writer.exitcode == 0
    assert answers(reader) == picture  # positions read before its next refresh keep their meaning
    generation = reader.generation
    reader.refresh()
    assert (reader.epoch != epoch, reader.generation > generation) == (True, True)
    assert [r.order_id for r in reader.closed_trades][0] == "early"
    # A file that sorts before those already read is read after them (as the reader
    # always did): the entry log keeps its order and only grows; every entry is there.
    now, fresh = answers(reader), fresh_answers(trades_dir)
    assert now[:1] + now[2:] == fresh[:1] + fresh[2:]
    assert sorted(map(repr, now[1])) == sorted(map(repr, fresh[1]))
    assert [r.order_id for r in reader.entry_log][-1] == "early"


def test_a_new_file_sorting_first_rebuilds_when_a_problem_is_held(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "b.jsonl", {}, {"order_id": "o-2", "price": "x"})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    early = write_journal(trades_dir / "a.jsonl", {"order_id": "o-3", "outcome": "maybe"})
    assert journal.refresh().rebuilt
    problem = journal.problem()
    assert problem is not None and problem.file == str(early)
    assert answers(journal) == fresh_answers(trades_dir)


# ---- entries of the original bot (no recorded session) are placed by the calendar ----------


@given(
    minutes=st.lists(st.integers(min_value=0, max_value=60 * 24 * 40), min_size=1, max_size=60),
)
@example(minutes=[209, 210, 1649, 1650, 1651])  # the minute before, at and after two opens (14:30 UTC)
def test_session_counts_of_unrecorded_entries_equal_the_calendar_line_by_line(tmp_path_factory: Any, minutes: list[int]) -> None:
    """Over weekends, a holiday (2026-04-03, Good Friday) and a DST change (2026-03-08),
    the index's per-session counts, first and last instants equal placing each line alone."""
    from datetime import datetime, time, timedelta, timezone

    from trading_bot.market_calendar import MarketCalendar
    from trading_bot.phase.trade_limiter import SessionEntries

    trades_dir = tmp_path_factory.mktemp("journal") / "logs" / "trades"
    start = datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc)
    moments = [start + timedelta(minutes=value) for value in minutes]
    write_journal_lines(
        trades_dir / "2026-03.jsonl",
        *[{"order_id": f"o-{n}", "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ")} for n, moment in enumerate(moments)],
    )
    calendar = MarketCalendar(time(9, 30), time(16, 0), "America/New_York")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    try:
        from_index = SessionEntries.of(calendar, journal.entries)
        line_by_line = SessionEntries(calendar)
        line_by_line.fold(journal.entries.values())
    finally:
        journal.close()
    assert from_index.by_session == line_by_line.by_session
    assert from_index.first_at == line_by_line.first_at
    assert from_index.last_at == line_by_line.last_at
    assert sum(from_index.by_session.values()) == len(minutes)


def test_closes_between_two_instants_are_a_run_of_the_close_order(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", *[closed(f"o-{n}", f"2026-03-10T15:{n:02d}:00Z") for n in range(6)])
    journal = TradeJournal(trades_dir)
    journal.refresh()

    def at(minute: int) -> datetime:
        return datetime(2026, 3, 10, 15, minute, tzinfo=timezone.utc)

    assert [r.order_id for r in journal.closed_between(at(1), at(4))] == ["o-1", "o-2", "o-3"]  # low in, high out
    assert [r.order_id for r in journal.closed_between(at(1), at(4), as_of=at(2))] == ["o-1", "o-2"]
    assert list(journal.closed_between(at(4), at(1))) == []
    assert [r.order_id for r in journal.closed_between(at(0), at(59))] == [f"o-{n}" for n in range(6)]


def test_entry_times_between_two_instants(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", *[{"order_id": f"o-{n}", "timestamp": f"2026-03-10T14:0{n}:00Z"} for n in range(5)])
    journal = TradeJournal(trades_dir)
    journal.refresh()
    low, high = datetime(2026, 3, 10, 14, 1, tzinfo=timezone.utc), datetime(2026, 3, 10, 14, 3, tzinfo=timezone.utc)
    assert journal.entries.times_between(low, high) == [low, low + timedelta(minutes=1)]
    assert journal.as_of(low).entries.times_between(low, high) == [low]


def test_an_entry_in_the_last_session_of_the_calendar_is_counted(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {"order_id": "o-1", "timestamp": "9999-12-31T15:00:00Z"}, {"order_id": "o-2", "timestamp": "9999-12-31T15:01:00Z"})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    calendar = MarketCalendar()
    counted = SessionEntries.of(calendar, journal.entries)
    session = calendar.session_of(datetime(9999, 12, 31, 15, 0, tzinfo=timezone.utc))
    assert counted.count(session) == 2


# ---- the structure check is skipped only while the index files are as a process left them --


def _age(path: Path, seconds: int = 5) -> None:
    """Date the index files' last change `seconds` back (no sleeping: set their mtimes)."""
    for suffix in ("", "-wal"):
        target = Path(str(path) + suffix)
        if target.exists():
            moment = target.stat().st_mtime - seconds
            os.utime(target, (moment, moment))


def _open_and_close(path: Path, said: Said) -> bool:
    index = journal_index.JournalIndex(path, os.path.join(str(path.parent.parent / "trades"), ""), said)
    index.open()
    checked = index.structure_checked
    index.close()
    return checked


def test_an_index_left_as_it_was_is_not_checked_again_and_any_change_is(
    trades_dir: Path, write_journal: WriteJournal, said: Said
) -> None:
    expected = indexed_history(trades_dir, write_journal, said)
    path = index_file(trades_dir)
    # Just written: its mtime is too close to the note to vouch for it.
    assert _open_and_close(path, said) is True
    _age(path)
    assert _open_and_close(path, said) is True  # the mtimes moved: checked, then vouched for
    assert _open_and_close(path, said) is False  # as that process left it: not read whole again
    _scribbled_pages(path)  # same size, new bytes, a new mtime
    journal = TradeJournal(trades_dir, warn=said)
    journal.refresh()
    assert answers(journal) == expected
    assert len(said.lines) == 1 and "rebuilding it from the journal" in said.lines[0]
    journal.close()


def test_a_missing_or_unreadable_note_means_a_check(trades_dir: Path, write_journal: WriteJournal, said: Said) -> None:
    indexed_history(trades_dir, write_journal, said)
    path = index_file(trades_dir)
    _age(path)
    _open_and_close(path, said)
    note = Path(str(path) + journal_index.VOUCH_SUFFIX)
    note.write_bytes(b"{not json")
    assert _open_and_close(path, said) is True
    note.unlink()
    assert _open_and_close(path, said) is True
    assert said.lines == []
