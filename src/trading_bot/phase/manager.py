"""The imperative shell of the phase system: the only writer of phase events.

Every decision follows one path: take the logs lock, re-read the records, decide with
the pure rules, append the history line (the commit point), then mirror the phase into
config.json. A crash between the last two is repaired at the next start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from trading_bot.clock import SYSTEM_CLOCK, Clock, FixedClock, ensure_utc
from trading_bot.config import Config
from trading_bot.error_handling.circuit_breaker import BreakerState
from trading_bot.durable_files import LogsLock, remove_stale_temp_files
from trading_bot.errors import JournalError
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.structured_logger import StructuredTradeLogger
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.market_calendar import MarketCalendar, format_local
from trading_bot.money import money_str
from trading_bot.phase.engine import (
    OVERRIDE_ATTEMPT,
    MemoryLog,
    PhaseEngine,
    PhaseState,
    Replay,
    metrics_snapshot,
    scaling_settings,
)
from trading_bot.phase.history_logger import ChainedLog, LogDamaged, LogLine
from trading_bot.phase.integrity import HISTORY_FILE, OVERRIDES_FILE, Integrity
from trading_bot.phase.mirror import ConfigMirror
from trading_bot.phase.ledger import (
    ADVANCE,
    BREAKER_ACK,
    OVERRIDE,
    RESET,
    SESSION_SUMMARY,
    TRANSITION,
    Ledger,
    entry_size,
    read_ledger,
)
from trading_bot.phase.models import GateResult, Phase
from trading_bot.phase.password import (
    BadPasswordHash,
    PasswordAttempt,
    PasswordNotConfigured,
    lockout_state,
    password_matches,
    secret_from_environment,
)
from trading_bot.phase.position_sizing import EffectiveSize, effective_size
from trading_bot.phase.trade_limiter import SessionEntries
from trading_bot.validator import (
    CODE_STATE,
    EntryChain,
    EntryDecision,
    OrderIntent,
    TradingState,
    refused_without_state,
)

HISTORY_DIR_VAR = "PHASE_HISTORY_DIR"

# Override-log line types.
ADVANCE_REFUSED = "advance_refused"
ENTRY_REFUSED = "entry_refused"
EMERGENCY_EXIT = "emergency_exit"
JOURNAL_TORN_TAIL = "journal_torn_tail_moved"

class PhaseRefused(Exception):
    """An operator command was refused (exit 1); the reason is one line."""


class PhaseUsageError(Exception):
    """The command itself is wrong (exit 2); nothing was recorded."""


@dataclass(frozen=True)
class PhasePaths:
    logs_dir: Path
    trades_dir: Path
    phase_dir: Path

    @classmethod
    def resolve(cls, config_path: Path, logs_dir: Path | None, environ: Mapping[str, str]) -> PhasePaths:
        logs = Path(logs_dir) if logs_dir is not None else Path(config_path).resolve().parent / "logs"
        override = environ.get(HISTORY_DIR_VAR) or None
        phase_dir = Path(override) if override else logs / "phase"
        return cls(logs_dir=logs, trades_dir=logs / "trades", phase_dir=phase_dir)


class PhaseManager(ConfigMirror, Integrity):
    """Reads the records, applies what is due, and carries out operator commands."""

    def __init__(
        self,
        config_path: Path | str,
        *,
        logs_dir: Path | None = None,
        clock: Clock = SYSTEM_CLOCK,
        environ: Mapping[str, str] | None = None,
        as_of: datetime | None = None,
        config: Config | None = None,
    ) -> None:
        self.config_path = Path(config_path)
        self.environ = dict(os.environ if environ is None else environ)
        self._config = config or Config.from_env_and_json(self.config_path, environ=self.environ)
        self.config_version = 0
        self.real_clock = clock
        self.as_of = ensure_utc(as_of) if as_of is not None else None
        self.clock: Clock = FixedClock(self.as_of) if self.as_of is not None else clock
        self.paths = PhasePaths.resolve(self.config_path, logs_dir, self.config.env)
        self.lock = LogsLock(self.paths.logs_dir)
        self.history = ChainedLog(self.paths.phase_dir / HISTORY_FILE, self.lock, clock)
        self.overrides = ChainedLog(self.paths.phase_dir / OVERRIDES_FILE, self.lock, clock)
        self.journal = TradeJournal(self.paths.trades_dir)
        hours = self.config.settings.trading.hours
        self.calendar = MarketCalendar(hours.start_time, hours.end_time, hours.timezone)
        self.engine = PhaseEngine(self.config.settings, self.calendar, self.config.mode)
        self.entries = SessionEntries(self.calendar)
        self._journal_generation = -1
        self._entries_seen = 0
        self._closes_seen = 0
        self._new_entry_sessions: set[Any] = set()
        self._replay: Replay | None = None
        self._state: PhaseState | None = None
        self._state_key: tuple[Any, ...] | None = None
        self._ledger_cache: Ledger | None = None
        self._ledger_key: tuple[Any, ...] | None = None
        self._bookkeeping_key: tuple[Any, ...] | None = None
        self._swept = False
        self._config_key = self._config_stat_key()
        self._config_fresh = True
        self._trading: TradingState | None = None
        self._trading_key: tuple[Any, ...] | None = None
        self._chain: EntryChain | None = None
        self._chain_version: tuple[int, int] | None = None

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, value: Config) -> None:
        self._config = value
        self.config_version += 1

    @property
    def read_only(self) -> bool:
        return self.as_of is not None

    def now(self) -> datetime:
        return self.clock.now()

    # ---- reading the records -------------------------------------------------------

    def sync_journal(self, *, quick: bool = False) -> bool:
        """Bring the journal up to date; fold new entries into the per-session counts.

        Folds from indexes into the journal, not from refresh deltas, so the bot may share
        this journal and refresh it itself. Returns whether anything changed.
        """
        journal = self.journal
        journal.refresh(quick=quick)
        if journal.generation != self._journal_generation:
            self._journal_generation = journal.generation
            self.entries = SessionEntries(self.calendar)
            self.entries.fold(journal.entry_log)
            self._entries_seen = len(journal.entry_log)
            self._closes_seen = len(journal.closed_trades)
            self._replay = None
            self._new_entry_sessions = set(self.entries.by_session)
            return True
        log = journal.entry_log
        new_entries = log[self._entries_seen :] if len(log) > self._entries_seen else []
        self._entries_seen = len(log)
        if new_entries:
            self.entries.fold(new_entries)
            self._new_entry_sessions.update(self.calendar.session_of(r.timestamp) for r in new_entries)
        closes = len(journal.closed_trades)
        changed = bool(new_entries) or closes != self._closes_seen
        self._closes_seen = closes
        return changed

    def _journal_view(self) -> tuple[Sequence[TradeRecord], dict[str, TradeRecord], SessionEntries]:
        if self.as_of is None:
            return self.journal.closed_trades, self.journal.entries, self.entries
        view = self.journal.as_of(self.as_of)
        entries = SessionEntries(self.calendar)
        entries.fold(view.entries.values())
        return view.closed_trades, view.entries, entries

    def _log_lines(self, log: ChainedLog) -> Sequence[LogLine]:
        return log.lines() if self.as_of is None else log.read_lines_as_of(self.as_of)

    def journal_problem(self) -> JournalError | None:
        return self.journal.problem(self.real_clock.now())

    def damage(self) -> str | None:
        """Damage that halts new entries: a damaged phase log, a cut history, a bad journal line."""
        for log in (self.history, self.overrides):
            problem = log.damage()
            if problem is not None:
                return f"phase log damaged: {problem.one_line()}; run `recover`"
        cut = self._mirror_ahead()
        if cut is not None:
            return f"{cut}; run `recover`"
        journal = self.journal_problem()
        if journal is not None:
            return f"journal has an invalid line: {journal.one_line()}; fix or remove it"
        return None

    def state(self, *, quick: bool = False) -> PhaseState:
        """The derived state now; applies what is due first unless read-only."""
        changed = self.sync_journal(quick=quick)
        now = self.now()
        if not self.read_only:
            session = self.calendar.session_of(now)
            key_before = (self.history.head(), len(self.overrides.lines()), session)
            if changed or self._state_key is None or self._state_key[:3] != key_before:
                self.apply_due()
        history_lines = self._log_lines(self.history)
        override_lines = self._log_lines(self.overrides)
        trades, entries, session_entries = self._journal_view()
        if self.read_only:
            sink = MemoryLog(history_lines, now)
            if self.damage() is None:
                self.engine.apply_due(sink, trades, session_entries, override_lines, entries, now, new_entry_sessions=set(session_entries.by_session))
            history_lines = sink.lines()
        key = (self.history.head(), len(self.overrides.lines()), self.calendar.session_of(now), self.journal.generation, len(trades), len(entries))
        if self._state is not None and self._state_key == key and not self.read_only:
            self._state.now = now
            return self._state
        if self._replay is not None and not self.read_only and self._replay.head_seq == (history_lines[-1].seq if history_lines else 0):
            state = self.engine.assemble(self._replay.ledger, self._replay.progress, session_entries, override_lines, entries, now)
        else:
            state = self.engine.state(history_lines, trades, entries, override_lines, now)
        self._state = state
        self._state_key = key
        return state

    # ---- applying what is due ------------------------------------------------------

    def apply_due(self) -> list[LogLine]:
        """Under the lock: torn tails, mirror repair, requests, edits, downgrades, summaries."""
        if self.read_only:
            return []
        written: list[LogLine] = []
        with self.lock.held():
            # Another process may have written while we waited for the lock: look again.
            self.history.reread()
            self.overrides.reread()
            self.reload_config()
            self.sync_journal()
            if not self._swept:
                for target in (self.config_path, self.history.checkpoint_path, self.overrides.checkpoint_path):
                    remove_stale_temp_files(target)
                self._swept = True
            self.mark_empty_logs()
            for log in (self.history, self.overrides):
                if log.torn_tail() is not None and log.damage() is None:
                    log.move_torn_tail_aside()
            self._set_aside_journal_torn_tails()
            if self.history.damage() is not None or self.overrides.damage() is not None or self._mirror_ahead():
                return written
            now = self.now()
            bookkeeping = (self.config_version, self.history.head(), self.overrides.head())
            if bookkeeping != self._bookkeeping_key:
                self._record_criteria_edits(now)
                self._repair_override_records()
            trades, entries, session_entries = self._journal_view()
            journal_valid = self.journal_problem() is None
            replay = self.engine.apply_due(
                self.history,
                trades,
                session_entries,
                self.overrides.lines(),
                entries,
                now,
                journal_valid=journal_valid,
                resume=self._replay,
                new_entry_sessions=self._new_entry_sessions,
            )
            self._new_entry_sessions = set()
            self._replay = replay
            written.extend(replay.written)
            if any(line.type == SESSION_SUMMARY for line in replay.written):
                self.history.write_checkpoint()
                self.overrides.write_checkpoint()
            if bookkeeping != self._bookkeeping_key or replay.written:
                self._record_config_request(now)
                self._write_mirror()
            self._bookkeeping_key = (self.config_version, self.history.head(), self.overrides.head())
        return written

    # ---- the folded history -----------------------------------------------------------

    def ledger(self, lines: Sequence[LogLine] | None = None) -> Ledger:
        """The history folded; cached per head, since every command asks for it."""
        lines = self.history.lines() if lines is None else lines
        key = (len(lines), lines[-1].hash if lines else "", self.config_version)
        if self._ledger_key != key:
            self._ledger_cache = read_ledger(lines, self.config.settings, self.config.mode)
            self._ledger_key = key
        assert self._ledger_cache is not None
        return self._ledger_cache

    def recorded_phase(self) -> Phase:
        return self.ledger().stint.phase

    def _repair_override_records(self) -> None:
        """An override whose history line committed but whose override-log line was lost."""
        recorded = {line.data.get("history_seq") for line in self.overrides.lines() if line.type == OVERRIDE_ATTEMPT}
        for line in self.history.lines():
            if line.type == TRANSITION and line.data.get("kind") in (OVERRIDE, RESET) and line.seq not in recorded:
                self._append_override(
                    OVERRIDE_ATTEMPT,
                    {
                        "operator_id": line.data.get("operator_id"),
                        "action": _action_name(line.data.get("kind") == RESET, Phase(line.data["to_phase"])),
                        "reason": line.data.get("reason"),
                        "outcome": "success",
                        "history_seq": line.seq,
                        "detail": "recorded at start-up: the override committed before a crash",
                    },
                    line.timestamp,
                )

    # ---- the pre-trade phase check (SPEC §7) ----------------------------------------

    def entry_decision(self, order: OrderIntent | None = None, *, broker_breaker: BreakerState | None = None) -> EntryDecision:
        """May this entry (or, without an order, any entry) be placed now: the one §7 chain.

        The hot path: each log is stat'ed once, the journal's active files once, and the
        answer comes from state folded in memory unless something changed on disk.
        """
        if order is None:
            order = OrderIntent(symbol="", action="", price=None, dollars=None, at=self.now(), mode=self.config.mode)
        with self.history.one_read(), self.overrides.one_read():
            try:
                if not self.read_only:
                    self.reload_config()  # one stat: a hand edit (hours, limits) counts at once
                trading = self._trading_facts(quick=True)
            except (LogDamaged, ValueError, KeyError, OSError) as error:
                return refused_without_state(order, CODE_STATE, f"phase state cannot be read ({error}); trading halted")
            return self.entry_chain().decide(order, trading, broker_breaker)

    def trading_state(self, *, quick: bool = False) -> TradingState:
        """The one trading state now, with whether a new entry at the size in force is allowed."""
        facts = self._trading_facts(quick=quick)
        default = OrderIntent(symbol="", action="", price=None, dollars=None, at=facts.at, mode=self.config.mode)
        return self.entry_chain().decide(default, facts).state

    def _trading_facts(self, *, quick: bool = False) -> TradingState:
        """Phase, stint, size, entries, breaker, equity, session P&L: folded once per change."""
        state = self.state(quick=quick)
        damage = self.damage()
        key = (id(state), state.session, damage, self.config_version)
        if self._trading is not None and self._trading_key == key:
            if self._trading.at != state.now:
                self._trading = replace(self._trading, at=state.now)
            return self._trading
        stint = state.ledger.stint
        progress = state.progress
        size = self.size_in_force(state)
        self._trading = TradingState(
            at=state.now,
            session=state.session,
            phase=stint.phase,
            stint_since=stint.since,
            size=size.size,
            size_refusal=size.refusal,
            entries_used=state.entries.count(state.session),
            max_entries=self.config.settings.phase_block(stint.phase).max_trades_per_day,
            breaker=stint.breaker,
            equity=progress.equity,
            equity_at_session_open=progress.equity_at_session_open(state.session),
            session_pnl=progress.real_session_pnl.get(state.session, Decimal(0)),
            damage=damage,
            mode=self.config.mode,
        )
        self._trading_key = key
        return self._trading

    def entry_chain(self) -> EntryChain:
        """The §7 chain for the settings in force (rebuilt when config.json changes)."""
        if self._chain is None or self._chain_version != (self.config_version, id(self.calendar)):
            risk = self.config.settings.risk_management
            self._chain = EntryChain.standard(
                self.calendar, max_daily_loss_pct=risk.max_daily_loss_pct, max_position_pct=risk.max_position_pct
            )
            self._chain_version = (self.config_version, id(self.calendar))
        return self._chain

    def size_in_force(self, state: PhaseState | None = None) -> EffectiveSize:
        state = state or self.state()
        stint = state.ledger.stint
        return effective_size(stint.size, state.progress.equity, scaling_settings(self.config.settings, stint.phase))

    # ---- recording what the bot does -----------------------------------------------

    def record_entry_refusal(self, operator_id: str, order: OrderIntent, decision: EntryDecision) -> bool:
        """One override-log line per refused entry; False when it could not be written.

        config.json is not rewritten for it: its recorded override-log head may lag by
        these lines, and the next real change of the mirror brings it up to date.
        """
        if self.read_only or decision.refusal is None:
            return False
        payload = {
            "operator_id": operator_id,
            "reason": decision.refusal.reason,
            "check": decision.refusal.code,
            "symbol": order.symbol,
            "action": order.action,
            "size": money_str(decision.dollars),
            "mode": order.mode,
        }
        try:
            with self.lock.held():
                if self.overrides.damage() is not None:
                    return False  # the damage is itself the reason entries are halted
                self.overrides.append(ENTRY_REFUSED, payload, self.now())
        except (LogDamaged, OSError):
            return False
        return True

    def _set_aside_journal_torn_tails(self) -> None:
        """Under the lock no journal write is in flight: an unterminated last line in any
        journal file is a crash's leftover, kept in a recovery file and recorded."""
        torn = self.journal.torn_tails()
        if not torn:
            return
        writer = StructuredTradeLogger(self.paths.trades_dir, self.lock)
        for file in torn:
            fragment = writer.set_aside_torn_tail(Path(file), self.now())
            if fragment is not None and self.overrides.damage() is None:
                self.record_journal_repair(fragment, "bot")
        self.sync_journal()

    def record_journal_repair(self, fragment: Path, operator_id: str) -> None:
        """The journal writer set a crash's unterminated line aside before appending."""
        payload = {"operator_id": operator_id, "recovery_file": str(fragment), "reason": "torn journal line moved aside"}
        try:
            self._append_override(JOURNAL_TORN_TAIL, payload, self.now())
        except LogDamaged:
            pass

    def record_emergency_exit(self, record: TradeRecord, operator_id: str) -> None:
        payload = {
            "operator_id": operator_id,
            "order_id": record.order_id,
            "symbol": record.symbol,
            "net_pnl": money_str(record.net_pnl or Decimal(0)),
            "phase": (record.phase or self.recorded_phase()).value,
            "reason": "emergency exit (outside the strategy)",
        }
        try:
            self._append_override(EMERGENCY_EXIT, payload, self.now())
        except LogDamaged:
            pass  # exits are never blocked, even when the log cannot take the record

    # ---- operator commands ---------------------------------------------------------

    def validate_transition(self, target: Phase) -> GateResult:
        state = self.state()
        current = state.phase
        if target is not current.next:
            raise PhaseRefused(_one_at_a_time(current, target))
        gate = state.gate()
        assert gate is not None
        return gate

    def advance(
        self,
        target: Phase,
        operator_id: str,
        confirm: Callable[[GateResult], bool],
    ) -> LogLine:
        """Advance one rung after a fresh evaluation, the operator's yes, and a re-check."""
        state = self.state()
        current = state.phase
        refusal = self._advance_blocker(state)
        if refusal is not None:
            self._record_advance_refusal(operator_id, target, [refusal])
            raise PhaseRefused(refusal)
        if target is not current.next:
            self._record_advance_refusal(operator_id, target, [_one_at_a_time(current, target)])
            raise PhaseRefused(_one_at_a_time(current, target))
        gate = state.gate()
        assert gate is not None
        if not gate.ready:
            self._record_advance_refusal(operator_id, target, gate.failures)
            raise PhaseRefused("gate not passed: " + "; ".join(gate.failures))
        if not confirm(gate):
            self._record_advance_refusal(operator_id, target, ["operator answered no at the confirmation prompt"])
            raise PhaseRefused("advance cancelled by the operator")
        with self.lock.held():
            self._state_key = None
            state = self.state()
            refusal = self._advance_blocker(state)
            gate = state.gate()
            if refusal is None and (state.phase is not current or gate is None or not gate.ready):
                refusal = "the records changed while confirming and the gate no longer passes"
            if refusal is not None:
                self._record_advance_refusal(operator_id, target, [refusal])
                raise PhaseRefused(refusal)
            assert gate is not None
            line = self._commit_transition(
                kind=ADVANCE,
                target=target,
                size=entry_size(self.config.settings, target),
                operator_id=operator_id,
                reason=f"gates passed for {current.value} → {target.value}",
                extra={"criteria": [c.to_json() for c in gate.criteria], "metrics": metrics_snapshot(state.progress)},
            )
        return line

    def _advance_blocker(self, state: PhaseState) -> str | None:
        damage = self.damage()
        if damage is not None:
            return damage
        if state.ledger.stint.breaker.tripped:
            return f"phase circuit breaker tripped ({state.ledger.stint.breaker.reason}); acknowledge it first"
        return None

    def _record_advance_refusal(self, operator_id: str, target: Phase, failures: list[str]) -> None:
        try:
            self._append_override(
                ADVANCE_REFUSED,
                {"operator_id": operator_id, "to_phase": target.value, "failures": failures, "reason": "; ".join(failures)},
                self.now(),
            )
        except LogDamaged:
            pass

    def override(
        self,
        *,
        target: Phase | None,
        reset_progress: bool,
        operator_id: str,
        reason: str,
        read_password: Callable[[], str],
    ) -> LogLine:
        """Move to any phase (or reset the stint) with the password; every attempt is one line."""
        if reset_progress == (target is not None):
            raise PhaseUsageError("give exactly one of --to or --reset-progress")
        if not reason.strip():
            raise PhaseUsageError("--reason must not be empty")
        if not operator_id.strip():
            raise PhaseUsageError("--operator must not be empty")
        if target is self.ledger().stint.phase:
            raise PhaseUsageError(f"already in {target.value}; use --reset-progress to start a new stint")
        state = self.state()
        current = state.phase
        if target is current:
            raise PhaseUsageError(f"already in {current.value}; use --reset-progress to start a new stint")
        action = _action_name(reset_progress, target or current)
        # Everything that refuses without a password is settled before the prompt, and the
        # prompt itself runs without the lock, so a slow typist never blocks the bot.
        damage = self.damage()
        if damage is not None:
            with self.lock.held():
                if self.overrides.damage() is None:
                    self._record_attempt(operator_id, action, reason, "refused", damage)
            raise PhaseRefused(damage)
        self._refuse_if_locked_out(operator_id, action, reason)
        try:
            secret = secret_from_environment(self.config.env)
        except (PasswordNotConfigured, BadPasswordHash) as error:
            with self.lock.held():
                self._record_attempt(operator_id, action, reason, "not_configured", str(error))
            raise PhaseRefused(str(error)) from None
        candidate = read_password()
        if not candidate:
            raise PhaseUsageError("empty password; nothing recorded")
        matched = password_matches(candidate, secret)
        del candidate
        with self.lock.held():
            self._refuse_if_locked_out(operator_id, action, reason)
            if not matched:
                self._record_attempt(operator_id, action, reason, "wrong_password", "wrong password")
                raise PhaseRefused("wrong password")
            self._state_key = None
            state = self.state()
            stint = state.ledger.stint
            if state.phase is not current:
                moved = f"the phase changed to {state.phase.value} while the password was typed; nothing applied"
                self._record_attempt(operator_id, action, reason, "refused", moved)
                raise PhaseRefused(moved)
            if reset_progress:
                line = self._commit_transition(kind=RESET, target=current, size=stint.size, operator_id=operator_id, reason=reason)
            else:
                assert target is not None
                line = self._commit_transition(
                    kind=OVERRIDE,
                    target=target,
                    size=entry_size(self.config.settings, target),
                    operator_id=operator_id,
                    reason=reason,
                )
            self._record_attempt(operator_id, action, reason, "success", "override applied", history_seq=line.seq)
        return line

    def _append_override(self, kind: str, payload: dict[str, Any], timestamp: datetime | None = None) -> LogLine:
        """Append to the override log and mirror its head, so cutting its end is noticed."""
        with self.lock.held():
            line = self.overrides.append(kind, payload, timestamp)
            self._write_mirror()
        return line

    def _refuse_if_locked_out(self, operator_id: str, action: str, reason: str) -> None:
        """5 wrong passwords in 15 minutes lock overrides for 15 minutes (from the override log)."""
        with self.lock.held():
            attempts = [
                PasswordAttempt(line.timestamp, line.data["outcome"])
                for line in self.overrides.lines()
                if line.type == OVERRIDE_ATTEMPT and line.data.get("outcome") in ("success", "wrong_password", "locked_out")
            ]
            locked = lockout_state(attempts, self.now())
            if locked.locked_until is None:
                return
            message = f"overrides locked until {format_local(locked.locked_until, self.calendar.tz)} after 5 wrong passwords"
            self._record_attempt(operator_id, action, reason, "locked_out", message)
        raise PhaseRefused(message)

    def _record_attempt(self, operator_id: str, action: str, reason: str, outcome: str, detail: str, history_seq: int | None = None) -> None:
        payload: dict[str, Any] = {
            "operator_id": operator_id,
            "action": action,
            "reason": reason,
            "outcome": outcome,
            "detail": detail,
        }
        if history_seq is not None:
            payload["history_seq"] = history_seq
        self._append_override(OVERRIDE_ATTEMPT, payload, self.now())

    def acknowledge(self, operator_id: str, note: str | None) -> LogLine | None:
        """Clear a tripped breaker; with nothing tripped, record nothing."""
        with self.lock.held():
            state = self.state()
            if self.history.damage() is not None:
                raise PhaseRefused(f"phase log damaged: {self.history.damage().one_line()}; run `recover` first")  # type: ignore[union-attr]
            breaker = state.ledger.stint.breaker
            if not breaker.tripped:
                return None
            line = self.history.append(
                BREAKER_ACK,
                {"operator_id": operator_id, "note": note, "cleared_reason": breaker.reason},
                self.now(),
            )
            self._after_commit()
        return line

    def _commit_transition(
        self,
        *,
        kind: str,
        target: Phase,
        size: Decimal,
        operator_id: str,
        reason: str,
        extra: Mapping[str, Any] | None = None,
    ) -> LogLine:
        """One history line carries the new phase, size, breaker and mode (the commit point)."""
        stint = self.ledger().stint
        mode = "paper" if target is Phase.EXPERIENCE else self.config.mode
        payload = {
            "kind": kind,
            "from_phase": stint.phase.value,
            "to_phase": target.value,
            "position_size": money_str(size),
            "previous_size": money_str(stint.size),
            "breaker": stint.breaker.to_json(),
            "mode": mode,
            "operator_id": operator_id,
            "reason": reason,
            **(extra or {}),
        }
        line = self.history.append(TRANSITION, payload, self.now())
        if mode == "paper" and self.config.mode == "live":
            self.config = self.config.with_updates({("trading", "mode"): "paper"})
        self._after_commit()
        return line

    def _after_commit(self) -> None:
        self._replay = None
        self._state_key = None
        self._write_mirror()







def _one_at_a_time(current: Phase, target: Phase) -> str:
    if current.next is None:
        return f"phases advance one at a time; use override ({current.value} is the top of the ladder)"
    return f"phases advance one at a time; use override (from {current.value} the next phase is {current.next.value}, not {target.value})"


def _action_name(reset: bool, target: Phase) -> str:
    return "reset_progress" if reset else f"to:{target.value}"
