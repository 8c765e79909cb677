"""The hash-chained phase logs: reads, appends, tamper detection, torn lines and recovery."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from freezegun import freeze_time

from trading_bot.clock import FixedClock, SystemClock
from trading_bot.durable_files import LogsLock
from trading_bot.phase import log_format
from trading_bot.phase.chained_log import ChainedLog
from trading_bot.phase.log_format import (
    GENESIS_HASH,
    LogDamaged,
    LogProblem,
    canonical_line,
    line_hash,
)

START = datetime(2026, 3, 11, 14, 5, 0, 123456, tzinfo=timezone.utc)


def make_log(directory: Path, clock: object | None = None) -> ChainedLog:
    folder = directory / "phase"
    return ChainedLog(folder / "phase-history.jsonl", LogsLock(folder), clock or FixedClock(START))


def fill(log: ChainedLog, count: int) -> None:
    for index in range(count):
        log.append("note", {"n": index, "pnl": f"{index}.50"})


def file_lines(log: ChainedLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def write_lines(log: ChainedLog, lines: list[bytes]) -> None:
    log.path.write_bytes(b"".join(lines))


def edited(raw: bytes, **changes: object) -> bytes:
    """The same line with payload values changed but its old hash kept, canonically encoded."""
    obj = json.loads(raw)
    obj.update(changes)
    return canonical_line(obj)


def problem_lines(log: ChainedLog) -> list[int | None]:
    return [problem.line for problem in log.verify()]


# ---------------------------------------------------------------- reading and writing


def test_appended_lines_read_back_in_order_with_seq_and_chain(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    lines = log.lines()
    assert [line.seq for line in lines] == [1, 2, 3]
    assert [line.line_no for line in lines] == [1, 2, 3]
    assert [line.data["n"] for line in lines] == [0, 1, 2]
    assert lines[1].prev_hash == lines[0].hash and lines[2].prev_hash == lines[1].hash
    assert log.head() == (3, lines[2].hash)
    assert log.verify() == []


def test_first_line_prev_hash_is_64_zeros(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    first = log.append("note", {})
    assert first.prev_hash == "0" * 64 == GENESIS_HASH
    assert json.loads(log.path.read_bytes())["prev_hash"] == "0" * 64


def test_missing_log_is_empty_with_genesis_head_and_no_problems(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    assert log.lines() == ()
    assert log.head() == (0, GENESIS_HASH)
    assert log.damage() is None and log.torn_tail() is None
    assert log.verify() == []


def test_written_line_is_canonical_encoding_plus_newline(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    line = log.append("note", {"z": "é", "a": {"y": 1, "b": [True, None]}})
    assert log.path.read_bytes() == canonical_line(line.data)
    assert log.path.read_bytes().decode("utf-8").startswith('{"a":{"b":[true,null],"y":1},"hash":')


def test_hash_is_reproduced_with_plain_hashlib_and_json(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.append("note", {"pnl": "12.50", "who": "Zoë"})
    obj = json.loads(log.path.read_bytes())
    claimed = obj.pop("hash")
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(body.encode("utf-8")).hexdigest() == claimed == line_hash(obj)


def documented_script(tmp_path: Path) -> Path:
    doc = log_format.__doc__ or ""
    block = doc.split("An operator can check a whole file with::", 1)[1]
    code_lines = []
    for text in block.splitlines()[1:]:
        if text.strip() and not text.startswith("    "):
            break
        code_lines.append(text)
    script = tmp_path / "check_chain.py"
    script.write_text(textwrap.dedent("\n".join(code_lines)), encoding="utf-8")
    return script


def test_documented_check_script_accepts_an_intact_log(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 4)
    result = subprocess.run(
        [sys.executable, str(documented_script(tmp_path)), str(log.path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "intact"


def test_documented_check_script_rejects_an_edited_log(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 4)
    lines = file_lines(log)
    lines[2] = edited(lines[2], pnl="999.00")
    write_lines(log, lines)
    result = subprocess.run(
        [sys.executable, str(documented_script(tmp_path)), str(log.path)], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "line 3" in result.stderr


def test_timestamp_comes_from_the_clock_in_the_fixed_utc_format(tmp_path: Path) -> None:
    log = make_log(tmp_path, SystemClock())
    with freeze_time("2026-03-11 14:05:00.123456"):
        line = log.append("note", {})
    assert line.data["timestamp"] == "2026-03-11T14:05:00.123456Z"
    assert line.timestamp == START


def test_explicit_timestamp_is_recorded_in_utc(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    eastern = timezone(timedelta(hours=-5))
    line = log.append("note", {}, timestamp=datetime(2026, 1, 2, 9, 30, tzinfo=eastern))
    assert line.data["timestamp"] == "2026-01-02T14:30:00.000000Z"


def test_read_lines_as_of_ignores_lines_stamped_later(tmp_path: Path) -> None:
    """A line asked for at +1 h after a +2 h line is stamped +2 h: it was not there at +1 h."""
    log = make_log(tmp_path)
    for hours in (0, 2, 1, 3):
        log.append("note", {"h": hours}, timestamp=START + timedelta(hours=hours))
    assert [line.data["h"] for line in log.read_lines_as_of(START + timedelta(hours=1))] == [0]
    assert [line.data["h"] for line in log.read_lines_as_of(START + timedelta(hours=2))] == [0, 2, 1]


def test_lines_returns_the_same_tuple_while_the_file_is_unchanged(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 2)
    first = log.lines()
    assert log.lines() is first
    log.append("note", {})
    assert len(log.lines()) == 3 and len(first) == 2


def test_reader_picks_up_lines_appended_by_another_instance(tmp_path: Path) -> None:
    reader = make_log(tmp_path)
    writer = make_log(tmp_path)
    fill(writer, 2)
    assert len(reader.lines()) == 2
    fill(writer, 3)
    lines = reader.lines()
    assert [line.seq for line in lines] == [1, 2, 3, 4, 5]
    assert reader.head() == writer.head()
    reader.append("note", {"from": "reader"})
    assert writer.head()[0] == 6 and writer.verify() == []


def test_reader_notices_an_in_place_edit_of_a_line_it_already_read(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    assert len(log.lines()) == 3
    lines = file_lines(log)
    lines[1] = lines[1].replace(b'"pnl":"1.50"', b'"pnl":"9.50"')
    write_lines(log, lines)
    os.utime(log.path, ns=(0, 0))  # a different mtime, same size and inode
    assert log.damage() == LogProblem("phase-history.jsonl", 2, "hash does not match the line's content")
    assert len(log.lines()) == 1


# ---------------------------------------------------------------- payload rules


def test_payload_with_a_reserved_key_is_rejected(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with pytest.raises(ValueError, match="reserved"):
        log.append("note", {"seq": 7})
    assert not log.path.exists()


def test_payload_with_a_decimal_is_rejected_as_not_json_native(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with pytest.raises(TypeError, match="payload.pnl"):
        log.append("note", {"pnl": Decimal("1.50")})
    assert not log.path.exists()


def test_payload_with_a_non_finite_number_is_rejected(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with pytest.raises(ValueError):
        log.append("note", {"ratio": float("nan")})


# ---------------------------------------------------------------- tamper detection


def test_verify_detects_an_edited_middle_line(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 5)
    lines = file_lines(log)
    lines[2] = edited(lines[2], pnl="999.00")
    write_lines(log, lines)
    assert log.verify() == [LogProblem("phase-history.jsonl", 3, "hash does not match the line's content")]


def test_verify_detects_an_edited_middle_line_whose_hash_was_recomputed(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 5)
    lines = file_lines(log)
    obj = json.loads(lines[2])
    obj["pnl"] = "999.00"
    del obj["hash"]
    obj["hash"] = line_hash(obj)
    lines[2] = canonical_line(obj)
    write_lines(log, lines)
    assert problem_lines(log) == [4]
    assert "prev_hash" in log.verify()[0].reason


def test_verify_detects_an_edited_last_line(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 5)
    lines = file_lines(log)
    lines[-1] = edited(lines[-1], pnl="0.00")
    write_lines(log, lines)
    assert problem_lines(log) == [5]


def test_verify_detects_a_whitespace_only_edit(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    lines = file_lines(log)
    lines[1] = lines[1].replace(b'"n":1', b'"n": 1')
    write_lines(log, lines)
    assert log.verify() == [LogProblem("phase-history.jsonl", 2, "line is not in the canonical encoding")]


def test_verify_detects_a_deleted_line(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 5)
    lines = file_lines(log)
    del lines[2]
    write_lines(log, lines)
    problems = log.verify()
    assert [problem.line for problem in problems] == [3]
    assert "seq is 4, expected 3" in problems[0].reason and "prev_hash" in problems[0].reason


def test_verify_detects_an_inserted_line(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 4)
    lines = file_lines(log)
    forged = {"seq": 3, "timestamp": "2026-03-11T14:05:00.123456Z", "type": "note"}
    forged["prev_hash"] = json.loads(lines[1])["hash"]
    forged["hash"] = line_hash(forged)
    lines.insert(2, canonical_line(forged))
    write_lines(log, lines)
    assert problem_lines(log) == [4]


def test_verify_detects_two_swapped_lines(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 5)
    lines = file_lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(log, lines)
    assert problem_lines(log)[:1] == [2]
    assert len(log.verify()) >= 2


def test_verify_detects_an_unparseable_terminated_line(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    lines = file_lines(log)
    lines[1] = b'{"seq": 2, oops\n'
    write_lines(log, lines)
    assert log.verify()[0] == LogProblem("phase-history.jsonl", 2, "not valid JSON")
    assert log.damage() == LogProblem("phase-history.jsonl", 2, "not valid JSON")


def test_append_is_refused_while_the_log_is_damaged(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    lines = file_lines(log)
    lines[0] = edited(lines[0], pnl="5.00")
    write_lines(log, lines)
    before = log.path.read_bytes()
    with pytest.raises(LogDamaged) as raised:
        log.append("note", {})
    assert raised.value.problem.line == 1
    assert str(raised.value) == "phase-history.jsonl:1: hash does not match the line's content"
    assert log.path.read_bytes() == before


def test_append_is_refused_after_an_in_place_edit_that_also_grew_the_file(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 4)
    assert len(log.lines()) == 4
    lines = file_lines(log)
    lines[1] = lines[1].replace(b'"pnl":"1.50"', b'"pnl":"9.50"')
    write_lines(log, [*lines, b'{"seq":5'])  # same inode, larger: looks like an append
    with pytest.raises(LogDamaged) as raised:
        log.append("note", {})
    assert raised.value.problem.line == 2
    assert log.path.read_bytes().endswith(b'{"seq":5')
    assert list(log.path.parent.glob("*.torn-*")) == []


# ---------------------------------------------------------------- torn last line


def tear(log: ChainedLog, fragment: bytes = b'{"seq":4,"timestamp":"2026-03-') -> bytes:
    with open(log.path, "ab") as handle:
        handle.write(fragment)
    return fragment


def test_torn_last_line_is_ignored_by_readers(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    fragment = tear(log)
    assert len(log.lines()) == 3
    assert log.damage() is None
    assert log.torn_tail() == fragment


def test_torn_last_line_is_reported_by_verify(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    tear(log)
    assert log.verify() == [LogProblem("phase-history.jsonl", 4, "torn last line (unterminated)")]


def test_next_append_moves_a_torn_line_aside_and_records_it(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    intact = log.path.read_bytes()
    fragment = tear(log)
    line = log.append("note", {"after": "crash"})
    recovery_files = sorted(log.path.parent.glob("phase-history.jsonl.torn-*"))
    assert [path.name for path in recovery_files] == ["phase-history.jsonl.torn-20260311T140500123456"]
    assert recovery_files[0].read_bytes() == fragment
    lines = log.lines()
    assert lines[3].type == "torn_tail_moved"
    assert lines[3].data["recovery_file"] == recovery_files[0].name
    assert lines[3].data["bytes"] == len(fragment)
    assert line.seq == 5
    assert log.path.read_bytes().startswith(intact)
    assert log.verify() == []


def test_move_torn_tail_aside_without_a_torn_line_does_nothing(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 2)
    before = log.path.read_bytes()
    assert log.move_torn_tail_aside() is None
    assert log.path.read_bytes() == before


# ---------------------------------------------------------------- recovery


def damage_line(log: ChainedLog, index: int) -> None:
    lines = file_lines(log)
    lines[index] = edited(lines[index], pnl="777.00")
    write_lines(log, lines)


def test_recover_restores_the_intact_prefix_and_records_what_was_dropped(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 5)
    damage_line(log, 2)
    damaged_bytes = log.path.read_bytes()
    kept_bytes = b"".join(file_lines(log)[:2])
    result = log.recover()
    assert result is not None
    assert (result.restored_from, result.kept_lines, result.dropped_from_line, result.dropped_lines) == (
        "prefix",
        2,
        3,
        3,
    )
    assert result.damaged_file.name == "phase-history.jsonl.damaged-20260311T140500123456"
    assert result.damaged_file.read_bytes() == damaged_bytes
    assert log.path.read_bytes().startswith(kept_bytes)
    recovered = log.lines()[-1]
    assert recovered == result.recovered_line
    assert (recovered.seq, recovered.type) == (3, "recovered")
    assert recovered.data["restored_from"] == "prefix"
    assert recovered.data["dropped_from_line"] == 3
    assert recovered.data["dropped_lines"] == 3
    assert recovered.data["damaged_file"] == result.damaged_file.name
    assert log.verify() == []
    assert log.append("note", {}).seq == 4


def test_recover_prefers_a_longer_valid_checkpoint(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 5)
    checkpoint = log.write_checkpoint()
    checkpoint_bytes = checkpoint.read_bytes()
    fill(log, 2)
    damage_line(log, 1)
    result = log.recover()
    assert result is not None
    assert (result.restored_from, result.kept_lines, result.dropped_from_line, result.dropped_lines) == (
        "checkpoint",
        5,
        2,
        2,
    )
    assert log.path.read_bytes().startswith(checkpoint_bytes)
    assert [line.seq for line in log.lines()] == [1, 2, 3, 4, 5, 6]
    assert log.verify() == []


def test_recover_keeps_the_prefix_when_the_checkpoint_is_shorter(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 2)
    log.write_checkpoint()
    fill(log, 4)
    damage_line(log, 4)
    result = log.recover()
    assert result is not None
    assert (result.restored_from, result.kept_lines) == ("prefix", 4)


def test_recover_ignores_a_checkpoint_that_does_not_verify(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 5)
    checkpoint = log.write_checkpoint()
    lines = checkpoint.read_bytes().splitlines(keepends=True)
    lines[0] = edited(lines[0], pnl="1.00")
    checkpoint.write_bytes(b"".join(lines))
    damage_line(log, 3)
    result = log.recover()
    assert result is not None
    assert (result.restored_from, result.kept_lines) == ("prefix", 3)


def test_recover_on_an_intact_log_returns_none_and_writes_nothing(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    before = log.path.read_bytes()
    files_before = sorted(log.path.parent.iterdir())
    assert log.recover() is None
    assert log.path.read_bytes() == before
    assert sorted(log.path.parent.iterdir()) == files_before


def test_write_checkpoint_is_refused_while_the_log_is_damaged(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    fill(log, 3)
    damage_line(log, 1)
    with pytest.raises(LogDamaged):
        log.write_checkpoint()
    assert not log.checkpoint_path.exists()


# ---------------------------------------------------------------- concurrency


def _append_many(folder: str, label: str, count: int) -> None:
    """Run in a separate process: its own lock object and log instance on the same files."""
    log = ChainedLog(Path(folder) / "phase-history.jsonl", LogsLock(Path(folder)), SystemClock())
    for index in range(count):
        log.append("note", {"writer": label, "n": index})


def test_two_processes_appending_at_once_keep_one_intact_chain(tmp_path: Path) -> None:
    folder = tmp_path / "phase"
    folder.mkdir()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(folder), label, 200)) for label in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    log = make_log(tmp_path)
    lines = log.lines()
    assert len(lines) == 400
    assert sorted((line.data["writer"], line.data["n"]) for line in lines) == sorted(
        (label, n) for label in ("a", "b") for n in range(200)
    )
    assert log.verify() == []
