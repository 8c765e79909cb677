"""A disk that refuses the index's writes (full, or a file-size limit) is a file that cannot
be written, not a damaged index: the journal reader raises an OSError naming the index file,
a command prints one line and exits 2, nothing is left behind, and the next run on a disk
with room answers as a journal that never had an index.

The refusal is real: a child process runs under a file-size limit (RLIMIT_FSIZE) with
SIGXFSZ ignored, so every write past the limit fails with EFBIG, as a full disk fails one."""

from __future__ import annotations

import errno
import multiprocessing
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from multiprocessing.connection import Connection
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.test_journal_build_crash import _assert_answers_as_the_files, _strays
from tests.test_journal_index import a_history, closed, index_file
from trading_bot.logging.journal_index import disk_trouble
from trading_bot.logging.query_helper import TradeJournal

SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "config.json"
# Above the small files a command writes before its index (settings cache, generation,
# high-water mark), below the index of any journal (its schema alone is more pages).
_LIMIT_BYTES = 16_384


def refuse_writes_past(limit: int = _LIMIT_BYTES) -> None:
    """Writes past `limit` bytes fail from now on in this process (a soft limit: it can be lifted)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def make_room() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def answer_of_a_child(target: Callable[..., None], *args: Any) -> Any:
    """Run `target(*args, report)` in a fresh (spawned) process and return what it sent on
    `report`; the test fails, never hangs, if the child dies or hangs before answering."""
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("spawn").Process(target=target, args=(*args, send))
    child.start()
    send.close()  # a child that dies before it answers ends the wait (EOFError)
    try:
        assert receive.poll(120), "the child did not answer"
        answer = receive.recv()
    finally:
        child.join(timeout=120)
    assert child.exitcode == 0
    return answer


def _outcome(journal: TradeJournal) -> tuple[Any, ...] | None:
    """A refresh's exception as plain values (None when it answered) and the closes it then holds."""
    try:
        journal.refresh()
    except BaseException as error:  # the test wants whatever came out
        return (type(error).__name__, isinstance(error, OSError), getattr(error, "filename", None), str(error))
    return None


def _refresh_on_a_full_disk(trades_dir: str, report: Connection) -> None:
    refuse_writes_past()
    journal = TradeJournal(Path(trades_dir))
    try:
        # Asked twice: the second look must not take the unwritten build as indexed.
        report.send([_outcome(journal), _outcome(journal)])
    finally:
        journal.close()


def _append_on_a_full_disk(trades_dir: str, line: dict[str, Any], report: Connection) -> None:
    """An index built with room, then a line appended while the disk refuses the index's writes."""
    from tests.conftest import write_journal_lines

    journal = TradeJournal(Path(trades_dir))
    try:
        journal.refresh()
        closes_before = len(journal.closed_trades)
        write_journal_lines(Path(trades_dir) / "2026-03-11.jsonl", line)
        refuse_writes_past(4096)  # below the index's size: its next page write fails
        looks = [_outcome(journal), len(journal.closed_trades), _outcome(journal), len(journal.closed_trades)]
        make_room()
        looks += [_outcome(journal), len(journal.closed_trades)]
        report.send([closes_before, *looks])
    finally:
        journal.close()


def _journal_bytes(trades_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(trades_dir.iterdir())}


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_an_index_the_disk_refuses_is_an_oserror_naming_it_and_the_journal_stays(tmp_path: Path, write_journal: Any) -> None:
    trades_dir = tmp_path / "logs" / "trades"
    a_history(trades_dir, write_journal)
    before = _journal_bytes(trades_dir)
    first, second = answer_of_a_child(_refresh_on_a_full_disk, str(trades_dir))
    assert first is not None, "the index was written despite the limit: the test proves nothing"
    kind, is_os_error, filename, message = first
    assert is_os_error, f"{kind}: {message}"
    assert filename == str(index_file(trades_dir))
    assert "the journal index cannot be written" in message and "damaged" not in message
    assert second == first  # refused again, not answered from the build that was not written
    assert _journal_bytes(trades_dir) == before
    assert not index_file(trades_dir).exists() and _strays(trades_dir) == []
    _assert_answers_as_the_files(trades_dir)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_line_the_index_cannot_take_is_refused_at_every_look_until_there_is_room(tmp_path: Path, write_journal: Any) -> None:
    trades_dir = tmp_path / "logs" / "trades"
    a_history(trades_dir, write_journal)
    line = closed("o-9", "2026-03-11T17:00:00Z", "-4.00", timestamp="2026-03-11T16:30:00Z")
    closes_before, first, closes_1, second, closes_2, with_room, closes_3 = answer_of_a_child(_append_on_a_full_disk, str(trades_dir), line)
    assert first is not None and first[1] and "the journal index cannot be written" in first[3], first
    # Each look refuses; none answers from bookkeeping that counts the line the index lacks.
    assert second == first
    assert closes_1 == closes_2 == closes_before
    assert with_room is None and closes_3 == closes_before + 1
    _assert_answers_as_the_files(trades_dir)


def _status(desk: Path, *, full_disk: bool) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHASE_")}
    return subprocess.run(
        [sys.executable, "-m", "trading_bot.phase", "status"],
        cwd=desk, capture_output=True, text=True, env=env, timeout=120,
        preexec_fn=refuse_writes_past if full_disk else None,
    )


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_status_on_a_full_disk_prints_one_line_naming_the_index_and_exits_2(tmp_path: Path, write_journal: Any) -> None:
    shutil.copyfile(SHIPPED_CONFIG, tmp_path / "config.json")
    trades_dir = tmp_path / "logs" / "trades"
    a_history(trades_dir, write_journal)
    refused = _status(tmp_path, full_disk=True)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(f"{index_file(trades_dir)}: (file): the journal index cannot be written")
    assert refused.stdout == ""
    assert not index_file(trades_dir).exists() and _strays(trades_dir) == []
    answered = _status(tmp_path, full_disk=False)
    assert answered.returncode == 0, answered.stderr
    assert "Experience (experience)" in answered.stdout


@pytest.mark.parametrize(
    ("code", "number"),
    [
        (sqlite3.SQLITE_FULL, errno.ENOSPC),
        (sqlite3.SQLITE_IOERR_WRITE, errno.EIO),
        (sqlite3.SQLITE_CANTOPEN, errno.EACCES),
        (sqlite3.SQLITE_READONLY, errno.EACCES),
        (sqlite3.SQLITE_CORRUPT, None),
        (sqlite3.SQLITE_NOTADB, None),
        (sqlite3.SQLITE_BUSY, None),
    ],
)
def test_only_a_disk_or_folder_that_refuses_a_write_is_disk_trouble(code: int, number: int | None, tmp_path: Path) -> None:
    """A damaged index is replaced and rebuilt; a refused write is reported, never replaced."""
    error = sqlite3.OperationalError("refused")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    trouble = disk_trouble(error, tmp_path / "journal.sqlite3")
    if number is None:
        assert trouble is None
    else:
        assert trouble is not None and trouble.errno == number and trouble.filename == str(tmp_path / "journal.sqlite3")
