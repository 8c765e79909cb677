"""The first start's catch-up writes what is due in one durable batch.

A desk opened on a long journal owes one session summary per past session; those lines
reach the history together (one fsync), while a downgrade is durable before it is acted
on. Real files in tmp_path; fsync and write are counted by wrapping the stdlib calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from trading_bot.clock import FixedClock
from trading_bot.durable_files import FileChanged, LogsLock, append_many_durably
from trading_bot.high_water import HighWater
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.chained_log import ChainedLog
from trading_bot.phase.log_format import scan_all
from trading_bot.phase.manager import CATCH_UP_TYPES, PhaseManager
from trading_bot.phase.record_types import SESSION_SUMMARY, SIZE_CHANGE, SUGGESTION, TRANSITION

from tests.phase.conftest import SHIPPED_CONFIG

# Friday 2026-03-06, 18:00 New York: every session written below has closed.
NOW = datetime(2026, 3, 6, 23, 0, tzinfo=timezone.utc)
CHILD = Path(__file__).with_name("writer_child.py")


def past_sessions(count: int) -> list[date]:
    """The last `count` trading days before NOW's session, oldest first."""
    calendar = MarketCalendar()
    days: list[date] = []
    day = calendar.session_of(NOW)
    while len(days) < count:
        day = calendar.previous_trading_day(day)
        days.append(day)
    return sorted(days)


def build_desk(root: Path, sessions: int) -> Path:
    """config.json and a journal of one small winning paper trade in each of `sessions` past
    sessions; no phase logs yet (a desk opened for the first time)."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.json"
    config.write_bytes(SHIPPED_CONFIG.read_bytes())
    trades = root / "logs" / "trades"
    trades.mkdir(parents=True)
    calendar = MarketCalendar()
    with open(trades / "trades.jsonl", "w", encoding="utf-8") as handle:
        for serial, day in enumerate(past_sessions(sessions), start=1):
            entry = calendar.open_of(day) + timedelta(minutes=30)
            record = {
                "timestamp": entry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "symbol": "AAPL",
                "action": "BUY",
                "quantity": 1,
                "price": "10",
                "total_value": "10",
                "order_id": f"ord-{serial}",
                "execution_mode": "PAPER",
                "outcome": "win",
                "phase": "experience",
                "exit_timestamp": (entry + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "exit_price": "15",
                "net_profit_loss": "5",
                "profit_loss": "5",
            }
            handle.write(json.dumps(record) + "\n")
    return config


def history_path(config: Path) -> Path:
    return config.parent / "logs" / "phase" / "phase-history.jsonl"


def summaries(config: Path) -> list[str]:
    lines = history_path(config).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["date"] for line in lines if json.loads(line)["type"] == SESSION_SUMMARY]


class FsyncCounter:
    """Wraps the stdlib os.fsync: counts every call, and those on the history file."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, history: Path) -> None:
        self.history = history
        self.total = 0
        self.on_history = 0
        real = os.fsync

        def counting(fd: Any) -> None:
            self.total += 1
            try:
                if os.path.samestat(os.fstat(fd), os.stat(self.history)):
                    self.on_history += 1
            except FileNotFoundError:
                pass
            real(fd)

        monkeypatch.setattr(os, "fsync", counting)


def first_start(config: Path) -> list[Any]:
    return PhaseManager(config, clock=FixedClock(NOW), environ={}).apply_due()


# ---------------------------------------------------------------- the catch-up


@pytest.mark.parametrize("sessions", [1, 2, 40])
def test_a_catch_up_of_n_session_summaries_fsyncs_the_history_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sessions: int
) -> None:
    config = build_desk(tmp_path / "desk", sessions)
    counter = FsyncCounter(monkeypatch, history_path(config))
    written = first_start(config)
    assert summaries(config) == [day.isoformat() for day in past_sessions(sessions)]
    assert [line.type for line in written].count(SESSION_SUMMARY) == sessions
    assert counter.on_history == 1


def test_the_fsyncs_of_a_first_start_do_not_grow_with_the_sessions_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = []
    for sessions in (2, 40):
        config = build_desk(tmp_path / f"desk{sessions}", sessions)
        counter = FsyncCounter(monkeypatch, history_path(config))
        first_start(config)
        counts.append(counter.total)
    assert counts[0] == counts[1]


def test_batched_lines_are_the_bytes_one_by_one_appends_write(tmp_path: Path) -> None:
    """The batch changes when lines reach the disk, never what they say or how they chain."""
    batched = build_desk(tmp_path / "batched", 12)
    first_start(batched)
    one_by_one = build_desk(tmp_path / "one_by_one", 12)
    manager = PhaseManager(one_by_one, clock=FixedClock(NOW), environ={})
    with manager.lock.held():
        manager.sync_journal()
        trades, entries, session_entries = manager._journal_view()
        manager.engine.apply_due(manager.history, trades, session_entries, manager.overrides.lines(), entries, NOW)
    assert history_path(batched).read_bytes() == history_path(one_by_one).read_bytes()
    assert len(summaries(batched)) == 12


def test_a_second_start_has_nothing_due_and_writes_nothing(tmp_path: Path) -> None:
    config = build_desk(tmp_path / "desk", 5)
    first_start(config)
    before = history_path(config).read_bytes()
    assert first_start(config) == []
    assert history_path(config).read_bytes() == before


# ---------------------------------------------------------------- the batch itself


@pytest.fixture
def log(tmp_path: Path) -> Iterator[ChainedLog]:
    logs = tmp_path / "logs"
    (logs / "phase").mkdir(parents=True)
    yield ChainedLog(logs / "phase" / "phase-history.jsonl", LogsLock(logs), FixedClock(NOW))


def summary(day: int) -> dict[str, Any]:
    return {"date": f"2026-03-0{day}", "note": "due"}


def test_deferred_lines_are_read_back_at_once_but_reach_the_disk_on_leaving_the_block(log: ChainedLog) -> None:
    with log.batched(CATCH_UP_TYPES):
        first = log.append(SESSION_SUMMARY, summary(2))
        second = log.append(SIZE_CHANGE, {"to_size": "200"})
        assert [line.seq for line in log.lines()] == [1, 2]
        assert log.head() == (2, second.hash)
        assert second.prev_hash == first.hash
        assert not log.path.exists() or log.path.read_bytes() == b""
    assert [line.hash for line in log.lines()] == [first.hash, second.hash]
    assert len(log.path.read_bytes().splitlines()) == 2
    assert log.verify() == []


def test_a_transition_is_written_at_once_with_the_lines_before_it(log: ChainedLog, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = FsyncCounter(monkeypatch, log.path)
    with log.batched(CATCH_UP_TYPES):
        log.append(SESSION_SUMMARY, summary(2))
        log.append(SESSION_SUMMARY, summary(3))
        downgrade = log.append(TRANSITION, {"kind": "downgrade"})
        on_disk = log.path.read_bytes().splitlines()
        assert len(on_disk) == 3 and json.loads(on_disk[-1])["hash"] == downgrade.hash
        assert counter.on_history == 1
        log.append(SUGGESTION, {"to_phase": "proof"})
        assert len(log.path.read_bytes().splitlines()) == 3
    assert counter.on_history == 2
    assert [line.type for line in log.lines()] == [SESSION_SUMMARY, SESSION_SUMMARY, TRANSITION, SUGGESTION]
    assert log.verify() == []


def test_an_error_inside_the_block_writes_none_of_its_lines(log: ChainedLog) -> None:
    log.append(SESSION_SUMMARY, summary(2))
    before = log.path.read_bytes()
    with pytest.raises(ZeroDivisionError):
        with log.batched(CATCH_UP_TYPES):
            log.append(SESSION_SUMMARY, summary(3))
            1 / 0
    assert log.path.read_bytes() == before
    assert [line.seq for line in log.lines()] == [1]
    assert log.append(SESSION_SUMMARY, summary(4)).seq == 2


def test_a_file_written_behind_the_batch_is_not_chained_onto(log: ChainedLog) -> None:
    log.append(SESSION_SUMMARY, summary(2))
    with pytest.raises(FileChanged):
        with log.batched(CATCH_UP_TYPES):
            log.append(SESSION_SUMMARY, summary(3))
            with open(log.path, "ab") as handle:  # a hand edit, ignoring the lock
                handle.write(b'{"seq": 2}\n')
    assert log.path.read_bytes().splitlines()[-1] == b'{"seq": 2}'
    assert [line.seq for line in log.lines()] == [1]
    assert log.damage() is not None


def test_the_high_water_is_raised_to_the_latest_line_of_the_batch_before_it_is_written(log: ChainedLog) -> None:
    later = NOW + timedelta(hours=1)
    with log.batched(CATCH_UP_TYPES):
        log.append(SESSION_SUMMARY, summary(2), NOW - timedelta(days=2))
        log.append(SESSION_SUMMARY, summary(3), later)
        assert not (log.path.parent.parent / "high_water").exists()
    assert HighWater(log.path.parent.parent).read() == later


# ---------------------------------------------------------------- append_many_durably


@pytest.mark.parametrize(
    ("chunk_bytes", "writes"),
    [(9, 3), (10, 2), (11, 2), (20, 1)],  # three 5-byte lines; a chunk holds whole lines only
)
def test_lines_are_written_in_chunks_of_whole_lines_with_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int, writes: int
) -> None:
    calls: list[bytes] = []
    fsyncs: list[int] = []
    real_write, real_fsync = os.write, os.fsync
    monkeypatch.setattr(os, "write", lambda fd, data: calls.append(bytes(data)) or real_write(fd, data))
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd) or real_fsync(fd))
    target = tmp_path / "log.jsonl"
    append_many_durably(target, [b"aaaa\n", b"bbbb\n", b"cccc\n"], chunk_bytes=chunk_bytes)
    assert target.read_bytes() == b"aaaa\nbbbb\ncccc\n"
    assert len(calls) == writes and all(chunk.endswith(b"\n") for chunk in calls)
    assert len(fsyncs) == 2  # the file, then the folder entry of the new file


def test_a_line_longer_than_a_chunk_is_written_whole(tmp_path: Path) -> None:
    target = tmp_path / "log.jsonl"
    append_many_durably(target, [b"a\n", b"x" * 30 + b"\n", b"b\n"], chunk_bytes=4)
    assert target.read_bytes() == b"a\n" + b"x" * 30 + b"\nb\n"


@pytest.mark.parametrize(("size", "refused"), [(4, True), (5, False), (6, True)])
def test_an_append_refuses_a_file_of_another_length_than_expected(tmp_path: Path, size: int, refused: bool) -> None:
    target = tmp_path / "log.jsonl"
    target.write_bytes(b"aaaa\n")
    if refused:
        with pytest.raises(FileChanged):
            append_many_durably(target, [b"bbbb\n"], expected_size=size)
        assert target.read_bytes() == b"aaaa\n"
    else:
        append_many_durably(target, [b"bbbb\n"], expected_size=size)
        assert target.read_bytes() == b"aaaa\nbbbb\n"


# ---------------------------------------------------------------- a crash mid-batch


def test_a_kill_at_any_write_point_of_a_catch_up_leaves_a_verified_prefix_then_completes(tmp_path: Path) -> None:
    """The child kills itself at its N-th os.write/os.fsync (writer_child.kill_at; a write
    chosen as the point writes half its bytes first), for every N until a run completes."""
    sessions = 30
    template = build_desk(tmp_path / "template", sessions)
    expected = [day.isoformat() for day in past_sessions(sessions)]
    torn_rounds = 0
    for point in range(1, 60):
        root = tmp_path / f"round{point}"
        (root / "logs").mkdir(parents=True)
        (root / "config.json").write_bytes(template.read_bytes())
        (root / "logs" / "trades").mkdir()
        (root / "logs" / "trades" / "trades.jsonl").write_bytes((template.parent / "logs" / "trades" / "trades.jsonl").read_bytes())
        config = root / "config.json"
        child = subprocess.run(
            [sys.executable, str(CHILD), "catch-up", str(config), NOW.isoformat(), str(point)],
            capture_output=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120,
        )
        history = history_path(config)
        data = history.read_bytes() if history.exists() else b""
        scan = scan_all(data, history.name)
        whole = data[: data.rfind(b"\n") + 1]
        assert scan_all(whole, history.name).problems == [], f"point {point}: a whole line is damaged"
        assert len(scan.problems) <= 1, f"point {point}: {scan.problems}"
        if scan.problems:
            torn_rounds += 1
        # The next start sets any torn line aside and writes every summary exactly once.
        first_start(config)
        assert summaries(config) == expected, f"point {point}"
        assert ChainedLog(history, LogsLock(root / "logs"), FixedClock(NOW)).verify() == []
        if child.returncode == 0:
            break
        assert child.returncode == -9, child.stderr.decode()
    else:
        pytest.fail("the catch-up never completed within 59 write points")
    assert point > 2 and torn_rounds >= 1  # kills did land before, inside and after the batch
