"""A desk on a virtual clock with a scripted operator: what `simulate` and `replay` drive.

The desk is the real one — config.json, the phase manager, the trading bot with its
validation chain, the paper broker, real files — only time is moved by the caller, and
the operator's part (advance as soon as a gate passes, acknowledge a tripped breaker
after review) is taken through the same manager calls the CLI makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from trading_bot.app import Desk
from trading_bot.bot import TradeResult
from trading_bot.broker import PaperBroker
from trading_bot.clock import FixedClock
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.phase.commands import PhaseRefused
from trading_bot.phase.log_format import LogLine
from trading_bot.phase.models import Phase

OPERATOR = "demo-operator"
BROKER_CASH = Decimal("100000000")


class VirtualDesk:
    """One desk in a folder (the product's one assembly), trading on a clock the caller moves."""

    def __init__(self, config_path: Path, start: datetime, *, environ: Mapping[str, str] | None = None, operator: str = OPERATOR) -> None:
        self.config_path = Path(config_path)
        self.clock = FixedClock(start)
        # The process environment is left out on purpose: PHASE_HISTORY_DIR there must
        # not send a scratch desk's records next to a real one.
        self.environ = dict(environ or {})
        self.operator = operator
        broker = PaperBroker(BROKER_CASH, clock=self.clock, id_prefix="paper-sim")
        self.desk = Desk.open(self.config_path, clock=self.clock, environ=self.environ, broker=broker)
        self.manager = self.desk.phase

    @property
    def logs_dir(self) -> Path:
        return self.manager.paths.logs_dir

    def move_to(self, moment: datetime) -> None:
        """Time only moves forward: the records must never be dated out of order."""
        if moment < self.clock.now():
            raise ValueError(f"the virtual clock cannot go back from {self.clock.now().isoformat()} to {moment.isoformat()}")
        self.clock.set(moment)

    def now(self) -> datetime:
        return self.clock.now()

    def phase(self) -> Phase:
        return self.manager.state().phase

    def size(self) -> Decimal:
        return self.manager.gate.size_in_force().size

    def enter(self, symbol: str, price: Decimal) -> TradeResult:
        return self.desk.enter(symbol, "BUY", price)

    def close(self, order_id: str, price: Decimal) -> TradeRecord:
        return self.desk.close(order_id, price)

    def breaker_tripped(self) -> bool:
        return self.manager.state().ledger.stint.breaker.tripped

    def acknowledge_if_tripped(self, note: str) -> LogLine | None:
        """The operator's review after a downgrade: clear the breaker (nothing if not tripped)."""
        return self.manager.commands.acknowledge(self.operator, note)

    def advance_if_ready(self) -> LogLine | None:
        """Advance one rung when the next gate passes, as `advance --yes` would."""
        state = self.manager.state()
        gate = state.gate()
        if gate is None or not gate.ready or state.ledger.stint.breaker.tripped or self.manager.damage() is not None:
            return None
        try:
            return self.manager.commands.advance(gate.to_phase, self.operator, lambda _gate: True)
        except PhaseRefused:
            return None

    def override_to(self, target: Phase, password: str, reason: str) -> LogLine:
        """Start the desk in another phase with the override password (the CLI's `override`)."""
        return self.manager.commands.override(
            target=target, reset_progress=False, operator_id=self.operator, reason=reason, read_password=lambda: password
        )

    def settle(self) -> None:
        """Apply what is due at the current time (session summaries, suggestions)."""
        self.manager.apply_due()
