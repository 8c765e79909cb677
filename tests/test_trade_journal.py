"""The trade journal: record parsing, the consolidating reader and the durable writer (SPEC §4, §10)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading_bot.durable_files import LogsLock
from trading_bot.errors import JournalError
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.structured_logger import StructuredTradeLogger
from trading_bot.logging.trade_record import TradeRecord, outcome_for, parse_trade
from trading_bot.phase.models import Phase

D = Decimal
UTC = timezone.utc
ENTRY = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
EXIT = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
WriteJournal = Callable[..., Path]


def closed_fields(order_id: str = "o-1", pnl: str = "5.00", outcome: str = "win", **more: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "order_id": order_id,
        "outcome": outcome,
        "exit_timestamp": "2026-03-10T15:00:00Z",
        "net_profit_loss": pnl,
    }
    fields.update(more)
    return fields


def raw_trade(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "timestamp": "2026-03-10T14:00:00Z",
        "symbol": "AAPL",
        "action": "BUY",
        "quantity": 3,
        "price": "33.33",
        "order_id": "o-1",
        "outcome": "open",
    }
    data.update(fields)
    return data


def sample_record() -> TradeRecord:
    return TradeRecord(
        timestamp=ENTRY,
        symbol="AAPL",
        action="BUY",
        quantity=3,
        price=D("33.33"),
        order_id="o-1",
        outcome="win",
        exit_timestamp=EXIT,
        net_pnl=D("5.01"),
        stop_loss=D("32.00"),
        target=D("36.00"),
        execution_mode="live",
        phase=Phase.PROOF,
        operator_id="bot",
    )


@pytest.fixture
def trades_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "trades"
    path.mkdir(parents=True)
    return path


def order_ids(records: list[TradeRecord]) -> list[str]:
    return [record.order_id for record in records]


# --- parse_trade --------------------------------------------------------------------------


def test_parse_trade_round_trips_to_json_dict() -> None:
    record = sample_record()
    parsed = parse_trade(record.to_json_dict(), "f.jsonl", 1)
    assert parsed == record
    assert (parsed.net_pnl, parsed.stop_loss, parsed.phase) == (D("5.01"), D("32.00"), Phase.PROOF)


def test_parse_trade_keeps_where_it_was_read() -> None:
    parsed = parse_trade(raw_trade(), "2026-03-10.jsonl", 7)
    assert (parsed.file, parsed.line) == ("2026-03-10.jsonl", 7)


def test_to_json_dict_writes_execution_mode_upper_case() -> None:
    assert sample_record().to_json_dict()["execution_mode"] == "LIVE"


def test_unknown_fields_are_kept_as_extra() -> None:
    parsed = parse_trade(raw_trade(strategy="orb"), "f", 1)
    assert parsed.extra == {"strategy": "orb"}
    assert parsed.to_json_dict()["strategy"] == "orb"


@pytest.mark.parametrize(
    ("pnl", "outcome"),
    [("0.004", "breakeven"), ("0.005", "breakeven"), ("0.015", "win"), ("0.006", "win"), ("-0.006", "loss"),
     ("-0.005", "breakeven"), ("0", "breakeven")],
)
def test_outcome_follows_net_pnl_at_cent_precision(pnl: str, outcome: str) -> None:
    assert outcome_for(D(pnl)) == outcome


@pytest.mark.parametrize(("pnl", "outcome"), [(0.005, "breakeven"), (0.006, "win"), (-0.006, "loss")])
def test_journal_line_outcome_agreeing_with_float_pnl_parses(pnl: float, outcome: str) -> None:
    parsed = parse_trade(raw_trade(**closed_fields(pnl=pnl, outcome=outcome)), "f", 1)  # type: ignore[arg-type]
    assert parsed.outcome == outcome


def test_win_with_negative_pnl_names_field_outcome() -> None:
    with pytest.raises(JournalError) as caught:
        parse_trade(raw_trade(**closed_fields(pnl=-1, outcome="win")), "f.jsonl", 4)  # type: ignore[arg-type]
    assert (caught.value.file, caught.value.line, caught.value.field) == ("f.jsonl", 4, "outcome")


def test_breakeven_with_half_a_cent_loss_that_rounds_away_is_accepted() -> None:
    assert parse_trade(raw_trade(**closed_fields(pnl="-0.005", outcome="breakeven")), "f", 1).net_pnl == D("-0.005")


def test_unknown_outcome_names_field_outcome() -> None:
    with pytest.raises(JournalError) as caught:
        parse_trade(raw_trade(outcome="cancelled"), "f", 1)
    assert caught.value.field == "outcome"


def test_missing_order_id_names_field_order_id() -> None:
    data = raw_trade()
    del data["order_id"]
    with pytest.raises(JournalError) as caught:
        parse_trade(data, "f", 2)
    assert str(caught.value) == "f:2: order_id: missing or empty"


def test_naive_timestamps_are_utc() -> None:
    data = raw_trade(timestamp="2026-03-10T14:00:00", **closed_fields(exit_timestamp="2026-03-10T15:00:00"))
    parsed = parse_trade(data, "f", 1)
    assert (parsed.timestamp, parsed.exit_timestamp) == (ENTRY, EXIT)


def test_offset_timestamps_are_converted_to_utc() -> None:
    parsed = parse_trade(raw_trade(timestamp="2026-03-10T10:00:00-04:00"), "f", 1)
    assert parsed.timestamp == ENTRY
    assert parsed.timestamp.utcoffset() == timedelta(0)


def test_net_profit_loss_is_preferred_over_profit_loss() -> None:
    data = raw_trade(**closed_fields(pnl="4.00", profit_loss="5.00"))
    assert parse_trade(data, "f", 1).net_pnl == D("4.00")


def test_profit_loss_is_used_when_net_is_absent() -> None:
    data = raw_trade(**closed_fields(), profit_loss="-2.50")
    del data["net_profit_loss"]
    data["outcome"] = "loss"
    assert parse_trade(data, "f", 1).net_pnl == D("-2.50")


def test_exit_before_entry_names_field_exit_timestamp() -> None:
    data = raw_trade(**closed_fields(exit_timestamp="2026-03-10T13:00:00Z"))
    with pytest.raises(JournalError) as caught:
        parse_trade(data, "f", 1)
    assert caught.value.field == "exit_timestamp"


def test_absurdly_large_pnl_is_a_journal_error_not_a_crash() -> None:
    with pytest.raises(JournalError):
        parse_trade(raw_trade(**closed_fields(pnl="1E+30")), "f", 1)


money = st.decimals(min_value=D("-100000"), max_value=D("100000"), places=2, allow_nan=False, allow_infinity=False)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@st.composite
def trade_records(draw: st.DrawFn) -> TradeRecord:
    entry = draw(moments)
    closed = draw(st.booleans())
    pnl = draw(money) if closed else None
    exit_at = entry + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30))) if closed else None
    return TradeRecord(
        timestamp=entry,
        symbol=draw(st.sampled_from(["AAPL", "MSFT", "SPY"])),
        action=draw(st.sampled_from(["BUY", "SELL"])),
        quantity=draw(st.integers(min_value=1, max_value=100_000)),
        price=draw(st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4)),
        order_id=draw(st.text(alphabet="abcdef0123456789-", min_size=1, max_size=20)),
        outcome=outcome_for(pnl) if pnl is not None else "open",
        exit_timestamp=exit_at,
        net_pnl=pnl,
        stop_loss=draw(st.none() | money.filter(lambda value: value > 0)),
        target=draw(st.none() | money.filter(lambda value: value > 0)),
        execution_mode=draw(st.sampled_from(["paper", "live"])),
        phase=draw(st.none() | st.sampled_from(list(Phase))),
        emergency_exit=draw(st.booleans()),
        manual_override=draw(st.booleans()),
        operator_id=draw(st.none() | st.sampled_from(["bot", "alice"])),
    )


@given(trade_records())
def test_parse_trade_inverts_to_json_dict(record: TradeRecord) -> None:
    line = json.loads(json.dumps(record.to_json_dict()))
    assert parse_trade(line, "f", 1) == record


# --- TradeJournal: consolidation ----------------------------------------------------------


def test_closed_record_supersedes_open_in_the_same_file(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "2026-03-10.jsonl", {}, closed_fields())
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert journal.open_trades() == []
    assert order_ids(journal.closed_trades) == ["o-1"]


def test_close_seen_before_its_open_still_wins(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", closed_fields())
    write_journal(trades_dir / "b.jsonl", {})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert journal.open_trades() == []
    record = journal.record("o-1")
    assert record is not None and record.outcome == "win"


def test_open_then_close_across_two_files(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {})
    write_journal(trades_dir / "b.jsonl", closed_fields())
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert (journal.open_trades(), order_ids(journal.closed_trades)) == ([], ["o-1"])


def test_an_order_counts_as_one_entry(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {}, closed_fields())
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert list(journal.entries) == ["o-1"]


def test_identical_duplicate_closes_collapse(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {}, closed_fields(), closed_fields())
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert journal.problem() is None
    assert order_ids(journal.closed_trades) == ["o-1"]


def test_two_different_closes_are_an_invalid_line(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {}, closed_fields(pnl="5.00"))
    second = write_journal(trades_dir / "b.jsonl", {"order_id": "o-2"}, closed_fields(pnl="6.00"))
    journal = TradeJournal(trades_dir)
    journal.refresh()
    problem = journal.problem()
    assert problem is not None
    assert (problem.file, problem.line, problem.field) == (str(second), 2, "order_id")


def test_garbage_line_is_a_journal_error_with_file_and_line(trades_dir: Path, write_journal: WriteJournal) -> None:
    path = write_journal(trades_dir / "a.jsonl", {})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    problem = journal.problem()
    assert problem is not None
    assert (problem.file, problem.line, problem.field) == (str(path), 2, "(line)")


def test_require_valid_raises_the_problem(trades_dir: Path) -> None:
    (trades_dir / "a.jsonl").write_text("[1, 2]\n")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    with pytest.raises(JournalError, match=r"a\.jsonl:1: \(line\): must be a JSON object"):
        journal.require_valid()


def test_blank_lines_are_skipped_but_counted(trades_dir: Path) -> None:
    path = trades_dir / "a.jsonl"
    path.write_text("\n" + json.dumps(raw_trade()) + "\n")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    record = journal.record("o-1")
    assert record is not None and record.line == 2


def test_torn_last_line_is_ignored(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {}, torn_tail='{"timestamp": "2026-03-10T14:')
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert journal.problem() is None
    assert list(journal.entries) == ["o-1"]


def test_torn_last_line_is_read_once_completed(trades_dir: Path, write_journal: WriteJournal) -> None:
    full = json.dumps(raw_trade(order_id="o-2"))
    path = write_journal(trades_dir / "a.jsonl", {}, torn_tail=full[:20])
    journal = TradeJournal(trades_dir)
    journal.refresh()
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(full[20:] + "\n")
    delta = journal.refresh()
    assert order_ids(delta.new_entries) == ["o-2"]
    record = journal.record("o-2")
    assert record is not None and record.line == 2


def test_dot_files_and_torn_recovery_files_are_skipped(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {})
    (trades_dir / ".scratch.jsonl").write_text("garbage\n")
    (trades_dir / "a.jsonl.torn-20260310T150000000000").write_text('{"timestamp":')
    (trades_dir / "notes.txt").write_text("garbage\n")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert journal.problem() is None
    assert list(journal.entries) == ["o-1"]


def test_missing_trades_folder_is_an_empty_journal(tmp_path: Path) -> None:
    journal = TradeJournal(tmp_path / "nowhere")
    assert not journal.refresh().changed
    assert journal.closed_trades == []


# --- TradeJournal: incremental refresh -----------------------------------------------------


def test_refresh_reads_only_appended_lines(trades_dir: Path, write_journal: WriteJournal) -> None:
    path = write_journal(trades_dir / "a.jsonl", {}, {"order_id": "o-2"})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    write_journal(path, closed_fields(order_id="o-2"))
    delta = journal.refresh()
    assert (order_ids(delta.new_closes), delta.new_entries, delta.rebuilt) == (["o-2"], [], False)


def test_refresh_with_nothing_new_reports_no_change(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert not journal.refresh().changed


def test_refresh_picks_up_a_new_file(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    write_journal(trades_dir / "b.jsonl", {"order_id": "o-2"})
    assert order_ids(journal.refresh().new_entries) == ["o-2"]


def test_new_file_created_within_the_same_timestamp_tick_is_seen(
    trades_dir: Path, write_journal: WriteJournal
) -> None:
    write_journal(trades_dir / "a.jsonl", {})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    seen = os.stat(trades_dir)
    write_journal(trades_dir / "b.jsonl", {"order_id": "o-2"})
    os.utime(trades_dir, ns=(seen.st_atime_ns, seen.st_mtime_ns))  # as a coarse clock would have stamped it
    journal.refresh()
    assert sorted(journal.entries) == ["o-1", "o-2"]


def test_shrunk_file_triggers_a_rebuild(trades_dir: Path, write_journal: WriteJournal) -> None:
    path = write_journal(trades_dir / "a.jsonl", {}, {"order_id": "o-2"})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    path.write_text(json.dumps(raw_trade(order_id="o-3")) + "\n")
    delta = journal.refresh()
    assert delta.rebuilt
    assert list(journal.entries) == ["o-3"]


def test_file_rewritten_at_the_same_size_triggers_a_rebuild(trades_dir: Path, write_journal: WriteJournal) -> None:
    path = write_journal(trades_dir / "a.jsonl", {"order_id": "o-1"})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    seen = os.stat(path)
    path.write_text(json.dumps(raw_trade(order_id="o-9")) + "\n")
    os.utime(path, ns=(seen.st_atime_ns, seen.st_mtime_ns + 1_000_000))
    assert os.stat(path).st_size == seen.st_size
    assert journal.refresh().rebuilt
    assert list(journal.entries) == ["o-9"]


def test_file_replaced_by_rename_triggers_a_rebuild(trades_dir: Path, write_journal: WriteJournal) -> None:
    path = write_journal(trades_dir / "a.jsonl", {}, {"order_id": "o-2"})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    replacement = write_journal(trades_dir / ".new", {}, {"order_id": "o-2"}, {"order_id": "o-3"})
    os.replace(replacement, path)
    assert journal.refresh().rebuilt
    assert sorted(journal.entries) == ["o-1", "o-2", "o-3"]


def test_deleted_file_triggers_a_rebuild(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {})
    doomed = write_journal(trades_dir / "b.jsonl", {"order_id": "o-2"})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    doomed.unlink()
    assert journal.refresh().rebuilt
    assert list(journal.entries) == ["o-1"]


def test_fixing_a_bad_line_by_replacing_the_file_clears_the_problem(
    trades_dir: Path, write_journal: WriteJournal
) -> None:
    path = trades_dir / "a.jsonl"
    path.write_text("{not json}\n")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert journal.problem() is not None
    fixed = write_journal(trades_dir / ".a.jsonl.new", {})
    os.replace(fixed, path)
    journal.refresh()
    assert journal.problem() is None
    assert list(journal.entries) == ["o-1"]


def test_fixing_a_bad_line_in_place_clears_the_problem(trades_dir: Path) -> None:
    path = trades_dir / "a.jsonl"
    path.write_text("{not json}\n")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert journal.problem() is not None
    with open(path, "w", encoding="utf-8") as handle:  # same inode, longer content
        handle.write(json.dumps(raw_trade()) + "\n")
    journal.refresh()
    assert journal.problem() is None
    assert list(journal.entries) == ["o-1"]


# --- TradeJournal: order, future dates, as-of views ----------------------------------------


def test_closed_trades_are_ordered_by_exit_then_entry(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(
        trades_dir / "a.jsonl",
        closed_fields("late-exit", exit_timestamp="2026-03-10T15:30:00Z"),
        closed_fields("late-entry", timestamp="2026-03-10T14:30:00Z"),
        closed_fields("early-entry", timestamp="2026-03-10T13:00:00Z"),
    )
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert order_ids(journal.closed_trades) == ["early-entry", "late-entry", "late-exit"]


def test_same_exit_and_entry_are_ordered_by_file_then_line(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "b.jsonl", closed_fields("b1"))
    write_journal(trades_dir / "a.jsonl", closed_fields("a1"), closed_fields("a2"))
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert order_ids(journal.closed_trades) == ["a1", "a2", "b1"]


def test_out_of_order_close_from_another_file_is_inserted_in_place(
    trades_dir: Path, write_journal: WriteJournal
) -> None:
    write_journal(trades_dir / "b.jsonl", closed_fields("late", exit_timestamp="2026-03-10T16:00:00Z"))
    journal = TradeJournal(trades_dir)
    journal.refresh()
    write_journal(trades_dir / "a.jsonl", closed_fields("early", exit_timestamp="2026-03-10T15:00:00Z"))
    delta = journal.refresh()
    assert order_ids(delta.new_closes) == ["early"]
    assert order_ids(journal.closed_trades) == ["early", "late"]


def test_trade_dated_after_now_is_a_problem(trades_dir: Path, write_journal: WriteJournal) -> None:
    path = write_journal(trades_dir / "a.jsonl", {}, closed_fields(exit_timestamp="2026-03-10T15:00:00Z"))
    journal = TradeJournal(trades_dir)
    journal.refresh()
    problem = journal.problem(datetime(2026, 3, 10, 14, 30, tzinfo=UTC))
    assert problem is not None
    assert (problem.file, problem.line, problem.field) == (str(path), 2, "exit_timestamp")


def test_trade_dated_before_now_is_not_a_problem(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {}, closed_fields())
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert journal.problem(EXIT) is None


def test_as_of_ignores_later_entries(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {}, {"order_id": "o-2", "timestamp": "2026-03-10T16:00:00Z"})
    journal = TradeJournal(trades_dir)
    journal.refresh()
    view = journal.as_of(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    assert list(view.entries) == ["o-1"]
    assert order_ids(view.open_trades) == ["o-1"]


def test_as_of_shows_a_later_close_as_open(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {}, closed_fields(exit_timestamp="2026-03-10T16:00:00Z"))
    journal = TradeJournal(trades_dir)
    journal.refresh()
    view = journal.as_of(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    assert view.closed_trades == []
    assert [(t.order_id, t.outcome, t.net_pnl) for t in view.open_trades] == [("o-1", "open", None)]


def test_as_of_includes_a_close_exactly_at_the_moment(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(trades_dir / "a.jsonl", {}, closed_fields())
    journal = TradeJournal(trades_dir)
    journal.refresh()
    view = journal.as_of(EXIT)
    assert (order_ids(view.closed_trades), view.open_trades) == (["o-1"], [])


# --- StructuredTradeLogger ----------------------------------------------------------------


def open_record(order_id: str = "o-1") -> TradeRecord:
    return TradeRecord(
        timestamp=ENTRY, symbol="AAPL", action="BUY", quantity=3, price=D("33.33"), order_id=order_id,
        phase=Phase.EXPERIENCE, operator_id="bot",
    )


def make_logger(tmp_path: Path) -> StructuredTradeLogger:
    logs = tmp_path / "logs"
    return StructuredTradeLogger(logs / "trades", LogsLock(logs))


def test_logger_appends_one_terminated_line_per_record(tmp_path: Path) -> None:
    writer = make_logger(tmp_path)
    path = writer.log_trade(open_record("o-1"), ENTRY)
    writer.log_trade(open_record("o-2"), ENTRY)
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert [json.loads(line)["order_id"] for line in data.splitlines()] == ["o-1", "o-2"]


def test_logger_names_the_file_for_the_utc_date_of_the_write(tmp_path: Path) -> None:
    writer = make_logger(tmp_path)
    late_evening_new_york = datetime(2026, 3, 10, 22, 0, tzinfo=timezone(timedelta(hours=-4)))
    assert writer.log_trade(open_record(), late_evening_new_york).name == "2026-03-11.jsonl"


def test_logged_record_reads_back_equal(tmp_path: Path) -> None:
    writer = make_logger(tmp_path)
    writer.log_trade(sample_record(), EXIT)
    journal = TradeJournal(writer.trades_dir)
    journal.refresh()
    assert journal.closed_trades == [sample_record()]


def test_logger_fsyncs_the_journal_while_holding_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = make_logger(tmp_path)
    real_fsync = os.fsync
    synced: list[tuple[str, bool]] = []

    def watching_fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), writer.lock.is_held))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watching_fsync)
    path = writer.log_trade(open_record(), ENTRY)
    assert (str(path), True) in synced


def test_torn_tail_is_moved_to_a_recovery_file_before_the_next_append(tmp_path: Path) -> None:
    writer = make_logger(tmp_path)
    path = writer.log_trade(open_record("o-1"), ENTRY)
    fragment = b'{"timestamp": "2026-03-10T14:00:00Z", "sym\xc3'
    with open(path, "ab") as handle:
        handle.write(fragment)
    at = datetime(2026, 3, 10, 14, 5, 6, 789, tzinfo=UTC)
    writer.log_trade(open_record("o-2"), at)
    recovery = path.with_name(f"{path.name}.torn-20260310T140506000789")
    assert recovery.read_bytes() == fragment
    assert writer.recovered_fragments == [recovery]
    assert [json.loads(line)["order_id"] for line in path.read_bytes().splitlines()] == ["o-1", "o-2"]


def test_journal_reads_both_lines_after_torn_tail_recovery(tmp_path: Path) -> None:
    writer = make_logger(tmp_path)
    path = writer.log_trade(open_record("o-1"), ENTRY)
    with open(path, "ab") as handle:
        handle.write(b'{"order_id": "o-torn"')
    writer.log_trade(open_record("o-2"), EXIT)
    journal = TradeJournal(writer.trades_dir)
    journal.refresh()
    assert journal.problem() is None
    assert sorted(journal.entries) == ["o-1", "o-2"]


def test_file_that_is_only_a_torn_fragment_is_recovered(tmp_path: Path) -> None:
    writer = make_logger(tmp_path)
    path = writer.path_for(ENTRY)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"order_id": ')
    writer.log_trade(open_record("o-1"), ENTRY)
    assert [json.loads(line)["order_id"] for line in path.read_bytes().splitlines()] == ["o-1"]
    assert [p.read_bytes() for p in writer.recovered_fragments] == [b'{"order_id": ']


def test_two_torn_tails_recovered_at_the_same_clock_reading_are_both_kept(tmp_path: Path) -> None:
    writer = make_logger(tmp_path)
    path = writer.log_trade(open_record("o-1"), ENTRY)
    for fragment in (b'{"first": ', b'{"second": '):
        with open(path, "ab") as handle:
            handle.write(fragment)
        writer.log_trade(open_record(), ENTRY)
    kept = sorted(p.read_bytes() for p in path.parent.glob(f"{path.name}.torn-*"))
    assert kept == [b'{"first": ', b'{"second": ']


# --- duplicate keys -----------------------------------------------------------------------


def journal_problem_of(trades_dir: Path, text: str) -> JournalError | None:
    path = trades_dir / "a.jsonl"
    path.write_text(journal_line_text() + text + "\n", encoding="utf-8")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    return journal.problem()


def journal_line_text(**fields: Any) -> str:
    record = {"timestamp": "2026-03-10T14:00:00Z", "symbol": "AAPL", "action": "BUY", "quantity": 1, "price": "10.00", "order_id": "o-0", "outcome": "open"}
    record.update(fields)
    return json.dumps(record) + "\n"


def test_a_journal_line_with_a_duplicate_key_is_refused_naming_the_key(trades_dir: Path) -> None:
    line = journal_line_text(order_id="o-1").rstrip("\n").replace('{"timestamp"', '{"price": "99.00", "timestamp"', 1)
    problem = journal_problem_of(trades_dir, line)
    assert problem is not None
    assert (problem.file, problem.line, problem.field) == (str(trades_dir / "a.jsonl"), 2, "price")
    assert "duplicate" in problem.message


def test_a_duplicate_key_spelled_with_an_escape_is_refused(trades_dir: Path) -> None:
    line = journal_line_text(order_id="o-1").rstrip("\n").replace('{"timestamp"', '{"pric\\u0065": "99.00", "timestamp"', 1)
    problem = journal_problem_of(trades_dir, line)
    assert problem is not None
    assert (problem.line, problem.field) == (2, "price")


def test_quotes_and_colons_inside_values_are_not_taken_for_duplicate_keys(trades_dir: Path) -> None:
    line = journal_line_text(order_id='o-1 "price": "1"', symbol='A\\"":"B').rstrip("\n")
    assert journal_problem_of(trades_dir, line) is None


def test_a_line_without_duplicates_in_compact_form_is_accepted(trades_dir: Path) -> None:
    record = json.loads(journal_line_text(order_id="o-1"))
    assert journal_problem_of(trades_dir, json.dumps(record, separators=(",", ":"))) is None
