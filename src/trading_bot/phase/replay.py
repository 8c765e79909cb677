"""`replay`: what the ladder would have done with a trade history that did not come from it.

A backtest's trade list (backtesting.py's `stats['_trades'].to_csv()`, or a plain
`entry_time,exit_time,pnl` CSV) or a journal folder is replayed through the real bot,
chain and rules on a virtual clock, in a scratch folder that is removed afterwards.

How a backtest maps onto the ladder: each trade keeps its *return*, not its dollars. A
backtesting.py trade's return is `PnL / (EntryPrice × |Size|)`; a journal trade's is
`net P&L / (price × quantity)`; a plain CSV's P&L is taken as earned on a position of
experience's `position_size` ($100 by default). The ladder then trades that return at
the size in force when the trade is entered, as a long of whole shares.
"""

from __future__ import annotations

import csv
import json
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from dateutil.parser import isoparse

from trading_bot.config import Config, dump_json_exact
from trading_bot.errors import InputError
from trading_bot.input_bounds import EARLIEST, MAX_TIMESTAMP_CHARS, bounded_money, number_from_text
from trading_bot.logging.query_helper import TradeJournal
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.models import GateResult, Phase
from trading_bot.phase.timeline import TimelineEvent, timeline_events
from trading_bot.phase.virtual_desk import VirtualDesk

REPLAY_PRICE = Decimal("1")  # whole shares of a $1 instrument: exactly the dollars in force
BACKTESTING_PY = ("EntryTime", "ExitTime", "PnL", "EntryPrice", "Size")
PLAIN = ("entry_time", "exit_time", "pnl")
DATE_ONLY_ENTRY = timedelta(minutes=1)  # after the session's open


class ReplayInputError(InputError):
    """A bad row or column in the trade list: file, row, column, message (exit 2)."""


@dataclass(frozen=True)
class ReplayTrade:
    """One trade to replay: when it was entered and closed, and the return it made."""

    entry_at: datetime
    exit_at: datetime
    ret: Decimal
    source_row: int


@dataclass(frozen=True)
class ReplayResult:
    source: str
    trades: int
    placed: int
    refused: int
    first: datetime | None
    last: datetime | None
    final_phase: Phase
    final_size: Decimal
    gate: GateResult | None
    events: list[TimelineEvent]
    tz: tzinfo

    def to_json(self) -> list[dict[str, Any]]:
        """The timeline as a list of events; the last one is the final state."""
        events = [event.to_json() for event in self.events]
        final = TimelineEvent(
            self.last or EARLIEST,
            "final",
            f"final phase {self.final_phase.value}, size ${self.final_size:.2f}; {self.placed} trades placed, {self.refused} refused",
            to_phase=self.final_phase.value,
            position_size=f"{self.final_size:.2f}",
        ).to_json()
        final["placed"] = self.placed
        final["refused"] = self.refused
        final["next_gate"] = None if self.gate is None else self.gate.to_json()
        return [*events, final]


# ---- reading trade lists ---------------------------------------------------------------


class MomentReader:
    """Timestamps as backtests write them: ISO 8601 with or without a time or a zone.

    A date alone is placed inside that day's session (the entry a minute after the open,
    the exit at the end of trading hours); a time without a zone is market time.
    """

    def __init__(self, calendar: MarketCalendar, now: datetime) -> None:
        self.calendar = calendar
        self.now = now

    def read(self, text: str, *, is_exit: bool, where: tuple[str, int, str]) -> datetime:
        file, row, column = where
        value = text.strip()
        if len(value) > MAX_TIMESTAMP_CHARS:
            raise ReplayInputError(file, row, column, "not an ISO 8601 date or timestamp (too long)")
        try:
            parsed = isoparse(value)
        except (ValueError, OverflowError):
            raise ReplayInputError(file, row, column, f"not an ISO 8601 date or timestamp: {value[:40]!r}") from None
        if len(value) <= 10 and ":" not in value:
            local = datetime.combine(parsed.date(), self.calendar.end_time if is_exit else self.calendar.start_time, tzinfo=self.calendar.tz)
            moment = local if is_exit else local + DATE_ONLY_ENTRY
        elif parsed.tzinfo is None:
            moment = parsed.replace(tzinfo=self.calendar.tz)
        else:
            moment = parsed
        moment = moment.astimezone(timezone.utc)
        if moment < EARLIEST:
            raise ReplayInputError(file, row, column, "is before 1970")
        if moment > self.now:
            raise ReplayInputError(file, row, column, f"is in the future ({moment.isoformat()})")
        return moment


def _number(text: str, where: tuple[str, int, str]) -> Decimal:
    """A bounded amount (the bounds every number read from a file gets)."""
    file, row, column = where
    try:
        return bounded_money(number_from_text(text))
    except ValueError as error:
        raise ReplayInputError(file, row, column, str(error)) from None


def read_trade_csv(path: Path, reader: MomentReader, base_size: Decimal) -> list[ReplayTrade]:
    """backtesting.py's `_trades` CSV or a plain `entry_time,exit_time,pnl` CSV."""
    file = str(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as error:
        raise ReplayInputError(file, None, "(file)", error.strerror or str(error)) from None
    with handle:
        try:
            rows = csv.reader(handle)
            header = next(rows, None)
            if header is None:
                raise ReplayInputError(file, 1, "(header)", "empty file")
            names = [name.strip() for name in header]
            columns: dict[str, int] = {}
            for index, name in enumerate(names):
                if name and name in columns:
                    raise ReplayInputError(file, 1, name, "appears twice in the header")
                columns[name] = index
            if all(name in columns for name in BACKTESTING_PY):
                kind = "backtesting.py"
            elif all(name in columns for name in PLAIN):
                kind = "plain"
            else:
                raise ReplayInputError(
                    file, 1, "(header)", "needs EntryTime,ExitTime,PnL,EntryPrice,Size (backtesting.py) or entry_time,exit_time,pnl"
                )
            trades = list(_rows(rows, names, columns, kind, file, reader, base_size))
        except UnicodeDecodeError:
            raise ReplayInputError(file, None, "(file)", "not UTF-8 text") from None
        except csv.Error as error:
            raise ReplayInputError(file, None, "(csv)", str(error)) from None
    if not trades:
        raise ReplayInputError(file, 2, "(rows)", "no trades in the file")
    return trades


def _rows(
    rows: Iterator[list[str]],
    header: list[str],
    columns: dict[str, int],
    kind: str,
    file: str,
    reader: MomentReader,
    base_size: Decimal,
) -> Iterator[ReplayTrade]:
    names = ("EntryTime", "ExitTime", "PnL") if kind == "backtesting.py" else PLAIN
    width = len(header)
    for row_no, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > width:
            # A cell the header does not name: the row is not what the file says it holds.
            raise ReplayInputError(file, row_no, f"column {width + 1}", f"is beyond the header's {width} columns")
        if len(row) < width:
            missing = header[len(row)] or f"column {len(row) + 1}"
            raise ReplayInputError(file, row_no, missing, f"is missing (the row has {len(row)} cells, the header {width})")

        def cell(name: str) -> str:
            index = columns[name]
            if not row[index].strip():
                raise ReplayInputError(file, row_no, name, "is empty")
            return row[index]

        entry_at = reader.read(cell(names[0]), is_exit=False, where=(file, row_no, names[0]))
        exit_at = reader.read(cell(names[1]), is_exit=True, where=(file, row_no, names[1]))
        if exit_at < entry_at:
            raise ReplayInputError(file, row_no, names[1], "is before the entry time")
        pnl = _number(cell(names[2]), (file, row_no, names[2]))
        if kind == "backtesting.py":
            price = _number(cell("EntryPrice"), (file, row_no, "EntryPrice"))
            size = _number(cell("Size"), (file, row_no, "Size"))
            if price <= 0:
                raise ReplayInputError(file, row_no, "EntryPrice", "must be above zero")
            if size == 0:
                raise ReplayInputError(file, row_no, "Size", "must not be zero")
            ret = pnl / (price * abs(size))
        else:
            ret = pnl / base_size
        if ret <= -1:
            raise ReplayInputError(file, row_no, names[2], "loses the whole position or more")
        yield ReplayTrade(entry_at, exit_at, ret, row_no)


def read_journal_folder(folder: Path, now: datetime) -> list[ReplayTrade]:
    """A journal folder (this bot's or a copy): its closed trades, with their returns."""
    trades_dir = folder / "trades" if (folder / "trades").is_dir() else folder
    journal = TradeJournal(trades_dir)
    journal.refresh()
    journal.require_valid(now)
    trades = []
    for index, record in enumerate(journal.closed_trades, start=1):
        assert record.exit_timestamp is not None and record.net_pnl is not None
        notional = record.price * record.quantity
        if notional <= 0:
            continue
        trades.append(ReplayTrade(record.timestamp, record.exit_timestamp, record.net_pnl / notional, index))
    if not trades:
        raise ReplayInputError(str(trades_dir), None, "(journal)", "no closed trades")
    return trades


# ---- replaying ---------------------------------------------------------------------------


def scratch_config(source: Path | None, folder: Path) -> Path:
    """The settings to replay under, starting in experience with no history (a fresh desk)."""
    raw: dict[str, Any] = {"trading": {"mode": "paper"}, "phase_progression": {"current_phase": "experience"}}
    if source is not None:
        config = Config.from_env_and_json(source, environ={})
        raw = json.loads(dump_json_exact(config.raw), parse_float=Decimal)
        progression = raw.setdefault("phase_progression", {})
        progression["current_phase"] = "experience"
        progression.pop("history_head", None)
        progression.pop("overrides_head", None)
        raw.setdefault("trading", {})["mode"] = "paper"
    target = folder / "config.json"
    target.write_text(dump_json_exact(raw), encoding="utf-8")
    return target


def load_trades(path: Path, config_path: Path, now: datetime) -> list[ReplayTrade]:
    config = Config.from_env_and_json(config_path, environ={})
    hours = config.settings.trading.hours
    calendar = MarketCalendar(hours.start_time, hours.end_time, hours.timezone)
    if path.is_dir():
        return read_journal_folder(path, now)
    base = config.settings.phase_progression.experience.position_size
    return read_trade_csv(path, MomentReader(calendar, now), base)


def replay(
    trades_path: Path,
    *,
    now: datetime,
    config: Path | None = None,
    from_phase: Phase | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Run the trades through a scratch desk and read the timeline back from its records."""
    with tempfile.TemporaryDirectory(prefix="trading-bot-replay-") as scratch:
        config_path = scratch_config(config, Path(scratch))
        trades = load_trades(trades_path, config_path, now)
        return _run(trades, trades_path, config_path, from_phase, progress)


def _run(
    trades: list[ReplayTrade], source: Path, config_path: Path, from_phase: Phase | None, progress: Callable[[int, int], None] | None
) -> ReplayResult:
    moves: list[tuple[datetime, int, int]] = []  # (when, 0 exit / 1 entry, trade index)
    for index, trade in enumerate(trades):
        moves.append((trade.entry_at, 1, index))
        moves.append((trade.exit_at, 0, index))
    moves.sort()
    first = moves[0][0]
    password = secrets.token_urlsafe(16)
    desk = VirtualDesk(config_path, first - timedelta(minutes=1), environ={"PHASE_OVERRIDE_PASSWORD": password}, operator="replay")
    calendar = desk.manager.calendar
    if from_phase is not None and from_phase is not Phase.EXPERIENCE:
        desk.override_to(from_phase, password, f"replay starts in {from_phase.value}")
    open_orders: dict[int, str] = {}
    placed = refused = 0
    session: date | None = None
    for step, (moment, is_entry, index) in enumerate(moves, start=1):
        desk.move_to(moment)
        today = calendar.session_of(moment)
        if today != session:
            session = today
            desk.settle()
            if desk.breaker_tripped():
                desk.acknowledge_if_tripped("reviewed the downgrade before the next session")
        desk.advance_if_ready()
        trade = trades[index]
        if is_entry:
            result = desk.enter("REPLAY", REPLAY_PRICE)
            if result.accepted and result.record is not None:
                open_orders[index] = result.record.order_id
                placed += 1
            else:
                refused += 1
        elif index in open_orders:
            desk.close(open_orders.pop(index), REPLAY_PRICE * (1 + trade.ret))
        if progress is not None:
            progress(step, len(moves))
    desk.settle()
    desk.advance_if_ready()
    state = desk.manager.state()
    manager = desk.manager
    return ReplayResult(
        source=str(source),
        trades=len(trades),
        placed=placed,
        refused=refused,
        first=first,
        last=moves[-1][0],
        final_phase=state.phase,
        final_size=desk.size(),
        gate=state.gate(),
        events=timeline_events(manager.history.lines(), manager.overrides.lines()),
        tz=calendar.tz,
    )
