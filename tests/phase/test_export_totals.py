"""`export` sums sessions in the journal index: every figure equals the per-trade figures.

The reference here is the per-trade way the export was made before it read sums from the
index: each closed trade as a `TradeRecord`, folded by `PerformanceTracker.session_metrics`
and `RunningTally` (the gates' own definitions), entries placed one by one by the
calendar. Both go through the same rendering, so CSV and JSON must match byte for byte.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from conftest import Desk, advance_to
from trading_bot.app import Desk as AppDesk
from trading_bot.dashboard.metrics_calculator import Ratio, RunningTally
from trading_bot.logging.session_totals import CloseTotals, totals_by_session
from trading_bot.performance.models import SessionMetrics
from trading_bot.performance.tracker import PerformanceTracker
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.money import money_str, ratio_str
from trading_bot.phase.engine import PhaseState
from trading_bot.phase.export import (
    Export,
    SessionContext,
    SessionRow,
    export_from_state,
    override_lines_of,
    session_bounds,
)
from trading_bot.phase.ledger import effective_time
from trading_bot.phase.manager import PhaseManager
from trading_bot.phase.models import Phase
from trading_bot.phase.record_types import TRANSITION
from trading_bot.phase.report import EquityCurve, EquityPoint, equity_curve, equity_svg, render_report

LEGACY = "legacy.jsonl"


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hand_line(desk: Desk, **fields: Any) -> None:
    """A journal line written by another writer (the original bot, a person): it names no
    session unless `fields` do, and is appended to a file of its own."""
    record = {"symbol": "MSFT", "action": "BUY", "quantity": 1, "price": "10", "execution_mode": "paper"}
    record.update(fields)
    (desk.logs_dir / "trades").mkdir(parents=True, exist_ok=True)
    with open(desk.logs_dir / "trades" / LEGACY, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _hand_trade(desk: Desk, order_id: str, entered: datetime, exited: datetime, pnl: str, **flags: Any) -> None:
    _hand_line(desk, order_id=order_id, timestamp=_z(entered), outcome="open")
    outcome = "win" if Decimal(pnl) >= Decimal("0.005") else "loss" if Decimal(pnl) <= Decimal("-0.005") else "breakeven"
    _hand_line(
        desk, order_id=order_id, timestamp=_z(entered), outcome=outcome, exit_timestamp=_z(exited), net_profit_loss=pnl, **flags
    )


def _history(desk: Desk, *, finer_amount: bool = False) -> None:
    """Several phases, a downgrade, an emergency exit, an override-flagged close, a rejected
    order, lines without recorded sessions (one closing before the next open), an entry
    with no close, and, with `finer_amount`, a P&L finer than a micro-unit."""
    desk.trades(10, -5, 7)  # Monday 2026-03-02, experience
    # Tuesday 06:00–06:59 New York is still Monday's session: the calendar places them.
    tuesday_early = datetime(2026, 3, 3, 11, 0, tzinfo=timezone.utc)
    desk.at(tuesday_early + timedelta(minutes=59))
    _hand_trade(desk, "legacy-1", tuesday_early, tuesday_early + timedelta(minutes=59), "4.25")
    desk.next_session()  # Tuesday
    desk.trades(3, -2)
    desk.tick(5)
    _hand_trade(desk, "legacy-2", desk.now() - timedelta(minutes=3), desk.now(), "-3.5", manual_override=True, operator_id="ann")
    _hand_trade(desk, "legacy-3", desk.now() - timedelta(minutes=2), desk.now(), "0.004")
    if finer_amount:
        _hand_trade(desk, "legacy-4", desk.now() - timedelta(minutes=1), desk.now(), "2.0000001")
    desk.next_session()  # Wednesday: an entry never closed, and an order the broker rejected
    _hand_line(desk, order_id="legacy-open", timestamp=_z(desk.now()), outcome="open")
    desk.tick(3)
    _hand_line(desk, order_id="legacy-rejected", timestamp=_z(desk.now()), outcome="rejected", exit_timestamp=_z(desk.now()))
    desk.tick(3)
    desk.start()
    advance_to(desk, "proof")
    desk.next_session()
    desk.trades(10, 10, -5, -5, -5, per_session=1)  # three losses in a row: down to experience
    assert desk.cli("acknowledge", "--operator", "ops", "--note", "reviewed")[0] == 0
    desk.start()
    desk.next_session()
    desk.trade(10, emergency=True)
    desk.trade("12.34")
    advance_to(desk, "trial")
    desk.next_session()
    desk.trades(10, -5, "7.77", per_session=1)
    desk.next_session()


def per_trade_export(manager: PhaseManager, start: date, end: date) -> Export:
    """The export made from one `TradeRecord` per close (the reference)."""
    state = manager.state()
    calendar = manager.calendar
    history_lines = manager.history.lines() if manager.as_of is None else manager.history.read_lines_as_of(manager.as_of)
    context = SessionContext(state.ledger, calendar, state.now)
    context.add_size_changes(history_lines)
    low, high = session_bounds(calendar, start, end)
    closes = list(manager.journal.closed_between(low, high, as_of=manager.as_of))
    metrics = PerformanceTracker(calendar).session_metrics(
        closes, phase_at=context.phase_at, sizes_at=context.sizes_at, trips_at=context.trips_at
    )
    by_date = {row.date: row for row in metrics}
    entries = manager.journal.entries if manager.as_of is None else manager.journal.as_of(manager.as_of).entries
    none = Ratio(None, "no closed trades")
    for moment in entries.times_between(low, high):
        session = calendar.session_of(moment)
        if session not in by_date:
            by_date[session] = SessionMetrics(
                session, context.phase_at(session), 0, 0, 0, 0, none, none, Decimal(0),
                context.sizes_at(session), context.trips_at(session),
            )
    tally = RunningTally(closes)
    return Export(
        start=start,
        end=end,
        current_phase=state.phase,
        sessions=[
            SessionRow(by_date[day], context.size_at_close(day), context.notes(day)) for day in sorted(by_date)
        ],
        transitions=[line for line in history_lines if line.type == TRANSITION and low <= effective_time(line) < high],
        overrides=[line for line in override_lines_of(manager) if low <= line.timestamp < high],
        summary=CloseTotals(
            tally.closed, tally.counted, tally.wins, tally.losses, tally.breakevens, tally.win_sum, tally.loss_sum, tally.net_pnl
        ),
    )


def _opened(desk: Desk, as_of: datetime | None = None) -> PhaseManager:
    return AppDesk.open(desk.config_path, environ=desk.env, as_of=as_of).phase


RANGES = [
    (date(2026, 3, 1), date(2026, 3, 31)),  # everything
    (date(2026, 3, 6), date(2026, 3, 12)),  # cut in the middle of the proof stint
    (date(2026, 3, 3), date(2026, 3, 4)),  # the hand-written lines' sessions only
    (date(2026, 3, 7), date(2026, 3, 8)),  # a weekend: no session at all
]


@pytest.mark.parametrize("finer_amount", [False, True], ids=["micro-units", "finer-than-micro-units"])
def test_export_from_index_sums_equals_the_per_trade_export_byte_for_byte(desk: Desk, finer_amount: bool) -> None:
    _history(desk, finer_amount=finer_amount)
    kinds = [line["kind"] for line in desk.transitions()]
    assert "downgrade" in kinds and kinds.count("override") == 2
    for start, end in RANGES:
        args = ("export", "--start", start.isoformat(), "--end", end.isoformat())
        code, csv_text, err = desk.cli(*args)
        assert code == 0, err
        code, json_text, err = desk.cli(*args, "--format", "json")
        assert code == 0, err
        reference = per_trade_export(_opened(desk), start, end)
        assert csv_text == reference.render("csv")
        assert json_text == reference.render("json")
    whole = desk.cli("export", "--start", "2026-03-01", "--end", "2026-03-31")[1].splitlines()
    by_day = {line.split(",")[0]: line for line in whole[1:]}
    assert by_day["2026-03-02"].startswith("2026-03-02,experience,4,")  # three of the bot's, one placed by the calendar
    assert by_day["2026-03-04"].startswith("2026-03-04,proof,0,0,0,,,0.00,")  # an entry, no close


@pytest.mark.parametrize("finer_amount", [False, True], ids=["micro-units", "finer-than-micro-units"])
def test_export_as_of_a_past_moment_equals_the_per_trade_export(desk: Desk, finer_amount: bool) -> None:
    _history(desk, finer_amount=finer_amount)
    desk.cli("status")
    for moment in (datetime(2026, 3, 3, 16, 0, tzinfo=timezone.utc), datetime(2026, 3, 10, 15, 30, tzinfo=timezone.utc)):
        for start, end in RANGES[:2]:
            args = ("export", "--start", start.isoformat(), "--end", end.isoformat(), "--format", "json", "--as-of", _z(moment))
            code, text, err = desk.cli(*args)
            assert code == 0, err
            assert text == per_trade_export(_opened(desk, moment), start, end).render("json")


def test_sums_are_taken_from_the_index_unless_an_amount_is_finer_than_a_micro_unit(desk: Desk) -> None:
    _history(desk)
    manager = _opened(desk)
    manager.state()
    assert not totals_by_session(manager.journal, manager.calendar).in_close_order
    _hand_trade(desk, "legacy-fine", desk.now() - timedelta(minutes=2), desk.now(), "-1.0000005")
    manager = _opened(desk)
    manager.state()
    totals = totals_by_session(manager.journal, manager.calendar)
    assert totals.in_close_order
    assert totals.overall.net_pnl == sum(
        (trade.net_pnl for trade in manager.journal.closed_trades if trade.net_pnl is not None), Decimal(0)
    )
    early = totals_by_session(manager.journal, manager.calendar, high=datetime(2026, 3, 4, tzinfo=timezone.utc))
    assert not early.in_close_order  # the fine amount is outside this range


def test_sums_beyond_64_bits_of_micro_units_are_added_exactly_in_close_order(desk: Desk) -> None:
    # Each 999,999,999,999.99 is just under 10^18 micro-units; ten of them overflow a 64-bit sum.
    start = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
    desk.at(start + timedelta(minutes=30))
    monday = {"session": "2026-03-02", "exit_session": "2026-03-02"}  # summed by SQLite, in 64 bits
    for n in range(10):
        _hand_trade(desk, f"big-{n}", start + timedelta(minutes=n), start + timedelta(minutes=n, seconds=30), "999999999999.99", **monday)
    _hand_trade(desk, "small", start + timedelta(minutes=20), start + timedelta(minutes=21), "-0.01", **monday)
    manager = _opened(desk)
    totals = totals_by_session(manager.journal, manager.calendar)
    assert totals.in_close_order
    summed = totals.groups[date(2026, 3, 2)]
    assert (summed.closed, summed.wins, summed.losses) == (11, 10, 1)
    assert summed.net_pnl == Decimal("9999999999999.89")
    assert summed.win_sum == Decimal("9999999999999.90") and summed.loss_sum == Decimal("0.01")
    nine = totals_by_session(manager.journal, manager.calendar, high=start + timedelta(minutes=8, seconds=31))
    assert not nine.in_close_order and nine.overall.net_pnl == Decimal("8999999999999.91")  # still within 64 bits


def test_a_close_recorded_in_another_session_counts_there_and_an_unrecorded_one_where_the_calendar_puts_it(desk: Desk) -> None:
    monday_open = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    desk.at(monday_open + timedelta(hours=2))
    _hand_trade(desk, "before-open", monday_open - timedelta(minutes=5), monday_open - timedelta(seconds=1), "1")
    _hand_trade(desk, "at-open", monday_open, monday_open, "2")
    _hand_trade(desk, "recorded-friday", monday_open + timedelta(minutes=1), monday_open + timedelta(minutes=2), "4",
                session="2026-02-27", exit_session="2026-02-27")
    manager = _opened(desk)
    totals = totals_by_session(manager.journal, manager.calendar)
    assert {day: group.net_pnl for day, group in totals.groups.items()} == {
        date(2026, 2, 27): Decimal("5"),  # one second before Monday's open is Friday's session; one recorded there
        date(2026, 3, 2): Decimal("2"),
    }
    only_monday = totals_by_session(manager.journal, manager.calendar, low=monday_open, high=monday_open + timedelta(hours=1))
    assert {day: group.closed for day, group in only_monday.groups.items()} == {date(2026, 2, 27): 1, date(2026, 3, 2): 1}


def test_an_empty_range_and_an_empty_journal_sum_to_nothing(desk: Desk, tmp_path: Path) -> None:
    manager = _opened(desk)
    empty = totals_by_session(manager.journal, manager.calendar)
    assert (empty.groups, empty.overall) == ({}, CloseTotals())
    desk.trades(3, -1)
    manager = _opened(desk)
    moment = desk.now()
    assert totals_by_session(manager.journal, manager.calendar, low=moment, high=moment).groups == {}
    assert totals_by_session(manager.journal, manager.calendar, high=moment, as_of=moment - timedelta(days=1)).groups == {}
    assert totals_by_session(manager.journal, manager.calendar).overall.closed == 2



# ---- report: the months and the chart from sums and a stream, as the per-trade page had them ----


def per_trade_months_table(manager: PhaseManager, sessions: list[SessionRow], trades: list[TradeRecord]) -> str:
    calendar = manager.calendar
    by_month: dict[str, list[TradeRecord]] = {}
    for trade in trades:
        by_month.setdefault(calendar.exit_session(trade).strftime("%Y-%m"), []).append(trade)
    sessions_by_month: dict[str, int] = {}
    for row in sessions:
        key = row.metrics.date.strftime("%Y-%m")
        sessions_by_month[key] = sessions_by_month.get(key, 0) + 1
    tracker = PerformanceTracker(calendar)
    rows = [
        '<h2>Months, newest first</h2><table><tr><th class="text">month</th><th>sessions</th><th>trades</th><th>wins</th>'
        "<th>losses</th><th>win rate</th><th>R:R</th><th>P&amp;L</th></tr>"
    ]
    for month in sorted(set(by_month) | set(sessions_by_month), reverse=True):
        summary = tracker.get_summary(trades=by_month.get(month, []))
        rate = "—" if summary.win_rate.value is None else ratio_str(summary.win_rate.value)
        rr = "—" if summary.avg_rr.value is None else ratio_str(summary.avg_rr.value)
        rows.append(
            f'<tr><td class="text">{month}</td><td>{sessions_by_month.get(month, 0)}</td><td>{summary.counted_trades}</td>'
            f"<td>{summary.wins}</td><td>{summary.losses}</td><td>{rate}</td><td>{rr}</td><td>{money_str(summary.net_pnl)}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def per_trade_curve(state: PhaseState, trades: list[TradeRecord], limit: int) -> EquityCurve:
    starting = state.settings.account.starting_equity
    equity = paper = starting
    points = []
    for trade in trades:
        assert trade.exit_timestamp is not None and trade.net_pnl is not None
        phase = trade.phase if trade.phase is not None else state.ledger.phase_at(trade.timestamp)
        if phase is not Phase.EXPERIENCE:
            equity += trade.net_pnl
        paper += trade.net_pnl
        points.append(EquityPoint(trade.exit_timestamp, equity, paper))
    values = [p.equity for p in points] + [p.with_paper for p in points] + [starting]
    if len(points) > limit:
        step = len(points) / limit
        chosen = [points[int(i * step)] for i in range(limit)]
        chosen[-1] = points[-1]
        points = chosen
    return EquityCurve(points, min(values), max(values))


@pytest.mark.parametrize("as_of", [None, datetime(2026, 3, 10, 15, 30, tzinfo=timezone.utc)], ids=["now", "as-of"])
@pytest.mark.parametrize("finer_amount", [False, True], ids=["micro-units", "finer-than-micro-units"])
def test_report_months_chart_and_count_equal_the_per_trade_page(desk: Desk, finer_amount: bool, as_of: datetime | None) -> None:
    _history(desk, finer_amount=finer_amount)
    desk.cli("status")
    manager = _opened(desk, as_of)
    state = manager.state()
    page = render_report(manager, state)
    trades = list(manager.journal.closed_trades if as_of is None else manager.journal.as_of(as_of).closed_trades)
    assert f"; {len(trades)} closed trades, " in page
    first = min([trade.timestamp for trade in trades] + [at for at, _ in state.ledger.phase_changes])
    calendar = manager.calendar
    export = export_from_state(manager, state, calendar.session_of(first), calendar.session_of(max(state.now, first)))
    assert per_trade_months_table(manager, export.sessions, trades) in page
    for limit in (1500, 7, 2):
        curve = per_trade_curve(state, trades, limit)
        assert equity_curve(manager, state.ledger, state.settings.account.starting_equity, len(trades), limit) == curve
    chart = equity_svg(state, per_trade_curve(state, trades, 1500), first, max(state.now, first), calendar.tz)
    assert chart in page
