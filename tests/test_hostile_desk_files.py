"""Hostile things in the desk's folders: a FIFO, a device or an undecodable name where a
record or cache should be. Each command ends, says one line naming the file and exits 2
(or answers as usual, where the thing is a cache it may replace), and writes no record.

The commands run as whole processes (`subprocess.run(..., timeout=60)`): a hang fails the
test instead of stalling the suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from freezegun import freeze_time

from tests.phase.conftest import DESK_START, PASSWORD, Desk
from tests.phase.test_cli_process import run_phase
from trading_bot.durable_files import LogsLock, NotARegularFile, append_durably, atomic_write_bytes, open_regular, read_regular

COMMANDS = {
    "status": ["status"],
    "verify": ["verify"],
    "export": ["export", "--start", "2026-03-01", "--end", "2026-03-05"],
    "validate-transition": ["validate-transition", "--to", "proof", "--json"],
}


@pytest.fixture(scope="module")
def traded_desk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A desk with three closed trades over two sessions, its journal and phase logs on disk."""
    root = tmp_path_factory.mktemp("traded")
    with freeze_time(DESK_START) as frozen:
        desk = Desk(root, frozen, {"PHASE_OVERRIDE_PASSWORD": PASSWORD})
        desk.trades("5", "-3", "2", per_session=2)
    return root


@pytest.fixture
def workdir(traded_desk: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "desk"
    shutil.copytree(traded_desk, root, symlinks=True)
    yield root


def records(root: Path) -> dict[str, str]:
    """Every record under the desk (the caches in `logs/.derived/` and the lock left out);
    a link is kept as its target, so a write through it or a replaced link both show."""
    seen: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if ".derived" in relative.parts or path.name == ".phase.lock":
            continue
        if path.is_symlink():
            seen[str(relative)] = "-> " + os.readlink(path)
        elif path.is_file():
            seen[str(relative)] = path.read_bytes().hex()
    return seen


def replace_with_fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def replace_with_link(path: Path, target: str) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(target)


def assert_refused_naming(result: subprocess.CompletedProcess[str], name: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert name in result.stderr, result.stderr
    assert result.stdout == ""


# ---- the phase logs: a FIFO or a device instead of the file ------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("log_name", "make"),
    [
        ("phase-history.jsonl", replace_with_fifo),
        ("phase-overrides.jsonl", replace_with_fifo),
        ("phase-history.jsonl", lambda path: replace_with_link(path, "/dev/zero")),
        ("phase-history.jsonl", lambda path: replace_with_link(path, "/dev/urandom")),
    ],
    ids=["history-fifo", "overrides-fifo", "history-dev-zero", "history-dev-urandom"],
)
def test_a_phase_log_that_is_no_regular_file_is_refused_in_one_line(workdir: Path, command: str, log_name: str, make: object) -> None:
    make(workdir / "logs" / "phase" / log_name)  # type: ignore[operator]
    before = records(workdir)
    result = run_phase(workdir, *COMMANDS[command])
    assert_refused_naming(result, log_name)
    assert "not a regular file" in result.stderr
    assert records(workdir) == before


# ---- config.json ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["status", "verify"])
@pytest.mark.parametrize("shape", ["fifo", "dev-zero"])
def test_a_config_json_that_is_no_regular_file_is_refused_in_one_line(workdir: Path, command: str, shape: str) -> None:
    config = workdir / "config.json"
    if shape == "fifo":
        replace_with_fifo(config)
    else:
        replace_with_link(config, "/dev/zero")
    before = records(workdir)
    result = run_phase(workdir, *COMMANDS[command])
    assert_refused_naming(result, "config.json")
    assert "not a regular file" in result.stderr
    assert records(workdir) == before


# ---- the journal: a file name that is not UTF-8 -----------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_journal_file_whose_name_is_not_utf8_is_refused_in_one_line(workdir: Path, command: str) -> None:
    trades = workdir / "logs" / "trades"
    odd = trades / os.fsdecode(b"2026-03-04\xff.jsonl")
    odd.write_bytes((trades / "2026-03-03.jsonl").read_bytes())
    before = records(workdir)
    result = run_phase(workdir, *COMMANDS[command])
    assert_refused_naming(result, "2026-03-04\\xff.jsonl")
    assert "not valid UTF-8" in result.stderr
    assert records(workdir) == before


# ---- a FIFO as the generation marker in logs/.derived/ ----------------------------------------


def test_a_fifo_as_the_generation_marker_does_not_hang_status(workdir: Path) -> None:
    """Opening a FIFO to append waits for a reader; the marker is a cache, so status answers
    as before (a write under the lock replaces the FIFO by a new marker file)."""
    generation = workdir / "logs" / ".derived" / "generation"
    expected = run_phase(workdir, "status")
    assert expected.returncode == 0, expected.stderr
    replace_with_fifo(generation)
    before = records(workdir)
    result = run_phase(workdir, "status")
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected.stdout
    assert records(workdir) == before


def test_a_generation_marker_that_is_no_regular_file_vouches_for_nothing(tmp_path: Path) -> None:
    """A FIFO's length never changes: taken as a settled generation, it would let a reader
    trust its caches across another process's writes."""
    logs = tmp_path / "logs"
    (logs / ".derived").mkdir(parents=True)
    lock = LogsLock(logs)
    os.mkfifo(logs / ".derived" / "generation")
    assert lock.generation() is None
    (logs / ".derived" / "generation").unlink()
    (logs / ".derived" / "generation").write_bytes(b"..")
    assert lock.generation() is not None


# ---- the reading primitive itself ------------------------------------------------------------


def test_reading_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile) as raised:
        read_regular(fifo)
    assert raised.value.filename == str(fifo)


def test_reading_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero"
    link.symlink_to("/dev/zero")
    with pytest.raises(NotARegularFile):
        open_regular(link)


def test_reading_a_folder_says_it_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        read_regular(tmp_path)


def test_a_regular_file_and_a_link_to_one_read_as_usual(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"abc\n")
    (tmp_path / "link").symlink_to(plain)
    assert read_regular(plain) == b"abc\n"
    assert read_regular(tmp_path / "link") == b"abc\n"


def test_appending_to_a_fifo_is_refused_without_waiting_for_a_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile) as raised:
        append_durably(fifo, b"line\n")
    assert raised.value.filename == str(fifo)


def test_appending_through_a_link_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    with pytest.raises(NotARegularFile):
        append_durably(link, b"line\n")


def test_appending_creates_a_missing_file_and_extends_a_regular_one(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    append_durably(path, b"a\n")
    append_durably(path, b"b\n")
    assert path.read_bytes() == b"a\nb\n"


def test_a_regular_file_opened_for_change_in_place_can_be_cut(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"kept\ntorn")
    with open_regular(path, "r+b") as handle:
        handle.truncate(5)
    assert path.read_bytes() == b"kept\n"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile):
        open_regular(fifo, "r+b")


# ---- a write through a link never replaces a device node -------------------------------------


def test_a_replace_through_a_link_to_a_device_is_refused_and_the_device_stays(tmp_path: Path) -> None:
    """Found by running the commands with the history linked to /dev/zero: a later atomic
    write followed the link and put a regular file where the device node was."""
    device_holder = tmp_path / "dev"
    device_holder.mkdir()
    fifo = device_holder / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "state.json"
    link.symlink_to(fifo)
    with pytest.raises(NotARegularFile):
        atomic_write_bytes(link, b"{}")
    assert fifo.is_fifo() and link.is_symlink()


def test_a_replace_through_a_link_to_a_regular_file_still_writes_the_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_bytes(b"old")
    link = tmp_path / "config.json"
    link.symlink_to(target)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


# ---- the bot's journal file of today: a FIFO or a link to a device ----------------------------


class _Hung(Exception):
    pass


def _no_hang(signum: int, frame: object) -> None:
    raise _Hung("the bot waited on a journal file that is no regular file")


@pytest.mark.parametrize(
    "make",
    [replace_with_fifo, lambda path: replace_with_link(path, "/dev/null")],
    ids=["fifo", "link-to-dev-null"],
)
def test_an_entry_whose_journal_file_is_no_regular_file_is_refused_before_any_order(tmp_path: Path, make: object) -> None:
    """A FIFO would hang the bot under the logs lock; a link to /dev/null would take the
    order's record and keep nothing. Either way the entry is refused and no order placed."""
    with freeze_time(DESK_START) as frozen:
        desk = Desk(tmp_path, frozen, {"PHASE_OVERRIDE_PASSWORD": PASSWORD})
        journal_file = desk.bot.journal_writer.path_for(desk.now())
        journal_file.parent.mkdir(parents=True, exist_ok=True)
        make(journal_file)  # type: ignore[operator]
        previous = signal.signal(signal.SIGALRM, _no_hang)
        signal.alarm(60)
        try:
            refused = desk.enter()
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        assert not refused.accepted and refused.code == "logs_unwritable", (refused.code, refused.reason)
        assert "not a regular file" in (refused.reason or ""), refused.reason
        assert desk.broker.open_positions() == []
        journal_file.unlink()
        placed = desk.enter()
        assert placed.accepted, placed.reason
        assert [position.order_id for position in desk.broker.open_positions()] == [placed.record.order_id]  # type: ignore[union-attr]
