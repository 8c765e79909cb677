"""Desk files this process may not read or write: a refusal names the file in one line and
writes no record; the bot refuses entries and still exits what the files it reads vouch
for; once the permission is back, every answer is a fresh process's.

The refusals are real: the tests run as root, where permission bits refuse nothing, so the
code under test runs in a child that drops to an unprivileged user (uid/gid 65534) on a
desk it owns, except the one file or folder the case takes away. The child imports what it
needs before it drops: the interpreter's own library may sit in a folder that user may
not enter."""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

import trading_bot
from tests.phase.conftest import DESK_START, ENTRY_PRICE, PASSWORD, Desk
from trading_bot.app import Desk as AppDesk
from trading_bot.broker import PaperBroker
from trading_bot.market_calendar import holidays_package_closed_days

UNPRIVILEGED = 65534
REPO = Path(__file__).resolve().parents[1]
ENV = {"PHASE_OVERRIDE_PASSWORD": PASSWORD}
# The exit code of a child that may not drop to the unprivileged user (a container without
# CAP_SETUID, say): the test is skipped, not failed.
CANNOT_DROP = 77

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop to an unprivileged user")


# ---- the unprivileged child -------------------------------------------------------------------


def drop_privileges() -> None:
    """Become the unprivileged user, with everything the desk's code loads lazily loaded first."""
    import encodings.ascii  # noqa: F401  (codecs a library asks for by name)
    import encodings.latin_1  # noqa: F401
    import encodings.utf_8_sig  # noqa: F401
    import importlib.metadata  # noqa: F401
    import filelock
    import pydantic
    import pydantic.plugin._loader  # noqa: F401

    for name in dir(filelock):  # filelock loads its parts on first use
        getattr(filelock, name, None)
    # pydantic imports some of its modules when a schema first needs them
    # (`pydantic.dataclasses`, say): the interpreter's folders may be closed to the
    # unprivileged user (a venv in a 0700 folder), so every module is loaded while they are not.
    for info in pkgutil.walk_packages(pydantic.__path__, "pydantic."):
        if info.name.startswith(("pydantic.mypy", "pydantic.v1", "pydantic.experimental")):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # an optional part whose own dependency is not installed
            continue
    for info in pkgutil.walk_packages(trading_bot.__path__, "trading_bot."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    # The NYSE calendar asks `holidays` (which loads its market modules on first use)
    # whenever the installed release is not the one the shipped table was made with.
    holidays_package_closed_days(DESK_START.year)
    try:
        os.setgroups([])
        os.setgid(UNPRIVILEGED)
        os.setuid(UNPRIVILEGED)
    except PermissionError:
        sys.exit(CANNOT_DROP)


def run_cli_unprivileged() -> None:
    """`python -c ...` entry: the phase CLI as the unprivileged user, at the desk's frozen time."""
    from trading_bot.phase.cli import main

    at, *argv = sys.argv[1:]
    environ = {key: value for key, value in os.environ.items() if key.startswith("PHASE_")}
    drop_privileges()
    with freeze_time(datetime.fromisoformat(at)):
        code = main(argv, environ=environ)
    sys.exit(code)


def _cli(desk: Path, at: str, *argv: str, stdin: str = "", environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = "from tests.test_permission_refusals import run_cli_unprivileged; run_cli_unprivileged()"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "HOME": str(desk.parent), **(environ or {})}
    done = subprocess.run(
        [sys.executable, "-c", command, at, *argv], cwd=desk, capture_output=True, text=True, env=env, timeout=120, input=stdin
    )
    if done.returncode == CANNOT_DROP:
        pytest.skip("this process may not switch to an unprivileged user")
    return done


def _answer_unprivileged(target: Callable[..., None], *args: Any, restore: Callable[[], None] | None = None) -> list[Any]:
    """Run `target(*args, channel)` in a spawned child; it sends answers, and after its first
    one may wait while `restore` gives the permission back. Returns what it sent."""
    here, there = multiprocessing.Pipe(duplex=True)
    child = multiprocessing.get_context("spawn").Process(target=target, args=(*args, there))
    child.start()
    there.close()
    answers = []
    try:
        while True:
            if not here.poll(120):
                raise AssertionError("the child did not answer")
            try:
                answer = here.recv()
            except EOFError:
                break
            answers.append(answer)
            if answer == "restore please":
                assert restore is not None
                restore()
                here.send("restored")
    finally:
        child.join(timeout=120)
    if child.exitcode == CANNOT_DROP:
        pytest.skip("this process may not switch to an unprivileged user")
    assert child.exitcode == 0
    return [answer for answer in answers if answer != "restore please"]


# ---- the desk ---------------------------------------------------------------------------------


def _own(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, UNPRIVILEGED, UNPRIVILEGED, follow_symlinks=False)


def _take_away(path: Path) -> None:
    """The unprivileged user may no longer read or write `path`."""
    path.chmod(0)


def _read_only(path: Path) -> None:
    """`path` belongs to root and the unprivileged user may only read it (or list it)."""
    os.chown(path, 0, 0)
    path.chmod(0o644 if path.is_file() else 0o755)


def _give_back(path: Path) -> None:
    os.chown(path, UNPRIVILEGED, UNPRIVILEGED)
    path.chmod(0o644 if path.is_file() else 0o755)


@pytest.fixture(scope="module")
def built() -> Iterator[tuple[Path, dict[str, str]]]:
    """One desk, built once: three closes on 2026-03-02, a position opened on 03-03 and still
    open, a round trip on 03-04. Each test takes a copy."""
    top = Path(tempfile.mkdtemp(prefix="perms-built-"))
    try:
        root = top / "desk"
        root.mkdir()
        with freeze_time(DESK_START) as frozen:
            desk = Desk(root, frozen, ENV)
            desk.trades(2, -1, 3)
            desk.next_session()
            held = desk.enter()
            assert held.accepted and held.record is not None, held.reason
            desk.next_session()
            desk.trade(1)
            desk.tick(5)
            facts = {"at": desk.now().isoformat(), "held": held.record.order_id}
        yield root, facts
    finally:
        shutil.rmtree(top)


@pytest.fixture
def desk(built: tuple[Path, dict[str, str]]) -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of the built desk under a folder every user may traverse, owned by the
    unprivileged user."""
    source, facts = built
    top = Path(tempfile.mkdtemp(prefix="perms-"))
    top.chmod(0o755)
    try:
        root = top / "desk"
        shutil.copytree(source, root)
        _own(root)
        yield root, facts
    finally:
        shutil.rmtree(top)


def _records(root: Path) -> dict[str, bytes]:
    """The desk's records and settings (not its derived caches), for "nothing written"."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".derived" not in path.parts and path.name not in (".phase.lock", "high_water")
    }


def _journal_files(root: Path) -> dict[str, bytes]:
    return {name: bytes_ for name, bytes_ in _records(root).items() if name.startswith("logs/trades/")}


def _journal_file(root: Path, day: str) -> Path:
    return root / "logs" / "trades" / f"{day}.jsonl"


def _paper_desk(root: str) -> AppDesk:
    """The desk at `root` as the bot opens it, with a fresh paper broker (a restart)."""
    return AppDesk.open(Path(root) / "config.json", environ=ENV, broker=PaperBroker(Decimal("1000000")))


# ---- the bot: a journal file it may not read --------------------------------------------------


def _bot_with_an_unreadable_journal_file(root: str, at: str, held: str, channel: Connection) -> None:
    drop_privileges()
    with freeze_time(datetime.fromisoformat(at)) as frozen:
        desk = _paper_desk(root)
        entry = desk.enter("AAPL", "BUY", ENTRY_PRICE)
        restored = [position.order_id for position in desk.broker.open_positions()]
        frozen.tick(60)
        closed = desk.bot.close_position(held, ENTRY_PRICE + 1)
        channel.send([entry.accepted, entry.record is None, entry.reason, restored, closed.outcome, str(closed.net_pnl), len(desk.bot.unwritten)])
        channel.send("restore please")
        assert channel.recv() == "restored"
        decision = desk.check_entry("AAPL", "BUY", ENTRY_PRICE)
        closes = [(record.order_id, str(record.net_pnl)) for record in desk.journal.closed_trades]
        fresh = _paper_desk(root)
        fresh_decision = fresh.check_entry("AAPL", "BUY", ENTRY_PRICE)
        fresh_closes = [(record.order_id, str(record.net_pnl)) for record in fresh.journal.closed_trades]
        channel.send([
            (decision.allowed, decision.reason, str(decision.shares)), closes,
            (fresh_decision.allowed, fresh_decision.reason, str(fresh_decision.shares)), fresh_closes,
            [position.order_id for position in fresh.broker.open_positions()],
        ])


def test_an_old_journal_file_it_may_not_read_halts_entries_but_not_the_exit(desk: tuple[Path, dict[str, str]]) -> None:
    root, facts = desk
    unreadable = _journal_file(root, "2026-03-02")
    _take_away(unreadable)
    first, after = _answer_unprivileged(
        _bot_with_an_unreadable_journal_file, str(root), facts["at"], facts["held"], restore=lambda: _give_back(unreadable)
    )
    accepted, nothing_journaled, reason, restored, outcome, net_pnl, unwritten = first
    assert not accepted and nothing_journaled
    assert str(unreadable) in reason, reason
    # The position opened after the unreadable file is one the files read vouch for.
    assert restored == [facts["held"]]
    assert (outcome, Decimal(net_pnl), unwritten) == ("win", Decimal("10"), 0)
    decision, closes, fresh_decision, fresh_closes, fresh_positions = after
    assert decision == fresh_decision and decision[0], decision
    assert closes == fresh_closes and closes[-1] == (facts["held"], "10") and len(closes) == 5
    assert fresh_positions == []


def _exit_unvouched(root: str, at: str, held: str, channel: Connection) -> None:
    drop_privileges()
    with freeze_time(datetime.fromisoformat(at)):
        desk = _paper_desk(root)
        restored = [position.order_id for position in desk.broker.open_positions()]
        outcomes = []
        for attempt in (lambda: desk.bot.close_position(held, ENTRY_PRICE + 1), lambda: desk.bot.flatten({"AAPL": ENTRY_PRICE})):
            try:
                attempt()
            except PermissionError as error:
                outcomes.append(("refused", error.filename))
            else:
                outcomes.append(("done", None))
        channel.send([restored, outcomes, len(desk.bot.unwritten)])


@pytest.mark.parametrize("entry_file", ["2026-03-03.jsonl", "trades.jsonl"])
def test_a_position_an_unreadable_file_may_have_closed_is_not_closed_again(desk: tuple[Path, dict[str, str]], entry_file: str) -> None:
    """The position was opened on 03-03; the file of 03-04 may hold its close: the bot does not
    take it as open (no paper position restored, no second close written). So too in the
    original bot's single-file layout: in `trades.jsonl` the entry sorts after every day file,
    yet its close would have gone into the day file of 03-04."""
    root, facts = desk
    _journal_file(root, "2026-03-03").rename(root / "logs" / "trades" / entry_file)
    unreadable = _journal_file(root, "2026-03-04")
    _take_away(unreadable)
    before = _records(root)
    (restored, outcomes, unwritten), = _answer_unprivileged(_exit_unvouched, str(root), facts["at"], facts["held"])
    assert restored == []
    assert outcomes == [("refused", str(unreadable)), ("refused", str(unreadable))]
    assert unwritten == 0
    assert _records(root) == before


# ---- the bot: a logs lock it may not open for writing -----------------------------------------


def _bot_with_a_read_only_lock(root: str, at: str, held: str, channel: Connection) -> None:
    drop_privileges()
    with freeze_time(datetime.fromisoformat(at)) as frozen:
        desk = _paper_desk(root)
        entry = desk.enter("AAPL", "BUY", ENTRY_PRICE)
        placed = [position.order_id for position in desk.broker.open_positions()]
        frozen.tick(60)
        closed = desk.bot.close_position(held, ENTRY_PRICE + 1)
        channel.send([entry.accepted, entry.record is None, entry.reason, placed, closed.outcome, len(desk.bot.unwritten)])
        channel.send("restore please")
        assert channel.recv() == "restored"
        frozen.tick(60)
        again = desk.enter("AAPL", "BUY", ENTRY_PRICE)
        assert again.record is not None, again.reason
        frozen.tick(60)
        desk.bot.close_position(again.record.order_id, ENTRY_PRICE)
        closes = [(record.order_id, str(record.net_pnl)) for record in desk.journal.closed_trades]
        decision = desk.check_entry("AAPL", "BUY", ENTRY_PRICE)
        fresh = _paper_desk(root)
        fresh_decision = fresh.check_entry("AAPL", "BUY", ENTRY_PRICE)
        fresh_closes = [(record.order_id, str(record.net_pnl)) for record in fresh.journal.closed_trades]
        channel.send([
            len(desk.bot.unwritten), again.record.order_id, closes, fresh_closes,
            (decision.allowed, decision.reason, str(decision.shares)),
            (fresh_decision.allowed, fresh_decision.reason, str(fresh_decision.shares)),
        ])


def test_a_logs_lock_it_may_not_open_refuses_entries_and_lets_the_exit_go(desk: tuple[Path, dict[str, str]]) -> None:
    root, facts = desk
    lock = root / "logs" / ".phase.lock"
    _read_only(lock)
    before = _records(root)
    while_refused = []

    def restore() -> None:
        while_refused.append(_records(root))
        _give_back(lock)

    first, after = _answer_unprivileged(_bot_with_a_read_only_lock, str(root), facts["at"], facts["held"], restore=restore)
    accepted, nothing_journaled, reason, placed, outcome, unwritten = first
    assert not accepted and nothing_journaled and placed == [facts["held"]]
    assert str(lock) in reason, reason
    # The exit happened at the broker; its record waits in memory for the lock.
    assert (outcome, unwritten) == ("win", 1)
    assert while_refused == [before]
    unwritten_after, again, closes, fresh_closes, decision, fresh_decision = after
    assert unwritten_after == 0
    assert [order_id for order_id, _ in closes[-2:]] == [facts["held"], again] and len(closes) == 6
    assert closes == fresh_closes and decision == fresh_decision


# ---- the journal's answers after a refresh a file refused -------------------------------------


def _journal_after_a_refused_refresh(root: str, channel: Connection) -> None:
    from trading_bot.logging.query_helper import TradeJournal

    drop_privileges()
    journal = TradeJournal(Path(root) / "logs" / "trades")
    questions: list[Callable[[], object]] = [journal.refresh, lambda: len(journal.closed_trades), lambda: len(journal.open_trades())]
    answers = []
    for _ in range(2):  # asked twice: the first refusal left nothing that passes for an answer
        for ask in questions:
            try:
                ask()
            except PermissionError as error:
                answers.append(("refused", error.filename))
            else:
                answers.append(("answered", None))
    channel.send(answers)
    channel.send("restore please")
    assert channel.recv() == "restored"
    fresh = TradeJournal(Path(root) / "logs" / "trades")
    channel.send([
        [(record.order_id, str(record.net_pnl)) for record in journal.closed_trades],
        [record.order_id for record in journal.open_trades()],
        [(record.order_id, str(record.net_pnl)) for record in fresh.closed_trades],
        [record.order_id for record in fresh.open_trades()],
    ])


def test_a_journal_whose_refresh_a_file_refused_answers_nothing_until_it_can_read_it(desk: tuple[Path, dict[str, str]]) -> None:
    """A look that could not read every file has no answer: the closed trades are not an
    empty list (they were, read from the index it had begun to rebuild)."""
    root, facts = desk
    unreadable = _journal_file(root, "2026-03-02")
    _take_away(unreadable)
    refused, after = _answer_unprivileged(_journal_after_a_refused_refresh, str(root), restore=lambda: _give_back(unreadable))
    assert refused == [("refused", str(unreadable))] * 6
    closes, opened, fresh_closes, fresh_opened = after
    assert closes == fresh_closes and len(closes) == 4
    assert opened == fresh_opened == [facts["held"]]


# ---- a file replaced whole in a folder that takes no new file ---------------------------------


def _desk_folder_read_only(root: Path) -> None:
    """config.json and the folder it sits in belong to root: the mirror cannot replace it."""
    _read_only(root / "config.json")
    _read_only(root)


@pytest.mark.parametrize(
    ("take", "named", "exit_code", "first_line"),
    [
        # The refusal's override-log line is written; config.json cannot mirror it: the
        # refusal stands (exit 1) and a warning names config.json.
        (_desk_folder_read_only, "config.json", 1, "refused: gate not passed: "),
        # The high-water must be kept before anything is recorded: nothing is, exit 2.
        (lambda root: _read_only(root / "logs"), "logs/high_water", 2, ""),
    ],
    ids=["config.json", "high-water mark"],
)
def test_a_file_its_folder_will_not_let_be_replaced_is_named_not_its_temp_file(
    desk: tuple[Path, dict[str, str]], take: Callable[[Path], None], named: str, exit_code: int, first_line: str
) -> None:
    root, facts = desk
    take(root)
    refused = _cli(root, facts["at"], "advance", "--to", "proof", "--yes", "--operator", "ops")
    assert refused.returncode == exit_code, (refused.stdout, refused.stderr)
    lines = refused.stderr.splitlines()
    assert "Traceback" not in refused.stderr and len(lines) == (2 if first_line else 1), refused.stderr
    assert lines[0].startswith(first_line), refused.stderr
    prefix = "warning: " if first_line else ""
    assert lines[-1].startswith((f"{prefix}{root / named}: (file): ", f"{prefix}{named}: (file): ")), refused.stderr
    assert ".tmp" not in refused.stderr


def test_an_override_committed_while_config_json_cannot_be_replaced_succeeds_with_a_warning(desk: tuple[Path, dict[str, str]]) -> None:
    """The history line is the commit: a mirror config.json refuses afterwards must not make
    the override look failed (an operator would run it again and reset the stint twice)."""
    root, facts = desk
    _desk_folder_read_only(root)
    override = ("override", "--to", "proof", "--operator", "ops", "--reason", "migrating", "--password-stdin")
    done = _cli(root, facts["at"], *override, stdin=PASSWORD + "\n", environ=ENV)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.startswith("override: now in proof"), done.stdout
    assert done.stderr.count("\n") == 1 and done.stderr.startswith((f"warning: {root / 'config.json'}: (file): ", "warning: config.json: (file): ")), done.stderr
    assert "is in the phase logs" in done.stderr
    overrides = (root / "logs" / "phase" / "phase-overrides.jsonl").read_text()
    assert '"outcome":"success"' in overrides.replace(" ", ""), "the attempt's success line was not written"
    _give_back(root)
    _give_back(root / "config.json")
    after = _cli(root, facts["at"], "status", "--json")
    assert after.returncode == 0, after.stderr
    assert '"proof"' in after.stdout
    assert '"current_phase": "proof"' in (root / "config.json").read_text()


# ---- the commands: the true answer, or one line naming the file; no record written ------------

_COMMANDS = (
    ("status",),
    ("verify",),
    ("export", "--start", "2026-03-01", "--end", "2026-03-31", "--format", "json"),
    ("validate-transition", "--to", "proof", "--json"),
)

# (what is taken away, how, the file a refusal names)
_REFUSALS = {
    "config.json unreadable": ("config.json", _take_away, "config.json"),
    "phase history unreadable": ("logs/phase/phase-history.jsonl", _take_away, "logs/phase/phase-history.jsonl"),
    "override log unreadable": ("logs/phase/phase-overrides.jsonl", _take_away, "logs/phase/phase-overrides.jsonl"),
    "a journal file unreadable": ("logs/trades/2026-03-02.jsonl", _take_away, "logs/trades/2026-03-02.jsonl"),
    "journal index folder not writable": ("logs/.derived", _read_only, "logs/.derived/journal.sqlite3"),
    "journal index read-only": ("logs/.derived/journal.sqlite3", _read_only, "logs/.derived/journal.sqlite3"),
    "logs lock read-only": ("logs/.phase.lock", _read_only, "logs/.phase.lock"),
}


def _outcome(done: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("case", sorted(_REFUSALS))
def test_a_command_on_a_file_it_may_not_use_answers_truly_or_names_it_in_one_line(desk: tuple[Path, dict[str, str]], case: str) -> None:
    """A derived cache that is up to date answers without the file (the index vouches for a
    journal file it read before); otherwise: one line naming the file, exit 2."""
    root, facts = desk
    taken, take, named = _REFUSALS[case]
    answers = {command: _outcome(_cli(root, facts["at"], *command)) for command in _COMMANDS}
    assert all(code in (0, 1) for code, _, _ in answers.values()), answers
    take(root / taken)
    before = _records(root)
    for command in _COMMANDS:
        done = _cli(root, facts["at"], *command)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        if done.returncode != 2:
            assert _outcome(done) == answers[command], command
        else:
            assert done.stderr.count("\n") == 1 and done.stdout == "", (command, done.stdout, done.stderr)
            assert done.stderr.startswith((f"{root / named}: ", f"{named}: ")), (command, done.stderr)
        assert _records(root) == before, command
    _give_back(root / taken)
    assert _outcome(_cli(root, facts["at"], "status")) == answers[("status",)]


# ---- the bot: today's journal file it may not write -------------------------------------------


def _bot_with_a_read_only_journal_file(root: str, at: str, held: str, channel: Connection) -> None:
    drop_privileges()
    with freeze_time(datetime.fromisoformat(at)) as frozen:
        desk = _paper_desk(root)
        entry = desk.enter("AAPL", "BUY", ENTRY_PRICE)
        frozen.tick(60)
        closed = desk.bot.close_position(held, ENTRY_PRICE + 1)
        decision = desk.check_entry("AAPL", "BUY", ENTRY_PRICE)
        channel.send([entry.accepted, entry.reason, closed.outcome, len(desk.bot.unwritten), decision.allowed, decision.reason])
        channel.send("restore please")
        assert channel.recv() == "restored"
        frozen.tick(60)
        with_room = desk.check_entry("AAPL", "BUY", ENTRY_PRICE)
        again = desk.enter("AAPL", "BUY", ENTRY_PRICE)
        closes = [(record.order_id, str(record.net_pnl)) for record in desk.journal.closed_trades]
        fresh = _paper_desk(root)
        fresh_closes = [(record.order_id, str(record.net_pnl)) for record in fresh.journal.closed_trades]
        channel.send([with_room.allowed, again.accepted, len(desk.bot.unwritten), closes, fresh_closes])


def test_a_close_the_journal_file_refuses_waits_and_the_check_says_entries_are_halted(desk: tuple[Path, dict[str, str]]) -> None:
    """The check an entry gets now is the one the entry would get: refused while a close waits."""
    root, facts = desk
    today = _journal_file(root, "2026-03-04")
    _read_only(today)
    before = _journal_files(root)
    while_refused = []

    def restore() -> None:
        while_refused.append(_journal_files(root))
        _give_back(today)

    first, after = _answer_unprivileged(_bot_with_a_read_only_journal_file, str(root), facts["at"], facts["held"], restore=restore)
    accepted, reason, outcome, unwritten, allowed, check_reason = first
    assert not accepted and str(today) in reason, reason
    assert (outcome, unwritten) == ("win", 1)
    assert not allowed and check_reason is not None and "1 record(s) waiting" in check_reason and str(today) in check_reason, check_reason
    assert while_refused == [before]  # no entry and no close reached the journal (the refusal is in the override log)
    allowed_with_room, entered, unwritten_after, closes, fresh_closes = after
    assert allowed_with_room and entered and unwritten_after == 0
    assert closes == fresh_closes and closes[-1] == (facts["held"], "10")


# ---- the bot: a journal index it may not write ------------------------------------------------


def _bot_with_an_index_it_may_not_write(root: str, at: str, held: str, channel: Connection) -> None:
    drop_privileges()
    with freeze_time(datetime.fromisoformat(at)) as frozen:
        desk = _paper_desk(root)
        entries = []
        for _ in range(2):  # the second entry's look must index the first one's line
            entry = desk.enter("AAPL", "BUY", ENTRY_PRICE)
            entries.append((entry.record.order_id if entry.record else None, entry.reason))
            frozen.tick(1)
        placed = sorted(position.order_id for position in desk.broker.open_positions())
        frozen.tick(60)
        restarted = _paper_desk(root)
        restored = sorted(position.order_id for position in restarted.broker.open_positions())
        closed = restarted.bot.close_position(held, ENTRY_PRICE + 1)
        channel.send([entries, placed, restored, closed.outcome, len(restarted.bot.unwritten)])


@pytest.mark.parametrize(
    "taken", ["logs/.derived", "logs/.derived/journal.sqlite3"], ids=["index folder not writable", "index read-only"]
)
def test_an_index_it_may_not_write_never_lets_an_order_the_journal_lacks_and_a_restarted_bot_exits(
    desk: tuple[Path, dict[str, str]], taken: str
) -> None:
    """Each entry is placed with its record in the journal or refused naming the index; a
    restarted bot restores from the journal files exactly the positions placed, and exits."""
    root, facts = desk
    journal = _journal_file(root, "2026-03-04")
    _read_only(root / taken)
    (entries, placed, restored, outcome, unwritten), = _answer_unprivileged(
        _bot_with_an_index_it_may_not_write, str(root), facts["at"], facts["held"]
    )
    index = str(root / "logs" / ".derived" / "journal.sqlite3")
    journaled = journal.read_text(encoding="utf-8")
    for order_id, reason in entries:
        if order_id is None:
            assert "the journal index cannot be written" in reason and index in reason, reason
        else:
            assert f'"order_id":"{order_id}"' in journaled
    accepted = [order_id for order_id, _ in entries if order_id is not None]
    assert placed == restored == sorted([facts["held"], *accepted])
    assert (outcome, unwritten) == ("win", 0)
    assert journaled.count("\n") == 3 + len(accepted)  # the day's round trip, the entries placed, this close


# ---- a process whose effective user is not its real one ---------------------------------------


def _folder_refusal_as_effective_user(folder: str, channel: Connection) -> None:
    """Only the effective user changes: the real one stays root, as under a setuid launcher."""
    from trading_bot.logging.structured_logger import new_file_refused

    try:
        os.setegid(UNPRIVILEGED)
        os.seteuid(UNPRIVILEGED)
    except PermissionError:
        sys.exit(CANNOT_DROP)
    refused = new_file_refused(Path(folder), datetime(2026, 3, 3, 15, tzinfo=timezone.utc))
    try:
        (Path(folder) / "2026-03-03.jsonl").touch()
        created = True
    except PermissionError:
        created = False
    channel.send([refused, created])
    channel.close()


def test_the_folder_check_asks_for_the_effective_user_the_write_runs_as() -> None:
    top = Path(tempfile.mkdtemp(prefix="perms-effective-"))
    try:
        top.chmod(0o755)  # the unprivileged user reaches the folder (pytest's tmp_path is 0700)
        folder = top / "trades"
        folder.mkdir()
        folder.chmod(0o555)  # root's, and the effective user may only list it
        [(refused, created)] = _answer_unprivileged(_folder_refusal_as_effective_user, str(folder))
        assert created is False
        assert refused == f"{folder / '2026-03-03.jsonl'}: the folder {folder} takes no new file"
        folder.chmod(0o777)  # and when it may write there, nothing is refused
        assert _answer_unprivileged(_folder_refusal_as_effective_user, str(folder)) == [[None, True]]
    finally:
        shutil.rmtree(top)
