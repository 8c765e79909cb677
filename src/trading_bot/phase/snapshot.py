"""The folded phase state, saved at the last committed point so the next process folds
only the trades that came after it.

A cache, not a record (SPEC §12): `<logs>/.derived/state.json`, written atomically by the
manager under the logs lock. It names everything its fold was computed from — the
history's head, the journal position (epoch, closes folded, entries seen), a digest of
the settings and mode, and `SNAPSHOT_VERSION` — plus a checksum of its own content. Any
mismatch or damage means a full replay, never a stale answer. It is plain JSON read field
by field, never pickle: a file someone else can write must never run code here.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from trading_bot.clock import format_timestamp, parse_timestamp
from trading_bot.config import MIRROR_FIELDS, Settings
from trading_bot.dashboard.metrics_calculator import RollingWindow, RunningTally
from trading_bot.durable_files import DERIVED_DIR, atomic_write_bytes, read_regular
from trading_bot.errors import JournalError
from trading_bot.logging.trade_record import BREAKEVEN, LOSS, WIN, TradeRecord, parse_trade
from trading_bot.phase.engine import Replay
from trading_bot.phase.ledger import Ledger
from trading_bot.phase.stint import SessionBook, StintProgress

# Bump whenever the fold (engine, stint, ledger, rules) or this format changes meaning:
# a state saved by other code is then replayed, never reused.
SNAPSHOT_VERSION = 1
STATE_FILE = "state.json"
FORMAT = "trading-bot folded phase state"


class SnapshotUnusable(Exception):
    """Why a saved state cannot be reused; the manager replays in full instead."""


def settings_digest(settings: Settings, mode: str) -> str:
    """SHA-256 of the settings the fold used, as canonical JSON (sorted keys), and the mode."""
    dumped = settings.dump(mode="json", exclude=MIRROR_FIELDS)
    # ASCII-escaped: an unknown key kept from config.json may hold any text, a lone surrogate included.
    canonical = json.dumps({"settings": dumped, "mode": mode}, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class SnapshotKey:
    """What a fold was computed from. Saved: the position folded to; current: what exists."""

    version: int
    settings: str
    history_seq: int
    history_hash: str
    journal_epoch: str
    closes: int
    entries: int

    def same_fold(self, saved: SnapshotKey | None) -> bool:
        """Whether the state saved under `saved` already resumes to this fold, so a save is
        not needed (entries appended since change nothing saved: every start pends the
        sessions of all entries again)."""
        return saved is not None and saved.closes == self.closes and saved.mismatch(self) is None

    def mismatch(self, current: SnapshotKey) -> str | None:
        """Why a fold saved under this key is not the current records' fold, or None."""
        if self.version != current.version:
            return f"code version {self.version}, this code is {current.version}"
        if self.settings != current.settings:
            return "settings changed"
        if (self.history_seq, self.history_hash) != (current.history_seq, current.history_hash):
            return f"phase history head {self.history_seq} is now {current.history_seq} (or its hash differs)"
        if (self.closes or self.entries) and self.journal_epoch != current.journal_epoch:
            # A fold of nothing from the journal holds under any epoch (a desk with no trades yet).
            return "journal rebuilt or reordered since (epoch differs)"
        if self.closes > current.closes or self.entries > current.entries:
            return f"journal holds {current.closes} closes, {current.entries} entries; fewer than the {self.closes}, {self.entries} folded"
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> SnapshotKey:
        if not isinstance(data, dict):
            raise TypeError("key: not an object")
        return cls(
            version=_count(data["version"]),
            settings=_text(data["settings"]),
            history_seq=_count(data["history_seq"]),
            history_hash=_text(data["history_hash"]),
            journal_epoch=_text(data["journal_epoch"]),
            closes=_count(data["closes"]),
            entries=_count(data["entries"]),
        )


# ---- the fold as JSON ----------------------------------------------------------------


def progress_to_json(progress: StintProgress) -> dict[str, Any]:
    """Every folded number of the stint (and equity); what the ledger and settings give is left out."""
    return {
        "trigger_window_size": progress.trigger_window_size,
        "gate_window_size": progress.gate_window_size,
        "equity": str(progress.equity),
        "tally": _tally_json(progress.tally),
        "trigger_window": _window_json(progress.trigger_window),
        "gate_window": _window_json(progress.gate_window),
        "sessions": {
            day.isoformat(): [str(book.net_pnl), book.counted, book.wins, book.losses, str(book.win_sum), str(book.loss_sum)]
            for day, book in progress.sessions.items()
        },
        "session_order": [day.isoformat() for day in progress.session_order],
        "equity_at_open": _dated(progress.equity_at_open, str),
        "all_sessions_pnl": _dated(progress.all_sessions_pnl, str),
        "all_sessions_count": _dated(progress.all_sessions_count, int),
        "real_session_pnl": _dated(progress.real_session_pnl, str),
        "equity_at_stint_start": _maybe_str(progress.equity_at_stint_start),
        "peak": _maybe_str(progress.peak),
        "max_drawdown_pct": str(progress.max_drawdown_pct),
        "peak_not_above_zero": _maybe_str(progress.peak_not_above_zero),
        "last_stint_trade": _trade_json(progress.last_stint_trade),
        "last_session": None if progress.last_session is None else progress.last_session.isoformat(),
        "manual_override_trades": progress.manual_override_trades,
    }


def restore_progress(progress: StintProgress, data: Any) -> StintProgress:
    """Fill a fresh progress (built from the current ledger and settings) with saved numbers.

    Raises KeyError, TypeError, ValueError or ArithmeticError on anything malformed.
    """
    if not isinstance(data, dict):
        raise TypeError("progress: not an object")
    if data["trigger_window_size"] != progress.trigger_window_size or data["gate_window_size"] != progress.gate_window_size:
        raise ValueError("window sizes differ from the settings in force")
    progress.equity = _exact(data["equity"])
    progress.tally = _tally(data["tally"])
    progress.trigger_window = _window(data["trigger_window"], progress.trigger_window_size)
    progress.gate_window = _window(data["gate_window"], progress.gate_window_size)
    days = _Days()
    sessions: dict[date, SessionBook] = {}
    for day, row in _object(data["sessions"]).items():
        if row.__class__ is not list or len(row) != 6:
            raise ValueError(f"session {day}: not a six-field row")
        net, counted, wins, losses, win_sum, loss_sum = row
        sessions[days[day]] = SessionBook(_exact(net), _count(counted), _count(wins), _count(losses), _exact(win_sum), _exact(loss_sum))
    progress.sessions = sessions
    order = data["session_order"]
    if not isinstance(order, list):
        raise TypeError("session_order: not a list")
    progress.session_order = [days[day] for day in order]
    if len(progress.session_order) != len(sessions) or set(progress.session_order) != sessions.keys():
        raise ValueError("session_order does not name each session once")
    progress.equity_at_open = _undated(data["equity_at_open"], _exact, days)
    progress.all_sessions_pnl = _undated(data["all_sessions_pnl"], _exact, days)
    progress.all_sessions_count = _undated(data["all_sessions_count"], _count, days)
    progress.real_session_pnl = _undated(data["real_session_pnl"], _exact, days)
    progress.equity_at_stint_start = _maybe_exact(data["equity_at_stint_start"])
    progress.peak = _maybe_exact(data["peak"])
    progress.max_drawdown_pct = _exact(data["max_drawdown_pct"])
    progress.peak_not_above_zero = _maybe_exact(data["peak_not_above_zero"])
    progress.last_stint_trade = _trade(data["last_stint_trade"])
    progress.last_session = None if data["last_session"] is None else _day(data["last_session"])
    progress.manual_override_trades = _count(data["manual_override_trades"])
    return progress


def replay_to_json(replay: Replay) -> dict[str, Any]:
    """Where the replay stands; the ledger is not saved (it is re-read from the history)."""
    return {
        "index": replay.index,
        "head_seq": replay.head_seq,
        "pending": [day.isoformat() for day in replay.pending],
        "progress": progress_to_json(replay.progress),
    }


def restore_replay(data: Any, ledger: Ledger, new_progress: Callable[[Ledger], StintProgress]) -> Replay:
    """The saved replay on the current ledger; `new_progress` is the engine's (settings in force)."""
    if not isinstance(data, dict):
        raise TypeError("replay: not an object")
    pending_list = data["pending"]
    if not isinstance(pending_list, list):
        raise TypeError("pending: not a list")
    pending = [_day(day) for day in pending_list]
    if len(set(pending)) != len(pending):
        raise ValueError("pending: a session twice")
    heapq.heapify(pending)  # already a heap when we wrote it; this keeps it one if not
    head_seq = _count(data["head_seq"])
    if head_seq != ledger.head_seq:
        raise ValueError(f"replay head {head_seq} is not the history's {ledger.head_seq}")
    return Replay(
        ledger=ledger,
        progress=restore_progress(new_progress(ledger), data["progress"]),
        index=_count(data["index"]),
        head_seq=head_seq,
        unsummarized=set(pending),
        pending=pending,
    )


# ---- the file ------------------------------------------------------------------------


def _digest(key: dict[str, Any], folded_through: Any, replay: Any) -> str:
    body = orjson.dumps({"key": key, "folded_through": folded_through, "replay": replay})
    return hashlib.sha256(body).hexdigest()


class StateSnapshot:
    """`state.json`: one saved fold, with the key it was computed under and its checksum."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def save(self, key: SnapshotKey, replay: Replay, folded_through: datetime | None) -> None:
        """Atomic replace (temp, fsync, rename): a crash leaves the old file or the new one.

        Raises OSError when the file cannot be written, ValueError when the fold holds text
        JSON cannot carry (a journal file name that is not UTF-8, say).
        """
        key_json = key.to_json()
        through = None if folded_through is None else format_timestamp(folded_through)
        body = replay_to_json(replay)
        document = {
            "format": FORMAT,
            "key": key_json,
            "folded_through": through,
            "replay": body,
            "digest": _digest(key_json, through, body),
        }
        try:
            data = orjson.dumps(document)
        except orjson.JSONEncodeError as error:
            raise ValueError(str(error)) from None
        atomic_write_bytes(self.path, data)

    def load(
        self,
        current: SnapshotKey,
        now: datetime,
        read_ledger: Callable[[], Ledger],
        new_progress: Callable[[Ledger], StintProgress],
    ) -> tuple[SnapshotKey, Replay]:
        """The saved fold if it is the current records' fold up to its position; else raises
        `SnapshotUnusable` saying why (absent, unreadable, edited, or computed from other inputs)."""
        try:
            raw = read_regular(self.path)
        except FileNotFoundError:
            raise SnapshotUnusable("no saved state") from None
        except OSError as error:
            raise SnapshotUnusable(f"cannot be read ({error.strerror or error})") from None
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise SnapshotUnusable(f"not valid JSON ({error})") from None
        try:
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise SnapshotUnusable("not a saved phase state")
            if document.get("digest") != _digest(document.get("key"), document.get("folded_through"), document.get("replay")):
                raise SnapshotUnusable("content does not match its checksum (edited or damaged)")
            saved = SnapshotKey.from_json(document["key"])
            reason = saved.mismatch(current)
            if reason is not None:
                raise SnapshotUnusable(f"stale: {reason}")
            through = document["folded_through"]
            if through is not None and parse_timestamp(through) > now:
                raise SnapshotUnusable("stale: it folded trades closed after now (the clock stepped back)")
            replay = restore_replay(document["replay"], read_ledger(), new_progress)
            if replay.index != saved.closes:
                raise ValueError(f"replay index {replay.index} is not the key's {saved.closes} closes")
        except SnapshotUnusable:
            raise
        except (KeyError, TypeError, ValueError, ArithmeticError, JournalError) as error:
            raise SnapshotUnusable(f"does not validate ({type(error).__name__}: {error})") from None
        return saved, replay


# ---- field readers: exact types or an exception -----------------------------------------


def _exact(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _maybe_exact(value: Any) -> Decimal | None:
    return None if value is None else _exact(value)


def _maybe_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a count, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _day(value: Any) -> date:
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")
    return date.fromisoformat(value)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _dated(values: dict[date, Any], write: Callable[[Any], Any]) -> dict[str, Any]:
    return {day.isoformat(): write(value) for day, value in values.items()}


class _Days(dict[Any, date]):
    """Session dates read once per restore: the saved fold names each session in five maps."""

    def __missing__(self, text: Any) -> date:
        day = self[text] = _day(text)
        return day


def _undated(value: Any, read: Callable[[Any], Any], days: _Days) -> dict[date, Any]:
    return {days[day]: read(item) for day, item in _object(value).items()}


def _tally_json(tally: RunningTally) -> dict[str, Any]:
    return {name: value if isinstance(value := getattr(tally, name), int) else str(value) for name in RunningTally.__slots__}


def _tally(value: Any) -> RunningTally:
    data = _object(value)
    tally = RunningTally()
    for name in RunningTally.__slots__:
        read = _exact if isinstance(getattr(tally, name), Decimal) else _count
        setattr(tally, name, read(data[name]))
    return tally


def _window_json(window: RollingWindow | None) -> dict[str, Any] | None:
    if window is None:
        return None
    return {
        "size": window.size,
        "trades": [[outcome, str(pnl)] for outcome, pnl in window.contents()],
        "wins": window.wins,
        "losses": window.losses,
        "win_sum": str(window.win_sum),
        "loss_sum": str(window.loss_sum),
    }


def _window(value: Any, size: int | None) -> RollingWindow | None:
    """The saved window; it must be the size the settings in force give (or absent with them)."""
    if value is None and not size:
        return None
    data = _object(value)
    if size is None or data["size"] != size:
        raise ValueError(f"a window of {data['size']} trades saved, the settings say {size}")
    trades = data["trades"]
    if not isinstance(trades, list):
        raise TypeError("window trades: not a list")
    contents = []
    for item in trades:
        if not isinstance(item, list) or len(item) != 2 or item[0] not in (WIN, LOSS, BREAKEVEN):
            raise ValueError(f"window trade {item!r}: not [outcome, net P&L]")
        contents.append((item[0], _exact(item[1])))
    return RollingWindow.restored(
        size, contents, _count(data["wins"]), _count(data["losses"]), _exact(data["win_sum"]), _exact(data["loss_sum"])
    )


def _trade_json(trade: TradeRecord | None) -> dict[str, Any] | None:
    """The journal record as written, plus what the writer adds and where it was read."""
    if trade is None:
        return None
    return {"record": trade.to_json_dict(), "extra": trade.extra, "file": trade.file, "line": trade.line}


def _trade(value: Any) -> TradeRecord | None:
    """Re-validated as a journal line is: the saved record gets no more trust than the journal."""
    if value is None:
        return None
    data = _object(value)
    file, line = _text(data["file"]), _count(data["line"])
    return replace(parse_trade(_object(data["record"]), file, line), extra=_object(data["extra"]))


# ---- the entries per session, saved beside the fold ---------------------------------------

ENTRY_SESSIONS_FILE = "entry_sessions.json"
ENTRY_SESSIONS_FORMAT = "trading-bot entries per session"


@dataclass(frozen=True)
class EntrySessionsKey:
    """What saved counts were computed from: the code, the settings (hours and zone place an
    original-bot line), the journal's epoch and how many entries of its entry log."""

    version: int
    settings: str
    journal_epoch: str
    entries: int

    def same_counts(self, saved: EntrySessionsKey | None) -> bool:
        """Whether the counts saved under `saved` are exactly these (no save needed)."""
        return saved is not None and saved.entries == self.entries and saved.mismatch(self) is None

    def mismatch(self, current: EntrySessionsKey) -> str | None:
        if (self.version, self.settings) != (current.version, current.settings):
            return "code or settings changed"
        if self.entries and self.journal_epoch != current.journal_epoch:
            # Counts of no entry hold under any epoch (a desk with no trades yet).
            return "journal rebuilt or reordered since (epoch differs)"
        if self.entries > current.entries:
            return f"journal holds {current.entries} entries, fewer than the {self.entries} counted"
        return None


class SavedEntrySessions:
    """`entry_sessions.json`: the per-session entry counts (and first and last entry instants)
    of the first `entries` entries of the journal, so a start counts only the entries after
    them instead of grouping the whole journal. Checked like the saved fold: every key must
    hold and the content must match its own checksum, or the counts are rebuilt."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, key: EntrySessionsKey, counts: Any) -> None:
        """Atomic replace; `counts` is a `SessionEntries` (by_session, first_at, last_at)."""
        rows = [
            [day.isoformat(), count, format_timestamp(counts.first_at[day]), format_timestamp(counts.last_at[day])]
            for day, count in sorted(counts.by_session.items())
        ]
        key_json = asdict(key)
        document = {"format": ENTRY_SESSIONS_FORMAT, "key": key_json, "sessions": rows, "digest": _rows_digest(key_json, rows)}
        atomic_write_bytes(self.path, orjson.dumps(document))

    def load(self, current: EntrySessionsKey) -> tuple[EntrySessionsKey, list[tuple[date, int, datetime, datetime]]]:
        """The saved counts and the key they were saved under; raises `SnapshotUnusable`."""
        try:
            document = orjson.loads(read_regular(self.path))
        except FileNotFoundError:
            raise SnapshotUnusable("no saved entry counts") from None
        except (OSError, orjson.JSONDecodeError) as error:
            raise SnapshotUnusable(f"entry counts unreadable ({error})") from None
        try:
            if not isinstance(document, dict) or document.get("format") != ENTRY_SESSIONS_FORMAT:
                raise SnapshotUnusable("not saved entry counts")
            if document.get("digest") != _rows_digest(document.get("key"), document.get("sessions")):
                raise SnapshotUnusable("entry counts do not match their checksum (edited or damaged)")
            data = _object(document["key"])
            saved = EntrySessionsKey(
                version=_count(data["version"]),
                settings=_text(data["settings"]),
                journal_epoch=_text(data["journal_epoch"]),
                entries=_count(data["entries"]),
            )
            reason = saved.mismatch(current)
            if reason is not None:
                raise SnapshotUnusable(f"stale entry counts: {reason}")
            # parse_timestamp refuses what is not a timestamp string.
            rows = [
                (_day(day), _count(count), parse_timestamp(first), parse_timestamp(last))
                for day, count, first, last in document["sessions"]
            ]
            if len({row[0] for row in rows}) != len(rows):
                raise ValueError("a session is counted twice")
        except SnapshotUnusable:
            raise
        except (KeyError, TypeError, ValueError, JournalError) as error:
            raise SnapshotUnusable(f"entry counts malformed ({error})") from None
        return saved, rows


def _rows_digest(key: Any, rows: Any) -> str:
    return hashlib.sha256(orjson.dumps({"key": key, "sessions": rows})).hexdigest()
