"""Deciding what is due: downgrades, size steps, session summaries, advance suggestions.

The engine replays the journal against the history in time order and emits every
event the rules call for that the history does not hold yet. It writes through a
`LineSink`: the real hash-chained log when the manager holds the lock, or an
in-memory copy for `--as-of` views and replays, so both see exactly the same rules.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from trading_bot.clock import ensure_utc
from trading_bot.config import ScalingSettings, Settings
from trading_bot.logging.journal_index import CLOSE_KINDS, microseconds_of, moment_of
from trading_bot.logging.query_helper import RecordSequence
from trading_bot.logging.trade_record import CLOSED_OUTCOMES, TradeRecord
from trading_bot.market_calendar import MarketCalendar
from trading_bot.money import money_str
from trading_bot.clock import format_timestamp
from trading_bot.phase.log_format import GENESIS_HASH, LogLine, line_hash
from trading_bot.phase.ledger import Ledger, downgrade_size, read_ledger
from trading_bot.phase.record_types import DOWNGRADE, SESSION_SUMMARY, SIZE_CHANGE, SUGGESTION, TRANSITION
from trading_bot.error_handling.circuit_breaker import BreakerState
from trading_bot.phase.models import GateResult, Phase, TriggerHit
from trading_bot.phase.position_sizing import SizeStep, streak_at_step, streak_step, win_rate_step
from trading_bot.phase.stint import StintProgress
from trading_bot.phase.trade_limiter import SessionEntries, earliest_entry, longest_missed_run
from trading_bot.phase.rules import (
    GateView,
    evaluate_gate,
    fired_triggers,
    gate_window_size,
    trigger_window_size,
    triggers_for,
)
from trading_bot.phase.record_types import CRITERIA_EDIT, OVERRIDE_ATTEMPT


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a fold or a catch-up runs: each of the
    tuples a fold makes per close would count towards a collection that finds nothing to
    free (the fold makes no cycles). It runs as before when the block ends."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class LineSink(Protocol):
    def append(self, type: str, payload: dict[str, Any], timestamp: datetime | None = None) -> LogLine: ...

    def lines(self) -> Sequence[LogLine]: ...


class MemoryLog:
    """A log held in memory: the same line shapes, nothing on disk (as-of views, replays)."""

    def __init__(self, lines: Sequence[LogLine], now: datetime) -> None:
        self._lines = list(lines)
        self.now = now

    def lines(self) -> Sequence[LogLine]:
        return self._lines

    def append(self, type: str, payload: dict[str, Any], timestamp: datetime | None = None) -> LogLine:
        moment = ensure_utc(timestamp or self.now)
        prev = self._lines[-1].hash if self._lines else GENESIS_HASH
        seq = self._lines[-1].seq + 1 if self._lines else 1
        body = {"seq": seq, "timestamp": format_timestamp(moment), "type": type, "prev_hash": prev, **payload}
        digest = line_hash(body)
        line = LogLine(seq=seq, timestamp=moment, type=type, data={**body, "hash": digest}, hash=digest, prev_hash=prev, line_no=seq)
        self._lines.append(line)
        return line


@dataclass
class Replay:
    """Where a replay stands: the ledger it read, the stint folded so far, the next trade."""

    ledger: Ledger
    progress: StintProgress
    index: int
    head_seq: int
    unsummarized: set[date] = field(default_factory=set)
    pending: list[date] = field(default_factory=list)
    written: list[LogLine] = field(default_factory=list)

    def pend(self, session: date) -> None:
        """A session with activity whose summary is due once it closes (a min-heap)."""
        if session not in self.unsummarized and session not in self.ledger.summarized_sessions:
            self.unsummarized.add(session)
            heapq.heappush(self.pending, session)


@dataclass
class PhaseState:
    """The phase system's answer at one moment, derived from the records."""

    ledger: Ledger
    progress: StintProgress
    entries: SessionEntries
    now: datetime
    session: date
    override_lines: Sequence[LogLine]
    settings: Settings
    calendar: MarketCalendar
    journal_entries: Mapping[str, TradeRecord] = field(default_factory=dict)
    _gate: GateResult | None = None

    @property
    def phase(self) -> Phase:
        return self.ledger.stint.phase

    def gate_view(self) -> GateView:
        stint = self.ledger.stint
        first_day = _first_stint_day(stint.since, self.calendar, self.journal_entries, self.session)
        trading_days = self.calendar.trading_days_between(first_day, self.session) if first_day <= self.session else 0
        completed_last = self.calendar.previous_trading_day(self.session)
        days = self.calendar.trading_days(first_day, completed_last) if first_day <= completed_last else []
        entered = self.entries.sessions_with_entries_since(stint.since)
        skipped = self.ledger.days_tripped(days, self.calendar.open_of, self.calendar.session_closes_at)
        return GateView(
            progress=self.progress,
            trading_days=trading_days,
            missed_days_streak=longest_missed_run(days, entered, skipped),
            override_incidents=override_incidents(self.override_lines, stint.since, stint.transition_seq)
            + self.progress.manual_override_trades,
        )

    def gate(self) -> GateResult | None:
        """Readiness for the next phase (None at the top of the ladder)."""
        if self.phase.next is None:
            return None
        if self._gate is None:
            self._gate = evaluate_gate(self.settings, self.gate_view())
        return self._gate


def _first_stint_day(
    since: datetime | None, calendar: MarketCalendar, entries: Mapping[str, TradeRecord], current: date
) -> date:
    """The stint's first trading day: its start session, if it began before that day's end."""
    if since is None:
        since = earliest_entry(entries)
        if since is None:
            return current
    session = calendar.session_of(since)
    if since < calendar.close_of(session):
        return session
    return calendar.next_trading_day(session)


def override_incidents(lines: Sequence[LogLine], since: datetime | None, stint_seq: int = 0) -> int:
    """Successful password overrides and loosening criteria edits after the stint began.

    The override that started the stint is not an incident of it (its log line names
    the history line it committed, and may be stamped a moment after it).
    """
    count = 0
    for line in lines:
        if since is not None and line.timestamp <= since:
            continue
        if line.type == OVERRIDE_ATTEMPT and line.data.get("outcome") == "success":
            if stint_seq and line.data.get("history_seq") == stint_seq:
                continue
            count += 1
        elif line.type == CRITERIA_EDIT and line.data.get("counts_as_incident"):
            count += 1
    return count


def metrics_snapshot(progress: StintProgress) -> dict[str, Any]:
    """The numbers recorded beside a downgrade or a suggestion."""
    tally = progress.tally
    rate = tally.win_rate().value
    rr = tally.avg_rr().value
    return {
        "trades": tally.counted,
        "wins": tally.wins,
        "losses": tally.losses,
        "breakevens": tally.breakevens,
        "win_rate": None if rate is None else str(rate.quantize(Decimal("0.0001"))),
        "avg_rr": None if rr is None else str(rr.quantize(Decimal("0.0001"))),
        "consecutive_losses": tally.consecutive_losses,
        "stint_net_pnl": money_str(tally.net_pnl),
        "equity": money_str(progress.equity),
        "max_drawdown_pct": None if (drawdown := progress.drawdown_pct()) is None else str(drawdown.quantize(Decimal("0.0001"))),
    }


class PhaseEngine:
    """Replays records against the rules; emits what is due through a sink."""

    def __init__(self, settings: Settings, calendar: MarketCalendar, mode: str) -> None:
        self.settings = settings
        self.calendar = calendar
        self.mode = mode
        # Closed trades folded so far by this engine: shows what a resumed replay skipped.
        self.trades_folded = 0

    def new_progress(self, ledger: Ledger) -> StintProgress:
        phase = ledger.stint.phase
        return StintProgress(
            stint=ledger.stint,
            calendar=self.calendar,
            phase_at=ledger.phase_at,
            starting_equity=self.settings.account.starting_equity,
            trigger_window_size=trigger_window_size(self.settings, phase),
            gate_window_size=gate_window_size(self.settings, phase),
        )

    def fold_all(self, ledger: Ledger, trades: Sequence[TradeRecord]) -> StintProgress:
        progress = self.new_progress(ledger)
        fold = progress.fold_close
        last = position = -1
        closes = closes_of(trades, self.calendar)
        try:
            with collector_paused():
                for entry_us, exit_us, session, pnl, phase, outcome, emergency, manual, position in closes:
                    if fold(session, entry_us, exit_us, pnl, phase, outcome, emergency, manual):
                        last = position
        finally:
            closes.close()
            self.trades_folded += position + 1
        if last >= 0:
            progress.last_stint_trade = whole_trade(last, trades)
        return progress

    def state(
        self,
        history_lines: Sequence[LogLine],
        trades: Sequence[TradeRecord],
        entries: Mapping[str, TradeRecord],
        override_lines: Sequence[LogLine],
        now: datetime,
    ) -> PhaseState:
        ledger = read_ledger(history_lines, self.settings, self.mode)
        progress = self.fold_all(ledger, trades)
        session_entries = SessionEntries.of(self.calendar, entries)
        return self.assemble(ledger, progress, session_entries, override_lines, entries, now)

    def assemble(
        self,
        ledger: Ledger,
        progress: StintProgress,
        entries: SessionEntries,
        override_lines: Sequence[LogLine],
        journal_entries: Mapping[str, TradeRecord],
        now: datetime,
    ) -> PhaseState:
        """The state at `now` from parts already folded."""
        return PhaseState(
            ledger=ledger,
            progress=progress,
            entries=entries,
            now=now,
            session=self.calendar.session_of(now),
            override_lines=override_lines,
            settings=self.settings,
            calendar=self.calendar,
            journal_entries=journal_entries,
        )

    # ---- applying what is due ------------------------------------------------------

    def apply_due(
        self,
        history: LineSink,
        trades: Sequence[TradeRecord],
        entries: SessionEntries,
        override_lines: Sequence[LogLine],
        journal_entries: Mapping[str, TradeRecord],
        now: datetime,
        *,
        journal_valid: bool = True,
        resume: Replay | None = None,
        new_entry_sessions: set[date] | None = None,
    ) -> Replay:
        """Append every downgrade, size step, session summary and suggestion now due.

        With `resume` (the previous call's result, history unchanged since), only trades
        closed since are folded, so the live bot does O(1) work per new trade.
        """
        history_lines = history.lines()
        head = history_lines[-1].seq if history_lines else 0
        if resume is not None and resume.head_seq == head and resume.index <= len(trades):
            replay = resume
            replay.written = []
            new_entry_sessions = new_entry_sessions or set()
        else:
            ledger = read_ledger(history_lines, self.settings, self.mode)
            replay = Replay(ledger=ledger, progress=self.new_progress(ledger), index=0, head_seq=head)
            new_entry_sessions = set(entries.by_session)
        for session in new_entry_sessions:
            replay.pend(session)
        current_session = self.calendar.session_of(now)
        rules = triggers_for(self.settings, replay.ledger.stint.phase)

        def reread() -> None:
            """Fold the lines just written (only this process writes while it holds the lock)."""
            lines = history.lines()
            for line in lines[replay.head_seq :]:
                replay.ledger.fold(line)
            replay.head_seq = lines[-1].seq if lines else 0
            replay.progress.stint = replay.ledger.stint

        def close_sessions_before(limit: date) -> None:
            if not journal_valid:
                return
            while replay.pending and replay.pending[0] < limit:
                session = heapq.heappop(replay.pending)
                replay.unsummarized.discard(session)
                if session in replay.ledger.summarized_sessions:
                    continue
                replay.written.append(self._session_summary(history, replay.ledger, replay.progress, entries, session))
                reread()
                step = self._win_rate_step(replay.ledger, replay.progress, session)
                if step is not None:
                    closed_at = self.calendar.session_closes_at(session)
                    replay.written.append(self._size_change(history, replay.ledger, step, closed_at, closed_at))
                    reread()

        total = len(trades)  # a journal view: its length costs a query, and it does not change here
        now_us = microseconds_of(ensure_utc(now))
        last = -1  # the position of the last stint trade folded by this loop
        open_session = None  # the session of the close before: nothing new to close or pend
        first = index = replay.index
        progress = replay.progress
        fold = progress.fold_close
        scaling = replay.ledger.phase is Phase.SCALING  # `ledger.stint` builds a Stint: not per trade
        sizing = self.settings.phase_progression.scaling
        closes = closes_of(trades, self.calendar, index, total)
        try:
            with collector_paused():
                for close in closes:
                    entry_us, exit_us, session, pnl, phase, outcome, emergency, manual, position = close
                    if exit_us > now_us:
                        break
                    if session != open_session:
                        close_sessions_before(session)
                        replay.pend(session)
                        open_session = session
                        scaling = replay.ledger.phase is Phase.SCALING
                    index += 1
                    if not fold(session, entry_us, exit_us, pnl, phase, outcome, emergency, manual):
                        continue
                    last = position
                    if rules:
                        hits = fired_triggers(rules, progress)
                        if hits:
                            trade = whole_trade(position, trades)
                            replay.written.append(self._downgrade(history, replay.ledger, progress, hits, trade, now))
                            reread()
                            replay.progress = progress = self.fold_all(replay.ledger, trades[:index])
                            fold = progress.fold_close
                            rules = triggers_for(self.settings, replay.ledger.stint.phase)
                            scaling = replay.ledger.phase is Phase.SCALING
                            last = -1  # the refold kept the stint's last trade itself
                            continue
                    # A streak step needs an unflagged close with the streak at a step; only
                    # then is the trade (and the size at the open) looked up.
                    if not scaling or emergency or manual or not streak_at_step(sizing, progress.tally.winning_streak):
                        continue
                    trade = progress.last_stint_trade = facts_of(close, trades)
                    step = self._streak_step(replay.ledger, progress, trade)
                    if step is not None:
                        assert trade.exit_timestamp is not None
                        replay.written.append(self._size_change(history, replay.ledger, step, trade.exit_timestamp, now))
                        reread()
        finally:
            closes.close()
            self.trades_folded += index - first
            replay.index = index
        if last >= 0:
            replay.progress.last_stint_trade = whole_trade(last, trades)
        with collector_paused():
            close_sessions_before(current_session)
        if journal_valid:
            suggestion = self._suggestion(history, replay.ledger, replay.progress, entries, override_lines, journal_entries, now)
            if suggestion is not None:
                replay.written.append(suggestion)
                reread()
        return replay

    def _downgrade(
        self,
        history: LineSink,
        ledger: Ledger,
        progress: StintProgress,
        hits: list[TriggerHit],
        trade: TradeRecord,
        now: datetime,
    ) -> LogLine:
        stint = ledger.stint
        lower = stint.phase.previous
        assert lower is not None
        assert trade.exit_timestamp is not None
        size = downgrade_size(self.settings, lower, stint.size)
        reason = "; ".join(hit.detail for hit in hits)
        breaker = BreakerState.trip(f"downgraded {stint.phase.value} → {lower.value}: {reason}", trade.exit_timestamp)
        if stint.breaker.tripped:
            breaker = stint.breaker
        mode = "paper" if lower is Phase.EXPERIENCE else self.mode
        payload = {
            "kind": DOWNGRADE,
            "from_phase": stint.phase.value,
            "to_phase": lower.value,
            "position_size": money_str(size),
            "previous_size": money_str(stint.size),
            "breaker": breaker.to_json(),
            "mode": mode,
            "effective_at": format_timestamp(trade.exit_timestamp),
            "triggered_by_order": trade.order_id,
            "triggers": [hit.to_json() for hit in hits],
            "metrics": metrics_snapshot(progress),
            "operator_id": "bot",
            "reason": reason,
        }
        return history.append(TRANSITION, payload, now)

    def _streak_step(self, ledger: Ledger, progress: StintProgress, trade: TradeRecord) -> SizeStep | None:
        settings = self.settings.phase_progression.scaling
        assert trade.exit_timestamp is not None
        size_at_open = self._size_at_open(ledger, self.calendar.exit_session(trade))
        step = streak_step(settings, progress, ledger.stint.size, size_at_open, f"stint{ledger.stint.transition_seq}")
        if step is None or step.key in ledger.size_keys:
            return None
        return step

    def _size_at_open(self, ledger: Ledger, session: date) -> Decimal:
        """The size at the session's open, or at the stint's start if it began mid-session."""
        moment = self.calendar.open_of(session)
        since = ledger.stint.since
        if since is not None and since > moment:
            moment = since
        return ledger.size_at(moment)

    def _win_rate_step(self, ledger: Ledger, progress: StintProgress, session: date) -> SizeStep | None:
        if ledger.phase is not Phase.SCALING or session not in progress.sessions:
            return None
        settings = self.settings.phase_progression.scaling
        size_at_open = self._size_at_open(ledger, session)
        step = win_rate_step(settings, progress, session, ledger.stint.size, size_at_open, f"stint{ledger.stint.transition_seq}")
        if step is None or step.key in ledger.size_keys:
            return None
        return step

    def _size_change(self, history: LineSink, ledger: Ledger, step: SizeStep, effective: datetime, stamp: datetime) -> LogLine:
        payload = {
            "from_size": money_str(ledger.stint.size),
            "to_size": money_str(step.new_size),
            "rule": step.rule,
            "reason": step.reason,
            "key": step.key,
            "phase": ledger.stint.phase.value,
            "effective_at": format_timestamp(effective),
        }
        return history.append(SIZE_CHANGE, payload, stamp)

    def _session_summary(
        self,
        history: LineSink,
        ledger: Ledger,
        progress: StintProgress,
        entries: SessionEntries,
        session: date,
    ) -> LogLine:
        open_at = self.calendar.open_of(session)
        closed_at = self.calendar.session_closes_at(session)
        sizes = {ledger.size_at(open_at)}
        sizes.update(size for at, size in ledger.size_changes if open_at <= at < closed_at)
        payload = {
            "date": session.isoformat(),
            "phase": ledger.phase_at(closed_at).value,
            "journal_trades": progress.all_sessions_count.get(session, 0),
            "journal_net_pnl": money_str(progress.all_sessions_pnl.get(session, Decimal(0))),
            "entries": entries.count(session),
            "position_sizes": [money_str(size) for size in sorted(sizes)],
            "breaker_trips": ledger.trips_during(open_at, closed_at),
            "closed_at": format_timestamp(closed_at),
        }
        return history.append(SESSION_SUMMARY, payload, closed_at)

    def _suggestion(
        self,
        history: LineSink,
        ledger: Ledger,
        progress: StintProgress,
        entries: SessionEntries,
        override_lines: Sequence[LogLine],
        journal_entries: Mapping[str, TradeRecord],
        now: datetime,
    ) -> LogLine | None:
        stint = ledger.stint
        if stint.phase.next is None or stint.transition_seq in ledger.suggested_stints or stint.breaker.tripped:
            return None
        gate = self.assemble(ledger, progress, entries, override_lines, journal_entries, now).gate()
        if gate is None or not gate.ready:
            return None
        payload = {
            "from_phase": gate.from_phase.value,
            "to_phase": gate.to_phase.value,
            "stint_seq": stint.transition_seq,
            "criteria": [criterion.to_json() for criterion in gate.criteria],
            "metrics": metrics_snapshot(progress),
        }
        return history.append(SUGGESTION, payload, now)


# A close as the fold takes it: (entry µs, exit µs, exit session, net P&L, phase or None,
# outcome, emergency exit, manual override, position in the sequence folded).
Close = tuple[int, int, date, Decimal, Phase | None, str, bool, bool, int]
# The distinct P&L texts `closes_of` keeps as Decimals at most (about 1 MB).
_AMOUNTS_KEPT = 8192


def closes_of(
    trades: Sequence[TradeRecord], calendar: MarketCalendar, start: int = 0, stop: int | None = None
) -> Generator[Close, None, None]:
    """Positions [start, stop) of the closes, as the fold takes them. From the index, only
    the columns the rules need are read, as plain tuples from one cursor: folding the whole
    journal builds no object per trade."""
    position = start
    if not isinstance(trades, RecordSequence):
        for trade in trades[start:stop]:
            assert trade.exit_timestamp is not None and trade.net_pnl is not None
            yield (
                microseconds_of(ensure_utc(trade.timestamp)),
                microseconds_of(ensure_utc(trade.exit_timestamp)),
                calendar.exit_session(trade),
                trade.net_pnl,
                trade.phase,
                trade.outcome,
                trade.emergency_exit,
                trade.manual_override,
                position,
            )
            position += 1
        return
    kinds = CLOSE_KINDS
    session_of = calendar.session_of
    # P&L texts repeat (a desk trades the same sizes): each is made a Decimal once. Decimals
    # are immutable, so closes may share one; the memo is emptied when full.
    amounts: dict[str, Decimal] = {}
    # Closes come in session order: the day of the one before is most often this one's.
    last_ordinal: int | None = None
    last_day: date | None = None
    rows = trades.fact_rows(start, stop)
    try:
        for entry_us, exit_us, pnl, ordinal, kind in rows:
            if ordinal is None:
                session = session_of(moment_of(exit_us))
            elif ordinal == last_ordinal:
                session = last_day  # type: ignore[assignment]
            else:
                session = last_day = date.fromordinal(ordinal)
                last_ordinal = ordinal
            amount = amounts.get(pnl)
            if amount is None:
                if len(amounts) == _AMOUNTS_KEPT:
                    amounts.clear()
                amount = amounts[pnl] = Decimal(pnl)
            emergency, manual, outcome, phase = kinds[kind]
            yield (entry_us, exit_us, session, amount, phase, outcome, emergency, manual, position)
            position += 1
    finally:
        rows.close()


class ClosedTradeFacts:
    """What the rules read of a close folded from the index, where a rule needs the trade
    itself (a streak step): built from the close's own facts; its order id, wanted only for
    a step's key, is read from the journal when asked for."""

    __slots__ = (
        "position", "timestamp", "outcome", "exit_timestamp", "net_pnl", "phase",
        "emergency_exit", "manual_override", "exit_session", "_trades", "_order_id",
    )

    def __init__(self, close: Close, trades: Sequence[TradeRecord]) -> None:
        entry_us, exit_us, self.exit_session, self.net_pnl, self.phase, self.outcome, emergency, manual, self.position = close
        self.timestamp = moment_of(entry_us)
        self.exit_timestamp = moment_of(exit_us)
        self.emergency_exit = bool(emergency)
        self.manual_override = bool(manual)
        self._trades = trades
        self._order_id: str | None = None

    @property
    def order_id(self) -> str:
        if self._order_id is None:
            self._order_id = self._trades[self.position].order_id
        return self._order_id

    @property
    def is_closed(self) -> bool:
        return self.outcome in CLOSED_OUTCOMES

    @property
    def is_flagged(self) -> bool:
        return self.emergency_exit or self.manual_override

    def __repr__(self) -> str:
        return f"ClosedTradeFacts(position={self.position}, outcome={self.outcome!r})"


def facts_of(close: Close, trades: Sequence[TradeRecord]) -> TradeRecord:
    """A close's record, or for a close read from the index the facts the rules read of it."""
    if isinstance(trades, RecordSequence):
        return ClosedTradeFacts(close, trades)  # type: ignore[return-value]
    return trades[close[-1]]


def whole_trade(position: int, trades: Sequence[TradeRecord]) -> TradeRecord:
    """The stint's last trade is kept (and saved with the fold) as its full record."""
    return trades[position]


def scaling_settings(settings: Settings, phase: Phase) -> ScalingSettings | None:
    return settings.phase_progression.scaling if phase is Phase.SCALING else None
