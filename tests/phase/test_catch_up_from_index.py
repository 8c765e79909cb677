"""A first start's catch-up folds the index's rows, not records: over generated histories
(every phase, downgrades the triggers fire, streak steps, overrides, emergency exits,
flagged trades, rejected and open lines, closes with and without a recorded session) it
writes the same lines, in the same order, with the same hashes, and folds the same
numbers as the catch-up over the full records — in one go, and resumed part-way."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.phase.conftest import history_overridden_into
from tests.phase.test_state_snapshot import SHIPPED, START, answers_of, make_trades, numbers, trade_steps
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.market_calendar import MarketCalendar
from trading_bot.money import money_str
from trading_bot.phase.engine import MemoryLog, PhaseEngine, Replay
from trading_bot.phase.ledger import read_ledger
from trading_bot.phase.models import Phase
from trading_bot.phase.snapshot import progress_to_json
from trading_bot.phase.trade_limiter import SessionEntries

CALENDAR = MarketCalendar()


def _desk_trades(steps: list, recorded: list[bool]) -> list[TradeRecord]:
    """Generated closes; those `recorded` say so carry the sessions the bot records."""
    trades = make_trades(steps)
    for number, trade in enumerate(trades):
        if recorded[number % len(recorded)]:
            trades[number] = replace(trade, session=CALENDAR.session_of(trade.timestamp), exit_session=CALENDAR.exit_session(trade))
    return trades


def _journal_of(trades_dir: Path, trades: list[TradeRecord]) -> TradeJournal:
    """The closes as journal lines, each after a rejected order and every third after a
    position still open: lines the close order must skip."""
    trades_dir.mkdir(parents=True)
    with open(trades_dir / "trades.jsonl", "wb") as handle:
        for number, trade in enumerate(trades):
            rejected = {**trade.to_json_dict(), "order_id": f"r-{number}", "outcome": "rejected"}
            for key in ("exit_timestamp", "net_profit_loss", "profit_loss", "exit_session"):
                rejected.pop(key, None)
            handle.write(orjson.dumps(rejected) + b"\n")
            handle.write(orjson.dumps(trade.to_json_dict()) + b"\n")
            if number % 3 == 0:
                handle.write(orjson.dumps({**rejected, "order_id": f"open-{number}", "outcome": "open"}) + b"\n")
    journal = TradeJournal(trades_dir)
    journal.refresh()
    return journal


def _written(history: MemoryLog) -> list[dict]:
    return [dict(line.data) for line in history.lines()]


def _catch_up(engine: PhaseEngine, phase: Phase, closes, cuts: list) -> tuple[list[dict], Replay]:  # type: ignore[no-untyped-def]
    """`apply_due` at each instant of `cuts` in turn, each resuming the last."""
    history = history_overridden_into(phase, START)
    entries = SessionEntries.of(CALENDAR, {})
    replay = None
    for now in cuts:
        history.now = now
        replay = engine.apply_due(history, closes, entries, [], {}, now, resume=replay)
    assert replay is not None
    # Folding on as it writes, the catch-up holds what a fold of the history it wrote holds.
    refolded = engine.fold_all(read_ledger(history.lines(), SHIPPED.settings, "paper"), closes[: replay.index])
    assert numbers(replay.progress) == numbers(refolded)
    return _written(history), replay


def _summaries(written: list[dict]) -> list[tuple[str, int, str]]:
    return [(line["date"], line["journal_trades"], line["journal_net_pnl"]) for line in written if line["type"] == "session_summary"]


def _sessions_of(trades: list[TradeRecord]) -> list[tuple[str, int, str]]:
    """What each session's summary must say of the journal, worked out trade by trade."""
    totals: dict = {}
    for trade in trades:
        count, pnl = totals.get(CALENDAR.exit_session(trade), (0, Decimal(0)))
        totals[CALENDAR.exit_session(trade)] = (count + 1, pnl + trade.net_pnl)
    return [(session.isoformat(), count, money_str(pnl)) for session, (count, pnl) in sorted(totals.items())]


phases = st.sampled_from([Phase.EXPERIENCE, Phase.PROOF, Phase.TRIAL, Phase.SCALING])
losing_runs = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=900),
        st.integers(min_value=-60_000, max_value=30_000),
        st.sampled_from([None, Phase.PROOF, Phase.TRIAL, Phase.SCALING]),
        st.booleans(),
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.one_of(trade_steps, losing_runs),
    phase=phases,
    recorded=st.lists(st.booleans(), min_size=1, max_size=4),
    cut=st.floats(min_value=0, max_value=1),
)
def test_the_catch_up_over_index_rows_writes_and_folds_what_full_records_do(
    tmp_path_factory: pytest.TempPathFactory, steps: list, phase: Phase, recorded: list[bool], cut: float
) -> None:
    trades = _desk_trades(steps, recorded)
    journal = _journal_of(tmp_path_factory.mktemp("desk") / "logs" / "trades", trades)
    try:
        last_exit = trades[-1].exit_timestamp if trades else START
        assert last_exit is not None
        middle = START - timedelta(days=2) + (last_exit - START + timedelta(days=2)) * cut
        end = last_exit + timedelta(days=3)
        for cuts in ([end], [middle, end]):
            engine = PhaseEngine(SHIPPED.settings, CALENDAR, "paper")
            from_index = _catch_up(engine, phase, journal.closed_trades, cuts)
            from_records = _catch_up(engine, phase, list(journal.closed_trades), cuts)
            assert from_index[0] == from_records[0]
            assert _summaries(from_index[0]) == _sessions_of(trades)
            index_replay, records_replay = from_index[1], from_records[1]
            assert index_replay.index == records_replay.index == len(trades)
            assert numbers(index_replay.progress) == numbers(records_replay.progress)
            assert answers_of(index_replay.progress) == answers_of(records_replay.progress)
            assert progress_to_json(index_replay.progress) == progress_to_json(records_replay.progress)
            last = index_replay.progress.last_stint_trade
            assert last is None or isinstance(last, TradeRecord)
    finally:
        journal.close()


def test_a_catch_up_that_downgrades_and_steps_size_reads_the_same_from_the_index(tmp_path: Path) -> None:
    """A scaling stint: five wins step the size up, then three losses (one of them in a
    session recorded by the bot) downgrade it to trial, and trial folds on from there."""
    steps = [(2 * 24 * 60 + 60, 40_000, Phase.SCALING, False, False)]  # the first after the stint began
    steps += [(30, 40_000, Phase.SCALING, False, False)] * 4 + [(30, -900, Phase.SCALING, False, False)] * 3
    steps += [(30, 500, None, False, False), (30, -300, None, True, False), (30, 200, None, False, True)]
    trades = _desk_trades(steps, [False, True])
    journal = _journal_of(tmp_path / "logs" / "trades", trades)
    try:
        engine = PhaseEngine(SHIPPED.settings, CALENDAR, "paper")
        now = trades[-1].exit_timestamp + timedelta(days=3)  # type: ignore[operator]
        from_index = _catch_up(engine, Phase.SCALING, journal.closed_trades, [now])
        from_records = _catch_up(engine, Phase.SCALING, list(journal.closed_trades), [now])
        kinds = [(line["type"], line.get("kind"), line.get("rule")) for line in from_index[0]]
        assert ("size_change", None, "win_streak") in kinds
        assert ("transition", "downgrade", None) in kinds
        assert from_index[0] == from_records[0]
        assert from_index[1].progress.stint.phase is Phase.TRIAL
        assert numbers(from_index[1].progress) == numbers(from_records[1].progress)
        assert from_index[1].progress.last_stint_trade == trades[-1]
    finally:
        journal.close()


def test_a_downgrade_on_the_last_close_leaves_no_trade_in_the_new_stint(tmp_path: Path) -> None:
    steps = [(2 * 24 * 60 + 60, -900, Phase.TRIAL, False, False)] + [(30, -900, Phase.TRIAL, False, False)] * 2
    trades = _desk_trades(steps, [True])
    journal = _journal_of(tmp_path / "logs" / "trades", trades)
    try:
        engine = PhaseEngine(SHIPPED.settings, CALENDAR, "paper")
        now = trades[-1].exit_timestamp + timedelta(hours=1)  # type: ignore[operator]
        for closes in (journal.closed_trades, list(journal.closed_trades)):
            written, replay = _catch_up(engine, Phase.TRIAL, closes, [now])
            assert [line.get("kind") for line in written if line["type"] == "transition"] == ["override", "downgrade"]
            assert replay.progress.stint.phase is Phase.PROOF
            assert replay.progress.last_stint_trade is None
    finally:
        journal.close()
