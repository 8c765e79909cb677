"""One trade as the journal stores it, compatible with the original bot's TradeRecord.

Parsing is hand-written rather than a pydantic model per line: a rebuild streams up to
a million lines and must stay much faster than a plain `json.loads` loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from trading_bot.errors import JournalError
from trading_bot.clock import parse_timestamp
from trading_bot.input_bounds import MONEY_LIMIT, bounded_money
from trading_bot.money import CENT, to_decimal
from trading_bot.phase.models import Phase

OPEN = "open"
WIN = "win"
LOSS = "loss"
BREAKEVEN = "breakeven"
REJECTED = "rejected"
CLOSED_OUTCOMES = frozenset({WIN, LOSS, BREAKEVEN})
OUTCOMES = frozenset({OPEN, WIN, LOSS, BREAKEVEN, REJECTED})
# Written beside a timestamp the writer raised above the clock (the clock stepped back).
CLOCK_READING = "clock_reading"
_PHASES = {phase.value: phase for phase in Phase}
KNOWN_FIELDS = frozenset(
    {
        "timestamp", "exit_timestamp", "symbol", "action", "quantity", "price", "order_id",
        "outcome", "net_profit_loss", "profit_loss", "stop_loss", "target", "execution_mode",
        "phase", "emergency_exit", "manual_override", "operator_id", "session", "exit_session",
    }
)


def outcome_for(net_pnl: Decimal) -> str:
    """The outcome the sign of the net P&L implies, judged at cent precision."""
    if abs(net_pnl) >= 1:
        return WIN if net_pnl > 0 else LOSS
    cents = net_pnl.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if cents > 0:
        return WIN
    if cents < 0:
        return LOSS
    return BREAKEVEN


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """A journal line. `net_pnl` and `exit_timestamp` are set once the trade is closed."""

    timestamp: datetime
    symbol: str
    action: str
    quantity: int
    price: Decimal
    order_id: str
    outcome: str = OPEN
    exit_timestamp: datetime | None = None
    net_pnl: Decimal | None = None
    stop_loss: Decimal | None = None
    target: Decimal | None = None
    execution_mode: str = "paper"
    phase: Phase | None = None
    emergency_exit: bool = False
    manual_override: bool = False
    operator_id: str | None = None
    # The sessions the bot counted the entry and the close in, as recorded when written
    # (None on lines of the original bot: the calendar in force decides then).
    session: date | None = None
    exit_session: date | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    file: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    @property
    def is_closed(self) -> bool:
        return self.outcome in CLOSED_OUTCOMES

    @property
    def is_rejected(self) -> bool:
        """The broker refused or failed the order after its open record was written: no position."""
        return self.outcome == REJECTED

    @property
    def is_flagged(self) -> bool:
        """Emergency exits and manual overrides are kept out of win rate, R:R and streaks."""
        return self.emergency_exit or self.manual_override

    def closed(
        self,
        *,
        exit_timestamp: datetime,
        net_pnl: Decimal,
        emergency_exit: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> TradeRecord:
        """The closing record for this entry; the outcome follows from the net P&L.

        A clock that stepped back since the entry must not make the exit precede it (a
        record the journal would reject): the exit is then the entry's instant, and the
        clock's reading is kept as `clock_reading`.
        """
        merged = dict(self.extra)
        merged.pop(CLOCK_READING, None)  # the entry's own note; the close says its own
        merged.update(extra or {})
        if exit_timestamp < self.timestamp:
            merged[CLOCK_READING] = _iso(exit_timestamp)
            exit_timestamp = self.timestamp
        return replace(
            self,
            outcome=outcome_for(net_pnl),
            exit_timestamp=exit_timestamp,
            net_pnl=net_pnl,
            emergency_exit=self.emergency_exit or emergency_exit,
            extra=merged,
            file="",
            line=0,
        )

    def rejected(self, *, at: datetime, reason: str) -> TradeRecord:
        """The terminal record of an entry the broker did not fill (it still counts as an entry)."""
        merged = dict(self.extra)
        merged.pop(CLOCK_READING, None)
        merged["rejection_reason"] = reason
        if at < self.timestamp:
            merged[CLOCK_READING] = _iso(at)
            at = self.timestamp
        return replace(self, outcome=REJECTED, exit_timestamp=at, net_pnl=None, extra=merged, file="", line=0)

    @property
    def written_at(self) -> datetime:
        """The instant this line was written: its exit for a close, its entry otherwise."""
        return self.exit_timestamp if self.exit_timestamp is not None else self.timestamp

    def stamped_no_earlier_than(self, floor: datetime) -> TradeRecord:
        """This record with its own instant raised to `floor` when it is earlier (a clock
        that stepped back), keeping the clock's reading as `clock_reading` (a reading
        already noted, by `closed` say, is the clock's and stays)."""
        if self.written_at >= floor:
            return self
        extra = {CLOCK_READING: _iso(self.written_at), **self.extra}
        if self.exit_timestamp is not None:
            return replace(self, exit_timestamp=floor, extra=extra)
        return replace(self, timestamp=floor, extra=extra)

    def reopened(self) -> TradeRecord:
        """This trade as it looked before its exit (for views as of an earlier time)."""
        return replace(self, outcome=OPEN, exit_timestamp=None, net_pnl=None, exit_session=None)

    def to_json_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data.update(
            {
                "timestamp": _iso(self.timestamp),
                "symbol": self.symbol,
                "action": self.action,
                "quantity": self.quantity,
                "price": str(self.price),
                "total_value": str(self.price * self.quantity),
                "order_id": self.order_id,
                "execution_mode": self.execution_mode.upper(),
                "outcome": self.outcome,
                "phase": self.phase.value if self.phase else None,
                "emergency_exit": self.emergency_exit,
                "manual_override": self.manual_override,
                "operator_id": self.operator_id,
            }
        )
        if self.stop_loss is not None:
            data["stop_loss"] = str(self.stop_loss)
        if self.target is not None:
            data["target"] = str(self.target)
        if self.exit_timestamp is not None:
            data["exit_timestamp"] = _iso(self.exit_timestamp)
        if self.net_pnl is not None:
            data["net_profit_loss"] = str(self.net_pnl)
            data.setdefault("profit_loss", str(self.net_pnl))
        if self.session is not None:
            data["session"] = self.session.isoformat()
        if self.exit_session is not None:
            data["exit_session"] = self.exit_session.isoformat()
        return data

    def same_content(self, other: TradeRecord) -> bool:
        """Identical duplicates collapse; this compares everything but where it was read."""
        return self == other and self.extra == other.extra


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def recorded_session(value: Any, moment: datetime | None) -> date | None:
    """A session date written beside a record; it must lie near the record's instant, so an
    edit cannot move an entry into a far session (a week covers a long weekend of holidays,
    a day after covers a time zone east of UTC)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("must be a date (YYYY-MM-DD)")
    try:
        session = date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date (YYYY-MM-DD)") from None
    if moment is None:
        raise ValueError("is recorded without the instant it belongs to")
    days_before = (moment.date() - session).days
    if not -1 <= days_before <= 7:
        raise ValueError("must lie between a week before and a day after the record's instant")
    return session


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError("must be a number")
    try:
        return to_decimal(value)
    except ValueError as error:
        raise ValueError(f"{error}: {_shown(value)}") from None


def _shown(value: Any) -> str:
    """A value for an error message, cut short: the message stays one readable line."""
    text = repr(value)
    return text if len(text) <= 48 else text[:45] + "..."


def _flag(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise ValueError("must be true or false")


def parse_trade(data: Any, file: str, line: int) -> TradeRecord:
    """Validate one decoded journal object; any problem names file, line and field."""
    if not isinstance(data, dict):
        raise JournalError(file, line, "(line)", "must be a JSON object")
    current = "timestamp"
    try:
        timestamp = parse_timestamp(data.get("timestamp"))
        current = "symbol"
        symbol = data.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("missing or empty")
        current = "action"
        action = data.get("action")
        if not isinstance(action, str) or not action:
            raise ValueError("missing or empty")
        current = "quantity"
        quantity_value = bounded_money(_number(data.get("quantity")))
        if quantity_value != quantity_value.to_integral_value() or quantity_value <= 0:
            raise ValueError("must be a whole number of shares > 0")
        quantity = int(quantity_value)
        current = "price"
        price = bounded_money(_number(data.get("price")))
        if price <= 0:
            raise ValueError("must be > 0")
        current = "quantity"
        if price * quantity >= MONEY_LIMIT:
            raise ValueError(f"{quantity} shares at {price} are worth 10^15 or more")
        current = "order_id"
        order_id = data.get("order_id")
        if isinstance(order_id, int) and not isinstance(order_id, bool):
            order_id = str(order_id)
        if not isinstance(order_id, str) or not order_id:
            raise ValueError("missing or empty")
        current = "outcome"
        outcome = data.get("outcome", OPEN)
        if outcome is None:
            outcome = OPEN
        if not isinstance(outcome, str) or outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r} (open, win, loss, breakeven or rejected)")
        exit_timestamp = None
        net_pnl = None
        if outcome == REJECTED:
            current = "exit_timestamp"
            exit_timestamp = parse_timestamp(data.get("exit_timestamp"))
            if exit_timestamp < timestamp:
                raise ValueError("is before the entry timestamp")
        elif outcome != OPEN:
            current = "exit_timestamp"
            exit_timestamp = parse_timestamp(data.get("exit_timestamp"))
            if exit_timestamp < timestamp:
                raise ValueError("is before the entry timestamp")
            current = "net_profit_loss"
            raw_pnl = data.get("net_profit_loss")
            if raw_pnl is None:
                current = "profit_loss"
                raw_pnl = data.get("profit_loss")
            net_pnl = _number(raw_pnl)
            if abs(net_pnl) >= MONEY_LIMIT:
                raise ValueError(f"implausibly large P&L {net_pnl} (must be below 10^15 in size)")
            current = "outcome"
            implied = outcome_for(net_pnl)
            if implied != outcome:
                raise ValueError(f"{outcome!r} contradicts net P&L {net_pnl} (which is a {implied})")
        current = "stop_loss"
        stop_loss = None if data.get("stop_loss") is None else bounded_money(_number(data["stop_loss"]))
        current = "target"
        target = None if data.get("target") is None else bounded_money(_number(data["target"]))
        current = "execution_mode"
        mode = data.get("execution_mode") or "paper"
        if not isinstance(mode, str) or mode.lower() not in ("paper", "live"):
            raise ValueError("must be PAPER or LIVE")
        current = "phase"
        raw_phase = data.get("phase")
        phase = None
        if raw_phase is not None:
            phase = _PHASES.get(raw_phase) if isinstance(raw_phase, str) else None
            if phase is None:
                raise ValueError(f"unknown phase {raw_phase!r}")
        current = "emergency_exit"
        emergency_exit = _flag(data.get("emergency_exit"))
        current = "manual_override"
        manual_override = _flag(data.get("manual_override"))
        current = "operator_id"
        operator_id = data.get("operator_id")
        if operator_id is not None and not isinstance(operator_id, str):
            raise ValueError("must be a string")
        current = "session"
        session = recorded_session(data.get("session"), timestamp)
        current = "exit_session"
        exit_session = recorded_session(data.get("exit_session"), exit_timestamp)
    except (ValueError, ArithmeticError) as error:
        raise JournalError(file, line, current, str(error) or type(error).__name__) from None
    extra = {key: value for key, value in data.items() if key not in KNOWN_FIELDS}
    return TradeRecord(
        timestamp=timestamp,
        symbol=symbol,
        action=action,
        quantity=quantity,
        price=price,
        order_id=order_id,
        outcome=outcome,
        exit_timestamp=exit_timestamp,
        net_pnl=net_pnl,
        stop_loss=stop_loss,
        target=target,
        execution_mode=mode.lower(),
        phase=phase,
        emergency_exit=emergency_exit,
        manual_override=manual_override,
        operator_id=operator_id,
        session=session,
        exit_session=exit_session,
        extra=extra,
        file=file,
        line=line,
    )
