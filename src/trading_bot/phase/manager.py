"""The imperative shell of the phase system: the only writer of phase events.

Every decision follows one path: take the logs lock, re-read the records, decide with
the pure rules, append the history line (the commit point), then mirror the phase into
config.json. A crash between the last two is repaired at the next start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from trading_bot.clock import CLOCK_TOLERANCE, SYSTEM_CLOCK, Clock, FixedClock, ensure_utc, format_timestamp
from trading_bot.config import SETTINGS_CACHE_FILE, Config, SettingsCache
from trading_bot.durable_files import LogsLock, NotARegularFile, read_regular, remove_stale_temp_files
from trading_bot.errors import InputError, JournalError
from trading_bot.high_water import HighWater
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.structured_logger import StructuredTradeLogger
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.market_calendar import MarketCalendar
from trading_bot.money import money_str
from trading_bot.phase.engine import MemoryLog, PhaseEngine, PhaseState, Replay
from trading_bot.phase.chained_log import ChainedLog
from trading_bot.phase.log_format import LogDamaged, LogLine, LogProblem
# PhaseRefused and PhaseUsageError are imported from here by the CLI and scripts.
from trading_bot.phase.commands import OperatorCommands, PhaseRefused, PhaseUsageError, action_name  # noqa: F401
from trading_bot.phase.entry_gate import EntryGate
from trading_bot.phase.integrity import Integrity
from trading_bot.phase.mirror import ConfigMirror
from trading_bot.phase.ledger import Ledger, read_ledger
from trading_bot.phase.models import GateResult, Phase
from trading_bot.phase.snapshot import (
    DERIVED_DIR,
    ENTRY_SESSIONS_FILE,
    SNAPSHOT_VERSION,
    STATE_FILE,
    EntrySessionsKey,
    SavedEntrySessions,
    SnapshotKey,
    SnapshotUnusable,
    StateSnapshot,
    settings_digest,
)
from trading_bot.phase.record_types import (
    CLOCK_STEPPED_BACK,
    EMERGENCY_EXIT,
    HISTORY_FILE,
    JOURNAL_TORN_TAIL,
    OVERRIDE,
    OVERRIDE_ATTEMPT,
    OVERRIDES_FILE,
    RESET,
    SESSION_SUMMARY,
    SIZE_CHANGE,
    SUGGESTION,
    TRANSITION,
)
from trading_bot.phase.trade_limiter import SessionEntries

HISTORY_DIR_VAR = "PHASE_HISTORY_DIR"

# What the engine's catch-up may hold back until the end of `apply_due` (one fsync for
# the lot): nothing outside the call acts on these before it returns. A downgrade (a
# transition) is written at once, since the bot obeys it.
CATCH_UP_TYPES = frozenset({SESSION_SUMMARY, SIZE_CHANGE, SUGGESTION})

@dataclass(frozen=True)
class PhasePaths:
    logs_dir: Path
    trades_dir: Path
    phase_dir: Path

    @staticmethod
    def logs_of(config_path: Path, logs_dir: Path | None) -> Path:
        return Path(logs_dir) if logs_dir is not None else Path(config_path).resolve().parent / "logs"

    @classmethod
    def resolve(cls, config_path: Path, logs_dir: Path | None, environ: Mapping[str, str]) -> PhasePaths:
        logs = cls.logs_of(config_path, logs_dir)
        override = environ.get(HISTORY_DIR_VAR) or None
        phase_dir = Path(override) if override else logs / "phase"
        return cls(logs_dir=logs, trades_dir=logs / "trades", phase_dir=phase_dir)


class PhaseManager:
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
        trust_cached_settings: bool = True,
    ) -> None:
        self.config_path = Path(config_path)
        self.environ = dict(os.environ if environ is None else environ)
        self.as_of = ensure_utc(as_of) if as_of is not None else None
        # The settings validated from this config.json text last time (a cache `verify` never trusts).
        self.settings_cache = SettingsCache(
            PhasePaths.logs_of(self.config_path, logs_dir) / DERIVED_DIR / SETTINGS_CACHE_FILE, writable=self.as_of is None
        )
        self._config = config or Config.from_env_and_json(
            self.config_path, environ=self.environ, settings_cache=self.settings_cache if trust_cached_settings else None
        )
        self.config_version = 0
        self.real_clock = clock
        self.clock: Clock = FixedClock(self.as_of) if self.as_of is not None else clock
        self.paths = PhasePaths.resolve(self.config_path, logs_dir, self.config.env)
        self.lock = LogsLock(self.paths.logs_dir)
        self.high_water = HighWater.beside(self.lock)
        # Who is named when this process notices the clock behind the desk's records
        # (asked only then: the bot's default, or the CLI's command and login name).
        self.noticed_by: Callable[[], str] = lambda: "bot"
        self._clock_step_noted: datetime | None = None
        self.history = ChainedLog(self.paths.phase_dir / HISTORY_FILE, self.lock, clock, notes=not self.read_only)
        self.overrides = ChainedLog(self.paths.phase_dir / OVERRIDES_FILE, self.lock, clock, notes=not self.read_only)
        self.journal = TradeJournal(self.paths.trades_dir, lock=self.lock, read_only=self.read_only)
        hours = self.config.settings.trading.hours
        self.calendar = MarketCalendar(hours.start_time, hours.end_time, hours.timezone)
        self.engine = PhaseEngine(self.config.settings, self.calendar, self.config.mode)
        self.entries = SessionEntries(self.calendar)
        self._journal_generation = -1
        # Set by a command after its one full look at the journal (`cli`): its later looks
        # stat the folder and the files being written only (`TradeJournal.refresh(quick=)`).
        self.looked_in_full = False
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
        # config.json could not take the mirror of a change already committed to a phase log
        # (its folder takes no new file, say): the change stands; the mirror catches up.
        self.mirror_behind: OSError | None = None
        self.snapshot = StateSnapshot(self.paths.logs_dir / DERIVED_DIR / STATE_FILE)
        self.entry_sessions = SavedEntrySessions(self.paths.logs_dir / DERIVED_DIR / ENTRY_SESSIONS_FILE)
        self.entry_sessions_note = "not read"
        self._entry_sessions_saved: EntrySessionsKey | None = None
        # What became of the saved state at the last replay (resumed, or why not): for people and tests.
        self.snapshot_note = "not read"
        self._snapshot_saved: SnapshotKey | None = None
        self._settings_digest: str | None = None
        self.mirror = ConfigMirror(self)
        self.integrity = Integrity(self)
        self.commands = OperatorCommands(self)
        self.gate = EntryGate(self)

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
        journal.refresh(quick=quick or self.looked_in_full)
        if journal.generation != self._journal_generation:
            self._journal_generation = journal.generation
            self._entries_seen = len(journal.entry_log)
            self.entries = self._count_entries()
            self._closes_seen = len(journal.closed_trades)
            self._replay = None
            self._new_entry_sessions = set(self.entries.by_session)
            return True
        log = journal.entry_log
        new_entries = log[self._entries_seen :] if len(log) > self._entries_seen else []
        self._entries_seen = len(log)
        if new_entries:
            self.entries.fold(new_entries)
            self._new_entry_sessions.update(self.calendar.entry_session(r) for r in new_entries)
        closes = len(journal.closed_trades)
        changed = bool(new_entries) or closes != self._closes_seen
        self._closes_seen = closes
        return changed

    def _journal_view(self) -> tuple[Sequence[TradeRecord], Mapping[str, TradeRecord], SessionEntries]:
        if self.as_of is None:
            return self.journal.closed_trades, self.journal.entries, self.entries
        view = self.journal.as_of(self.as_of)
        return view.closed_trades, view.entries, SessionEntries.of(self.calendar, view.entries)

    def log_lines(self, log: ChainedLog) -> Sequence[LogLine]:
        return log.lines() if self.as_of is None else log.read_lines_as_of(self.as_of)

    def trusted_now(self) -> datetime:
        """The later of the real clock and the desk's high-water: no record the desk wrote
        itself is later than this (beyond the high-water's step), whatever the clock did."""
        now = self.real_clock.now()
        high = self.high_water.read()
        return now if high is None or high <= now else high

    def journal_problem(self) -> JournalError | None:
        """An invalid journal line, or one dated after `trusted_now()` plus the tolerance."""
        return self.journal.problem(self.trusted_now())

    def clock_behind(self) -> str | None:
        """Why entries wait for the clock: it reads more than the clock tolerance before the
        latest instant this desk recorded (an NTP step back, a clock reset). Sessions and
        trading hours are judged by a clock just found wrong, so no new entry is placed on
        it; exits and every command carry on. The first sighting is recorded once."""
        if self.read_only:
            return None
        now = self.real_clock.now()
        high = self.high_water.read()
        if high is None or now >= high - CLOCK_TOLERANCE:
            return None
        self._note_clock_step(now, high)
        return (
            f"the clock reads {format_timestamp(now)}, {_duration(high - now)} before the latest instant "
            f"this desk recorded ({format_timestamp(high)}); entries wait until the clock reaches "
            f"{format_timestamp(high - CLOCK_TOLERANCE)} (check the system clock)"
        )

    def _note_clock_step(self, now: datetime, high: datetime) -> None:
        """One `clock_stepped_back` line per high-water the clock was seen behind."""
        if self._clock_step_noted == high:
            return
        mark = format_timestamp(high)
        with self.lock.held():
            self.overrides.reread()
            if self.overrides.damage() is not None:
                return  # the damage halts entries itself; the note waits for `recover`
            noted = any(
                line.type == CLOCK_STEPPED_BACK and line.data.get("high_water") == mark for line in self.overrides.lines()
            )
            if not noted:
                payload = {
                    "clock_reading": format_timestamp(now),
                    "high_water": mark,
                    "behind_seconds": int((high - now).total_seconds()),
                    "noticed_by": self.noticed_by(),
                    "reason": "the clock reads earlier than the latest instant this desk recorded; new entries wait for it",
                }
                try:
                    self.append_override(CLOCK_STEPPED_BACK, payload)
                except (LogDamaged, OSError):
                    return  # not recorded: the next look tries again
        self._clock_step_noted = high

    def damage(self) -> str | None:
        """Damage that halts new entries: a damaged phase log, a cut history, a bad journal line."""
        found = self._log_damage()
        if found is not None:
            # config.json was read when the desk opened and the logs without the lock: a
            # writer may have appended (a batch still landing) and mirrored the head in
            # between. Damage is only damage when it is still there under the lock.
            with self.lock.held():
                self.history.reread()
                self.overrides.reread()
                self.mirror.reload_config(exact=True)
                found = self._log_damage()
        if found is not None:
            return found
        journal = self.journal_problem()
        if journal is not None:
            return f"journal has an invalid line: {journal.one_line()}; fix or remove it"
        return None

    def _log_damage(self) -> str | None:
        for log in (self.history, self.overrides):
            problem = log.damage()
            if problem is not None:
                return f"phase log damaged: {problem.one_line()}; run `recover`"
        cut = self.mirror.cut_log()
        return None if cut is None else f"{cut}; run `recover`"

    def state(self, *, quick: bool = False) -> PhaseState:
        """The derived state now; applies what is due first unless read-only."""
        changed = self.sync_journal(quick=quick)
        now = self.now()
        if not self.read_only:
            session = self.calendar.session_of(now)
            key_before = (self.history.head(), len(self.overrides.lines()), session)
            if changed or self._state_key is None or self._state_key[:3] != key_before:
                self.apply_due()
        history_lines = self.log_lines(self.history)
        override_lines = self.log_lines(self.overrides)
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
            self.mirror.reload_config(exact=True)
            self.config.cache_settings()
            # Quick: what a writer appended or created since the caller's look (a look in
            # full is forced when the last one is more than a second old).
            self.sync_journal(quick=True)
            if not self._swept:
                swept = (self.config_path, self.history.checkpoint_path, self.overrides.checkpoint_path, self.high_water.path)
                for target in swept:
                    remove_stale_temp_files(target)
                for cache in (self.snapshot.path, self.entry_sessions.path):
                    try:
                        remove_stale_temp_files(cache)
                    except NotARegularFile:
                        pass  # a link to a device: the cache is unusable and unsaved, never a halt
                self._swept = True
            self.mirror.mark_empty_logs()
            for log in (self.history, self.overrides):
                if log.torn_tail() is not None and log.damage() is None:
                    log.move_torn_tail_aside()
            self._set_aside_journal_torn_tails()
            if self.history.damage() is not None or self.overrides.damage() is not None or self.mirror.cut_log():
                return written
            now = self.now()
            bookkeeping = (self.config_version, self.history.head(), self.overrides.head())
            if bookkeeping != self._bookkeeping_key:
                self.mirror.record_criteria_edits(now)
                self._repair_override_records()
            trades, entries, session_entries = self._journal_view()
            journal_valid = self.journal_problem() is None
            resume = self._replay
            if resume is None or resume.head_seq != self.history.head()[0]:
                # Another process wrote the history since: the state it saved may be its fold.
                resume = self._resume_from_snapshot(trades, now) or resume
            # The catch-up's summaries, size steps and suggestion reach the disk together
            # (one fsync) when the block ends, before the checkpoint, the mirror and the
            # lock release; a downgrade is written at once with whatever precedes it.
            try:
                with self.history.batched(CATCH_UP_TYPES):
                    replay = self.engine.apply_due(
                        self.history,
                        trades,
                        session_entries,
                        self.overrides.lines(),
                        entries,
                        now,
                        journal_valid=journal_valid,
                        resume=resume,
                        new_entry_sessions=self._new_entry_sessions,
                    )
            except BaseException:
                # The resumed fold went on in place past a line the disk refused (a downgrade
                # not written): kept, it would count those trades as handled and never fire
                # it. The next look applies what is due again, from the records.
                self._replay = None
                self._state, self._state_key = None, None
                raise
            self._new_entry_sessions = set()
            self._replay = replay
            written.extend(replay.written)
            if any(line.type == SESSION_SUMMARY for line in replay.written):
                self.history.write_checkpoint()
                self.overrides.write_checkpoint()
            if bookkeeping != self._bookkeeping_key or replay.written:
                self.mirror.record_config_request(now)
                self.mirror.write()
            self._bookkeeping_key = (self.config_version, self.history.head(), self.overrides.head())
            self._save_snapshot(replay, trades)
            self._save_entry_sessions()
        return written

    # ---- the saved fold (a cache of the replay between processes) ----------------------

    def _snapshot_key(self, closes: int) -> SnapshotKey:
        """The key of a fold of the first `closes` closed trades on the records as they are."""
        if self._settings_digest is None:
            self._settings_digest = settings_digest(self.engine.settings, self.engine.mode)
        seq, head_hash = self.history.head()
        return SnapshotKey(
            version=SNAPSHOT_VERSION,
            settings=self._settings_digest,
            history_seq=seq,
            history_hash=head_hash,
            journal_epoch=self.journal.epoch,
            closes=closes,
            entries=len(self.journal.entry_log),
        )

    def _entry_sessions_key(self) -> EntrySessionsKey:
        if self._settings_digest is None:
            self._settings_digest = settings_digest(self.engine.settings, self.engine.mode)
        return EntrySessionsKey(
            version=SNAPSHOT_VERSION, settings=self._settings_digest, journal_epoch=self.journal.epoch, entries=self._entries_seen
        )

    def _count_entries(self) -> SessionEntries:
        """Entries per session over the whole journal: the counts the last process saved plus
        the entries after them, else one grouping of the journal (a read-only view never
        reads the saved counts: it counts its own picture)."""
        journal = self.journal
        if not self.read_only:
            try:
                saved, rows = self.entry_sessions.load(self._entry_sessions_key())
            except SnapshotUnusable as reason:
                self.entry_sessions_note = f"counted in full: {reason}"
            else:
                counted = SessionEntries.restored(self.calendar, rows)
                counted.fold(journal.entry_log[saved.entries : self._entries_seen])
                self.entry_sessions_note = f"resumed after {saved.entries} entries"
                self._entry_sessions_saved = saved
                return counted
        return SessionEntries.of(self.calendar, journal.entries)

    def _save_entry_sessions(self) -> None:
        """Save the entry counts at this committed point, unless the file already holds them."""
        key = self._entry_sessions_key()
        if key.same_counts(self._entry_sessions_saved):
            return
        try:
            self.entry_sessions.save(key, self.entries)
        except (OSError, ValueError) as error:
            self.entry_sessions_note = f"not saved: {getattr(error, 'strerror', None) or error}"
            return
        self._entry_sessions_saved = key

    def _resume_from_snapshot(self, trades: Sequence[TradeRecord], now: datetime) -> Replay | None:
        """The fold saved by the last process, if it is this records' fold; else None (full replay)."""
        current = self._snapshot_key(len(trades))
        engine = self.engine
        try:
            saved, replay = self.snapshot.load(
                current, now, lambda: read_ledger(self.history.lines(), engine.settings, engine.mode), engine.new_progress
            )
        except SnapshotUnusable as reason:
            self.snapshot_note = f"replayed in full: {reason}"
            return None
        self.snapshot_note = f"resumed after {replay.index} closed trades"
        self._snapshot_saved = saved
        return replay

    def _save_snapshot(self, replay: Replay, trades: Sequence[TradeRecord]) -> None:
        """Save the fold at this committed point, unless the file already holds it."""
        key = self._snapshot_key(replay.index)
        if replay.head_seq != key.history_seq or key.same_fold(self._snapshot_saved):
            return
        folded_through = trades[replay.index - 1].exit_timestamp if replay.index else None
        try:
            self.snapshot.save(key, replay, folded_through)
        except (OSError, ValueError) as error:
            # A cache that cannot be written costs the next start time, never an answer.
            self.snapshot_note = f"not saved: {getattr(error, 'strerror', None) or error}"
            return
        self._snapshot_saved = key

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
                self.append_override(
                    OVERRIDE_ATTEMPT,
                    {
                        "operator_id": line.data.get("operator_id"),
                        "action": action_name(line.data.get("kind") == RESET, Phase(line.data["to_phase"])),
                        "reason": line.data.get("reason"),
                        "outcome": "success",
                        "history_seq": line.seq,
                        "detail": "recorded at start-up: the override committed before a crash",
                    },
                    line.timestamp,
                )

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
            self.append_override(JOURNAL_TORN_TAIL, payload, self.now())
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
            self.append_override(EMERGENCY_EXIT, payload, self.now())
        except LogDamaged:
            pass  # exits are never blocked, even when the log cannot take the record

    # ---- operator commands (a collaborator) ------------------------------------------

    def validate_transition(self, target: Phase) -> GateResult:
        return self.commands.validate_transition(target)

    def advance(self, target: Phase, operator_id: str, confirm: Callable[[GateResult], bool]) -> LogLine:
        return self.commands.advance(target, operator_id, confirm)

    def override(
        self, *, target: Phase | None, reset_progress: bool, operator_id: str, reason: str, read_password: Callable[[], str]
    ) -> LogLine:
        return self.commands.override(
            target=target, reset_progress=reset_progress, operator_id=operator_id, reason=reason, read_password=read_password
        )

    def acknowledge(self, operator_id: str, note: str | None) -> LogLine | None:
        return self.commands.acknowledge(operator_id, note)

    def append_override(self, kind: str, payload: dict[str, Any], timestamp: datetime | None = None) -> LogLine:
        """Append to the override log and mirror its head, so cutting its end is noticed.

        Whatever the path (a command's clock-step note may come before anything else is
        applied), a log's first line is preceded by its empty head in config.json."""
        with self.lock.held():
            self.mirror.mark_empty_logs()
            line = self.overrides.append(kind, payload, timestamp)
            self._mirror_committed()
        return line

    def adopt_settings(self) -> None:
        """New criteria or hours take effect: rebuild what was derived with the old ones."""
        hours = self.config.settings.trading.hours
        self.calendar = MarketCalendar(hours.start_time, hours.end_time, hours.timezone)
        self.engine = PhaseEngine(self.config.settings, self.calendar, self.config.mode)
        self._settings_digest = None
        self._journal_generation = -1
        self._replay = None
        self._state = None
        self._state_key = None
        self._ledger_key = None

    # ---- config.json and the records' integrity (collaborators) ------------------------

    def pending_request(self) -> Phase | None:
        """A hand edit of `current_phase` that no command has confirmed yet."""
        return self.mirror.pending_request()

    def verify(self) -> list[LogProblem]:
        return self.integrity.verify()

    def settings_cache_problem(self) -> LogProblem | None:
        """For `verify`: a cached copy of the settings, kept for this very config.json text,
        that is not what the text validates to (forged or damaged)."""
        try:
            text = read_regular(self.config_path).decode("utf-8").removeprefix("\ufeff")
        except (OSError, UnicodeDecodeError):
            return None
        cached = self.settings_cache.load(text)
        if cached is None:
            return None
        try:
            validated = Config.from_text(self.config_path, text).settings  # the text itself, never the cache
        except InputError:
            return None  # config.json itself is refused, with its own message
        if cached == validated:
            return None
        return LogProblem(
            f"{DERIVED_DIR}/{SETTINGS_CACHE_FILE}", None,
            "holds other settings than config.json validates to (forged or damaged); it is only a cache: delete it",
        )

    def recover(self) -> list[str]:
        return self.integrity.recover()

    def after_commit(self) -> None:
        """After a line that commits a change (a transition, an acknowledgement, an override
        log line): the log holds it, so config.json's mirror of it is bookkeeping. A mirror
        the disk refuses does not make the committed change look failed (an operator would
        retry it): it is kept in `mirror_behind` and written at the next look that can."""
        self._replay = None
        self._state_key = None
        self._mirror_committed()

    def _mirror_committed(self) -> None:
        try:
            self.mirror.write()
        except OSError as error:
            self.mirror_behind = error


def _duration(span: timedelta) -> str:
    """A step back in words a trader reads at a glance (`3 h 0 min`, `9 days`)."""
    seconds = int(span.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min {seconds % 60} s"
