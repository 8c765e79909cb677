"""The entry gate: the one trading state and the one decision per entry (SPEC §7).

The state is folded from the phase system's records once per change; every entry, and
every `status` or `check-trade`, runs the same `EntryChain` over it. A collaborator of
`PhaseManager`, reached as `manager.gate`.

The pre-trade check asks two stats before reusing the state it last read: the desk's
generation (any write by any process under the logs lock changes it) and config.json
(hand edits). Everything else that changes the answer without a write (the session
turning, the clock stepping back, a second passing for hand edits of the logs) sends it
back to reading every record, as the placement of an order always does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from trading_bot.error_handling.circuit_breaker import BreakerState
from trading_bot.money import money_str
from trading_bot.phase.engine import PhaseState, scaling_settings
from trading_bot.phase.log_format import LogDamaged
from trading_bot.phase.record_types import ENTRY_REFUSED
from trading_bot.phase.position_sizing import EffectiveSize, effective_size
from trading_bot.entry_checks import CODE_LOGS, CODE_STATE, EntryChain, EntryDecision, OrderIntent, Refusal, TradingState, refused_without_state
from trading_bot.logging.structured_logger import new_file_refused

if TYPE_CHECKING:
    from trading_bot.phase.manager import PhaseManager

# How long a state read from every record is reused while nothing was written: edits by
# hand (not through the desk's writers) are seen within this, as the journal's quick
# refresh always saw files other than the two being written to.
REUSE_SECONDS: Final = 1.0


@dataclass(frozen=True)
class _ReadRecords:
    """What the last full read found, and the marks that say nothing has changed since."""

    trading: TradingState
    generation: tuple[int, int, int]
    config_key: tuple[int, int, int]
    config_version: int
    calendar_id: int
    read_at: datetime  # the clock then: an earlier reading (a step back) reads again
    session_ends: datetime  # the next session's open: the session's limits and P&L turn over
    read_monotonic: float


class EntryGate:
    """May a new entry be placed now, at what size: one state, one chain, one answer."""

    def __init__(self, manager: PhaseManager) -> None:
        self.manager = manager
        self._trading: TradingState | None = None
        self._trading_key: tuple[Any, ...] | None = None
        self._chain: EntryChain | None = None
        self._chain_version: tuple[int, int] | None = None
        self._read: _ReadRecords | None = None
        self._config_name = str(manager.config_path)
        self.reuse_seconds = REUSE_SECONDS
        # Whether the last decision came from the state read before (nothing had changed).
        self.reused = False

    def entry_decision(
        self, order: OrderIntent | None = None, *, broker_breaker: BreakerState | None = None, reread: bool = False
    ) -> EntryDecision:
        """May this entry (or, without an order, any entry) be placed now: the one §7 chain.

        The hot path: two stats (the desk's generation and config.json) say whether the
        state read last still holds; if anything was written since, each log is stat'ed
        and the journal's active files read again. `reread` (the placement of an order,
        under the lock) reads every record whatever the marks say.
        """
        manager = self.manager
        if order is None:
            order = OrderIntent(symbol="", action="", price=None, dollars=None, at=manager.now(), mode=manager.config.mode)
        read = self._read
        if read is not None and not reread:
            trading = self._unchanged_since(read)
            if trading is not None:
                self.reused = True
                return self.entry_chain().decide(order, trading, broker_breaker)
        self.reused = False
        self._read = None
        generation = manager.lock.generation() if not manager.read_only else None  # before anything is read
        config_key = self._config_key()
        started = time.monotonic()
        with manager.history.one_read(), manager.overrides.one_read(), manager.high_water.one_read():
            try:
                if not manager.read_only:
                    manager.mirror.reload_config()  # a hand edit (hours, limits) counts at once
                trading = self._trading_facts(quick=True)
            except (LogDamaged, ValueError, KeyError, OSError) as error:
                return refused_without_state(order, CODE_STATE, f"phase state cannot be read ({error}); trading halted")
            chain = self.entry_chain()
        if generation is not None and config_key is not None and trading.damage is None and trading.clock_behind is None:
            self._read = _ReadRecords(
                trading=trading,
                generation=generation,
                config_key=config_key,
                config_version=manager.config_version,
                calendar_id=id(manager.calendar),
                read_at=trading.at,
                session_ends=manager.calendar.session_closes_at(trading.session),
                read_monotonic=started,
            )
        return chain.decide(order, trading, broker_breaker)

    def with_journal_room(self, decision: EntryDecision) -> EntryDecision:
        """`decision`, refused as the entry would be when its record has nowhere to go (today's
        journal file missing, the folder taking no new file). Off the hot path: the bot's
        check, `status` and `check-trade` ask; an `--as-of` view answers for another moment."""
        if not decision.allowed or self.manager.read_only:
            return decision
        refused = new_file_refused(self.manager.paths.trades_dir, decision.state.at)
        if refused is None:
            return decision
        return decision.refused(Refusal(CODE_LOGS, f"the journal cannot be written ({refused}); entries halted"))

    def _unchanged_since(self, read: _ReadRecords) -> TradingState | None:
        """The state last read, at the clock's reading now, if nothing that decides it changed.

        Nothing written under the lock (the generation), config.json as it was, the same
        settings and calendar in this process, the clock not before the reading (a step
        back may put it behind the desk's records, or a journal line after it) and still
        in the same session, and less than `reuse_seconds` since every record was read.
        """
        manager = self.manager
        if time.monotonic() - read.read_monotonic >= self.reuse_seconds:
            return None
        if manager.lock.generation() != read.generation or self._config_key() != read.config_key:
            return None
        if manager.config_version != read.config_version or id(manager.calendar) != read.calendar_id:
            return None
        now = manager.now()
        if not read.read_at <= now < read.session_ends:
            return None
        trading = read.trading
        return trading if trading.at == now else trading.at_moment(now)

    def trading_state(self, *, quick: bool = False) -> TradingState:
        """The one trading state now, with whether a new entry at the size in force is allowed."""
        facts = self._trading_facts(quick=quick)
        default = OrderIntent(symbol="", action="", price=None, dollars=None, at=facts.at, mode=self.manager.config.mode)
        return self.entry_chain().decide(default, facts).state

    def _trading_facts(self, *, quick: bool = False) -> TradingState:
        """Phase, stint, size, entries, breaker, equity, session P&L: folded once per change."""
        state = self.manager.state(quick=quick)
        damage = self.manager.damage()
        clock_behind = self.manager.clock_behind()
        key = (id(state), state.session, damage, clock_behind, self.manager.config_version)
        if self._trading is not None and self._trading_key == key:
            if self._trading.at != state.now:
                self._trading = self._trading.at_moment(state.now)
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
            max_entries=self.manager.config.settings.phase_block(stint.phase).max_trades_per_day,
            breaker=stint.breaker,
            equity=progress.equity,
            equity_at_session_open=progress.equity_at_session_open(state.session),
            session_pnl=progress.real_session_pnl.get(state.session, Decimal(0)),
            damage=damage,
            clock_behind=clock_behind,
            mode=self.manager.config.mode,
        )
        self._trading_key = key
        return self._trading

    def _config_key(self) -> tuple[int, int, int] | None:
        """config.json's identity now (inode, size, mtime): any edit, by hand or not, changes it."""
        try:
            stat = os.stat(self._config_name)
        except OSError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def entry_chain(self) -> EntryChain:
        """The §7 chain for the settings in force (rebuilt when config.json changes)."""
        if self._chain is None or self._chain_version != (self.manager.config_version, id(self.manager.calendar)):
            risk = self.manager.config.settings.risk_management
            self._chain = EntryChain.standard(
                self.manager.calendar, max_daily_loss_pct=risk.max_daily_loss_pct, max_position_pct=risk.max_position_pct
            )
            self._chain_version = (self.manager.config_version, id(self.manager.calendar))
        return self._chain

    def size_in_force(self, state: PhaseState | None = None) -> EffectiveSize:
        state = state or self.manager.state()
        stint = state.ledger.stint
        return effective_size(stint.size, state.progress.equity, scaling_settings(self.manager.config.settings, stint.phase))

    # ---- recording what the bot does -----------------------------------------------

    def record_entry_refusal(self, operator_id: str, order: OrderIntent, decision: EntryDecision) -> bool:
        """One override-log line per refused entry; False when it could not be written.

        config.json is not rewritten for it: its recorded override-log head may lag by
        these lines, and the next real change of the mirror brings it up to date.
        """
        if self.manager.read_only or decision.refusal is None:
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
            with self.manager.lock.held():
                if self.manager.overrides.damage() is not None:
                    return False  # the damage is itself the reason entries are halted
                self.manager.overrides.append(ENTRY_REFUSED, payload, self.manager.now())
        except (LogDamaged, OSError):
            return False
        return True
