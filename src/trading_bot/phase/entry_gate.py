"""The entry gate: the one trading state and the one decision per entry (SPEC §7).

The state is folded from the phase system's records once per change; every entry, and
every `status` or `check-trade`, runs the same `EntryChain` over it. A collaborator of
`PhaseManager`, reached as `manager.gate`.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from trading_bot.error_handling.circuit_breaker import BreakerState
from trading_bot.money import money_str
from trading_bot.phase.engine import PhaseState, scaling_settings
from trading_bot.phase.log_format import LogDamaged
from trading_bot.phase.record_types import ENTRY_REFUSED
from trading_bot.phase.position_sizing import EffectiveSize, effective_size
from trading_bot.entry_checks import CODE_STATE, EntryChain, EntryDecision, OrderIntent, TradingState, refused_without_state

if TYPE_CHECKING:
    from trading_bot.phase.manager import PhaseManager


class EntryGate:
    """May a new entry be placed now, at what size: one state, one chain, one answer."""

    def __init__(self, manager: PhaseManager) -> None:
        self.manager = manager
        self._trading: TradingState | None = None
        self._trading_key: tuple[Any, ...] | None = None
        self._chain: EntryChain | None = None
        self._chain_version: tuple[int, int] | None = None

    def entry_decision(self, order: OrderIntent | None = None, *, broker_breaker: BreakerState | None = None) -> EntryDecision:
        """May this entry (or, without an order, any entry) be placed now: the one §7 chain.

        The hot path: each log is stat'ed once, the journal's active files once, and the
        answer comes from state folded in memory unless something changed on disk.
        """
        if order is None:
            order = OrderIntent(symbol="", action="", price=None, dollars=None, at=self.manager.now(), mode=self.manager.config.mode)
        manager = self.manager
        with manager.history.one_read(), manager.overrides.one_read(), manager.high_water.one_read():
            try:
                if not self.manager.read_only:
                    self.manager.mirror.reload_config()  # one stat: a hand edit (hours, limits) counts at once
                trading = self._trading_facts(quick=True)
            except (LogDamaged, ValueError, KeyError, OSError) as error:
                return refused_without_state(order, CODE_STATE, f"phase state cannot be read ({error}); trading halted")
            return self.entry_chain().decide(order, trading, broker_breaker)

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
