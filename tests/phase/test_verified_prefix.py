"""A new process trusts the prefix of a phase log that a process before it checked in full
(`.derived/<name>.verified`: its length and SHA-256), instead of re-hashing every line;
anything about the note that does not fit the bytes on disk means a full check."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from trading_bot.clock import FixedClock
from trading_bot.durable_files import LogsLock
from trading_bot.phase.chained_log import ChainedLog
from trading_bot.phase.log_format import canonical_line

START = datetime(2026, 3, 11, 14, 5, 0, 123456, tzinfo=timezone.utc)
# Enough lines for more than the 64 KiB a reader checks before it writes a note.
LINES = 450


def _reader(path: Path) -> ChainedLog:
    """What a new process builds: nothing cached in memory."""
    return ChainedLog(path, LogsLock(path.parent), FixedClock(START))


def _filled(tmp_path: Path, count: int = LINES) -> ChainedLog:
    log = _reader(tmp_path / "phase" / "phase-history.jsonl")
    with log.batched({"note"}):
        for index in range(count):
            log.append("note", {"n": index, "pnl": f"{index}.50", "why": "x" * 100})
    return log


def _note(log: ChainedLog) -> dict[str, object]:
    return orjson.loads(log.verified_note.read_bytes())


def _write_note(log: ChainedLog, length: int, data: bytes | None = None, **extra: object) -> None:
    body = log.path.read_bytes() if data is None else data
    note = {"version": 1, "bytes": length, "sha256": hashlib.sha256(body[:length]).hexdigest(), **extra}
    log.verified_note.write_bytes(json.dumps(note).encode())


def test_a_reader_notes_what_it_checked_and_the_next_reads_the_same_lines_through_the_note(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    assert not log.verified_note.exists()  # the writer read nothing from scratch
    checked = _reader(log.path).lines()
    note = _note(log)
    assert note["bytes"] == log.path.stat().st_size
    assert note["sha256"] == hashlib.sha256(log.path.read_bytes()).hexdigest()
    through_note = _reader(log.path)
    assert through_note.lines() == checked
    assert through_note.head() == (LINES, checked[-1].hash)
    assert through_note.damage() is None
    # And a writer chains onto it as onto a checked log.
    through_note.append("note", {"n": LINES})
    assert _reader(log.path).verify() == []


def test_an_edit_inside_the_noted_prefix_is_damage_all_the_same(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    _reader(log.path).lines()
    lines = log.path.read_bytes().splitlines(keepends=True)
    obj = json.loads(lines[99])
    obj["pnl"] = "1000000.50"  # the old hash kept: the line no longer matches it
    lines[99] = canonical_line(obj)
    log.path.write_bytes(b"".join(lines))
    reader = _reader(log.path)
    damage = reader.damage()
    assert damage is not None and damage.line == 100
    assert len(reader.lines()) == 99


def test_lines_appended_after_the_note_are_checked(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    _reader(log.path).lines()
    last = json.loads(log.path.read_bytes().splitlines()[-1])
    bad = {"seq": LINES + 1, "timestamp": "2026-03-11T14:05:00.123456Z", "type": "note", "prev_hash": last["hash"], "n": 1}
    bad["hash"] = "0" * 64  # not the line's hash
    with open(log.path, "ab") as handle:
        handle.write(canonical_line(bad))
    damage = _reader(log.path).damage()
    assert damage is not None and damage.line == LINES + 1


@pytest.mark.parametrize(
    "spoil",
    ["not json", "other version", "longer than the file", "not at a line end", "other bytes", "no bytes"],
)
def test_a_note_that_does_not_fit_the_file_means_a_full_check(tmp_path: Path, spoil: str) -> None:
    log = _filled(tmp_path, 40)
    data = log.path.read_bytes()
    size = len(data)
    if spoil == "not json":
        log.verified_note.parent.mkdir(exist_ok=True)
        log.verified_note.write_bytes(b"{not json")
    elif spoil == "other version":
        log.verified_note.parent.mkdir(exist_ok=True)
        _write_note(log, size, version=2)
    elif spoil == "longer than the file":
        log.verified_note.parent.mkdir(exist_ok=True)
        _write_note(log, size + 10, data + b"x" * 10)
    elif spoil == "not at a line end":
        log.verified_note.parent.mkdir(exist_ok=True)
        _write_note(log, size - 5)
    elif spoil == "other bytes":
        log.verified_note.parent.mkdir(exist_ok=True)
        _write_note(log, size, data.replace(b'"n":3,', b'"n":4,'))
    else:
        log.verified_note.parent.mkdir(exist_ok=True)
        _write_note(log, 0)
    # A payload edit that keeps the old hash: only a full check finds it.
    lines = data.splitlines(keepends=True)
    obj = json.loads(lines[3])
    obj["pnl"] = "99.50"
    lines[3] = canonical_line(obj)
    log.path.write_bytes(b"".join(lines))
    damage = _reader(log.path).damage()
    assert damage is not None and damage.line == 4


def test_a_note_for_lines_out_of_order_is_not_trusted(tmp_path: Path) -> None:
    """The note saves the hashing only: the chain's seq and prev_hash links are still compared."""
    log = _filled(tmp_path, 40)
    lines = log.path.read_bytes().splitlines(keepends=True)
    lines[5], lines[6] = lines[6], lines[5]
    log.path.write_bytes(b"".join(lines))
    log.verified_note.parent.mkdir(exist_ok=True)
    _write_note(log, log.path.stat().st_size)
    damage = _reader(log.path).damage()
    assert damage is not None and damage.line == 6


def test_a_forged_note_hides_a_content_edit_from_readers_as_recomputed_hashes_would_but_not_from_verify(tmp_path: Path) -> None:
    """The trust model (README): whoever can write the logs folder can forge a note, as they
    can recompute every hash; `verify` never reads the note."""
    log = _filled(tmp_path, 40)
    lines = log.path.read_bytes().splitlines(keepends=True)
    obj = json.loads(lines[3])
    obj["pnl"] = "99.50"
    lines[3] = canonical_line(obj)
    log.path.write_bytes(b"".join(lines))
    log.verified_note.parent.mkdir(exist_ok=True)
    _write_note(log, log.path.stat().st_size)
    reader = _reader(log.path)
    assert reader.damage() is None and reader.lines()[3].data["pnl"] == "99.50"
    assert [problem.line for problem in reader.verify()] == [4]


def test_a_note_is_written_again_only_after_64_kib_more_were_checked(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    _reader(log.path).lines()
    first = _note(log)
    with log.batched({"note"}):
        for index in range(20):  # a few KiB: the next reader checks them, notes nothing
            log.append("note", {"n": index, "why": "y" * 100})
    assert len(_reader(log.path).lines()) == LINES + 20
    assert _note(log) == first
    with log.batched({"note"}):
        for index in range(LINES):
            log.append("note", {"n": index, "why": "z" * 100})
    assert len(_reader(log.path).lines()) == 2 * LINES + 20
    assert _note(log)["bytes"] == log.path.stat().st_size


def test_a_note_that_cannot_be_written_costs_nothing_but_time(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    log.verified_note.parent.mkdir(exist_ok=True)
    log.verified_note.mkdir()  # a folder where the note goes: the replace fails
    assert len(_reader(log.path).lines()) == LINES
    assert list(log.verified_note.parent.glob(".*.tmp")) == []


def test_a_read_only_view_reads_through_a_note_but_never_writes_one(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    viewer = ChainedLog(log.path, LogsLock(log.path.parent), FixedClock(START), notes=False)
    assert len(viewer.lines()) == LINES
    assert not log.verified_note.exists()
    checked = _reader(log.path).lines()
    assert ChainedLog(log.path, LogsLock(log.path.parent), FixedClock(START), notes=False).lines() == checked
