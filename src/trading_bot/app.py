"""The one assembly: a trading desk from a config path.

A desk is one `Config`, one clock, one market calendar, one logs lock, one journal
reader and one phase system, shared by the trading bot and by every CLI command.
Nothing holds a second copy of a setting: when config.json is edited, the phase
system re-reads it under the lock and every part sees the new value at once.

    desk = Desk.open("desk/config.json")            # paper broker by default
    if desk.check_entry("AAPL", "BUY", Decimal("187.20")).allowed:
        entry = desk.enter("AAPL", "BUY", Decimal("187.20"))
    desk.close(entry.record.order_id, Decimal("189.00"))
    desk.state()                                    # phase, size, entries, equity, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from trading_bot.clock import SYSTEM_CLOCK, Clock
from trading_bot.phase.manager import PhaseManager

if TYPE_CHECKING:
    # Only for annotations: a command that does not trade must not pay for importing the bot.
    from trading_bot.bot import TradeResult, TradingBot
    from trading_bot.broker import Broker
    from trading_bot.config import Config
    from trading_bot.durable_files import LogsLock
    from trading_bot.entry_checks import EntryDecision, TradingState
    from trading_bot.logging.query_helper import TradeJournal
    from trading_bot.logging.trade_record import TradeRecord
    from trading_bot.market_calendar import MarketCalendar


class ReadOnlyDesk(Exception):
    """Trading was asked of a desk that sees the records as they were at a past moment."""


class Desk:
    """One trading desk: config.json, its logs folder, the phase system and the bot."""

    def __init__(self, phase: PhaseManager, broker: Broker | None = None, *, operator_id: str = "bot") -> None:
        self.phase = phase
        self.operator_id = operator_id
        self._broker = broker
        self._bot: TradingBot | None = None

    @classmethod
    def open(
        cls,
        config_path: Path | str,
        *,
        logs_dir: Path | str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        environ: Mapping[str, str] | None = None,
        broker: Broker | None = None,
        operator_id: str = "bot",
        as_of: datetime | None = None,
        trust_cached_settings: bool = True,
    ) -> Desk:
        """Read config.json (and .env beside it) and assemble the desk; nothing is written yet.

        `broker`: any object of the `Broker` protocol (default: a paper broker with
        $1,000,000 of cash). `as_of`: a read-only desk that sees the records as they were.
        `trust_cached_settings=False`: validate config.json even if its text is unchanged.
        """
        phase = PhaseManager(
            config_path,
            logs_dir=None if logs_dir is None else Path(logs_dir),
            clock=clock,
            environ=environ,
            as_of=as_of,
            trust_cached_settings=trust_cached_settings,
        )
        return cls(phase, broker, operator_id=operator_id)

    # ---- the shared parts ------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The settings in force (re-read from config.json whenever it changes)."""
        return self.phase.config

    @property
    def calendar(self) -> MarketCalendar:
        return self.phase.calendar

    @property
    def clock(self) -> Clock:
        return self.phase.clock

    @property
    def lock(self) -> LogsLock:
        return self.phase.lock

    @property
    def journal(self) -> TradeJournal:
        return self.phase.journal

    @property
    def bot(self) -> TradingBot:
        """The trading bot, built on first use (a CLI command that does not trade never builds it).

        A desk opened `as_of` a past moment only reads: it has no bot."""
        if self.phase.read_only:
            raise ReadOnlyDesk("a desk opened with as_of only reads the records; it has no bot")
        if self._bot is None:
            from trading_bot.bot import TradingBot
            from trading_bot.broker import PaperBroker

            broker = self._broker if self._broker is not None else PaperBroker(Decimal("1000000"), clock=self.clock)
            self._bot = TradingBot(self.phase, broker, operator_id=self.operator_id)
        return self._bot

    @property
    def broker(self) -> Broker:
        return self.bot.broker

    # ---- what a bot author calls -------------------------------------------------------

    def state(self) -> TradingState:
        """The one trading state now (what is due is applied first)."""
        return self.phase.gate.trading_state()

    def check_entry(self, symbol: str, action: str, price: Decimal, dollars: Decimal | None = None) -> EntryDecision:
        """Would this entry be allowed now, at what size and how many shares; records nothing."""
        return self.bot.check_entry(symbol, action, price, dollars)

    def enter(
        self,
        symbol: str,
        action: str,
        price: Decimal,
        *,
        stop_loss: Decimal | None = None,
        target: Decimal | None = None,
        dollars: Decimal | None = None,
    ) -> TradeResult:
        """Decide under the lock, journal, then place the order (at the size in force by default)."""
        return self.bot.execute_trade(symbol, action, price, stop_loss=stop_loss, target=target, dollars=dollars)

    def close(self, order_id: str, price: Decimal, *, emergency_exit: bool = False, operator_id: str | None = None) -> TradeRecord:
        """Close a position; never blocked. The phase system checks its triggers at once."""
        return self.bot.close_position(order_id, price, emergency_exit=emergency_exit, operator_id=operator_id)

    def flatten(self, prices: Mapping[str, Decimal], *, operator_id: str | None = None) -> list[TradeRecord]:
        """Close every open position as an emergency exit."""
        return self.bot.flatten(prices, operator_id=operator_id)
