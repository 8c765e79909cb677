"""The engine's fold of the journal read from the index: it reads only the columns the
rules need (`FACT_COLUMNS`), and every number it folds — the stint's last trade kept
as its full record — equals the fold of the full records."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from tests.phase.conftest import history_overridden_into
from tests.phase.test_state_snapshot import SHIPPED, START, answers_of, ledger_in, make_trades, numbers, trade_steps
from trading_bot.logging.journal_index import CLOSE_KINDS, microseconds_of
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.trade_record import TradeRecord, outcome_for
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase import engine as engine_module
from trading_bot.phase.engine import ClosedTradeFacts, MemoryLog, PhaseEngine, closes_of, facts_of
from trading_bot.phase.log_format import LogLine
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
        assert [close[-1] for close in closes] == [0, 1, 2]  # positions, no object per trade
        assert [close[6] or close[7] for close in closes] == [False, True, False]
        assert list(closes_of(journal.closed_trades, calendar, 1, 2)) == [closes[1]]
        from_records = list(closes_of(list(journal.closed_trades), calendar))
        assert from_records == closes

        progress = PhaseEngine(SHIPPED.settings, MarketCalendar(), "paper").fold_all(ledger_in(Phase.EXPERIENCE, START), journal.closed_trades)
        last = progress.last_stint_trade
        assert isinstance(last, TradeRecord)
        assert (last.order_id, last.extra["strategy"], Path(last.file).name, last.line) == ("o-2", {"name": "breakout", "v": 3}, "trades.jsonl", 3)
    finally:
        journal.close()


def test_every_outcome_flag_and_phase_reads_back_from_the_index_as_recorded(tmp_path: Path) -> None:
    """The index hands the fold each close's flags, outcome and phase packed in one number:
    every combination unpacks to what the record says."""
    steps = [
        (10, cents, phase, emergency, manual)
        for phase in (None, *Phase)
        for cents in (500, -200, 0)
        for emergency, manual in ((False, False), (True, False), (False, True))
    ]
    trades = make_trades(steps)
    journal = _journal_of(tmp_path / "logs" / "trades", trades)
    try:
        calendar = MarketCalendar()
        from_index = list(closes_of(journal.closed_trades, calendar))
        assert from_index == list(closes_of(trades, calendar))
        assert {(close[4], close[5], close[6], close[7]) for close in from_index} == {
            (trade.phase, trade.outcome, trade.emergency_exit, trade.manual_override) for trade in trades
        }
        assert len({close[4:8] for close in from_index}) == len(steps)  # 5 phases x 3 outcomes x 3 flag states
        assert {kind[:2] for kind in CLOSE_KINDS} == {(False, False), (True, False), (False, True), (True, True)}
    finally:
        journal.close()


@pytest.mark.parametrize("kept", [5, 6, 7])
def test_p_and_l_texts_read_back_as_their_exact_decimals_whether_the_memo_of_them_fills_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: int
) -> None:
    """Six distinct P&L texts, some repeated: a memo of 5 is emptied on the way, one of 6 or 7
    never; each close still carries its own text's Decimal, exponent included."""
    texts = ["1.5", "1.50", "-0.25", "1.5", "3", "1.50", "-0.25", "0.00", "0", "3"]
    steps = [(10, 100, None, False, False)] * len(texts)
    trades = [replace(trade, net_pnl=Decimal(text), outcome=outcome_for(Decimal(text))) for trade, text in zip(make_trades(steps), texts)]
    journal = _journal_of(tmp_path / "logs" / "trades", trades)
    monkeypatch.setattr(engine_module, "_AMOUNTS_KEPT", kept)
    try:
        calendar = MarketCalendar()
        closes = list(closes_of(journal.closed_trades, calendar))
        assert [str(close[3]) for close in closes] == texts
        assert closes == list(closes_of(trades, calendar))
    finally:
        journal.close()


def test_a_close_read_from_the_index_gives_the_rules_its_facts_and_its_order_id_when_asked(tmp_path: Path) -> None:
    steps = [(10, 500, Phase.SCALING, False, False), (10, -200, Phase.SCALING, True, False)]
    trades = make_trades(steps)
    journal = _journal_of(tmp_path / "logs" / "trades", trades)
    try:
        closes = list(closes_of(journal.closed_trades, MarketCalendar()))
        facts = [facts_of(close, journal.closed_trades) for close in closes]
        assert all(isinstance(fact, ClosedTradeFacts) for fact in facts)
        assert [(fact.position, fact.timestamp, fact.exit_timestamp, fact.net_pnl, fact.phase) for fact in facts] == [
            (number, trade.timestamp, trade.exit_timestamp, trade.net_pnl, trade.phase) for number, trade in enumerate(trades)
        ]
        assert [(fact.is_flagged, fact.is_closed) for fact in facts] == [(False, True), (True, True)]
        assert [fact.order_id for fact in facts] == ["o-0", "o-1"]
        assert [facts_of(close, trades) for close in closes] == trades  # full records stay records
    finally:
        journal.close()


def test_the_catch_up_from_the_index_writes_what_full_records_write(tmp_path: Path) -> None:
    steps = [(600 * (number % 3) + 30, cents, None, number % 7 == 0, False) for number, cents in enumerate([500, -200, 300, -50, 0, 800, -900, 100])]
    written = []
    for replay, lines in _folded_from_the_index_and_from_records(tmp_path, steps, lambda: MemoryLog([], START)):
        assert isinstance(replay.progress.last_stint_trade, TradeRecord)
        written.append([(line.type, {key: value for key, value in line.data.items() if key != "hash" and key != "prev_hash"}) for line in lines])
    assert written[0] == written[1]
    assert any(kind == "session_summary" or data.get("kind") == "session_summary" for kind, data in written[0]) or written[0]


def _folded_from_the_index_and_from_records(
    tmp_path: Path, steps: list[Any], new_history: Callable[[], MemoryLog]
) -> list[tuple[Any, list[LogLine]]]:
    """`apply_due` over the same journal twice, its closes read from the index and then
    held as full records, each time into a fresh history: (the replay, the lines written)."""
    trades = make_trades(steps)
    journal = _journal_of(tmp_path / "logs" / "trades", trades)
    try:
        engine = PhaseEngine(SHIPPED.settings, MarketCalendar(), "paper")
        now = trades[-1].exit_timestamp
        assert now is not None
        runs = []
        for closes in (journal.closed_trades, list(journal.closed_trades)):
            history = new_history()
            replay = engine.apply_due(history, closes, _no_entries(), [], {}, now)
            runs.append((replay, list(history.lines())))
        return runs
    finally:
        journal.close()


def _no_entries():  # type: ignore[no-untyped-def]
    from trading_bot.phase.trade_limiter import SessionEntries

    return SessionEntries.of(MarketCalendar(), {})


def test_fact_rows_are_the_positions_asked_for_of_the_close_order_and_stop_at_its_end(tmp_path: Path) -> None:
    steps = [(10, 500, None, False, False), (10, -200, None, True, False), (10, 300, None, False, True), (10, 0, None, False, False)]
    trades = make_trades(steps)
    journal = _journal_of(tmp_path / "logs" / "trades", trades)
    exits = [microseconds_of(trade.exit_timestamp) for trade in trades]  # type: ignore[arg-type]
    try:
        closes = journal.closed_trades
        assert [row[1] for row in closes.fact_rows()] == exits
        assert [(row[1], row[2]) for row in closes.fact_rows(1, 3)] == [(exits[1], "-2.00"), (exits[2], "3.00")]
        assert [row[1] for row in closes.fact_rows(2, 99)] == exits[2:]  # clamped to the journal's end
        assert list(closes.fact_rows(4)) == [] and list(closes.fact_rows(3, 1)) == []
        part = closes[1:3]  # positions of a slice are counted from its start
        assert [row[1] for row in part.fact_rows()] == exits[1:3]
        assert [row[1] for row in part.fact_rows(1, 5)] == exits[2:3]
        assert [CLOSE_KINDS[row[4]][:3] for row in closes.fact_rows()] == [
            (False, False, "win"), (True, False, "loss"), (False, True, "win"), (False, False, "breakeven")
        ]
    finally:
        journal.close()


class _Watched(list):  # type: ignore[type-arg]
    """Closes that note, each time a fold reads them in a run (a slice), whether the garbage
    collector runs."""

    def __init__(self, trades: list[TradeRecord], fail: bool = False) -> None:
        super().__init__(trades)
        self.collector_on: list[bool] = []
        self.fail = fail

    def __getitem__(self, item):  # type: ignore[no-untyped-def]
        if isinstance(item, slice):
            self.collector_on.append(gc.isenabled())
        if self.fail:
            raise RuntimeError("the journal went away")
        return super().__getitem__(item)


@pytest.mark.parametrize("running_before", [True, False])
def test_the_garbage_collector_is_held_off_only_while_a_fold_runs(running_before: bool) -> None:
    trades = make_trades([(10, 500, None, False, False), (10, -200, None, False, False)])
    engine = PhaseEngine(SHIPPED.settings, MarketCalendar(), "paper")
    was = gc.isenabled()
    try:
        gc.enable() if running_before else gc.disable()
        watched = _Watched(trades)
        engine.fold_all(ledger_in(Phase.EXPERIENCE, START), watched)
        assert watched.collector_on and not any(watched.collector_on)
        assert gc.isenabled() is running_before
        now = trades[-1].exit_timestamp
        assert now is not None
        watched = _Watched(trades)
        engine.apply_due(MemoryLog([], START), watched, _no_entries(), [], {}, now)
        assert watched.collector_on and not any(watched.collector_on)
        assert gc.isenabled() is running_before
        failing = _Watched(trades, fail=True)
        with pytest.raises(RuntimeError):
            engine.fold_all(ledger_in(Phase.EXPERIENCE, START), failing)
        assert gc.isenabled() is running_before  # an error in the fold leaves it as it was
    finally:
        gc.enable() if was else gc.disable()


def test_a_win_streak_steps_the_size_at_each_fifth_counted_win_and_names_that_close(tmp_path: Path) -> None:
    """In scaling, every 5th counted win in a row steps the size (keyed by that close's order
    id, read from the journal only then); a flagged win neither counts nor steps, a loss
    starts the count again."""
    win, flagged_win, loss = (30, 40_000, Phase.SCALING, False, False), (30, 40_000, Phase.SCALING, True, False), (30, -900, Phase.SCALING, False, False)
    first = (2 * 24 * 60 + 60, 40_000, Phase.SCALING, False, False)  # the first after the stint began
    steps = [first, win, win, win, flagged_win, win, win, loss, win, win, win, win, win, win]
    keys = [
        [(line.data["key"], line.data["to_size"]) for line in lines if line.data.get("rule") == "win_streak"]
        for _, lines in _folded_from_the_index_and_from_records(tmp_path, steps, lambda: history_overridden_into(Phase.SCALING, START))
    ]
    # o-4 is flagged: the fifth counted win is o-5; after the loss (o-7), o-12 is the fifth.
    assert keys[0] == keys[1] == [("stint1:streak:o-5", "300.00"), ("stint1:streak:o-12", "400.00")]
