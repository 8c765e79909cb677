"""Repairing a phase log: torn tails set aside, checkpoints, and `recover`.

These work on a `ChainedLog`'s cache and take its lock: truncating a torn fragment is
the one change ever made to existing bytes (after saving them), and a recovery replaces
the file in one atomic write with a `recovered` line saying what was dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import orjson

from trading_bot.clock import ensure_utc
from trading_bot.durable_files import atomic_write_bytes, read_regular
from trading_bot.phase.log_format import (
    GENESIS_HASH,
    LogDamaged,
    LogLine,
    LogProblem,
    build_line,
    scan_all,
    stamp_no_earlier_than,
)
from trading_bot.phase.record_types import OVERRIDE_ATTEMPT, OVERRIDES_FILE, RECOVERED, TORN_TAIL_MOVED

if TYPE_CHECKING:
    from trading_bot.phase.chained_log import ChainedLog

_STAMP_FORMAT: Final = "%Y%m%dT%H%M%S%f"


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """What `recover` kept, what it dropped, where the damaged file went and the line it wrote."""

    restored_from: str
    kept_lines: int
    dropped_from_line: int
    dropped_lines: int
    damaged_file: Path
    recovered_line: LogLine


def move_torn_tail_aside(log: ChainedLog) -> Path | None:
    """Save an unterminated last line to a recovery file, cut it off and record that.

    Truncating that fragment is the one modification ever made to existing bytes, and
    only after its exact bytes are durably saved. Returns the recovery file, if any.
    """
    with log._lock.held():
        log._refresh_for_write()
        if log._torn is None:
            return None
        if log._damage is not None:
            raise LogDamaged(log._damage)
        return move_torn_tail_locked(log)


def write_checkpoint(log: ChainedLog) -> Path:
    """Atomically copy the intact lines to `<name>.checkpoint`, after a full re-check.

    The full check matters: a checkpoint is what `recover` may restore from.
    """
    with log._lock.held():
        log._refresh_for_write()
        if log._damage is not None:
            raise LogDamaged(log._damage)
        data = log._read_range(0, log._offset)
        scan = scan_all(data, log.path.name)
        if scan.problems or scan.terminated != len(log._lines):
            log._forget()
            problem = scan.problems[0] if scan.problems else LogProblem(log.path.name, None, "changed while read")
            raise LogDamaged(problem)
        atomic_write_bytes(log.checkpoint_path, data)
        return log.checkpoint_path


def recover(log: ChainedLog) -> RecoveryResult | None:
    """Restore a damaged log to the longer verifiable of its intact prefix and checkpoint.

    The damaged file is kept aside and a `recovered` line records what was dropped; the
    restored content and that line are written in one atomic replace, so there is no
    moment without a log. Returns None (after moving a torn tail aside) if not damaged.
    """
    with log._lock.held():
        log._refresh_for_write()
        if log._damage is None:
            if log._torn is not None:
                move_torn_tail_locked(log)
            return None
        data = read_regular(log.path)
        damaged = scan_all(data, log.path.name)
        # Recompute the intact prefix from these exact bytes rather than the cache.
        prefix_lines: list[LogLine] = []
        prefix_end = 0
        for line in damaged.lines:
            if line.line_no != len(prefix_lines) + 1:
                break
            prefix_lines.append(line)
            prefix_end = data.index(b"\n", prefix_end) + 1
        source, kept, content = "prefix", prefix_lines, data[:prefix_end]
        checkpoint = _valid_checkpoint(log)
        if checkpoint is not None and len(checkpoint[0]) > len(prefix_lines):
            source, kept, content = "checkpoint", checkpoint[0], checkpoint[1]
        dropped_from = len(prefix_lines) + 1
        dropped = max(0, damaged.terminated - len(kept))
        damaged_file = _aside_path(log, "damaged")
        atomic_write_bytes(damaged_file, data)
        last_seq, last_hash = (kept[-1].seq, kept[-1].hash) if kept else (0, GENESIS_HASH)
        payload = {
            "restored_from": source,
            "kept_lines": len(kept),
            "dropped_from_line": dropped_from,
            "dropped_lines": dropped,
            "damaged_file": damaged_file.name,
            "torn_tail_bytes": len(damaged.torn),
        }
        if log.path.name == OVERRIDES_FILE:
            payload["dropped_wrong_passwords"] = _wrong_passwords_in(data.split(b"\n")[len(kept):])
        moment, payload = stamp_no_earlier_than(log._clock.now(), kept[-1].timestamp if kept else None, payload)
        obj, raw = build_line(RECOVERED, payload, last_seq + 1, last_hash, moment)
        atomic_write_bytes(log.path, content + raw)
        log._forget()
        recovered = log._expect_last(obj["hash"])
        return RecoveryResult(
            restored_from=source,
            kept_lines=len(kept),
            dropped_from_line=dropped_from,
            dropped_lines=dropped,
            damaged_file=damaged_file,
            recovered_line=recovered,
        )

# ----------------------------------------------------------------- internals
def _wrong_passwords_in(raw_lines: list[bytes]) -> int:
    """Wrong-password attempts readable in dropped lines, damaged or not: the evidence a
    recovery loses, named in its `recovered` line."""
    count = 0
    for raw in raw_lines:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("type") == OVERRIDE_ATTEMPT and obj.get("outcome") == "wrong_password":
            count += 1
    return count


def move_torn_tail_locked(log: ChainedLog) -> Path:
    """Set a torn tail aside; the caller holds the lock and has refreshed the log for writing."""
    cut = log._offset
    torn = log._read_range(cut, None)
    if not torn or b"\n" in torn:
        raise LogDamaged(LogProblem(log.path.name, None, "changed while moving a torn line aside"))
    recovery = _aside_path(log, "torn")
    atomic_write_bytes(recovery, torn)
    fd = os.open(log.path, os.O_WRONLY)
    try:
        os.ftruncate(fd, cut)
        os.fsync(fd)
    finally:
        os.close(fd)
    log._refresh(force=True)
    log._append_locked(TORN_TAIL_MOVED, {"recovery_file": recovery.name, "bytes": len(torn)}, None)
    return recovery


def _valid_checkpoint(log: ChainedLog) -> tuple[list[LogLine], bytes] | None:
    try:
        data = read_regular(log.checkpoint_path)
    except FileNotFoundError:
        return None
    scan = scan_all(data, log.checkpoint_path.name)
    if scan.problems:
        return None
    return scan.lines, data


def _aside_path(log: ChainedLog, kind: str) -> Path:
    """`<name>.<kind>-<UTC stamp>`, made unique so nothing set aside is ever overwritten."""
    stamp = ensure_utc(log._clock.now()).strftime(_STAMP_FORMAT)
    candidate = log.path.with_name(f"{log.path.name}.{kind}-{stamp}")
    counter = 1
    while candidate.exists():
        candidate = log.path.with_name(f"{log.path.name}.{kind}-{stamp}-{counter}")
        counter += 1
    return candidate


