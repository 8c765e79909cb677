"""Two bad days: a downgrade the phase history refuses, and a trades folder that takes no
new file on a new day. The bot never trades on as if nothing happened, every exit goes and
its record survives, and once the file or folder is back every answer is a fresh
process's on the same files.

The refusals are real, as in `test_permission_refusals.py` (whose unprivileged child and
desk helpers these tests use): the tests run as root, the code under test in a child that
drops to uid 65534 on a desk it owns except the file or folder the case takes away."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from tests.phase.conftest import DESK_START, ENTRY_PRICE, Desk
from tests.test_disk_full_writers import _a_trial_two_losses_in
from tests.test_index_disk_full import answer_of_a_child, make_room, refuse_writes_past
from trading_bot.app import Desk as AppDesk
from trading_bot.logging.trade_record import TradeRecord
from tests.test_permission_refusals import (
    ENV,
    UNPRIVILEGED,
    _answer_unprivileged,
    _cli,
    _give_back,
    _journal_files,
    _own,
    _paper_desk,
    drop_privileges,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop to an unprivileged user")

# The loss that closes the third losing trade in a row: trial's 20 shares at $10, down $1.
THIRD_LOSS_PRICE = ENTRY_PRICE - Decimal("0.05")
# The answers a fresh process must repeat: every one of them reads the whole record.
_ANSWERS = (
    ("status", "--json"),
    ("validate-transition", "--to", "scaling", "--json"),
    ("export", "--start", "2026-03-01", "--end", "2026-03-31", "--format", "json"),
)


def _history(root: Path) -> Path:
    return root / "logs" / "phase" / "phase-history.jsonl"


def _downgrade_lines(root: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in _history(root).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [line for line in lines if line.get("type") == "transition" and line.get("kind") == "downgrade"]


def _downgrades(root: Path) -> int:
    return len(_downgrade_lines(root))


def _answers(root: Path, at: str) -> list[tuple[int, str, str]]:
    answers = []
    for command in _ANSWERS:
        done = _cli(root, at, *command)
        answers.append((done.returncode, done.stdout, done.stderr))
    return answers


def _fresh_answers(root: Path, at: str) -> list[tuple[int, str, str]]:
    """The answers of a process with no cache at all: `logs/.derived/` deleted first."""
    shutil.rmtree(root / "logs" / ".derived")
    return _answers(root, at)


def _decision(desk: Any) -> tuple[bool, str | None, str, str]:
    decision = desk.check_entry("AAPL", "BUY", ENTRY_PRICE)
    state = decision.state
    return decision.allowed, decision.reason, state.phase.value, str(state.size)


def _state(desk: Any) -> tuple[str, str, bool, int]:
    state = desk.state()
    return state.phase.value, str(state.size), state.breaker.tripped, state.entries_used


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder every user may traverse (a pytest tmp_path may be closed to uid 65534)."""
    top = Path(tempfile.mkdtemp(prefix="bad-day-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


# ---- 1. a downgrade the phase history refuses ------------------------------------------------


def _trial_two_losses_in_at(root: Path) -> dict[str, str]:
    """A trial stint with two losses in a row and a third position open, built as root."""
    with freeze_time(DESK_START) as frozen:
        desk = Desk(root, frozen, ENV)
        held = _a_trial_two_losses_in(desk)
        assert held.record is not None
        desk.tick(5)
        return {"at": desk.now().isoformat(), "held": held.record.order_id}


def _third_loss_while_the_history_refuses(root: str, at: str, held: str, channel: Connection) -> None:
    drop_privileges()
    with freeze_time(datetime.fromisoformat(at)) as frozen:
        desk = _paper_desk(root)
        before = _decision(desk)
        closed = desk.bot.close_position(held, THIRD_LOSS_PRICE)
        frozen.tick(1)
        refused = _decision(desk)
        entry = desk.enter("AAPL", "BUY", ENTRY_PRICE)
        try:
            desk.state()
            state_answer = "answered"
        except PermissionError as error:
            state_answer = str(error.filename)
        channel.send([
            before, (closed.outcome, str(closed.net_pnl), len(desk.bot.unwritten)), refused,
            (entry.accepted, entry.record is None, entry.reason), [p.order_id for p in desk.broker.open_positions()],
            state_answer, closed.exit_timestamp.isoformat() if closed.exit_timestamp else None,
        ])
        channel.send("restore please")
        assert channel.recv() == "restored"
        frozen.tick(1)
        after = (_decision(desk), _state(desk))
        fresh = _paper_desk(root)
        channel.send([after, (_decision(fresh), _state(fresh))])


def test_a_downgrade_the_history_may_not_take_halts_entries_and_is_recorded_once_it_can(scratch: Path) -> None:
    root = scratch / "desk"
    root.mkdir()
    facts = _trial_two_losses_in_at(root)
    _own(root)
    history = _history(root)
    os.chown(history, 0, 0)
    history.chmod(0o444)
    journal_day = root / "logs" / "trades" / f"{facts['at'][:10]}.jsonl"
    while_refused: dict[str, Any] = {}

    def restore() -> None:
        while_refused["journal"] = journal_day.read_text(encoding="utf-8")
        while_refused["downgrades"] = _downgrades(root)
        while_refused["answers"] = [_cli(root, facts["at"], *command) for command in (("status",), *_ANSWERS)]
        _give_back(history)

    (before, closed, refused, entry, positions, state_answer, closed_at), (after, fresh) = _answer_unprivileged(
        _third_loss_while_the_history_refuses, str(root), facts["at"], facts["held"], restore=restore
    )
    assert before[:3] == (True, None, "trial"), before
    # The exit went and is journaled; only the downgrade's line is refused.
    assert closed == ("loss", "-1.00", 0)
    assert f'"order_id":"{facts["held"]}"' in while_refused["journal"] and '"outcome":"loss"' in while_refused["journal"]
    assert while_refused["downgrades"] == 0, "the history took the line: the test proves nothing"
    # Never trial's size as if nothing happened: entries are refused naming the history.
    allowed, reason, _, _ = refused
    assert not allowed and reason is not None and str(history) in reason, reason
    accepted, nothing_journaled, reason = entry
    assert not accepted and nothing_journaled and reason is not None and str(history) in reason, reason
    assert positions == []
    assert state_answer == str(history)
    # Every command says one line naming the history, exit 2; none shows trial as healthy.
    for done in while_refused["answers"]:
        assert (done.returncode, done.stdout) == (2, ""), (done.args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"{history}: (file): "), done.stderr
    # Back: the next look records the downgrade once; the bot and a fresh process agree.
    [downgrade] = _downgrade_lines(root)
    assert closed_at is not None and datetime.fromisoformat(downgrade["effective_at"].replace("Z", "+00:00")) == datetime.fromisoformat(closed_at)
    (allowed, reason, phase, size), state = after
    assert (phase, size) == ("proof", "100.00") and state[:3] == ("proof", "100.00", True)
    assert not allowed and reason is not None and "breaker" in reason, reason
    assert after == fresh
    answers = _answers(root, facts["at"])
    assert all(code in (0, 1) for code, _, _ in answers), answers
    assert '"phase": "proof"' in answers[0][1] or '"current_phase": "proof"' in answers[0][1], answers[0][1]
    assert _fresh_answers(root, facts["at"]) == answers
    assert _downgrades(root) == 1



def _third_loss_while_the_disk_refuses_the_history(root: str, report: Connection) -> None:
    """The same day on a disk that refuses the history's next line (a file-size limit), the
    bot's process running throughout."""
    with freeze_time(DESK_START) as frozen:
        desk = Desk(Path(root), frozen, ENV)
        entry = _a_trial_two_losses_in(desk)
        refuse_writes_past(_history(desk.root).stat().st_size)
        try:
            closed = desk.close(entry, -1)
            desk.tick()
            refused = _decision(desk.app)
            placed = desk.enter()
            status = desk.cli("status")
            downgrades_refused = _downgrades(desk.root)
            journaled = len(desk.app.journal.closed_trades)
        finally:
            make_room()
        desk.tick()
        after = (_decision(desk.app), _state(desk.app))
        answers = [desk.cli(*command) for command in _ANSWERS]
        desk.start()
        fresh_bot = (_decision(desk.app), _state(desk.app))
        desk.app.journal.close()
        shutil.rmtree(desk.logs_dir / ".derived")
        fresh = [desk.cli(*command) for command in _ANSWERS]
        report.send([
            (closed.outcome, len(desk.bot.unwritten), journaled), refused, (placed.accepted, placed.reason), status,
            downgrades_refused, after, fresh_bot, answers, fresh, _downgrades(desk.root), str(_history(desk.root)),
        ])


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_downgrade_the_disk_refuses_halts_entries_naming_the_history_and_is_recorded_once(tmp_path: Path) -> None:
    (closed, refused, placed, status, downgrades_refused, after, fresh_bot, answers, fresh, downgrades, history) = answer_of_a_child(
        _third_loss_while_the_disk_refuses_the_history, str(tmp_path)
    )
    outcome, waiting, journaled = closed
    assert (outcome, waiting, journaled) == ("loss", 0, 4)  # the stint's win and its three losses
    assert downgrades_refused == 0, "the history took the line: the test proves nothing"
    allowed, reason, _, _ = refused
    assert not allowed and reason is not None and history in reason, reason
    accepted, placed_reason = placed
    assert not accepted and placed_reason is not None and history in placed_reason, placed_reason
    code, out, err = status
    assert (code, out) == (2, "") and err.count("\n") == 1 and err.startswith(f"{history}: (file): "), err
    assert downgrades == 1
    (allowed, reason, phase, size), state = after
    assert (phase, size) == ("proof", "100.00") and state[:3] == ("proof", "100.00", True)
    assert not allowed and reason is not None and "breaker" in reason, reason
    assert after == fresh_bot
    assert all(code in (0, 1) for code, _, _ in answers), answers
    assert answers == fresh


# ---- 2. a trades folder that takes no new file on a new day -----------------------------------


@pytest.fixture(scope="module")
def yesterday() -> Iterator[tuple[Path, dict[str, str]]]:
    """A desk that traded yesterday (2026-03-02: two round trips, two positions still open);
    it is now an hour into 2026-03-03, whose journal file does not exist yet."""
    top = Path(tempfile.mkdtemp(prefix="bad-day-built-"))
    try:
        root = top / "desk"
        root.mkdir()
        with freeze_time(DESK_START) as frozen:
            desk = Desk(root, frozen, ENV)
            desk.trades(2, -1)
            first, second = desk.enter(), desk.enter()
            assert first.record is not None and second.record is not None, (first.reason, second.reason)
            desk.next_session()
            facts = {"at": desk.now().isoformat(), "first": first.record.order_id, "second": second.record.order_id}
        yield root, facts
    finally:
        shutil.rmtree(top)


@pytest.fixture
def new_day(yesterday: tuple[Path, dict[str, str]], scratch: Path) -> tuple[Path, dict[str, str]]:
    """A copy of yesterday's desk owned by the unprivileged user, but for `logs/trades/`:
    root's, 0555. Yesterday's file is still the bot's to append to."""
    source, facts = yesterday
    root = scratch / "desk"
    shutil.copytree(source, root)
    _own(root)
    trades = root / "logs" / "trades"
    assert sorted(os.listdir(trades)) == ["2026-03-02.jsonl"]
    os.chown(trades, 0, 0)
    trades.chmod(0o555)
    return root, facts


def _trades(root: Path) -> Path:
    return root / "logs" / "trades"


def _entry_on_the_new_day(root: str, at: str, channel: Connection) -> None:
    drop_privileges()
    with freeze_time(datetime.fromisoformat(at)):
        desk = _paper_desk(root)
        positions = sorted(position.order_id for position in desk.broker.open_positions())
        cash = desk.broker.cash
        check = desk.check_entry("AAPL", "BUY", ENTRY_PRICE)
        entry = desk.enter("AAPL", "BUY", ENTRY_PRICE)
        after = sorted(position.order_id for position in desk.broker.open_positions())
        channel.send([
            (check.allowed, check.code, check.reason, check.state.phase.value, str(check.state.size)),
            entry.accepted, entry.record is None, entry.code, entry.reason, positions, after, str(cash), str(desk.broker.cash),
        ])


def test_an_entry_on_a_day_whose_file_the_folder_refuses_places_no_order(new_day: tuple[Path, dict[str, str]]) -> None:
    root, facts = new_day
    before = _journal_files(root)
    (check, accepted, nothing_journaled, code, reason, positions, after, cash, cash_after), = _answer_unprivileged(
        _entry_on_the_new_day, str(root), facts["at"]
    )
    today = _trades(root) / "2026-03-03.jsonl"
    # The check says what the entry meets (a loop that enters when it allows is not refused
    # at every turn), with the state it read.
    allowed, check_code, check_reason, phase, size = check
    assert (allowed, check_code, phase, size) == (False, "logs_unwritable", "experience", "100"), check
    assert check_reason is not None and str(today) in check_reason, check_reason
    assert not accepted and nothing_journaled and code == "logs_unwritable"
    assert reason is not None and str(today) in reason and "no order placed" in reason, reason
    assert positions == after == sorted([facts["first"], facts["second"]])
    assert cash == cash_after
    assert _journal_files(root) == before and not today.exists()



def _entry_into_a_file_that_exists(root: str, at: str, channel: Connection) -> None:
    drop_privileges()
    with freeze_time(datetime.fromisoformat(at)):
        desk = _paper_desk(root)
        check = desk.check_entry("AAPL", "BUY", ENTRY_PRICE)
        entry = desk.enter("AAPL", "BUY", ENTRY_PRICE)
        channel.send([(check.allowed, check.reason), entry.record.order_id if entry.record else entry.reason])


def test_a_folder_that_takes_no_new_file_still_takes_an_entry_into_todays_file(new_day: tuple[Path, dict[str, str]]) -> None:
    """Today's file was made before the folder closed: nothing needs creating, so the check
    allows and the entry is placed and journaled there."""
    root, facts = new_day
    today = _trades(root) / "2026-03-03.jsonl"
    today.touch()
    os.chown(today, UNPRIVILEGED, UNPRIVILEGED)
    (check, placed), = _answer_unprivileged(_entry_into_a_file_that_exists, str(root), facts["at"])
    assert check == (True, None)
    assert placed.startswith("bot-"), placed
    assert [json.loads(line)["order_id"] for line in today.read_text(encoding="utf-8").splitlines()] == [placed]


@contextmanager
def _first_closed_on_the_new_day(root: str, at: str, first: str) -> Iterator[tuple[Any, AppDesk, TradeRecord]]:
    """In the unprivileged child: the desk opened at `at`, and a second later the position
    `first` closed at a profit; the clock a second past the close."""
    drop_privileges()
    with freeze_time(datetime.fromisoformat(at)) as frozen:
        desk = _paper_desk(root)
        frozen.tick(1)
        closed = desk.bot.close_position(first, ENTRY_PRICE + 1)
        frozen.tick(1)
        yield frozen, desk, closed


def _exits_on_the_new_day(root: str, at: str, first: str, channel: Connection) -> None:
    with _first_closed_on_the_new_day(root, at, first) as (frozen, desk, closed):
        flattened = desk.bot.flatten({"AAPL": ENTRY_PRICE - 1})
        exits = [(closed.order_id, str(closed.net_pnl)), *[(record.order_id, str(record.net_pnl)) for record in flattened]]
        waiting = len(desk.bot.unwritten)
        frozen.tick(1)
        restarted = _paper_desk(root)  # the bot restarts while the folder still refuses
        restored = [position.order_id for position in restarted.broker.open_positions()]
        closes = [(record.order_id, str(record.net_pnl)) for record in restarted.journal.closed_trades]
        entry = restarted.enter("AAPL", "BUY", ENTRY_PRICE)
        channel.send([exits, waiting, restored, closes, (entry.accepted, entry.reason), [p.order_id for p in restarted.broker.open_positions()]])
        channel.send("restore please")
        assert channel.recv() == "restored"
        frozen.tick(1)
        answers = []
        for bot in (desk, restarted, _paper_desk(root)):
            answers.append((
                _decision(bot), _state(bot), [(record.order_id, str(record.net_pnl)) for record in bot.journal.closed_trades],
                [position.order_id for position in bot.broker.open_positions()],
            ))
        channel.send(answers)


def test_exits_on_a_day_whose_file_the_folder_refuses_survive_a_restart(new_day: tuple[Path, dict[str, str]]) -> None:
    """The closes happened at the broker: their records are durable before the exit returns
    (in yesterday's file, the newest the folder still lets be written), so a restart neither
    loses them nor takes the positions for open again."""
    root, facts = new_day
    first, second = facts["first"], facts["second"]
    while_refused: dict[str, Any] = {}

    def restore() -> None:
        while_refused["answers"] = [
            _cli(root, facts["at"], *command) for command in (("status", "--json"), ("verify",), ("check-trade", "--json"))
        ]
        _give_back(_trades(root))
        _trades(root).chmod(0o755)

    (exits, waiting, restored, closes, entry, positions), answers = _answer_unprivileged(
        _exits_on_the_new_day, str(root), facts["at"], first, restore=restore
    )
    assert exits == [(first, "10"), (second, "-10")]
    assert waiting == 0, "a close waits in memory: a restart loses it"
    assert restored == [] and positions == []
    assert closes[-2:] == exits and len(closes) == 4
    accepted, reason = entry
    assert not accepted and reason is not None and str(_trades(root) / "2026-03-03.jsonl") in reason, reason
    yesterdays = (_trades(root) / "2026-03-02.jsonl").read_text(encoding="utf-8")
    assert yesterdays.count(f'"order_id":"{first}"') == 2 and yesterdays.count(f'"order_id":"{second}"') == 2
    status, verify, check = while_refused["answers"]
    assert status.returncode == 0 and verify.returncode == 0, (status.stderr, verify.stdout, verify.stderr)
    # Nothing is damaged, and no command says entries are allowed when none could be journaled.
    today = str(_trades(root) / "2026-03-03.jsonl")
    shown = json.loads(status.stdout)
    assert (shown["entries_allowed"], shown["entry_refusal_code"]) == (False, "logs_unwritable") and today in shown["entry_refusal"], shown
    assert check.returncode == 1, (check.stdout, check.stderr)
    checked = json.loads(check.stdout)
    assert (checked["allowed"], checked["code"]) == (False, "logs_unwritable") and today in checked["reason"], checked
    # Back: the running bot, the restarted one and a fresh process answer alike.
    assert answers[0] == answers[1] == answers[2], answers
    decision, state, closes_after, open_after = answers[0]
    assert decision[0] and closes_after == closes and open_after == []
    at = facts["at"]
    later = (datetime.fromisoformat(at) + timedelta(minutes=5)).isoformat()
    answered = _answers(root, later)
    assert all(code in (0, 1) for code, _, _ in answered), answered
    assert _fresh_answers(root, later) == answered
    verified = _cli(root, later, "verify")
    assert verified.returncode == 0, (verified.stdout, verified.stderr)


def _close_on_the_new_day(root: str, at: str, first: str, channel: Connection) -> None:
    with _first_closed_on_the_new_day(root, at, first) as (_, desk, closed):
        restarted = _paper_desk(root)
        channel.send([
            (closed.order_id, str(closed.net_pnl)), len(desk.bot.unwritten),
            sorted(position.order_id for position in restarted.broker.open_positions()),
            [(record.order_id, str(record.net_pnl), os.path.basename(record.file)) for record in restarted.journal.closed_trades],
        ])


def test_a_close_on_a_refused_day_beside_a_single_file_journal_lands_after_its_entry(new_day: tuple[Path, dict[str, str]]) -> None:
    """The original bot's `trades.jsonl` sorts after every day file: it is the newest file, so
    the close goes there, after its entry's file. A restart and a command both see it closed."""
    root, facts = new_day
    single = _trades(root) / "trades.jsonl"
    single.write_bytes(b"")
    os.chown(single, UNPRIVILEGED, UNPRIVILEGED)
    first, second = facts["first"], facts["second"]
    (closed, waiting, restored, closes), = _answer_unprivileged(_close_on_the_new_day, str(root), facts["at"], first)
    assert closed == (first, "10") and waiting == 0
    assert restored == [second]
    assert closes[-1] == (first, "10", "trades.jsonl")
    assert [json.loads(line)["order_id"] for line in single.read_text(encoding="utf-8").splitlines()] == [first]
    assert not (_trades(root) / "2026-03-03.jsonl").exists()
    later = (datetime.fromisoformat(facts["at"]) + timedelta(minutes=5)).isoformat()
    verified = _cli(root, later, "verify")
    assert verified.returncode == 0, (verified.stdout, verified.stderr)
    status = json.loads(_cli(root, later, "status", "--json").stdout)
    assert (status["entries_allowed"], status["entry_refusal_code"]) == (False, "logs_unwritable"), status


def _exits_while_the_clock_steps_back_across_midnight(root: str, first: str, channel: Connection) -> None:
    drop_privileges()
    with freeze_time(datetime.fromisoformat("2026-03-03T00:10:00+00:00")) as frozen:
        desk = _paper_desk(root)
        closed = desk.bot.close_position(first, ENTRY_PRICE + 1)
        frozen.move_to(datetime.fromisoformat("2026-03-02T23:50:00+00:00"))  # an NTP step back
        flattened = desk.bot.flatten({"AAPL": ENTRY_PRICE - 1})
        entry = desk.enter("AAPL", "BUY", ENTRY_PRICE)
        exits = [(record.order_id, str(record.net_pnl), record.exit_timestamp.isoformat() if record.exit_timestamp else None) for record in [closed, *flattened]]
        channel.send([exits, len(desk.bot.unwritten), (entry.accepted, entry.code), [p.order_id for p in desk.broker.open_positions()]])
        channel.send("restore please")
        assert channel.recv() == "restored"
        frozen.move_to(datetime.fromisoformat("2026-03-03T13:00:00+00:00"))
        placed = desk.enter("AAPL", "BUY", ENTRY_PRICE)
        answers = []
        for bot in (desk, _paper_desk(root)):
            answers.append((
                _decision(bot), _state(bot), [(record.order_id, str(record.net_pnl)) for record in bot.journal.closed_trades],
                sorted(position.order_id for position in bot.broker.open_positions()),
            ))
        channel.send([placed.record.order_id if placed.record else placed.reason, answers])


def test_exits_while_the_clock_steps_back_across_midnight_and_the_new_file_is_refused(new_day: tuple[Path, dict[str, str]]) -> None:
    """Just after midnight (UTC) the folder refuses the new day's file; the clock then steps back
    into yesterday. Both exits are on disk, in yesterday's file, in the order they happened;
    no entry is placed; once the folder is back, the bot and a fresh process agree."""
    root, facts = new_day
    first, second = facts["first"], facts["second"]
    yesterdays = _trades(root) / "2026-03-02.jsonl"

    def restore() -> None:
        _give_back(_trades(root))

    (exits, waiting, entry, positions), (placed, answers) = _answer_unprivileged(
        _exits_while_the_clock_steps_back_across_midnight, str(root), first, restore=restore
    )
    assert [(order_id, pnl) for order_id, pnl, _ in exits] == [(first, "10"), (second, "-10")]
    assert waiting == 0 and positions == []
    # The second close is never stamped before the first, whatever the clock read.
    assert exits[0][2] is not None and exits[1][2] is not None and exits[1][2] >= exits[0][2], exits
    assert entry[0] is False
    lines = [json.loads(line) for line in yesterdays.read_text(encoding="utf-8").splitlines()]
    assert [line["order_id"] for line in lines[-2:]] == [first, second]
    assert placed.startswith("bot-"), placed
    todays = (_trades(root) / "2026-03-03.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["order_id"] for line in todays] == [placed]
    assert answers[0] == answers[1], answers
    decision, state, closes, open_positions = answers[0]
    assert closes[-2:] == [(first, "10"), (second, "-10")] and open_positions == [placed]
