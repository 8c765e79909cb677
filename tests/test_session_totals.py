"""Closes summed per session in the journal index: exact micro-units where the written
amount allows, the close-order fold otherwise, and the same figures as `RunningTally`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from trading_bot.dashboard.metrics_calculator import RunningTally
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.session_totals import ClosesSeen, CloseTotals, closes_in_order, closes_seen, totals_by_session
from trading_bot.market_calendar import MarketCalendar

WriteJournal = Callable[..., Path]
# 2026-03-10 is a Tuesday; its session opens at 11:00 UTC (07:00 EDT).
TUESDAY = date(2026, 3, 10)


def _closed(order_id: str, pnl: Any, exit_at: str = "2026-03-10T15:00:00Z", **more: Any) -> dict[str, Any]:
    amount = Decimal(str(pnl))
    outcome = "win" if amount >= Decimal("0.005") else "loss" if amount <= Decimal("-0.005") else "breakeven"
    return {"order_id": order_id, "outcome": outcome, "exit_timestamp": exit_at, "net_profit_loss": pnl, **more}


@pytest.fixture
def trades_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "trades"
    path.mkdir(parents=True)
    return path


def _journal(trades_dir: Path) -> TradeJournal:
    journal = TradeJournal(trades_dir)
    journal.refresh()
    journal.require_valid()
    return journal


@pytest.mark.parametrize(
    ("written", "micros"),
    [
        ("999999999999.999999", 999_999_999_999_999_999),  # 12 integer digits, 6 decimals: the largest kept
        ("999999999999", 999_999_999_999_000_000),
        ("1000000000000", None),  # 13 integer digits
        ("-999999999999.99", -999_999_999_999_990_000),
        ("-1000000000000.5", None),
        ("0.000001", 1),  # 6 decimals
        ("0.0000001", None),  # 7 decimals (kept as 1E-7)
        ("1.1234567", None),
        ("10.500000", 10_500_000),
        ("-5.25", -5_250_000),
        ("-0.004", -4_000),
        (5, 5_000_000),
        (12.5, 12_500_000),
        ("1e2", None),  # an exponent: kept as 1E+2
    ],
)
def test_the_index_keeps_a_net_pnl_as_exact_micro_units_only_where_they_are_exact(
    trades_dir: Path, write_journal: WriteJournal, written: Any, micros: int | None
) -> None:
    write_journal(trades_dir / "a.jsonl", _closed("o-1", written))
    journal = _journal(trades_dir)
    (text, kept), = journal.index_rows("SELECT net_pnl, pnl_micros FROM records WHERE close_pos IS NOT NULL").fetchall()
    assert kept == micros
    if kept is not None:
        assert Decimal(kept).scaleb(-6) == Decimal(text)


AMOUNT_SETS = {  # the amounts, and whether they must be summed trade by trade
    "cents": (["10", "-5.25", "7.1", "-0.004", "0.01"], False),
    "micro-units": (["0.000001", "-3.123456", "999999999999.5"], False),
    "finer": (["0.1234567", "-2", "3"], True),
    "28 digits and more": (["999999999999999.123456789012345678", "0.000000000000000001", "-999999999999999"], True),
}


@pytest.mark.parametrize(("amounts", "in_close_order"), list(AMOUNT_SETS.values()), ids=list(AMOUNT_SETS))
def test_totals_equal_running_tally_over_the_same_closes(
    trades_dir: Path, write_journal: WriteJournal, amounts: list[str], in_close_order: bool
) -> None:
    lines = []
    for n, pnl in enumerate(amounts * 3):
        flags = {"emergency_exit": True} if n % 5 == 4 else {}
        lines.append(_closed(f"o-{n}", pnl, exit_at=f"2026-03-10T15:{n:02d}:00Z", **flags))
    write_journal(trades_dir / "a.jsonl", *lines)
    journal = _journal(trades_dir)
    calendar = MarketCalendar()
    totals = totals_by_session(journal, calendar)
    tally = RunningTally(journal.closed_trades)
    expected = CloseTotals(
        tally.closed, tally.counted, tally.wins, tally.losses, tally.breakevens, tally.win_sum, tally.loss_sum, tally.net_pnl
    )
    assert totals.overall == expected
    assert totals.groups == {TUESDAY: expected}
    assert totals.in_close_order is in_close_order
    assert totals.overall.flagged == sum(1 for n in range(len(amounts) * 3) if n % 5 == 4) > 0


def test_a_close_is_in_range_from_its_low_bound_and_before_its_high_bound(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(
        trades_dir / "a.jsonl",
        _closed("o-1", "1", exit_at="2026-03-10T14:59:59Z"),
        _closed("o-2", "2", exit_at="2026-03-10T15:00:00Z"),
        _closed("o-3", "4", exit_at="2026-03-10T15:00:01Z"),
    )
    journal = _journal(trades_dir)
    calendar = MarketCalendar()
    at = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)
    assert totals_by_session(journal, calendar, low=at).overall.net_pnl == Decimal("6")
    assert totals_by_session(journal, calendar, high=at).overall.net_pnl == Decimal("1")
    assert totals_by_session(journal, calendar, as_of=at).overall.net_pnl == Decimal("3")  # exits at or before as_of


def test_a_close_without_a_recorded_session_before_the_open_counts_in_the_previous_session(
    trades_dir: Path, write_journal: WriteJournal
) -> None:
    write_journal(
        trades_dir / "a.jsonl",
        _closed("o-1", "1", timestamp="2026-03-10T10:00:00Z", exit_at="2026-03-10T10:59:59Z"),
        _closed("o-2", "2", timestamp="2026-03-10T10:00:00Z", exit_at="2026-03-10T11:00:00Z"),
        _closed("o-3", "4", timestamp="2026-03-10T10:00:00Z", exit_at="2026-03-10T11:00:01Z"),
        _closed("o-4", "8", exit_at="2026-03-10T15:00:00Z", session="2026-03-09", exit_session="2026-03-09"),
    )
    totals = totals_by_session(_journal(trades_dir), MarketCalendar())
    assert {day: group.net_pnl for day, group in totals.groups.items()} == {date(2026, 3, 9): Decimal("9"), TUESDAY: Decimal("6")}


def test_totals_can_be_merged_into_months(trades_dir: Path, write_journal: WriteJournal) -> None:
    write_journal(
        trades_dir / "a.jsonl",
        _closed("o-1", "1", timestamp="2026-02-27T15:00:00Z", exit_at="2026-02-27T16:00:00Z"),
        _closed("o-2", "-2", timestamp="2026-03-02T15:00:00Z", exit_at="2026-03-02T16:00:00Z"),
        _closed("o-3", "4"),
    )
    totals = totals_by_session(_journal(trades_dir), MarketCalendar(), key=lambda session: session.strftime("%Y-%m"))
    assert {month: (group.closed, group.net_pnl) for month, group in totals.groups.items()} == {
        "2026-02": (1, Decimal("1")),
        "2026-03": (2, Decimal("2")),
    }


def test_closes_are_streamed_in_close_order_with_their_count_and_earliest_entry(
    trades_dir: Path, write_journal: WriteJournal
) -> None:
    write_journal(
        trades_dir / "a.jsonl",
        _closed("o-2", "2", timestamp="2026-03-10T12:00:00Z", exit_at="2026-03-10T16:00:00Z", phase="proof"),
        _closed("o-1", "-1.5", timestamp="2026-03-10T13:00:00Z", exit_at="2026-03-10T15:00:00Z"),
        {"order_id": "o-3", "timestamp": "2026-03-10T11:30:00Z"},  # open: not a close
    )
    journal = _journal(trades_dir)
    seen = closes_seen(journal)
    assert (seen.count, seen.earliest_entry) == (2, datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc))
    streamed = list(closes_in_order(journal))
    assert [(phase, pnl) for _, _, phase, pnl in streamed] == [(None, Decimal("-1.5")), ("proof", Decimal("2"))]
    early = closes_seen(journal, as_of=datetime(2026, 3, 10, 15, 30, tzinfo=timezone.utc))
    assert (early.count, early.earliest_entry) == (1, datetime(2026, 3, 10, 13, 0, tzinfo=timezone.utc))
    assert closes_seen(journal, as_of=datetime(2026, 3, 10, 14, 0, tzinfo=timezone.utc)) == ClosesSeen(0, None)
