"""The saved phase state (`logs/.derived/state.json`): reused only when it is the fold of
the records as they are, and then giving exactly the answers of a full replay.

The journal's epoch says whether the first n closes still mean what they meant when the
state was saved. A journal whose epoch is persisted beside the files shares it between
every reader of unchanged files; an in-memory journal draws a new one per reader, and there
the tests pin one value on each reader (`pin`) so that readers of the same files agree.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import journal_fields, write_journal_lines
from tests.phase.conftest import Desk, advance_to, history_overridden_into
from trading_bot.app import Desk as AppDesk
from trading_bot.config import Config
from trading_bot.dashboard.metrics_calculator import RunningTally
from trading_bot.logging.trade_record import TradeRecord, outcome_for
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase import cli
from trading_bot.phase.engine import PhaseEngine, Replay
from trading_bot.phase.ledger import Ledger, read_ledger
from trading_bot.phase.manager import PhaseManager
from trading_bot.phase.models import Phase
from trading_bot.phase.snapshot import (
    ENTRY_SESSIONS_FILE,
    SavedEntrySessions,
    SNAPSHOT_VERSION,
    SnapshotKey,
    progress_to_json,
    replay_to_json,
    restore_progress,
    restore_replay,
)
from trading_bot.phase.stint import StintProgress
from trading_bot.phase.trade_limiter import SessionEntries

EPOCH = "the-same-journal-files"
SHIPPED = Config.from_text(Path("config.json"), (Path(__file__).resolve().parents[2] / "config.json").read_text(encoding="utf-8"))


# ---- the fold as JSON: a round trip changes nothing -------------------------------------


def ledger_in(phase: Phase, since: datetime) -> Ledger:
    """The ledger of a history with one override into `phase` (none for experience)."""
    return read_ledger(history_overridden_into(phase, since).lines(), SHIPPED.settings, "paper")


def numbers(progress: StintProgress) -> str:
    """Every folded number, with its exact Decimal form and dict order, as one string."""
    windows = [
        None if window is None else (window.size, window.contents(), window.wins, window.losses, window.win_sum, window.loss_sum)
        for window in (progress.trigger_window, progress.gate_window)
    ]
    return repr(
        (
            progress.equity,
            [getattr(progress.tally, name) for name in RunningTally.__slots__],
            windows,
            list(progress.sessions.items()),
            progress.session_order,
            list(progress.equity_at_open.items()),
            list(progress.all_sessions_pnl.items()),
            list(progress.all_sessions_count.items()),
            list(progress.real_session_pnl.items()),
            progress.equity_at_stint_start,
            progress.peak,
            progress.max_drawdown_pct,
            progress.peak_not_above_zero,
            # As written (a copied desk reads the same file elsewhere: its name only).
            None if (trade := progress.last_stint_trade) is None else (trade.to_json_dict(), trade.extra, Path(trade.file).name, trade.line),
            progress.last_session,
            progress.manual_override_trades,
        )
    )


def answers_of(progress: StintProgress) -> str:
    """What the rules read from a progress."""
    return repr(
        (
            progress.tally.win_rate(),
            progress.tally.avg_rr(),
            None if progress.trigger_window is None else progress.trigger_window.win_rate(),
            progress.pooled_last_sessions(3),
            progress.drawdown_pct(),
            progress.profitable_sessions(),
        )
    )


START = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
trade_steps = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=3000),  # minutes after the previous close
        st.integers(min_value=-50_000, max_value=50_000),  # net P&L in cents
        st.sampled_from([None, Phase.EXPERIENCE, Phase.PROOF, Phase.TRIAL, Phase.SCALING]),
        st.booleans(),  # emergency exit
        st.booleans(),  # manual override
    ),
    max_size=40,
)


def make_trades(steps: list[tuple[int, int, Phase | None, bool, bool]]) -> list[TradeRecord]:
    trades = []
    moment = START - timedelta(days=2)
    for number, (gap, cents, phase, emergency, manual) in enumerate(steps):
        entry = moment + timedelta(minutes=gap)
        moment = entry + timedelta(minutes=5)
        pnl = Decimal(cents).scaleb(-2)
        trades.append(
            TradeRecord(
                timestamp=entry,
                symbol="AAPL",
                action="BUY",
                quantity=10,
                price=Decimal("10"),
                order_id=f"o-{number}",
                outcome=outcome_for(pnl),
                exit_timestamp=moment,
                net_pnl=pnl,
                phase=phase,
                emergency_exit=emergency,
                manual_override=manual and not emergency,
            )
        )
    return trades


@given(
    steps=trade_steps,
    phase=st.sampled_from(list(Phase)),
    cut=st.floats(min_value=0, max_value=1),
    pending=st.lists(st.dates(), max_size=5, unique=True),
)
def test_a_saved_fold_restores_every_number_and_folds_on_identically(
    steps: list[tuple[int, int, Phase | None, bool, bool]], phase: Phase, cut: float, pending: list[Any]
) -> None:
    engine = PhaseEngine(SHIPPED.settings, MarketCalendar(), "paper")
    ledger = ledger_in(phase, START)
    trades = make_trades(steps)
    split = int(len(trades) * cut)
    original = Replay(ledger=ledger, progress=engine.fold_all(ledger, trades[:split]), index=split, head_seq=ledger.head_seq)
    for day in pending:
        original.pend(day)

    saved = orjson.loads(orjson.dumps(replay_to_json(original)))
    restored = restore_replay(saved, ledger_in(phase, START), engine.new_progress)

    assert numbers(restored.progress) == numbers(original.progress)
    assert (restored.index, restored.head_seq, restored.pending, restored.unsummarized) == (
        original.index,
        original.head_seq,
        original.pending,
        original.unsummarized,
    )
    for trade in trades[split:]:
        original.progress.fold(trade)
        restored.progress.fold(trade)
    assert numbers(restored.progress) == numbers(original.progress)
    assert answers_of(restored.progress) == answers_of(original.progress)
    assert numbers(restored.progress) == numbers(engine.fold_all(ledger, trades))


def test_the_saved_fold_names_every_folded_field() -> None:
    """A field added to StintProgress without being saved fails here, not in production."""
    from_ledger_or_settings = {"stint", "calendar", "phase_at", "starting_equity"}
    progress = PhaseEngine(SHIPPED.settings, MarketCalendar(), "paper").new_progress(ledger_in(Phase.TRIAL, START))
    assert {field.name for field in fields(StintProgress)} - from_ledger_or_settings == set(progress_to_json(progress))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("equity", 10000.5),
        ("equity", "NaN"),
        ("manual_override_trades", -1),
        ("manual_override_trades", True),
        ("sessions", {"2026-03-02": ["1", 1, 1, 0, "1"]}),
        ("session_order", ["2026-03-02"]),
        ("trigger_window", None),
        ("last_session", "March 2"),
    ],
)
def test_a_malformed_saved_field_is_refused(field: str, value: Any) -> None:
    engine = PhaseEngine(SHIPPED.settings, MarketCalendar(), "paper")
    ledger = ledger_in(Phase.TRIAL, START)
    data = progress_to_json(engine.fold_all(ledger, make_trades([(5, 100, None, False, False)])))
    data[field] = value
    with pytest.raises((KeyError, TypeError, ValueError, ArithmeticError)):
        restore_progress(engine.new_progress(ledger), data)


def test_a_window_saved_under_other_settings_is_refused() -> None:
    engine = PhaseEngine(SHIPPED.settings, MarketCalendar(), "paper")
    data = progress_to_json(engine.fold_all(ledger_in(Phase.TRIAL, START), []))
    with pytest.raises(ValueError):
        restore_progress(engine.new_progress(ledger_in(Phase.EXPERIENCE, START)), data)


def key(closes: int, entries: int, epoch: str = "e1") -> SnapshotKey:
    return SnapshotKey(SNAPSHOT_VERSION, "settings", 4, "h" * 64, epoch, closes, entries)


@pytest.mark.parametrize(
    ("saved", "current", "usable"),
    [
        (key(10, 12), key(10, 12), True),
        (key(10, 12), key(11, 12), True),
        (key(10, 12), key(10, 13), True),
        (key(10, 12), key(9, 12), False),
        (key(10, 12), key(10, 11), False),
        (key(10, 12), key(10, 12, "e2"), False),
        (key(0, 1), key(0, 1, "e2"), False),
        (key(0, 0), key(0, 0, "e2"), True),  # nothing folded from the journal holds under any epoch
        (key(0, 0), key(5, 5, "e2"), True),
    ],
)
def test_a_saved_position_is_usable_only_within_the_same_journal_up_to_what_it_holds(
    saved: SnapshotKey, current: SnapshotKey, usable: bool
) -> None:
    assert (saved.mismatch(current) is None) is usable


@pytest.mark.parametrize(
    ("saved", "now", "needs_a_save"),
    [
        (None, key(3, 3), True),
        (key(3, 3), key(3, 3), False),
        (key(3, 3), key(3, 5), False),  # entries appended: nothing saved changes
        (key(3, 3), key(4, 4), True),  # a close folded
        (key(3, 3), key(3, 3, "e2"), True),  # another journal
        (key(0, 0), key(0, 0, "e2"), False),  # an empty journal read again
    ],
)
def test_a_save_is_skipped_only_when_the_saved_state_already_resumes_to_the_same_fold(
    saved: SnapshotKey | None, now: SnapshotKey, needs_a_save: bool
) -> None:
    assert now.same_fold(saved) is not needs_a_save


# ---- the desk: a history of several phases, downgrades, a size step and overrides --------


def build_history(desk: Desk) -> None:
    desk.trades(5, -3, 4, per_session=2)
    desk.next_session()
    advance_to(desk, "proof")
    desk.next_session()
    desk.trades(-5, -5, -5, per_session=1)  # three losses in a row: down to experience, breaker tripped
    code, _, err = desk.cli("acknowledge", "--operator", "alice", "--note", "reviewed")
    assert code == 0, err
    desk.start()
    advance_to(desk, "scaling")
    desk.next_session()
    desk.trades(1, 1, 1, 1, 1)  # the fifth win in a row steps the size up
    desk.next_session()
    desk.trades(2, -1)
    types = {(line["type"], line.get("kind")) for line in desk.history()}
    assert {("transition", "downgrade"), ("transition", "override"), ("size_change", None), ("session_summary", None)} <= types


def state_file(desk: Desk) -> Path:
    return desk.logs_dir / ".derived" / "state.json"


def pin(manager: PhaseManager, epoch: str = EPOCH) -> PhaseManager:
    """Give an in-memory journal's per-reader epoch one shared value (a persisted one is left be)."""
    if not isinstance(getattr(type(manager.journal), "epoch", None), property):
        manager.journal.epoch = epoch
    return manager


def reader(desk: Desk) -> PhaseManager:
    """A new process's manager on the desk's files (see the module docstring on its epoch)."""
    return pin(PhaseManager(desk.config_path, environ=desk.env))


def run(command: str, manager: PhaseManager, **options: Any) -> tuple[int, Any]:
    out = io.StringIO()
    code = cli.COMMANDS[command](manager, argparse.Namespace(json=True, **options), cli.Io(io.StringIO(), out, io.StringIO()))
    return code, json.loads(out.getvalue())


def answers(manager: PhaseManager) -> dict[str, Any]:
    """`status --json` and `validate-transition --json` (to the next rung, or a refusal at the top)."""
    manager.sync_journal()
    status = run("status", manager)
    target = manager.state().phase.next or Phase.SCALING
    return {"status": status, "validate": run("validate-transition", manager, to=target), "numbers": numbers(manager.state().progress)}


def cold_answers(desk: Desk, tmp_path: Path) -> dict[str, Any]:
    """The answers from a copy of the desk with no saved state at all."""
    copy = tmp_path / "cold"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(desk.root, copy)
    saved = copy / "logs" / ".derived" / "state.json"
    if saved.is_dir():
        saved.rmdir()
    else:
        saved.unlink(missing_ok=True)
    (copy / "logs" / ".derived" / ENTRY_SESSIONS_FILE).unlink(missing_ok=True)
    manager = PhaseManager(copy / "config.json", environ=desk.env)
    result = answers(manager)
    assert manager.snapshot_note == "replayed in full: no saved state"
    return result


def resaved(path: Path, edit: Any) -> None:
    """Rewrite the saved state with `edit` applied, its checksum recomputed as the README says."""
    document = orjson.loads(path.read_bytes())
    edit(document)
    body = {"key": document["key"], "folded_through": document["folded_through"], "replay": document["replay"]}
    document["digest"] = hashlib.sha256(orjson.dumps(body)).hexdigest()
    path.write_bytes(orjson.dumps(document))


@pytest.fixture
def history(desk: Desk) -> Desk:
    build_history(desk)
    reader(desk).state()  # saves the state, or finds the desk's own process saved it already
    assert state_file(desk).exists()
    return desk


def test_a_second_process_resumes_from_the_saved_state_and_folds_nothing_old(history: Desk, tmp_path: Path) -> None:
    second = reader(history)
    got = answers(second)
    assert second.snapshot_note == f"resumed after {len(second.journal.closed_trades)} closed trades"
    assert second.engine.trades_folded == 0
    assert got == cold_answers(history, tmp_path)
    assert got["status"][1]["phase"] == "scaling"


def test_trades_closed_after_the_save_are_the_only_ones_folded(history: Desk, tmp_path: Path) -> None:
    saved = state_file(history).read_bytes()
    history.trades(-3, 2)  # the desk's own process saves its state over ours; put ours back
    state_file(history).write_bytes(saved)
    second = reader(history)
    got = answers(second)
    closes = len(second.journal.closed_trades)
    assert second.snapshot_note == f"resumed after {closes - 2} closed trades"
    assert second.engine.trades_folded == 2
    assert got == cold_answers(history, tmp_path)


def test_a_downgrade_found_after_resuming_is_written_exactly_as_a_full_replay_writes_it(history: Desk, tmp_path: Path) -> None:
    """Three losses appended while no process ran: the resumed fold finds the downgrade."""
    last = history.now()
    records = []
    for number in range(3):
        entry = last + timedelta(minutes=2 * number + 1)
        exit_at = entry + timedelta(minutes=1)
        records.append(journal_fields(order_id=f"late-{number}", timestamp=entry.isoformat(), quantity=20))
        records.append(
            journal_fields(
                order_id=f"late-{number}",
                timestamp=entry.isoformat(),
                quantity=20,
                outcome="loss",
                exit_timestamp=exit_at.isoformat(),
                net_profit_loss="-4.00",
                phase="scaling",
            )
        )
    write_journal_lines(history.logs_dir / "trades" / "late.jsonl", *records)
    history.at(last + timedelta(minutes=30))
    cold_copy = tmp_path / "cold-desk"
    shutil.copytree(history.root, cold_copy)
    (cold_copy / "logs" / ".derived" / "state.json").unlink()

    resumed = reader(history)
    got = answers(resumed)
    assert resumed.snapshot_note.startswith("resumed after")
    assert got["status"][1]["phase"] == "trial"

    cold = PhaseManager(cold_copy / "config.json", environ=history.env)
    assert answers(cold) == got
    assert (cold_copy / "logs" / "phase" / "phase-history.jsonl").read_bytes() == (
        history.logs_dir / "phase" / "phase-history.jsonl"
    ).read_bytes()


def test_a_resumed_state_is_not_saved_again_when_nothing_changed(history: Desk) -> None:
    before = os.stat(state_file(history))
    second = reader(history)
    second.state()
    assert second.snapshot_note.startswith("resumed after")
    after = os.stat(state_file(history))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_new_close_saves_the_state_again(history: Desk) -> None:
    second = reader(history)
    second.state()
    history.trade(3)
    state_file(history).unlink()  # what the desk's process saved; ours is the one checked
    second.state()
    key = orjson.loads(state_file(history).read_bytes())["key"]
    assert key["closes"] == len(second.journal.closed_trades)
    assert key["journal_epoch"] == second.journal.epoch


# ---- every key that does not match: a full replay, the same answer -----------------------


def test_a_history_line_written_since_the_save_means_a_full_replay(history: Desk, tmp_path: Path) -> None:
    saved = state_file(history).read_bytes()
    history.next_session()
    history.app.state()  # the desk's process records the last session's summary
    state_file(history).write_bytes(saved)
    second = reader(history)
    got = answers(second)
    assert second.snapshot_note.startswith("replayed in full: stale: phase history head")
    assert got == cold_answers(history, tmp_path)


def test_a_changed_setting_means_a_full_replay(history: Desk, tmp_path: Path) -> None:
    before = answers(reader(history))
    Config.from_env_and_json(history.config_path, environ=history.env).with_updates({("account", "starting_equity"): 20000}).save()
    second = reader(history)
    got = answers(second)
    assert second.snapshot_note == "replayed in full: stale: settings changed"
    assert got["status"][1]["equity"] != before["status"][1]["equity"]
    assert got == cold_answers(history, tmp_path)


def test_a_gate_threshold_edit_means_a_full_replay(history: Desk) -> None:
    Config.from_env_and_json(history.config_path, environ=history.env).with_updates(
        {("phase_progression", "scaling", "downgrade_triggers", "consecutive_losses"): 5}
    ).save()
    second = reader(history)
    second.state()
    assert second.snapshot_note == "replayed in full: stale: settings changed"


def test_a_mirror_update_in_config_json_is_not_a_settings_change(history: Desk) -> None:
    """The phase and log heads config.json mirrors are records, not settings: the fold stands."""
    Config.from_env_and_json(history.config_path, environ=history.env).with_updates(
        {("phase_progression", "current_phase"): "proof"}
    ).save()
    second = reader(history)
    second.state()
    assert second.snapshot_note.startswith("resumed after")


def test_a_state_saved_by_other_code_means_a_full_replay(history: Desk, tmp_path: Path) -> None:
    resaved(state_file(history), lambda document: document["key"].update(version=SNAPSHOT_VERSION + 1))
    second = reader(history)
    got = answers(second)
    assert second.snapshot_note == f"replayed in full: stale: code version {SNAPSHOT_VERSION + 1}, this code is {SNAPSHOT_VERSION}"
    assert got == cold_answers(history, tmp_path)


def test_a_close_landing_before_the_last_one_means_a_full_replay(history: Desk, tmp_path: Path) -> None:
    """Its position is taken by a close the saved fold never saw: the epoch changes."""
    last_file = max((history.logs_dir / "trades").glob("*.jsonl"))
    last_close = max(
        datetime.fromisoformat(record["exit_timestamp"].replace("Z", "+00:00"))
        for record in map(json.loads, last_file.read_text(encoding="utf-8").splitlines())
        if record.get("exit_timestamp")
    )
    entry = last_close - timedelta(minutes=30)
    write_journal_lines(
        last_file,
        journal_fields(
            order_id="late-close",
            timestamp=entry.isoformat(),
            outcome="win",
            exit_timestamp=(last_close - timedelta(minutes=1)).isoformat(),
            net_profit_loss="1.00",
            phase="scaling",
        ),
    )
    second = reader(history)
    got = answers(second)
    assert second.snapshot_note == "replayed in full: stale: journal rebuilt or reordered since (epoch differs)"
    assert got == cold_answers(history, tmp_path)


def test_a_journal_shorter_than_the_saved_position_means_a_full_replay(history: Desk, tmp_path: Path) -> None:
    resaved(state_file(history), lambda document: document["key"].update(closes=document["key"]["closes"] + 1))
    second = reader(history)
    got = answers(second)
    assert "fewer than the" in second.snapshot_note
    assert got == cold_answers(history, tmp_path)


def test_a_state_folded_past_now_is_not_used_after_the_clock_steps_back(history: Desk) -> None:
    history.at(history.now() - timedelta(hours=3))
    second = reader(history)
    second.state()
    assert second.snapshot_note == "replayed in full: stale: it folded trades closed after now (the clock stepped back)"


# ---- a damaged or edited file: ignored, then replaced -----------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: b"\x00garbage\xff" * 10,
        lambda raw: raw[: len(raw) // 2],
        lambda raw: b"[]",
        lambda raw: b"",
        lambda raw: raw.replace(b'"equity":"', b'"equity":"1', 1),
    ],
    ids=["garbage", "truncated", "not-an-object", "empty", "edited-equity"],
)
def test_a_damaged_or_edited_state_is_ignored_and_replaced(history: Desk, tmp_path: Path, damage: Any) -> None:
    path = state_file(history)
    path.write_bytes(damage(path.read_bytes()))
    second = reader(history)
    got = answers(second)
    assert second.snapshot_note.startswith("replayed in full: ")
    assert got == cold_answers(history, tmp_path)
    third = reader(history)
    third.state()
    assert third.snapshot_note.startswith("resumed after")


def test_an_edited_number_with_its_keys_intact_is_caught_by_the_checksum(history: Desk, tmp_path: Path) -> None:
    path = state_file(history)
    document = orjson.loads(path.read_bytes())
    document["replay"]["progress"]["tally"]["wins"] += 5
    path.write_bytes(orjson.dumps(document))
    second = reader(history)
    got = answers(second)
    assert second.snapshot_note == "replayed in full: content does not match its checksum (edited or damaged)"
    assert got == cold_answers(history, tmp_path)


def test_a_malformed_body_with_a_valid_checksum_is_refused_not_a_traceback(history: Desk, tmp_path: Path) -> None:
    resaved(state_file(history), lambda document: document["replay"]["progress"].update(equity=1e308))
    second = reader(history)
    got = answers(second)
    assert second.snapshot_note.startswith("replayed in full: does not validate (TypeError")
    assert got == cold_answers(history, tmp_path)


# ---- who reads and writes it -------------------------------------------------------------


def test_an_as_of_view_neither_reads_nor_writes_the_state(history: Desk) -> None:
    path = state_file(history)
    path.write_bytes(b"not json")
    view = pin(PhaseManager(history.config_path, environ=history.env, as_of=history.now() - timedelta(days=1)))
    view.state()
    assert view.snapshot_note == "not read"
    assert path.read_bytes() == b"not json"


def test_the_bot_start_with_a_warm_state_folds_no_old_trade(history: Desk) -> None:
    desk = AppDesk.open(history.config_path, environ=history.env)
    pin(desk.phase)
    state = desk.state()
    assert desk.phase.snapshot_note.startswith("resumed after")
    assert desk.phase.engine.trades_folded == 0
    assert state.phase is Phase.SCALING


def test_a_temp_file_left_by_a_killed_save_is_swept_and_the_old_state_still_used(history: Desk) -> None:
    leftover = state_file(history).parent / ".state.json.killed.tmp"
    leftover.write_bytes(b'{"format": "half written')
    second = reader(history)
    second.state()
    assert second.snapshot_note.startswith("resumed after")
    assert not leftover.exists()


def test_verify_reads_the_records_not_the_saved_state(history: Desk) -> None:
    state_file(history).write_bytes(b"not json")
    code, out, err = history.cli("verify")
    assert code == 0, out + err
    assert state_file(history).read_bytes() == b"not json"


def test_a_state_that_cannot_be_written_costs_nothing_but_the_save(history: Desk, tmp_path: Path) -> None:
    state_file(history).unlink()
    state_file(history).mkdir()  # a folder where the file should be: the rename onto it fails
    second = reader(history)
    got = answers(second)
    assert second.snapshot_note.startswith("not saved: ")
    assert got == cold_answers(history, tmp_path)


def test_a_command_process_resumes_from_the_state_saved_before_and_answers_as_a_cold_one(history: Desk, tmp_path: Path) -> None:
    """The CLI opens its own desk (journal, index, manager), as a separate process does."""
    before = os.stat(state_file(history))
    warm = [history.cli_json("status"), history.cli_json("validate-transition", "--to", "scaling")]
    after = os.stat(state_file(history))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # resumed: nothing new to save

    copy = tmp_path / "cold-cli"
    shutil.copytree(history.root, copy)
    (copy / "logs" / ".derived" / "state.json").unlink()
    cold = []
    for args in (["status"], ["validate-transition", "--to", "scaling"]):
        out = io.StringIO()
        code = cli.main(["--config", str(copy / "config.json"), *args, "--json"], stdin=io.StringIO(), stdout=out, stderr=io.StringIO(), environ=history.env)
        cold.append((code, json.loads(out.getvalue())))
    assert warm == cold
    assert (copy / "logs" / ".derived" / "state.json").exists()  # the cold command saved one


def test_a_running_process_resumes_from_the_state_another_process_saved_after_writing_history(history: Desk, tmp_path: Path) -> None:
    """A command writes the last session's summary; the bot picks up its saved fold, not a full replay."""
    bot = reader(history)
    bot.state()
    history.next_session()
    lines_before = len(history.history())
    reader(history).state()  # a command: writes the summary of the session that closed, saves its fold
    assert [line["type"] for line in history.history()[lines_before:]] == ["session_summary"]
    folded_before = bot.engine.trades_folded
    got = answers(bot)
    assert bot.snapshot_note.startswith("resumed after")
    assert bot.engine.trades_folded == folded_before
    assert got == cold_answers(history, tmp_path)


# ---- the entries per session, saved beside the fold -------------------------------------------


def counts_of(entries: Any) -> tuple[Any, ...]:
    return (entries.by_session, entries.first_at, entries.last_at)


def full_count(manager: PhaseManager) -> tuple[Any, ...]:
    return counts_of(SessionEntries.of(manager.calendar, manager.journal.entries))


def test_a_second_process_takes_the_saved_entry_counts_and_counts_nothing_old(history: Desk, tmp_path: Path) -> None:
    second = reader(history)
    got = answers(second)
    assert second.entry_sessions_note == f"resumed after {len(second.journal.entry_log)} entries"
    assert counts_of(second.entries) == full_count(second)
    assert got == cold_answers(history, tmp_path)


def test_entries_after_the_saved_counts_are_counted_on_top_of_them(history: Desk) -> None:
    manager = reader(history)
    manager.sync_journal()
    log = manager.journal.entry_log
    assert len(log) > 4
    partial = SessionEntries(manager.calendar)
    partial.fold(log[: len(log) - 3])
    key = manager._entry_sessions_key()
    SavedEntrySessions(history.logs_dir / ".derived" / ENTRY_SESSIONS_FILE).save(replace(key, entries=len(log) - 3), partial)
    later = reader(history)
    later.sync_journal()
    assert later.entry_sessions_note == f"resumed after {len(log) - 3} entries"
    assert counts_of(later.entries) == full_count(later)


def entry_counts_edited(path: Path) -> None:
    document = orjson.loads(path.read_bytes())
    document["sessions"][0][1] += 1  # one entry more in the first session, checksum left alone
    path.write_bytes(orjson.dumps(document))


def entry_counts_garbage(path: Path) -> None:
    path.write_bytes(b"\x00 not json")


def entry_counts_session_twice(path: Path) -> None:
    """A session counted in two rows, checksum recomputed: what a hand rewrite could leave."""
    document = orjson.loads(path.read_bytes())
    document["sessions"].append(list(document["sessions"][0]))
    document["digest"] = hashlib.sha256(orjson.dumps({"key": document["key"], "sessions": document["sessions"]})).hexdigest()
    path.write_bytes(orjson.dumps(document))


@pytest.mark.parametrize(
    "damage", [entry_counts_edited, entry_counts_garbage, entry_counts_session_twice], ids=["edited", "garbage", "session twice"]
)
def test_damaged_entry_counts_are_counted_again_in_full(history: Desk, tmp_path: Path, damage: Any) -> None:
    damage(history.logs_dir / ".derived" / ENTRY_SESSIONS_FILE)
    manager = reader(history)
    got = answers(manager)
    assert manager.entry_sessions_note.startswith("counted in full: entry counts")
    assert counts_of(manager.entries) == full_count(manager)
    assert got == cold_answers(history, tmp_path)


def test_entry_counts_saved_under_other_hours_are_counted_again(history: Desk) -> None:
    config = json.loads(history.config_path.read_text())
    config["trading"]["hours"]["start_time"] = "09:30"
    history.config_path.write_text(json.dumps(config))
    manager = reader(history)
    manager.sync_journal()
    assert manager.entry_sessions_note == "counted in full: stale entry counts: code or settings changed"
    assert counts_of(manager.entries) == full_count(manager)
