"""The desk's other writers on a disk that refuses their writes: a write that fails is a
refusal now, and every later answer of the same process is what the files say, the one a
fresh process gives once there is room again.

The refusal is real: a spawned child runs under a file-size limit (RLIMIT_FSIZE, a soft
limit it lifts again) with SIGXFSZ ignored, so a write past the limit fails with EFBIG, as
a full disk fails one. The limit is the size of the phase history, padded with lines its
readers ignore so that it is the largest file of the desk: the journal and its index still
take their writes, and the history's next line is the first write refused."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from tests.phase.conftest import DESK_START, ENTRY_PRICE, PASSWORD, Desk, advance_to
from tests.test_index_disk_full import SHIPPED_CONFIG, make_room, refuse_writes_past, answer_of_a_child
from tests.test_journal_index import a_history, index_file
from trading_bot.bot import TradeResult

# Lines of a type the ledger keeps in the file and ignores: they only make the history the
# desk's largest file (larger than the journal index and its write-ahead log).
_PADDING_LINES = 300
_PADDING_TEXT = "x" * 1000


def _decision(desk: Desk) -> tuple[bool, str | None, str]:
    decision = desk.app.check_entry("AAPL", "BUY", ENTRY_PRICE)
    return decision.allowed, decision.reason, decision.state.phase.value if decision.state is not None else "unread"


def _a_trial_two_losses_in(desk: Desk) -> TradeResult:
    """A trial stint, its history padded, two losses in a row, and a third entry open."""
    advance_to(desk, "trial")
    for number in range(_PADDING_LINES):
        desk.manager.history.append("operator_note", {"text": _PADDING_TEXT, "n": number})
    desk.start()
    desk.trades(5, -1, per_session=1)
    desk.next_session()
    desk.trade(-1)
    entry = desk.enter()
    assert entry.accepted, entry.reason
    return entry


def _history(desk: Path) -> Path:
    return desk / "logs" / "phase" / "phase-history.jsonl"


def _downgrade_refused_by_the_disk(root: str, report: Connection) -> None:
    """A trial stint whose third loss in a row is closed while the history refuses the downgrade."""
    with freeze_time(DESK_START) as frozen:
        desk = Desk(Path(root), frozen, {"PHASE_OVERRIDE_PASSWORD": PASSWORD})
        entry = _a_trial_two_losses_in(desk)
        refuse_writes_past(_history(desk.root).stat().st_size)
        try:
            desk.close(entry, -1)  # exits are never blocked: the journal takes it
            unwritten = len(desk.bot.unwritten)
            desk.tick()
            refused = [_decision(desk), _decision(desk)]
            transitions_refused = len(desk.transitions())
        finally:
            make_room()
        desk.tick()
        with_room = _decision(desk)
        transitions = [line["kind"] for line in desk.transitions()]
        desk.start()  # a fresh process on the same files
        fresh = _decision(desk)
        report.send([unwritten, refused, transitions_refused, with_room, transitions, fresh])


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_downgrade_the_history_refuses_is_not_taken_as_done(tmp_path: Path) -> None:
    unwritten, refused, transitions_refused, with_room, transitions, fresh = answer_of_a_child(_downgrade_refused_by_the_disk, str(tmp_path))
    assert unwritten == 0  # the close is in the journal; only the downgrade is refused
    assert transitions_refused == 1, "the downgrade was written despite the limit: the test proves nothing"
    # While the downgrade cannot be written, no entry is allowed in the phase it ends.
    for allowed, reason, _ in refused:
        assert not allowed and reason is not None and "phase state cannot be read" in reason, reason
    # With room, the same process writes the downgrade and answers as a fresh process does.
    assert transitions == ["override", "downgrade"]
    assert with_room == fresh
    assert fresh[2] == "proof"


def _status(desk: Path, limit: int | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHASE_")}
    return subprocess.run(
        [sys.executable, "-m", "trading_bot.phase", "status"],
        cwd=desk, capture_output=True, text=True, env=env, timeout=120,
        preexec_fn=None if limit is None else lambda: refuse_writes_past(limit),
    )


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_an_index_the_disk_refuses_at_open_is_kept_not_replaced_as_damaged(tmp_path: Path, write_journal: Any) -> None:
    """No write at all (not even SQLite's shared-memory file): one line naming the index,
    exit 2, and the index built before is still there, byte for byte."""
    shutil.copyfile(SHIPPED_CONFIG, tmp_path / "config.json")
    trades_dir = tmp_path / "logs" / "trades"
    a_history(trades_dir, write_journal)
    built = _status(tmp_path, None)
    assert built.returncode == 0, built.stderr
    index = index_file(trades_dir)
    before = index.read_bytes()
    for _ in range(2):  # and again: the first refusal did not leave the index replaced
        refused = _status(tmp_path, 0)
        assert refused.returncode == 2, refused.stderr
        assert "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
        assert refused.stderr.startswith(f"{index}: (file): the journal index cannot be written")
        assert "rebuilding" not in refused.stderr and refused.stdout == ""
        assert index.read_bytes() == before
    answered = _status(tmp_path, None)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout == built.stdout


# Above the desk's small files (journal day files, phase logs, settings cache), below the
# journal index of any journal: its next page write is refused.
_INDEX_REFUSED_BYTES = 16_384


def _exit_while_the_index_is_refused(root: str, report: Connection) -> None:
    """Positions opened with room; then the disk refuses the index and the bot exits them."""
    with freeze_time(DESK_START) as frozen:
        desk = Desk(Path(root), frozen, {"PHASE_OVERRIDE_PASSWORD": PASSWORD})
        desk.trade(2)
        first, second = desk.enter(), desk.enter()
        assert first.accepted and second.accepted, (first.reason, second.reason)
        assert first.record is not None
        refuse_writes_past(_INDEX_REFUSED_BYTES)
        try:
            closed = desk.close(first, 3)
            flattened = desk.bot.flatten({"AAPL": ENTRY_PRICE})
            desk.tick()
            refused = _decision(desk)
            unwritten = len(desk.bot.unwritten)
        finally:
            make_room()
        desk.tick()
        with_room = _decision(desk)
        positions = [position.order_id for position in desk.broker.open_positions()]
        closes = [(record.order_id, str(record.net_pnl)) for record in desk.app.journal.closed_trades]
        desk.start()
        fresh = _decision(desk)
        fresh_closes = [(record.order_id, str(record.net_pnl)) for record in desk.app.journal.closed_trades]
        report.send([
            (closed.order_id, closed.outcome, str(closed.net_pnl)), [record.order_id for record in flattened],
            first.record.order_id, second.record.order_id if second.record else None,
            refused, unwritten, with_room, positions, closes, fresh, fresh_closes,
        ])


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_exits_go_while_the_journal_index_cannot_be_written(tmp_path: Path) -> None:
    closed, flattened, first, second, refused, unwritten, with_room, positions, closes, fresh, fresh_closes = answer_of_a_child(_exit_while_the_index_is_refused, str(tmp_path))
    assert closed[0] == first and Decimal(closed[2]) == 3
    assert flattened == [second]
    assert unwritten == 0  # both closing records are in the journal
    allowed, reason, _ = refused
    assert not allowed and reason is not None and "the journal index cannot be written" in reason, reason
    assert positions == []
    assert [order_id for order_id, _ in closes[-2:]] == [first, second] and len(closes) == 3
    assert with_room == fresh and closes == fresh_closes


def _third_loss_closed_with_the_downgrade_refused(root: str) -> None:
    with freeze_time(DESK_START) as frozen:
        desk = Desk(Path(root), frozen, {"PHASE_OVERRIDE_PASSWORD": PASSWORD})
        entry = _a_trial_two_losses_in(desk)
        refuse_writes_past(_history(desk.root).stat().st_size)
        desk.close(entry, -1)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_command_whose_history_line_is_refused_names_the_history_in_its_one_line(tmp_path: Path) -> None:
    child = multiprocessing.get_context("spawn").Process(target=_third_loss_closed_with_the_downgrade_refused, args=(str(tmp_path),))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    history = _history(tmp_path)
    before = history.read_bytes()
    refused = _status(tmp_path, len(before))
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith(f"{history}: (file): "), refused.stderr
    assert refused.stdout == "" and history.read_bytes() == before
    answered = _status(tmp_path, None)
    assert answered.returncode == 0, answered.stderr
    assert "(proof) since" in answered.stdout, answered.stdout


def _restart_while_the_index_is_refused(root: str, report: Connection) -> None:
    """A position opened with room; the index deleted; the bot restarts on a disk that
    refuses the index's writes, restores its paper position, refuses entries, and exits."""
    with freeze_time(DESK_START) as frozen:
        desk = Desk(Path(root), frozen, {"PHASE_OVERRIDE_PASSWORD": PASSWORD})
        desk.trade(2)
        entry = desk.enter()
        assert entry.accepted and entry.record is not None, entry.reason
        desk.app.journal.close()
        index_file(Path(root) / "logs" / "trades").unlink()
        refuse_writes_past(_INDEX_REFUSED_BYTES)
        try:
            desk.start()
            restored = [position.order_id for position in desk.broker.open_positions()]
            desk.tick()
            refused = _decision(desk)
            placed = desk.enter()
            closed = desk.close(entry, 2)
        finally:
            make_room()
        desk.tick()
        with_room = _decision(desk)
        report.send([
            entry.record.order_id, restored, refused, (placed.accepted, placed.code, placed.reason),
            (closed.order_id, str(closed.net_pnl)), with_room, [position.order_id for position in desk.broker.open_positions()],
        ])


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_bot_restarted_while_the_index_cannot_be_written_restores_its_positions_and_halts_entries(tmp_path: Path) -> None:
    order_id, restored, refused, placed, closed, with_room, positions = answer_of_a_child(_restart_while_the_index_is_refused, str(tmp_path))
    assert restored == [order_id]
    allowed, reason, _ = refused
    assert not allowed and reason is not None and "the journal index cannot be written" in reason, reason
    accepted, _, placed_reason = placed
    assert not accepted and placed_reason is not None and "the journal index cannot be written" in placed_reason, placed_reason
    assert closed[0] == order_id and Decimal(closed[1]) == 2
    assert with_room[0], with_room  # room again: entries are allowed by the same process
    assert positions == []


def _mirror_save_refused(root: str, report: Connection) -> None:
    with freeze_time(DESK_START) as frozen:
        desk = Desk(Path(root), frozen, {"PHASE_OVERRIDE_PASSWORD": PASSWORD})
        config_path = desk.config_path
        before = config_path.read_bytes()
        refuse_writes_past(len(before) - 1)  # the new config.json cannot be written whole
        try:
            desk.manager.mirror.save({("phase_progression", "current_phase"): "proof"})
            outcome = None
        except OSError as error:
            outcome = (error.filename, error.errno)
        finally:
            make_room()
        report.send([outcome, desk.manager.config.current_phase.value, config_path.read_bytes() == before, str(config_path)])


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_config_write_the_disk_refuses_leaves_the_settings_in_memory_as_the_file(tmp_path: Path) -> None:
    outcome, phase, unchanged, config_path = answer_of_a_child(_mirror_save_refused, str(tmp_path))
    assert outcome is not None and outcome[0] == config_path, outcome
    assert unchanged
    assert phase == "experience"  # not the "proof" the refused write would have held


def test_a_checkpoint_the_disk_refuses_halts_one_look_and_loses_no_record(tmp_path: Path) -> None:
    """The checkpoint (a copy of the history kept for `recover`) cannot be written, here
    because a folder stands where it belongs: the session summary before it is durable
    and written once, the look that wrote it refuses entries naming the checkpoint, and the
    next look answers as a fresh process does."""
    with freeze_time(DESK_START) as frozen:
        desk = Desk(tmp_path, frozen, {"PHASE_OVERRIDE_PASSWORD": PASSWORD})
        desk.trade(1)
        history = _history(tmp_path)
        checkpoint = history.with_name(history.name + ".checkpoint")
        checkpoint.unlink(missing_ok=True)
        checkpoint.mkdir()
        summaries_before = history.read_text().count('"session_summary"') if history.exists() else 0
        desk.next_session()
        allowed, reason, _ = _decision(desk)
        assert not allowed and reason is not None and "phase state cannot be read" in reason and str(checkpoint) in reason, reason
        desk.tick()
        again = _decision(desk)
        assert again[0], again
        assert history.read_text().count('"session_summary"') == summaries_before + 1
        desk.start()
        assert _decision(desk) == again
