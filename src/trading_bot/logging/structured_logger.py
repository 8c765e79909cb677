"""Appending trades to the journal: one JSON line per record, fsync'd, under the logs lock."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import orjson

from trading_bot.durable_files import LogsLock, append_durably, atomic_write_bytes, fsync_directory
from trading_bot.logging.trade_record import TradeRecord


class StructuredTradeLogger:
    """Writes `logs/trades/YYYY-MM-DD.jsonl` (UTC date of the write) append-only."""

    def __init__(self, trades_dir: Path, lock: LogsLock) -> None:
        self.trades_dir = Path(trades_dir)
        self.lock = lock
        self.recovered_fragments: list[Path] = []

    def path_for(self, moment: datetime) -> Path:
        return self.trades_dir / f"{moment.astimezone(timezone.utc).date().isoformat()}.jsonl"

    def log_trade(self, record: TradeRecord, at: datetime) -> Path:
        """Append one record durably; returns the file written."""
        path = self.path_for(at)
        line = orjson.dumps(record.to_json_dict()) + b"\n"
        with self.lock.held():
            self.set_aside_torn_tail(path, at)
            append_durably(path, line)
        return path

    def set_aside_torn_tail(self, path: Path, at: datetime) -> Path | None:
        """A crash can leave an unterminated last line; appending after it would merge two
        records into one garbage line, so the fragment is kept in a recovery file first.
        Returns the recovery file, or None when the file ends cleanly."""
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            return None
        if size == 0:
            return None
        with open(path, "rb") as handle:
            handle.seek(max(0, size - 65536))
            tail = handle.read()
        if tail.endswith(b"\n"):
            return None
        with open(path, "rb") as handle:
            data = handle.read()
        cut = data.rfind(b"\n") + 1
        stamp = at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        recovery = path.with_name(f"{path.name}.torn-{stamp}")
        suffix = 1
        while recovery.exists():
            recovery = path.with_name(f"{path.name}.torn-{stamp}-{suffix}")
            suffix += 1
        atomic_write_bytes(recovery, data[cut:])
        with open(path, "r+b") as handle:
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_directory(path.parent)
        self.recovered_fragments.append(recovery)
        return recovery
