"""A rebuild into an empty index (the bulk load) answers exactly as the line-by-line
consolidation an appending journal goes through, for every mix of repeated, rejected,
emergency, invalid and torn lines."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import journal_fields
from tests.test_journal_index import _exact_row, _fast
from trading_bot.logging import journal_index
from trading_bot.logging.journal_index import INDEX_DIR_NAME, INDEX_FILE_NAME
from trading_bot.logging.query_helper import TradeJournal

# Long before any generated record: every record's instant is "in the future" from here,
# so the problem names the latest instant the index kept.
_LONG_AGO = datetime(2020, 1, 1, tzinfo=timezone.utc)
_SEED = journal_fields(order_id="seed", timestamp="2026-03-09T14:00:00Z")


def _record(order: int, kind: str, variant: int) -> dict[str, Any] | str:
    """One journal line for order `o-<order>`: its kind, and a variant that changes its
    content (or only how an amount is written, which is the same content)."""
    order_id = f"o-{order}"
    entry = f"2026-03-10T14:0{order}:00Z"
    if kind == "invalid":
        return journal_fields(order_id=order_id, price="x")
    if kind == "not json":
        return "{not json"
    fields: dict[str, Any] = {"order_id": order_id, "timestamp": entry}
    if variant == 1:
        fields["price"] = "10.0"  # the same amount written another way: the same content
    elif variant == 2:
        fields["note"] = {"why": [1, 2.5]}  # other content
    if kind == "open":
        return journal_fields(**fields)
    exit_at = f"2026-03-1{1 + variant}T15:00:00Z"
    if kind == "rejected":
        return journal_fields(outcome="rejected", exit_timestamp=exit_at, **fields)
    pnl = {"win": "5.00", "loss": "-2.50", "emergency": "-1.00"}[kind]
    close = journal_fields(
        outcome="win" if kind == "win" else "loss", exit_timestamp=exit_at, net_profit_loss=pnl, **fields
    )
    if kind == "emergency":
        close["emergency_exit"] = True
    return close


_KINDS = ["open", "win", "loss", "rejected", "emergency", "invalid", "not json"]
_LINES = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from(_KINDS),
        st.integers(0, 2),
        st.integers(0, 2),  # which file
    ),
    max_size=24,
)


def _text(record: dict[str, Any] | str) -> str:
    return (record if isinstance(record, str) else json.dumps(record)) + "\n"


def _write(trades_dir: Path, lines: list[tuple[int, str, int, int]], torn: bool) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {"2026-03-10.jsonl": [_text(_SEED)], "2026-03-11.jsonl": [], "2026-03-12.jsonl": []}
    names = sorted(files)
    for order, kind, variant, which in lines:
        files[names[which]].append(_text(_record(order, kind, variant)))
    if torn:
        files[names[-1]].append('{"order_id": "o-9", "outcome": "op')
    return files


def _answers(journal: TradeJournal, trades_dir: Path) -> tuple[Any, ...]:
    """Everything the journal says, files named relative to `trades_dir` (two folders compared)."""
    where = str(trades_dir)

    def said(problem: Any) -> str | None:
        return None if problem is None else problem.one_line().replace(where, "")

    def at(record: Any) -> str:
        return f"{Path(record.file).relative_to(trades_dir)}:{record.line}"

    return (
        [(r, r.extra, at(r)) for r in journal.closed_trades],
        [(r, r.extra, at(r)) for r in journal.entry_log],
        sorted((order_id, at(r)) for order_id, r in journal.entries.items()),
        [(r, at(r)) for r in journal.open_trades()],
        said(journal.problem()),
        said(journal.problem(_LONG_AGO)),
        {Path(name).name: size for name, size in journal.torn_tails().items()},
        journal.lines_read,
    )


def _rebuilt(trades_dir: Path, files: dict[str, list[str]]) -> tuple[Any, ...]:
    """Every file written whole, then read into an empty index (the bulk load)."""
    trades_dir.mkdir(parents=True)
    for name, lines in files.items():
        (trades_dir / name).write_text("".join(lines), encoding="utf-8")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    try:
        return _answers(journal, trades_dir)
    finally:
        journal.close()


def _appended(trades_dir: Path, files: dict[str, list[str]]) -> tuple[Any, ...]:
    """The first line indexed alone, then the rest appended and read line by line into
    the index that holds it (the consolidation of a running desk)."""
    trades_dir.mkdir(parents=True)
    first = sorted(files)[0]
    (trades_dir / first).write_text(files[first][0], encoding="utf-8")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    for name, lines in files.items():
        rest = lines[1:] if name == first else lines
        with open(trades_dir / name, "a", encoding="utf-8") as handle:
            handle.write("".join(rest))
    journal.refresh()
    try:
        return _answers(journal, trades_dir)
    finally:
        journal.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_LINES, torn=st.booleans())
@example(lines=[(1, "open", 0, 0), (1, "win", 0, 1)], torn=False)
@example(lines=[(1, "open", 0, 0), (1, "open", 1, 0), (1, "win", 0, 1), (1, "win", 1, 2)], torn=True)
@example(lines=[(1, "open", 0, 0), (1, "open", 2, 0)], torn=False)
@example(lines=[(1, "open", 0, 0), (1, "win", 0, 1), (1, "loss", 0, 2)], torn=False)
@example(lines=[(1, "emergency", 0, 0), (1, "open", 0, 1), (1, "win", 0, 1)], torn=False)
@example(lines=[(1, "open", 0, 0), (1, "rejected", 0, 0), (1, "rejected", 1, 1), (1, "win", 0, 2)], torn=False)
@example(lines=[(2, "invalid", 0, 0), (1, "open", 0, 1), (1, "open", 2, 1)], torn=False)
@example(lines=[(1, "open", 0, 0), (1, "open", 2, 0), (2, "not json", 0, 0)], torn=False)
def test_a_rebuild_answers_as_the_line_by_line_consolidation(
    tmp_path_factory: pytest.TempPathFactory, lines: list[tuple[int, str, int, int]], torn: bool
) -> None:
    root = tmp_path_factory.mktemp("journals")
    files = _write(root, lines, torn)
    assert _rebuilt(root / "whole" / "logs" / "trades", files) == _appended(root / "grown" / "logs" / "trades", files)


def test_a_rebuild_by_worker_processes_settles_repeated_orders_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        (1, "open", 0, 0), (1, "win", 0, 1),  # the usual pair
        (2, "open", 0, 0), (2, "open", 1, 0), (2, "loss", 0, 2),  # a repeated open, then its close
        (3, "emergency", 0, 1), (3, "open", 0, 2),  # an emergency exit before any open
        (0, "open", 0, 0), (0, "win", 0, 1), (0, "loss", 0, 2),  # a second, different close
    ]
    files = _write(tmp_path, lines, torn=True)
    in_order = _rebuilt(tmp_path / "one" / "logs" / "trades", files)
    monkeypatch.setattr(journal_index, "PARALLEL_BYTES", 0)
    assert _rebuilt(tmp_path / "two" / "logs" / "trades", files) == in_order
    closes, entries, _, open_trades, problem, *_ = in_order
    assert [r.order_id for r, *_ in closes] == ["o-0", "o-1", "o-2", "o-3"]
    assert [r.order_id for r, *_ in entries] == ["seed", "o-1", "o-2", "o-0", "o-3"]
    assert [r.order_id for r, *_ in open_trades] == ["seed"]
    assert problem is not None and "a second, different close for order 'o-0'" in problem


def test_a_rebuild_keeps_one_row_per_order_but_for_its_entry_and_its_close(tmp_path: Path) -> None:
    lines = [(1, "open", 0, 0), (1, "open", 1, 0), (1, "win", 0, 1), (1, "win", 1, 2), (2, "emergency", 0, 1)]
    trades_dir = tmp_path / "logs" / "trades"
    _rebuilt(trades_dir, _write(tmp_path, lines, torn=False))
    with sqlite3.connect(trades_dir.parent / INDEX_DIR_NAME / INDEX_FILE_NAME) as connection:
        rows = connection.execute(
            "SELECT order_id, outcome, first_id = (SELECT min(id) FROM records r WHERE r.order_id = records.order_id),"
            " entry_seq, close_pos, current FROM records ORDER BY id"
        ).fetchall()
    assert rows == [
        ("seed", "open", 1, 0, None, 1),
        ("o-1", "open", 1, 1, None, 0),
        ("o-1", "win", 1, None, 0, 1),
        ("o-2", "loss", 1, None, 1, 1),
    ]


_INSTANTS = st.one_of(
    st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1)).map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", fullmatch=True),
    st.from_regex(r"2026-03-1[0-9][T ][0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+]00:00|[.]5Z)", fullmatch=True),
    st.text(max_size=21),
)


@given(
    entry=_INSTANTS,
    exit_after=st.one_of(st.none(), st.integers(min_value=-3600, max_value=9 * 86_400)),
    session_days=st.one_of(st.none(), st.integers(min_value=-9, max_value=3), st.text(max_size=11)),
    exit_session_days=st.one_of(st.none(), st.integers(min_value=-9, max_value=3), st.just("2026-W11-2")),
)
@example(entry="2026-03-10T24:00:00Z", exit_after=None, session_days=None, exit_session_days=None)
@example(entry="2026-03-10T14:00:60Z", exit_after=None, session_days=None, exit_session_days=None)
@example(entry="1970-01-01T00:00:00Z", exit_after=60, session_days=0, exit_session_days=-1)
@example(entry="2026-03-10T14:00:00Z", exit_after=60, session_days=-8, exit_session_days=None)
@example(entry="2026-03-10T14:00:00Z", exit_after=60, session_days=-7, exit_session_days=1)
@example(entry="2026-03-10T14:00:00Z", exit_after=60, session_days=None, exit_session_days=2)
@example(entry="2026-03-10T14:00:00Z", exit_after=None, session_days=1, exit_session_days=-1)
def test_any_instant_and_session_are_read_as_the_exact_parse_reads_them(
    entry: str, exit_after: int | None, session_days: int | str | None, exit_session_days: int | str | None
) -> None:
    """The rebuild's own reading of timestamps and recorded sessions (no datetime built)
    makes the row the exact parse makes, or the same refusal."""
    fields: dict[str, Any] = {"timestamp": entry}
    moment: datetime | None = None
    try:
        moment = datetime.strptime(entry, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        pass
    base = moment.date() if moment is not None else date(2026, 3, 10)
    if exit_after is not None:
        exit_moment = (moment or datetime(2026, 3, 10, 14)) + timedelta(seconds=exit_after)
        fields.update(outcome="win", exit_timestamp=exit_moment.strftime("%Y-%m-%dT%H:%M:%SZ"), net_profit_loss="5")
    for name, days in (("session", session_days), ("exit_session", exit_session_days)):
        if isinstance(days, int):
            fields[name] = (base + timedelta(days=days)).isoformat()
        elif days is not None:
            fields[name] = days
    for raw in (json.dumps(journal_fields(**fields)).encode(), json.dumps(journal_fields(**fields), separators=(",", ":")).encode()):
        assert _fast(raw) == _exact_row(raw)
