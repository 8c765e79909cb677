"""The trading loop's two moves: open a position through the one chain, close one.

An entry is decided and journaled under the logs lock, from the records as they are at
that instant, so any number of bot processes on one desk never exceed a limit
together; the order reaches the broker only after its `open` record is durable. Exits
are never blocked. Every journal record carries the phase in force.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from trading_bot.broker import Broker, BrokerError, Fill, Position
from trading_bot.config import Config
from trading_bot.durable_files import LogsLock
from trading_bot.error_handling.circuit_breaker import CircuitBreaker
from trading_bot.errors import Busy
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.logging.structured_logger import StructuredTradeLogger, journal_file_of
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.market_calendar import MarketCalendar
from trading_bot.mode_switcher import ModeSwitcher
from trading_bot.phase.log_format import LogDamaged
from trading_bot.phase.manager import PhaseManager
from trading_bot.entry_checks import (
    CODE_BROKER,
    CODE_BUSY,
    CODE_LOGS,
    EntryDecision,
    OrderIntent,
    Refusal,
    refused_without_state,
)

# What can go wrong in the phase system's bookkeeping after an exit that already happened.
_AFTER_EXIT_ERRORS = (LogDamaged, OSError, ValueError, KeyError, Busy)


@dataclass(frozen=True)
class TradeResult:
    """An entry attempt: placed (its journal record and fill) or refused (the decision says why).

    `refusal_recorded` is False when the refusal could not be written to the override
    log (a full disk, say): the refusal still stands and is reported here, once.
    """

    decision: EntryDecision
    record: TradeRecord | None = None
    fill: Fill | None = None
    refusal_recorded: bool = False

    @property
    def accepted(self) -> bool:
        return self.record is not None and self.decision.allowed

    @property
    def refusal(self) -> Refusal | None:
        return self.decision.refusal

    @property
    def code(self) -> str | None:
        return self.decision.code

    @property
    def reason(self) -> str | None:
        return self.decision.reason


class UnknownPosition(Exception):
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"no open position with order id {order_id!r}")


class TradingBot:
    """Places entries only through the phase system's chain and journals every order."""

    def __init__(self, phase: PhaseManager, broker: Broker, *, operator_id: str = "bot") -> None:
        self.phase = phase
        self.broker = broker
        self.clock = phase.clock
        self.operator_id = operator_id
        self.journal_writer = StructuredTradeLogger(phase.paths.trades_dir, phase.lock)
        self.mode = ModeSwitcher(phase.config.mode, live_guard=self.live_refusal)
        self.broker_breaker = CircuitBreaker(threshold=5, clock=self.clock)
        # Closes the broker completed while the journal could not take them: written
        # first at the next chance, and no entry is placed while any is waiting.
        self.unwritten: list[TradeRecord] = []
        self._held_back_by = ""  # why the journal refused the records in `unwritten`
        self._order_prefix = f"{operator_id}-{secrets.token_hex(4)}"
        self._next_order = 1
        self._restore_paper_positions()

    # ---- the desk's shared parts, never copies ---------------------------------------

    @property
    def config(self) -> Config:
        return self.phase.config

    @property
    def calendar(self) -> MarketCalendar:
        return self.phase.calendar

    @property
    def journal(self) -> TradeJournal:
        return self.phase.journal

    @property
    def lock(self) -> LogsLock:
        return self.phase.lock

    def _restore_paper_positions(self) -> None:
        """A paper broker forgets its positions on restart; the journal remembers them. Read
        as exits read it: a disk that refuses the index halts entries, not the bot's start."""
        restore = getattr(self.broker, "restore", None)
        if restore is None:
            return
        with self._records() as journal:
            for record in _vouched_open_trades(journal)[0]:
                restore(
                    Position(
                        order_id=record.order_id,
                        symbol=record.symbol,
                        action=record.action,
                        quantity=record.quantity,
                        entry_price=record.price,
                        opened_at=record.timestamp,
                    )
                )

    def live_refusal(self) -> str | None:
        """Why live trading is not allowed now, or None (the mode switch asks before going live)."""
        try:
            phase = self.phase.gate.trading_state(quick=True).phase
        except _AFTER_EXIT_ERRORS as error:
            return f"phase state cannot be read ({error}); live trading refused"
        if phase.allows_live:
            return None
        return f"live trading is not allowed in the {phase.title} phase (paper only)"

    # ---- entries -------------------------------------------------------------------

    def check_entry(self, symbol: str, action: str, price: Decimal, dollars: Decimal | None = None) -> EntryDecision:
        """The decision an entry would get now; places and records nothing (beyond the closes
        held back by a journal that refused them, which are written first, as an entry would)."""
        order = OrderIntent(symbol=symbol, action=action, price=price, dollars=dollars, at=self.clock.now(), mode=self.mode.mode)
        if self.unwritten:
            # Closes that already happened wait to be journaled: an entry writes them first, and
            # so does the check (a loop that enters only when the check allows would wait forever).
            try:
                with self.lock.held():
                    halted = self._write_unwritten(order.at)
            except (Busy, OSError) as error:
                self._held_back_by = _cause(error)
                halted = self._halted_reason()
            if halted is not None:
                return refused_without_state(order, CODE_LOGS, halted)
        return self.phase.gate.with_journal_room(self.phase.gate.entry_decision(order, broker_breaker=self.broker_breaker.state))

    def execute_trade(
        self,
        symbol: str,
        action: str,
        price: Decimal,
        *,
        stop_loss: Decimal | None = None,
        target: Decimal | None = None,
        dollars: Decimal | None = None,
    ) -> TradeResult:
        """Decide under the lock, journal the `open` record durably, then place the order."""
        now = self.clock.now()
        order = OrderIntent(symbol=symbol, action=action, price=price, dollars=dollars, at=now, mode=self.mode.mode)
        try:
            with self.lock.held():
                halted = self._write_unwritten(now)
                if halted is not None:
                    return self._refuse(order, refused_without_state(order, CODE_LOGS, halted))
                # Every record read again under the lock, whatever the generation says: what is
                # placed is decided on the files themselves, hand edits included.
                decision = self.phase.gate.entry_decision(order, broker_breaker=self.broker_breaker.state, reread=True)
                if not decision.allowed:
                    return self._refuse(order, decision)
                assert decision.shares is not None
                record = TradeRecord(
                    timestamp=now,
                    symbol=symbol,
                    action=action,
                    quantity=decision.shares,
                    price=price,
                    order_id=self._new_order_id(),
                    stop_loss=stop_loss,
                    target=target,
                    execution_mode=self.mode.mode,
                    phase=decision.state.phase,
                    operator_id=self.operator_id,
                    session=decision.state.session,
                )
                try:
                    self._journal(record, now)
                except OSError as error:
                    reason = f"the journal cannot be written ({_what_failed(error)}); no order placed, entries halted"
                    return self._refuse(order, decision.refused(Refusal(CODE_LOGS, reason)))
        except Busy as error:
            return TradeResult(refused_without_state(order, CODE_BUSY, str(error)))
        except OSError as error:
            # The logs lock itself cannot be taken (a directory where its file belongs).
            reason = f"the logs cannot be written ({_what_failed(error)}); no order placed, entries halted"
            return self._refuse(order, refused_without_state(order, CODE_LOGS, reason))
        # The lock is released: a slow broker never blocks the other writers, and the
        # journal already counts this order for every process on the desk.
        try:
            fill = self.broker.place_order(symbol, action, record.quantity, price, order_id=record.order_id)
        except BrokerError as error:
            self.broker_breaker.record_failure(str(error))
            self._record_rejection(record, str(error))
            return TradeResult(decision.refused(Refusal(CODE_BROKER, f"broker error: {error}")))
        self.broker_breaker.record_success()
        return TradeResult(decision, record=record, fill=fill)

    def _refuse(self, order: OrderIntent, decision: EntryDecision) -> TradeResult:
        recorded = self.phase.gate.record_entry_refusal(self.operator_id, order, decision)
        return TradeResult(decision, refusal_recorded=recorded)

    def _new_order_id(self) -> str:
        """The client order id, chosen before the broker call so the journal holds it first."""
        order_id = f"{self._order_prefix}-{self._next_order:06d}"
        self._next_order += 1
        return order_id

    def _record_rejection(self, record: TradeRecord, reason: str) -> None:
        """The broker did not fill: one terminal record; the order still counts as an entry."""
        rejected = record.rejected(at=self.clock.now(), reason=reason)
        try:
            self._journal(rejected, rejected.exit_timestamp or record.timestamp)
        except (OSError, Busy) as error:
            self._hold_back(rejected, error)

    # ---- exits ---------------------------------------------------------------------

    def close_position(
        self,
        order_id: str,
        price: Decimal,
        *,
        emergency_exit: bool = False,
        operator_id: str | None = None,
    ) -> TradeRecord:
        """Exits are never blocked; an emergency exit is flagged and recorded.

        If the journal cannot take the closing record, the exit still completes: the
        record is kept and written before anything else, and entries wait for it.
        """
        now = self.clock.now()
        with self._records() as journal:
            entry = journal.record(order_id)
            if journal.unreadable and (entry is None or not _vouched(journal, entry)):
                raise _unreadable_journal(journal)
        if entry is None or entry.outcome != "open" or any(r.order_id == order_id for r in self.unwritten):
            raise UnknownPosition(order_id)
        _, net_pnl = self.broker.close_position(order_id, price)
        closed = entry.closed(
            exit_timestamp=now, net_pnl=net_pnl, emergency_exit=emergency_exit, extra={"exit_price": str(price)}
        )
        high_water = self.phase.high_water.read()
        if high_water is not None:
            # A clock behind the desk's records must not put this close (and its P&L) in a
            # session already summarised: it counts no earlier than the latest instant recorded.
            closed = closed.stamped_no_earlier_than(high_water)
        assert closed.exit_timestamp is not None
        closed = replace(closed, exit_session=self.calendar.session_of(closed.exit_timestamp))
        who = operator_id or self.operator_id
        if closed.emergency_exit:
            closed = replace(closed, operator_id=who)
        try:
            self._journal(closed, now)
        except (OSError, Busy) as error:
            self._hold_back(closed, error)
            return closed
        try:
            if closed.emergency_exit:
                self.phase.record_emergency_exit(closed, who)
            self.phase.apply_due()
            if self.mode.is_live and self.live_refusal() is not None:
                self.mode.switch_to_paper()
        except _AFTER_EXIT_ERRORS:
            pass  # the exit is done and journaled; the next entry decision refuses if it must
        return closed

    def flatten(self, prices: Mapping[str, Decimal], *, operator_id: str | None = None) -> list[TradeRecord]:
        """Close every open position as an emergency exit (the operator's "get me out")."""
        waiting = {record.order_id for record in self.unwritten}
        closed = []
        with self._records() as journal:
            open_trades, unvouched = _vouched_open_trades(journal)
        for entry in sorted(open_trades, key=lambda record: record.timestamp):
            if entry.order_id in waiting:
                continue
            price = prices.get(entry.symbol)
            if price is None:
                raise KeyError(f"no price given for {entry.symbol} (order {entry.order_id})")
            closed.append(self.close_position(entry.order_id, price, emergency_exit=True, operator_id=operator_id))
        if unvouched is not None:
            raise unvouched  # the positions it can vouch for are closed; the others are not known
        return closed

    # ---- the journal ---------------------------------------------------------------

    @contextmanager
    def _records(self) -> Iterator[TradeJournal]:
        """The journal brought up to date. When its index cannot be written (a full disk), a
        view that reads the journal files into memory: an exit is never blocked by a cache.
        When a journal file may not be read, the view leaves it out and names it (see
        `_vouched`): the bot still starts and exits what the files it reads vouch for."""
        try:
            self.journal.refresh()
        except OSError:
            view = TradeJournal(self.journal.trades_dir, read_only=True, skip_unreadable=True)
            try:
                view.refresh()
                yield view
            finally:
                view.close()
            return
        yield self.journal

    def _journal(self, record: TradeRecord, now: datetime) -> None:
        """Append durably; a torn line a crash left behind is set aside first, and recorded."""
        before = len(self.journal_writer.recovered_fragments)
        self.journal_writer.log_trade(record, now)
        for fragment in self.journal_writer.recovered_fragments[before:]:
            try:
                self.phase.record_journal_repair(fragment, self.operator_id)
            except _AFTER_EXIT_ERRORS:
                pass  # the record is written and the fragment's recovery file is kept; only its note is lost

    def _hold_back(self, record: TradeRecord, error: Exception) -> None:
        """Keep a record the journal refused; it is written before anything else."""
        self.unwritten.append(record)
        self._held_back_by = _cause(error)

    def _halted_reason(self) -> str:
        return f"the journal cannot be written ({self._held_back_by}); {len(self.unwritten)} record(s) waiting, entries halted"

    def _write_unwritten(self, now: datetime) -> str | None:
        """Write the records a full disk held back; the reason entries stay halted, or None."""
        while self.unwritten:
            record = self.unwritten[0]
            try:
                self._journal(record, now)
            except OSError as error:
                self._held_back_by = _cause(error)
                return self._halted_reason()
            self.unwritten.pop(0)
        return None


def _vouched(journal: TradeJournal, record: TradeRecord) -> bool:
    """A record the files read can answer for: no file that may not be read sorts after the
    earlier of its own file and its entry day's file. A close is written into the file of its
    day (or the newest file), so it sorts no earlier than either; an entry in a file of
    another layout (`trades.jsonl`, a month's file) sorts after the day files its close may be in."""
    if not journal.unreadable:
        return True
    entry_day = journal_file_of(journal.trades_dir, record.timestamp).name
    return min(os.path.basename(record.file), entry_day) > journal.unreadable[-1]


def _unreadable_journal(journal: TradeJournal) -> PermissionError:
    """The refusal when a position's state may sit in a journal file this process may not read."""
    return PermissionError(
        errno.EACCES,
        "a journal file may not be read, so whether this position is still open is not known",
        str(journal.trades_dir / journal.unreadable[-1]),
    )


def _vouched_open_trades(journal: TradeJournal) -> tuple[list[TradeRecord], PermissionError | None]:
    """The open positions the files read vouch for, and the refusal for any others."""
    records = journal.open_trades()
    vouched = [record for record in records if _vouched(journal, record)]
    return vouched, None if len(vouched) == len(records) else _unreadable_journal(journal)


def _what_failed(error: OSError) -> str:
    """A write's failure with the file it names: the culprit may be the lock or the
    high-water, not the journal, and the operator must know which file to fix."""
    what = error.strerror or str(error)
    return f"{error.filename}: {what}" if error.filename and str(error.filename) not in what else what


def _cause(error: Exception) -> str:
    """What refused a journal write (a lock that stayed busy carries no file)."""
    return _what_failed(error) if isinstance(error, OSError) else str(error)
