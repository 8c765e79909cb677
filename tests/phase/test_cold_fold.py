"""The engine's fold of the journal read from the index: it reads only the columns the
rules need (`ClosedTradeFacts`), and every number it folds — the stint's last trade kept
as its full record — equals the fold of the full records."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from tests.phase.test_state_snapshot import SHIPPED, START, answers_of, ledger_in, make_trades, numbers, trade_steps
from trading_bot.logging.journal_index import ClosedTradeFacts
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.engine import MemoryLog, PhaseEngine, closes_of
from trading_bot.phase.models import Phase
from trading_bot.phase.snapshot import progress_to_json


def _journal_of(trades_dir: Path, trades: list[TradeRecord]) -> TradeJournal:
    """The trades written as journal lines (with a field the bot does not read), then indexed."""
    trades_dir.mkdir(parents=True)
    with open(trades_dir / "trades.jsonl", "wb") as handle:
        for trade in trades:
            handle.write(orjson.dumps({**trade.to_json_dict(), "strategy": {"name": "breakout", "v": 3}}) + b"\n")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    return journal


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=trade_steps)
def test_a_fold_of_the_index_equals_the_fold_of_full_records(tmp_path_factory: pytest.TempPathFactory, steps: list) -> None:
    trades_dir = tmp_path_factory.mktemp("desk") / "logs" / "trades"
    journal = _journal_of(trades_dir, make_trades(steps))
    try:
        engine = PhaseEngine(SHIPPED.settings, MarketCalendar(), "paper")
        for phase in (Phase.EXPERIENCE, Phase.TRIAL):
            ledger = ledger_in(phase, START)
            from_index = engine.fold_all(ledger, journal.closed_trades)
            from_records = engine.fold_all(ledger, list(journal.closed_trades))
            assert numbers(from_index) == numbers(from_records)
            assert answers_of(from_index) == answers_of(from_records)
            last = from_index.last_stint_trade
            assert last is None or isinstance(last, TradeRecord)
            assert progress_to_json(from_index) == progress_to_json(from_records)
    finally:
        journal.close()


def test_the_fold_reads_facts_from_the_index_and_keeps_the_last_trade_whole(tmp_path: Path) -> None:
    steps = [(10, 500, None, False, False), (10, -200, None, False, True), (10, 300, None, False, False)]
    journal = _journal_of(tmp_path / "logs" / "trades", make_trades(steps))
    try:
        calendar = MarketCalendar()
        closes = list(closes_of(journal.closed_trades, calendar))
        assert [type(close[-1]) for close in closes] == [tuple] * 3  # index rows, no object per trade
        assert [ClosedTradeFacts(close[-1]).position for close in closes] == [0, 1, 2]
        assert [ClosedTradeFacts(close[-1]).is_flagged for close in closes] == [False, True, False]
        assert [close[:-1] for close in closes_of(journal.closed_trades, calendar, 1, 2)] == [closes[1][:-1]]
        from_records = list(closes_of(list(journal.closed_trades), calendar))
        assert [close[-1] for close in from_records] == list(journal.closed_trades)  # records stay records
        assert [close[:-1] for close in from_records] == [close[:-1] for close in closes]

        progress = PhaseEngine(SHIPPED.settings, MarketCalendar(), "paper").fold_all(ledger_in(Phase.EXPERIENCE, START), journal.closed_trades)
        last = progress.last_stint_trade
        assert isinstance(last, TradeRecord)
        assert (last.order_id, last.extra["strategy"], Path(last.file).name, last.line) == ("o-2", {"name": "breakout", "v": 3}, "trades.jsonl", 3)
    finally:
        journal.close()


def test_the_catch_up_from_the_index_writes_what_full_records_write(tmp_path: Path) -> None:
    steps = [(600 * (number % 3) + 30, cents, None, number % 7 == 0, False) for number, cents in enumerate([500, -200, 300, -50, 0, 800, -900, 100])]
    trades = make_trades(steps)
    journal = _journal_of(tmp_path / "logs" / "trades", trades)
    try:
        engine = PhaseEngine(SHIPPED.settings, MarketCalendar(), "paper")
        now = trades[-1].exit_timestamp
        assert now is not None
        written = []
        for closes in (journal.closed_trades, list(journal.closed_trades)):
            history = MemoryLog([], START)
            entries = _no_entries()
            replay = engine.apply_due(history, closes, entries, [], {}, now)
            assert isinstance(replay.progress.last_stint_trade, TradeRecord)
            written.append([(line.type, {key: value for key, value in line.data.items() if key != "hash" and key != "prev_hash"}) for line in history.lines()])
        assert written[0] == written[1]
        assert any(kind == "session_summary" or data.get("kind") == "session_summary" for kind, data in written[0]) or written[0]
    finally:
        journal.close()


def _no_entries():  # type: ignore[no-untyped-def]
    from trading_bot.phase.trade_limiter import SessionEntries

    return SessionEntries.of(MarketCalendar(), {})


def test_fact_rows_are_the_positions_asked_for_of_the_close_order_and_stop_at_its_end(tmp_path: Path) -> None:
    steps = [(10, 500, None, False, False), (10, -200, None, True, False), (10, 300, None, False, True), (10, 0, None, False, False)]
    journal = _journal_of(tmp_path / "logs" / "trades", make_trades(steps))
    try:
        closes = journal.closed_trades
        assert [row[0] for row in closes.fact_rows()] == [0, 1, 2, 3]
        assert [(row[0], row[2]) for row in closes.fact_rows(1, 3)] == [(1, "o-1"), (2, "o-2")]
        assert [row[0] for row in closes.fact_rows(2, 99)] == [2, 3]  # clamped to the journal's end
        assert list(closes.fact_rows(4)) == [] and list(closes.fact_rows(3, 1)) == []
        part = closes[1:3]  # positions of a slice are counted from its start, reported as the journal's
        assert [row[0] for row in part.fact_rows()] == [1, 2]
        assert [row[0] for row in part.fact_rows(1, 5)] == [2]
        assert [ClosedTradeFacts(row).order_id for row in part.fact_rows()] == [part[0].order_id, part[1].order_id]
        assert [ClosedTradeFacts(row).is_flagged for row in closes.fact_rows()] == [False, True, True, False]
    finally:
        journal.close()
