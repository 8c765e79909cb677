"""A process killed while it builds or rebuilds the journal index leaves no index that
answers wrongly: the first build writes a file beside the index and renames it into place
only when complete (a stray one is removed at the next open); a rebuild of an existing
index is one transaction, so the index stays as it was. Either way a later process answers
as a journal that never had an index."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from trading_bot.durable_files import LogsLock
from tests.test_journal_index import a_history, answers, closed, fresh_answers, index_file
from trading_bot.logging import journal_index
from trading_bot.logging.journal_index import BUILD_SUFFIX
from trading_bot.logging.query_helper import TradeJournal

WriteJournal = Any


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_at(point: str) -> None:
    """SIGKILL this process at a chosen write point of a build: as it reads the line of
    order o-3 (the first file's rows already written), at the sync of the finished file
    before its rename, or right after the rename."""
    if point == "line":
        real_loads = orjson.loads
        journal_index._BULK_BATCH = 1  # every file's rows written as soon as it is read

        def loads(raw: Any) -> Any:
            if isinstance(raw, bytes) and b'"o-3"' in raw:
                _die()
            return real_loads(raw)

        orjson.loads = loads  # type: ignore[assignment]
    elif point == "finished":
        os.fsync = lambda fd: _die()  # type: ignore[assignment]
    elif point == "renamed":
        real_replace = os.replace

        def replace(source: Any, target: Any) -> None:
            real_replace(source, target)
            _die()

        os.replace = replace  # type: ignore[assignment]


def _refresh_killed(trades_dir: str, point: str) -> None:
    journal = TradeJournal(Path(trades_dir))
    _kill_at(point)
    journal.refresh()


def _run_killed(trades_dir: Path, point: str) -> None:
    child = multiprocessing.get_context("spawn").Process(target=_refresh_killed, args=(str(trades_dir), point))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL, "the child was not killed at its write point"


def _strays(trades_dir: Path) -> list[Path]:
    return list(index_file(trades_dir).parent.glob(f"*{BUILD_SUFFIX}*"))


def _assert_answers_as_the_files(trades_dir: Path) -> None:
    expected = fresh_answers(trades_dir)
    journal = TradeJournal(trades_dir)
    journal.refresh()
    assert answers(journal) == expected
    journal.close()
    assert _strays(trades_dir) == []
    with sqlite3.connect(index_file(trades_dir)) as connection:
        assert connection.execute("PRAGMA quick_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.fixture
def trades_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "trades"
    path.mkdir(parents=True)
    return path


@pytest.mark.parametrize("point", ["line", "finished"])
def test_a_first_build_killed_before_its_rename_leaves_no_index_and_a_stray_the_next_open_removes(
    trades_dir: Path, write_journal: WriteJournal, point: str
) -> None:
    a_history(trades_dir, write_journal)
    _run_killed(trades_dir, point)
    assert not index_file(trades_dir).exists()
    if point == "finished":
        assert len(_strays(trades_dir)) == 1
    _assert_answers_as_the_files(trades_dir)


def test_a_first_build_killed_after_its_rename_leaves_the_complete_index(trades_dir: Path, write_journal: WriteJournal) -> None:
    a_history(trades_dir, write_journal)
    _run_killed(trades_dir, "renamed")
    assert index_file(trades_dir).exists() and _strays(trades_dir) == []
    with sqlite3.connect(index_file(trades_dir)) as connection:
        assert connection.execute("SELECT count(*) FROM records").fetchone()[0] > 0
    _assert_answers_as_the_files(trades_dir)


def test_a_rebuild_killed_mid_way_leaves_the_index_as_it_was(trades_dir: Path, write_journal: WriteJournal) -> None:
    a_history(trades_dir, write_journal)
    first = TradeJournal(trades_dir)
    first.refresh()
    before = answers(first)
    first.close()
    with sqlite3.connect(index_file(trades_dir)) as connection:
        indexed = connection.execute("SELECT * FROM records ORDER BY id").fetchall()
    # An edit in the middle of a file: the next refresh rebuilds the index whole.
    edited = trades_dir / "2026-03-10.jsonl"
    edited.write_bytes(edited.read_bytes().replace(b'"5.00"', b'"6.00"', 1))
    _run_killed(trades_dir, "line")
    with sqlite3.connect(index_file(trades_dir)) as connection:
        assert connection.execute("SELECT * FROM records ORDER BY id").fetchall() == indexed
    _assert_answers_as_the_files(trades_dir)
    assert fresh_answers(trades_dir) != before


def test_a_process_holding_no_index_yet_reads_the_one_another_process_built(trades_dir: Path, write_journal: WriteJournal) -> None:
    waiting = TradeJournal(trades_dir)
    waiting.refresh()  # nothing to index yet: no file
    assert not index_file(trades_dir).exists()
    a_history(trades_dir, write_journal)
    builder = TradeJournal(trades_dir)
    builder.refresh()
    built = os.stat(index_file(trades_dir)).st_ino
    write_journal(trades_dir / "2026-03-12.jsonl", closed("o-4", "2026-03-12T16:00:00Z", timestamp="2026-03-12T15:00:00Z"))
    waiting.refresh()
    assert os.stat(index_file(trades_dir)).st_ino == built  # read and extended, not built again
    assert answers(waiting) == fresh_answers(trades_dir)
    builder.refresh()
    assert answers(builder) == answers(waiting)


class _LockAnotherProcessTakesFirst(LogsLock):
    """The logs lock, which another process takes first once armed: it builds the index
    between this process's look at the disk and its taking the lock."""

    def __init__(self, logs_dir: Path) -> None:
        super().__init__(logs_dir)
        self.first: Callable[[], None] | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        first, self.first = self.first, None
        if first is not None:
            first()
        with super().held():
            yield


def test_a_process_that_looked_before_another_built_the_index_reads_that_index(
    trades_dir: Path, write_journal: WriteJournal
) -> None:
    lock = _LockAnotherProcessTakesFirst(trades_dir.parent)
    waiting = TradeJournal(trades_dir, lock=lock)
    waiting.refresh()  # nothing to index yet: no file
    a_history(trades_dir, write_journal)
    builder = TradeJournal(trades_dir)
    built: list[int] = []

    def build() -> None:
        builder.refresh()
        built.append(os.stat(index_file(trades_dir)).st_ino)

    lock.first = build
    waiting.refresh()
    assert built and os.stat(index_file(trades_dir)).st_ino == built[0]  # read, not built again
    assert answers(waiting) == fresh_answers(trades_dir)
    builder.refresh()
    assert answers(builder) == answers(waiting)


def _refresh_killed_with_workers(trades_dir: str, pids_file: str) -> None:
    """A first build by worker processes (a chunk a file), SIGKILLed once the first chunk
    file is copied in and removed, having noted its workers' process ids."""
    journal_index.PARALLEL_BYTES = 0
    journal_index._CHUNK_BYTES = 1
    real_unlink = os.unlink

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        real_unlink(path, *args, **kwargs)
        if ".part-" in str(path):
            Path(pids_file).write_text(" ".join(str(worker.pid) for worker in multiprocessing.active_children()))
            _die()

    os.unlink = unlink  # type: ignore[assignment]
    TradeJournal(Path(trades_dir)).refresh()


def _ended(pid: int, timeout: float) -> bool:
    """Whether process `pid` ends within `timeout` seconds (an event waited for, not a sleep)."""
    import select

    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([handle], [], [], timeout)[0])
    finally:
        os.close(handle)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits for the workers through a pidfd (Linux)")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a build uses worker processes only with two cores or more")
def test_a_first_build_killed_while_its_workers_run_leaves_no_worker_behind(tmp_path: Path, trades_dir: Path, write_journal: WriteJournal) -> None:
    """Killed mid-build (the OOM killer, a `kill -9`, a stop), the building process leaves
    no worker waiting forever for work that will never come, holding the unfinished build
    file open and the disk space it takes."""
    a_history(trades_dir, write_journal)
    pids_file = tmp_path / "workers"
    child = multiprocessing.get_context("spawn").Process(target=_refresh_killed_with_workers, args=(str(trades_dir), str(pids_file)))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL, "the child was not killed at its write point"
    workers = [int(pid) for pid in pids_file.read_text().split()]
    assert len(workers) == journal_index._WORKERS
    left = [pid for pid in workers if not _ended(pid, 30)]
    for pid in left:  # this test's own strays, so the machine is left as found
        os.kill(pid, signal.SIGKILL)
    assert left == []
    _assert_answers_as_the_files(trades_dir)
