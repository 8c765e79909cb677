"""How the trading loop meets the phase system: the first check of the chain, and hooks."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.bot import PhaseUnavailable
from trading_bot.phase.engine import PhaseState
from trading_bot.phase.history_logger import LogDamaged
from trading_bot.phase.manager import PhaseManager, refusal_details
from trading_bot.phase.models import Phase
from trading_bot.validator import AccountSnapshot, OrderIntent, Refusal


class PhaseCheck:
    """SPEC §7 as one check: records, breaker, live mode, entry limit, size — in that order."""

    name = "phase"
    sees_exits = False

    def __init__(self, manager: PhaseManager) -> None:
        self.manager = manager

    def check(self, order: OrderIntent, account: AccountSnapshot) -> Refusal | None:
        decision = self.manager.entry_decision(order.dollars, order.mode)
        if decision.allowed:
            return None
        return Refusal(
            decision.check or self.name,
            decision.reason or "refused by the phase system",
            next_allowed_at=decision.next_trade_allowed_at,
        )


class PhaseGuard:
    """The `PhaseHooks` the bot uses: phase and size in force, refusals and exits recorded."""

    def __init__(self, manager: PhaseManager) -> None:
        self.manager = manager

    def _state(self) -> PhaseState:
        try:
            return self.manager.state(quick=True)
        except (LogDamaged, OSError, ValueError, KeyError) as error:
            raise PhaseUnavailable(str(error)) from error

    def phase_in_force(self) -> Phase:
        return self._state().phase

    def size_in_force(self) -> Decimal:
        return self.manager.size_in_force(self._state()).size

    def shared_journal(self) -> TradeJournal:
        """The bot reads the journal through the manager's reader: one copy in memory."""
        return self.manager.journal

    def entry_check(self) -> PhaseCheck:
        return PhaseCheck(self.manager)

    def live_refusal(self) -> str | None:
        try:
            phase = self.phase_in_force()
        except PhaseUnavailable as error:
            return f"phase state cannot be read ({error}); live trading refused"
        if phase.allows_live:
            return None
        return f"live trading is not allowed in the {phase.title} phase (paper only)"

    def entry_refused(self, order: OrderIntent, refusal: Refusal, operator_id: str) -> None:
        self.manager.record_entry_refusal(operator_id, refusal.reason, refusal.check, refusal_details(order))

    def journal_repaired(self, fragment: Path, operator_id: str) -> None:
        self.manager.record_journal_repair(fragment, operator_id)

    def exit_recorded(self, record: TradeRecord, operator_id: str) -> None:
        """Emergency exits are recorded; every close is checked against the triggers at once."""
        try:
            if record.emergency_exit:
                self.manager.record_emergency_exit(record, operator_id)
            self.manager.apply_due()
        except (LogDamaged, OSError, ValueError, KeyError) as error:
            raise PhaseUnavailable(str(error)) from error
