"""Crashes, concurrent writers, torn lines, damage, mirror repair and the lock (SPEC §10, §11).

Everything here runs on real files: child processes are started with `sys.executable`
(see writer_child.py), killed with SIGKILL or raced against each other, and the records
they leave are read back through the real CLI.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from trading_bot.clock import FixedClock
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.cli import main
from trading_bot.phase.log_format import canonical_line

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "config.json"
CHILD = Path(__file__).resolve().with_name("writer_child.py")
PASSWORD = "correct horse battery staple"
HISTORY = "phase-history.jsonl"
OVERRIDES = "phase-overrides.jsonl"

KILL_ROUNDS = 100
KILL_SEED = 20260302
# A write point is one os.write or os.fsync (writer_child.kill_at); an override through
# the CLI passes about 8 of them, so kills land anywhere in the first few overrides.
MAX_KILL_POINT = 40

# Monday 2026-03-02, 10:00 New York: inside trading hours, in the real past.
RACE_START = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
RACE_OPERATIONS = 150


# ---------------------------------------------------------------- helpers


def child_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHASE_")}
    env["PHASE_OVERRIDE_PASSWORD"] = PASSWORD
    return env


def spawn(*args: str, stderr: Any = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=child_env(),
    )


def run_cli(config: Path, *args: str, stdin: str = "", clock: Any = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    extra = {} if clock is None else {"clock": clock}
    code = main(
        ["--config", str(config), *args],
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
        environ={"PHASE_OVERRIDE_PASSWORD": PASSWORD},
        **extra,
    )
    return code, out.getvalue(), err.getvalue()


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def complete_lines(data: bytes) -> list[dict[str, Any]]:
    """The terminated lines of a log, parsed (a torn tail is left out)."""
    return [json.loads(raw) for raw in data[: data.rfind(b"\n") + 1].splitlines()]


def torn_fragment(data: bytes) -> bytes:
    return data[data.rfind(b"\n") + 1 :]


def override_records(lines: list[dict[str, Any]]) -> Counter[int]:
    """How many successful override-attempt lines name each history seq."""
    return Counter(
        line["history_seq"]
        for line in lines
        if line["type"] == "override_attempt" and line.get("outcome") == "success" and "history_seq" in line
    )


def mirror(config: Path) -> dict[str, Any]:
    return json.loads(config.read_text(encoding="utf-8"))["phase_progression"]


def edit_line(path: Path, index: int, **changes: Any) -> bytes:
    """Edit one terminated line in place (its old hash kept); returns the damaged file's bytes."""
    lines = path.read_bytes().splitlines(keepends=True)
    obj = json.loads(lines[index])
    obj.update(changes)
    lines[index] = canonical_line(obj)
    data = b"".join(lines)
    path.write_bytes(data)
    return data


def override(desk: Any, *target: str) -> tuple[int, str, str]:
    return desk.cli(
        "override", *target, "--operator", "ops", "--reason", "durability test", "--password-stdin",
        stdin=desk.env["PHASE_OVERRIDE_PASSWORD"] + "\n",
    )


def phase_dir(desk: Any) -> Path:
    return desk.logs_dir / "phase"


# ---------------------------------------------------------------- SIGKILL during transitions


class KillRound:
    """What one SIGKILL left behind, seen before start-up repairs anything."""

    def __init__(self, root: Path, previous_history: bytes, previous_overrides: bytes, previous_tmp: set[Path]) -> None:
        self.history = read_bytes(root / "logs" / "phase" / HISTORY)
        self.overrides = read_bytes(root / "logs" / "phase" / OVERRIDES)
        self.config_text = (root / "config.json").read_text(encoding="utf-8")
        self.progressed = len(self.history) > len(previous_history)
        self.torn_history = torn_fragment(self.history)
        self.torn_overrides = torn_fragment(self.overrides)
        lines = complete_lines(self.history)
        head = json.loads(self.config_text)["phase_progression"].get("history_head")
        self.mirror_lag = bool(lines) and (head is None or head["seq"] != lines[-1]["seq"])
        recorded = override_records(complete_lines(self.overrides))
        self.missing_override_records = [
            line["seq"]
            for line in lines
            if line["type"] == "transition" and line["kind"] in ("override", "reset") and not recorded[line["seq"]]
        ]
        self.tmp_files = {path for path in root.rglob("*.tmp")} - previous_tmp
        self.new_transitions = sum(
            1 for line in lines[len(complete_lines(previous_history)) :] if line["type"] == "transition"
        )

    @property
    def mid_write(self) -> bool:
        return bool(
            self.torn_history or self.torn_overrides or self.mirror_lag or self.missing_override_records or self.tmp_files
        )


def test_sigkill_during_transitions_100_times_loses_no_committed_line(tmp_path: Path) -> None:
    """A writer process is SIGKILLed at a chosen write point 100 times on the same desk.

    writer_child.py imports and warms up once, then forks one writer per round (a real
    separate process running the real CLI), which SIGKILLs itself at a write point chosen
    by a seeded generator: the same kills land in the same places on any machine.
    """
    config = tmp_path / "config.json"
    shutil.copyfile(SHIPPED_CONFIG, config)
    history_path = tmp_path / "logs" / "phase" / HISTORY
    overrides_path = tmp_path / "logs" / "phase" / OVERRIDES
    rng = random.Random(KILL_SEED)
    stats: Counter[str] = Counter()
    committed_history = committed_overrides = b""
    seen_tmp: set[Path] = set()
    err_path = tmp_path / "writer-stderr.txt"
    with open(err_path, "wb") as err_file:
        server = spawn("transitions", str(config), stderr=err_file)
    try:
        assert server.stdin is not None and server.stdout is not None
        assert server.stdout.readline() == b"ready\n", err_path.read_text()
        for round_no in range(1, KILL_ROUNDS + 1):
            kill_one_writer(server, f"fork {rng.randint(1, MAX_KILL_POINT)}\n".encode(), round_no, err_path)
            check_after_kill(round_no, tmp_path, config, stats, committed_history, committed_overrides, seen_tmp)
            committed_history, committed_overrides = read_bytes(history_path), read_bytes(overrides_path)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        for stream in (server.stdin, server.stdout):
            if stream is not None:
                stream.close()

    stats["history_lines"] = len(complete_lines(committed_history))
    stats["override_lines"] = len(complete_lines(committed_overrides))
    override_kinds = Counter(line["type"] for line in complete_lines(committed_overrides))
    print(f"\nSIGKILL rounds: {KILL_ROUNDS}; observed: {dict(sorted(stats.items()))}; override log: {dict(override_kinds)}")
    # Sanity: the kills did land after commits and inside writes (fixed by the seed).
    assert stats["progressed"] >= KILL_ROUNDS // 10, "too few rounds reached a transition to exercise anything"
    assert stats["mid_write"] >= 1, "no kill landed inside a write"


def kill_one_writer(server: Any, fork_line: bytes, round_no: int, err_path: Path) -> None:
    """Have the child fork a writer that kills itself at the chosen write point, and see it
    died of that SIGKILL (not of an error, and not by finishing)."""
    server.stdin.write(fork_line)
    server.stdin.flush()
    started = server.stdout.readline().split()
    assert started[:1] == [b"started"], f"round {round_no}: {started} {err_path.read_text()}"
    ended = server.stdout.readline().split()
    assert ended == [b"ended", str(-signal.SIGKILL).encode()], (
        f"round {round_no}: writer ended by itself {ended}: {err_path.read_text()}"
    )


def check_after_kill(
    round_no: int,
    root: Path,
    config: Path,
    stats: Counter[str],
    committed_history: bytes,
    committed_overrides: bytes,
    seen_tmp: set[Path],
    clock: Any = None,
) -> None:
    """What the kill left, then start-up (status), then every durability promise."""
    history_path = root / "logs" / "phase" / HISTORY
    overrides_path = root / "logs" / "phase" / OVERRIDES
    seen = KillRound(root, committed_history, committed_overrides, seen_tmp)
    # The child only ever appends: every line committed before this round is still there.
    assert seen.history.startswith(committed_history), f"round {round_no}: committed history lines changed"
    assert seen.overrides.startswith(committed_overrides), f"round {round_no}: committed override lines changed"
    json.loads(seen.config_text)  # atomic saves: config.json always parses, even mid-save
    stats["progressed"] += seen.progressed
    stats["transitions"] += seen.new_transitions
    stats["mid_write"] += seen.mid_write
    stats["torn_history"] += bool(seen.torn_history)
    stats["torn_overrides"] += bool(seen.torn_overrides)
    stats["mirror_lag"] += seen.mirror_lag
    stats["missing_override_record"] += bool(seen.missing_override_records)
    stats["tmp_left_behind"] += bool(seen.tmp_files)
    seen_tmp |= seen.tmp_files

    # Start-up: mirror repair, torn tails moved aside, lost override records restored.
    code, out, err = run_cli(config, "status", "--json", clock=clock)
    assert code == 0, f"round {round_no}: status exited {code}: {err}"
    status = json.loads(out)
    code, out, err = run_cli(config, "verify", "--json", clock=clock)
    assert code == 0, f"round {round_no}: verify after start-up: {out} {err}"
    assert json.loads(out)["intact"] is True

    history = read_bytes(history_path)
    overrides = read_bytes(overrides_path)
    for data, before, path in ((history, seen.history, history_path), (overrides, seen.overrides, overrides_path)):
        assert data == b"" or data.endswith(b"\n"), f"round {round_no}: {path.name} still torn"
        assert data.startswith(before[: before.rfind(b"\n") + 1]), f"round {round_no}: {path.name} lost a line"
        fragment = torn_fragment(before)
        if fragment:
            moved = [p for p in path.parent.glob(path.name + ".torn-*") if p.read_bytes() == fragment]
            assert moved, f"round {round_no}: torn tail of {path.name} dropped without a recovery file"
            new_lines = complete_lines(data[before.rfind(b"\n") + 1 :])
            assert any(
                line["type"] == "torn_tail_moved" and line["recovery_file"] == moved[0].name for line in new_lines
            ), f"round {round_no}: torn tail of {path.name} moved without a record"
            stats["torn_moved"] += 1
    lines = complete_lines(history)
    transitions = [line for line in lines if line["type"] == "transition"]
    phase = transitions[-1]["to_phase"] if transitions else "experience"
    mirrored = mirror(config)
    assert mirrored["current_phase"] == phase, f"round {round_no}: mirror names {mirrored['current_phase']}, history {phase}"
    assert status["phase"] == phase
    assert status["pending_request"] is None
    if lines:
        assert mirrored["history_head"] == {"seq": lines[-1]["seq"], "hash": lines[-1]["hash"]}
    recorded = override_records(complete_lines(overrides))
    for line in transitions:
        if line["kind"] in ("override", "reset"):
            assert recorded[line["seq"]] == 1, f"round {round_no}: history line {line['seq']} has {recorded[line['seq']]} override records"
    stats["mirror_repaired"] += seen.mirror_lag
    stats["override_record_repaired"] += bool(seen.missing_override_records)


# ---------------------------------------------------------------- SIGKILL during the bot's own downgrades

BOT_KILL_ROUNDS = 40
BOT_KILL_SEED = 20260303
# One cycle of the bot writer (acknowledge, override, three losing round trips, the
# downgrade) passes about 55 write points: about half the rounds complete a cycle.
MAX_BOT_KILL_POINT = 110


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def journal_bytes(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted((root / "logs" / "trades").glob("*.jsonl"))}


def latest_recorded_time(root: Path) -> datetime | None:
    """The latest moment any committed line under logs/ names (the child's clock never
    wrote anything later): the parent's start-up runs at this moment, never before it."""
    moments = [
        parse_time(line[key])
        for path in (root / "logs").rglob("*.jsonl")
        for line in complete_lines(path.read_bytes())
        for key in ("timestamp", "exit_timestamp", "effective_at", "closed_at")
        if isinstance(line.get(key), str)
    ]
    return max(moments, default=None)


def check_proof_stints(round_no: int, history: list[dict[str, Any]], journal: list[dict[str, Any]]) -> int:
    """No downgrade lost: every proof stint the child opened ended with a downgrade at its
    third losing close, and the stint still open has fewer than three. Returns downgrades."""
    closes = sorted(parse_time(line["exit_timestamp"]) for line in journal if line["outcome"] != "open")
    assert all(line["outcome"] == "loss" for line in journal if line["outcome"] != "open")
    transitions = [line for line in history if line["type"] == "transition"]
    downgrades = 0
    for index, line in enumerate(transitions):
        if line["to_phase"] != "proof":
            continue
        assert line["kind"] == "override", f"round {round_no}: unexpected way into proof: {line}"
        began = parse_time(line["timestamp"])
        following = transitions[index + 1] if index + 1 < len(transitions) else None
        if following is None:
            losses = [moment for moment in closes if moment > began]
            assert len(losses) < 3, f"round {round_no}: {len(losses)} losses in proof since line {line['seq']}, no downgrade"
            continue
        assert (following["kind"], following["to_phase"]) == ("downgrade", "experience"), (
            f"round {round_no}: proof stint from line {line['seq']} ended by {following}"
        )
        assert following["breaker"]["tripped"] is True
        ended = parse_time(following.get("effective_at", following["timestamp"]))
        losses = [moment for moment in closes if began < moment <= ended]
        assert len(losses) == 3 and losses[-1] == ended, (
            f"round {round_no}: downgrade line {following['seq']} after {len(losses)} losses"
        )
        downgrades += 1
    return downgrades


def test_sigkill_during_bot_loop_downgrades_40_times_loses_no_committed_line(tmp_path: Path) -> None:
    """The bot loop's own transitions, SIGKILLed at chosen write points 40 times on one desk.

    Each forked writer (writer_child.py bot-transitions) runs the desk's TradingBot on a
    PaperBroker: acknowledge, override into proof, then one losing round trip per session
    until its own close downgrades -- over and over, until it SIGKILLs itself at the write
    point chosen for the round (seeded, so every run kills at the same places).
    """
    config = tmp_path / "config.json"
    shutil.copyfile(SHIPPED_CONFIG, config)
    history_path = tmp_path / "logs" / "phase" / HISTORY
    overrides_path = tmp_path / "logs" / "phase" / OVERRIDES
    calendar = MarketCalendar()
    rng = random.Random(BOT_KILL_SEED)
    stats: Counter[str] = Counter()
    committed_history = committed_overrides = b""
    committed_journal: dict[Path, bytes] = {}
    seen_tmp: set[Path] = set()
    start = RACE_START
    err_path = tmp_path / "writer-stderr.txt"
    with open(err_path, "wb") as err_file:
        server = spawn("bot-transitions", str(config), stderr=err_file)
    try:
        assert server.stdin is not None and server.stdout is not None
        assert server.stdout.readline() == b"ready\n", err_path.read_text()
        for round_no in range(1, BOT_KILL_ROUNDS + 1):
            fork = f"fork {start.isoformat()} {rng.randint(1, MAX_BOT_KILL_POINT)}\n".encode()
            kill_one_writer(server, fork, round_no, err_path)

            # The journal as the kill left it: committed lines kept, every terminated line parses.
            journal = journal_bytes(tmp_path)
            torn_journal: dict[Path, bytes] = {}
            for path, data in journal.items():
                assert data.startswith(committed_journal.get(path, b"")), f"round {round_no}: {path.name} lost a line"
                complete_lines(data)
                if torn_fragment(data):
                    torn_journal[path] = torn_fragment(data)
            stats["torn_journal"] += bool(torn_journal)
            stats["journal_lines_written"] += sum(
                data.count(b"\n") - committed_journal.get(path, b"").count(b"\n") for path, data in journal.items()
            )
            history_before = complete_lines(read_bytes(history_path))

            latest = latest_recorded_time(tmp_path) or start
            clock = FixedClock(latest + timedelta(minutes=1))
            check_after_kill(round_no, tmp_path, config, stats, committed_history, committed_overrides, seen_tmp, clock)
            committed_history, committed_overrides = read_bytes(history_path), read_bytes(overrides_path)
            committed_journal = journal_bytes(tmp_path)

            # Start-up set every torn journal tail aside (the next writer would have too).
            for path, fragment in torn_journal.items():
                assert committed_journal[path] == b"" or committed_journal[path].endswith(b"\n"), (
                    f"round {round_no}: {path.name} still torn"
                )  # a torn first line of a day's file leaves it empty once set aside
                assert any(p.read_bytes() == fragment for p in path.parent.glob(path.name + ".torn-*")), (
                    f"round {round_no}: torn tail of {path.name} dropped without a recovery file"
                )
                stats["torn_journal_moved"] += 1
            history = complete_lines(committed_history)
            journal_lines = [line for data in committed_journal.values() for line in complete_lines(data)]
            downgrades = check_proof_stints(round_no, history, journal_lines)
            stats["downgrades"] = downgrades
            stats["downgrade_written_at_startup"] += sum(
                1 for line in history[len(history_before):] if line["type"] == "transition" and line["kind"] == "downgrade"
            )
            # The next writer starts at the next session's open (+30 min): time only moves on.
            start = calendar.open_of(calendar.next_trading_day(calendar.session_of(clock.now()))) + timedelta(minutes=30)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        for stream in (server.stdin, server.stdout):
            if stream is not None:
                stream.close()

    kinds = Counter(line.get("kind") for line in complete_lines(committed_history) if line["type"] == "transition")
    print(f"\nbot SIGKILL rounds: {BOT_KILL_ROUNDS}; observed: {dict(sorted(stats.items()))}; transitions: {dict(kinds)}")
    assert stats["downgrades"] >= BOT_KILL_ROUNDS // 10, "too few downgrades to exercise anything"
    assert stats["mid_write"] + stats["torn_journal"] >= 1, "no kill landed inside a write"


# ---------------------------------------------------------------- two writers at once


def test_bot_loop_and_cli_writing_at_once_keep_every_record_whole(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    shutil.copyfile(SHIPPED_CONFIG, config)
    # The CLI's clock runs after the bot's, so no trade it reads is ever in its future.
    bot = spawn("bot", str(config), str(RACE_OPERATIONS), RACE_START.isoformat())
    cli = spawn("cli", str(config), str(RACE_OPERATIONS), (RACE_START + timedelta(minutes=1)).isoformat())
    children = (bot, cli)
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            child.stdin.flush()
        results = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (out, err) in zip(children, results):
        assert child.returncode == 0, err.decode()
    bot_summary = json.loads(results[0][0].decode())
    cli_summary = json.loads(results[1][0].decode())
    assert bot_summary["began"] < cli_summary["ended"] and cli_summary["began"] < bot_summary["ended"], "did not overlap"

    journal_files = sorted((tmp_path / "logs" / "trades").glob("*.jsonl"))
    journal = b"".join(path.read_bytes() for path in journal_files)
    assert journal.endswith(b"\n")
    records = [json.loads(raw) for raw in journal.splitlines()]  # nothing interleaved
    assert len(records) == bot_summary["journal_lines"] == 2 * (RACE_OPERATIONS // 3)
    outcomes = Counter((record["order_id"], record["outcome"] == "open") for record in records)
    assert set(outcomes.values()) == {1} and len(outcomes) == len(records)

    overrides = complete_lines(read_bytes(tmp_path / "logs" / "phase" / OVERRIDES))
    kinds = Counter(line["type"] for line in overrides)
    attempts = [line for line in overrides if line["type"] == "override_attempt"]
    assert len(attempts) == cli_summary["counts"]["override"] == RACE_OPERATIONS // 4 + (RACE_OPERATIONS % 4 > 3)
    assert [line["outcome"] for line in attempts] == ["wrong_password"] * 5 + ["locked_out"] * (len(attempts) - 5)
    assert kinds["entry_refused"] == bot_summary["refused"] == RACE_OPERATIONS // 3
    assert all(line["operator_id"] == "bot" for line in overrides if line["type"] == "entry_refused")
    assert kinds["criteria_baseline"] == 1

    code, out, err = run_cli(config, "verify", "--json", clock=FixedClock(RACE_START + timedelta(hours=1)))
    assert (code, json.loads(out)) == (0, {"intact": True, "problems": []}), err


# ---------------------------------------------------------------- torn tails


@pytest.mark.parametrize("next_writer", ["status", "bot entry"])
def test_torn_history_tail_is_ignored_reported_and_moved_aside_by_the_next_writer(desk: Any, next_writer: str) -> None:
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    history = phase_dir(desk) / HISTORY
    fragment = b'{"seq":2,"timestamp":"2026-03-02T15:01:00.000000Z","type":"transi'
    with open(history, "ab") as handle:
        handle.write(fragment)
    desk.tick()
    before = desk.snapshot_files()

    code, status = desk.cli_json("status", "--as-of", "2026-03-02T15:01:00Z")
    assert (code, status["phase"]) == (0, "proof")
    code, verdict = desk.cli_json("verify")
    assert code == 1 and verdict["intact"] is False
    assert [(p["file"], p["line"]) for p in verdict["problems"]] == [(HISTORY, 2)]
    assert "torn" in verdict["problems"][0]["reason"]
    assert desk.snapshot_files() == before  # readers and verify leave it where it is

    if next_writer == "status":
        code, status = desk.cli_json("status")
        assert (code, status["phase"]) == (0, "proof")
    else:
        desk.start()
        assert desk.enter().accepted
    moved = sorted(phase_dir(desk).glob(HISTORY + ".torn-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == fragment
    lines = desk.history()
    assert lines[1]["type"] == "torn_tail_moved"
    assert (lines[1]["recovery_file"], lines[1]["bytes"]) == (moved[0].name, len(fragment))
    assert history.read_bytes().endswith(b"\n")
    assert mirror(desk.config_path)["history_head"]["seq"] == lines[-1]["seq"]
    assert desk.cli("verify")[0] == 0


def test_torn_journal_tail_is_ignored_by_the_reader_and_set_aside_by_the_next_entry(desk: Any) -> None:
    desk.trade(5)
    journal = desk.logs_dir / "trades" / "2026-03-02.jsonl"
    fragment = b'{"timestamp":"2026-03-02T15:05:00Z","symbol":"AAPL","action":"BU'
    with open(journal, "ab") as handle:
        handle.write(fragment)

    code, check = desk.cli_json("check-trade")
    assert (code, check["allowed"], check["trades_this_session"]) == (0, True, 1)
    code, status = desk.cli_json("status")
    assert (code, status["trades_this_session"]) == (0, 1)

    desk.start()
    desk.tick()
    assert desk.enter().accepted
    raw = journal.read_bytes()
    assert raw.endswith(b"\n")
    assert [json.loads(line)["outcome"] for line in raw.splitlines()] == ["open", "win", "open"]
    moved = sorted(journal.parent.glob(journal.name + ".torn-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == fragment
    code, check = desk.cli_json("check-trade")
    assert (code, check["trades_this_session"]) == (0, 2)
    assert desk.cli("verify")[0] == 0


# ---------------------------------------------------------------- damage and recover


def build_history_with_checkpoint(desk: Any) -> tuple[Any, bytes]:
    """override → proof (line 1); a trade; next session: summary (line 2) + checkpoint; an
    open entry; a progress reset (line 3). Returns the open entry and the checkpoint bytes."""
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    desk.start()
    desk.trade(5)
    desk.next_session()
    code, _, err = desk.cli("status")
    assert code == 0, err
    checkpoint = phase_dir(desk) / (HISTORY + ".checkpoint")
    assert checkpoint.exists()
    desk.start()
    entry = desk.enter()
    assert entry.accepted, entry.reason
    desk.tick()
    code, _, err = override(desk, "--reset-progress")
    assert code == 0, err
    assert [(line["type"], line.get("kind")) for line in desk.history()] == [
        ("transition", "override"),
        ("session_summary", None),
        ("transition", "reset"),
    ]
    assert len(checkpoint.read_bytes().splitlines()) == 2
    return entry, checkpoint.read_bytes()


@pytest.mark.parametrize(
    ("damaged_index", "restored_from", "dropped_from_line", "dropped_lines"),
    [(2, "prefix", 3, 1), (0, "checkpoint", 1, 1)],
    ids=["last-line-edited-prefix-wins", "first-line-edited-checkpoint-wins"],
)
def test_damaged_history_halts_entries_until_recover_restores_the_longer_valid_copy(
    desk: Any, damaged_index: int, restored_from: str, dropped_from_line: int, dropped_lines: int
) -> None:
    entry, checkpoint_bytes = build_history_with_checkpoint(desk)
    history = phase_dir(desk) / HISTORY
    intact = history.read_bytes()
    damaged = edit_line(history, damaged_index, reason="nobody will notice")
    desk.tick()  # the running bot (and its open position) carries on; its reader notices the edit

    code, check = desk.cli_json("check-trade")
    assert code == 1 and check["allowed"] is False
    assert "damaged" in check["reason"] and "recover" in check["reason"]
    refused = desk.enter()
    assert not refused.accepted and "damaged" in (refused.reason or "")
    code, status = desk.cli_json("status")
    assert code == 1 and "damaged" in status["damage"]
    code, _, err = desk.cli("advance", "--to", status["next_phase"], "--yes")
    assert code == 1 and "damaged" in err
    code, check = desk.cli_json("check-trade", "--emergency-exit")
    assert (code, check["allowed"]) == (0, True)
    closed = desk.close(entry, -3, emergency=True)  # exits are never blocked
    assert closed.emergency_exit
    assert [line["type"] for line in desk.overrides()].count("emergency_exit") == 1
    assert history.read_bytes() == damaged  # nothing was appended to a damaged history

    code, out, err = desk.cli("recover")
    assert code == 0, err
    assert restored_from in out
    kept = intact[: intact.find(b"\n", intact.find(b"\n") + 1) + 1]  # lines 1-2
    assert kept == checkpoint_bytes
    data = history.read_bytes()
    assert data.startswith(kept)
    lines = desk.history()
    assert len(lines) == 3
    recovered = lines[2]
    assert (recovered["type"], recovered["restored_from"], recovered["kept_lines"]) == ("recovered", restored_from, 2)
    assert (recovered["dropped_from_line"], recovered["dropped_lines"]) == (dropped_from_line, dropped_lines)
    aside = phase_dir(desk) / recovered["damaged_file"]
    assert aside.read_bytes() == damaged

    code, status = desk.cli_json("status")
    assert code == 0
    assert status["circuit_breaker"]["tripped"] is True
    assert "recovered" in status["circuit_breaker"]["reason"]
    assert mirror(desk.config_path)["history_head"] == {"seq": 3, "hash": recovered["hash"]}
    code, verdict = desk.cli_json("verify")
    assert (code, verdict["problems"]) == (0, [])
    code, check = desk.cli_json("check-trade")
    assert code == 1 and "breaker" in check["reason"]


def test_damaged_override_log_halts_entries_and_recover_records_it_in_the_history(desk: Any) -> None:
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    overrides = phase_dir(desk) / OVERRIDES
    count = len(overrides.read_bytes().splitlines())
    damaged = edit_line(overrides, 0, operator_id="someone else")
    desk.tick()
    code, check = desk.cli_json("check-trade")
    assert code == 1 and "damaged" in check["reason"] and "recover" in check["reason"]

    code, out, err = desk.cli("recover")
    assert code == 0, err
    assert (phase_dir(desk) / sorted(p.name for p in phase_dir(desk).glob(OVERRIDES + ".damaged-*"))[0]).read_bytes() == damaged
    restored = desk.overrides()
    assert restored[-1]["type"] == "recovered" and restored[-1]["dropped_lines"] == count
    history = desk.history()
    assert history[-1]["type"] == "recovered" and history[-1]["log"] == OVERRIDES
    code, status = desk.cli_json("status")
    assert code == 0 and status["circuit_breaker"]["tripped"] is True
    assert desk.cli("verify")[0] == 0


def cut_history_after_two_overrides(desk: Any) -> None:
    """Override into proof, then trial; then delete the history's last line (the chain
    itself still verifies: only the mirror's head can tell)."""
    for target in ("proof", "trial"):
        code, _, err = override(desk, "--to", target)
        assert code == 0, err
        desk.tick()
    history = phase_dir(desk) / HISTORY
    history.write_bytes(history.read_bytes().splitlines(keepends=True)[0])


def test_history_cut_short_is_noticed_through_the_mirror_and_recovered(desk: Any) -> None:
    cut_history_after_two_overrides(desk)
    code, verdict = desk.cli_json("verify")
    assert code == 1 and "cut short" in verdict["problems"][0]["reason"]
    code, check = desk.cli_json("check-trade")
    assert code == 1 and "cut short" in check["reason"]

    code, out, err = desk.cli("recover")
    assert code == 0, err
    lines = desk.history()
    assert [line["type"] for line in lines] == ["transition", "recovered"]
    assert mirror(desk.config_path)["history_head"] == {"seq": 2, "hash": lines[-1]["hash"]}
    code, status = desk.cli_json("status")
    assert (code, status["phase"], status["circuit_breaker"]["tripped"]) == (0, "proof", True)
    assert desk.cli("verify")[0] == 0


def test_recover_of_a_cut_history_mirrors_the_recorded_phase_without_a_phantom_request(desk: Any) -> None:
    cut_history_after_two_overrides(desk)
    assert desk.cli("recover")[0] == 0
    code, status = desk.cli_json("status")
    assert (code, status["phase"]) == (0, "proof")
    assert status["pending_request"] is None
    assert mirror(desk.config_path)["current_phase"] == "proof"
    assert not [line for line in desk.overrides() if line["type"] == "config_phase_request"]


def test_override_log_cut_short_is_detected_by_verify(desk: Any) -> None:
    overrides = phase_dir(desk) / OVERRIDES
    code, _, _ = desk.cli("status")
    assert code == 0
    before_attempts = overrides.read_bytes()
    for _ in range(5):
        code, _, _ = desk.cli(
            "override", "--to", "proof", "--operator", "ops", "--reason", "guess", "--password-stdin", stdin="wrong\n"
        )
        assert code == 1
        desk.tick()
    code, _, err = override(desk, "--to", "proof")
    assert code == 1 and "locked" in err
    overrides.write_bytes(before_attempts)  # every trace of the lockout deleted from the end
    code, verdict = desk.cli_json("verify")
    assert code == 1 and verdict["intact"] is False


# ---------------------------------------------------------------- the config.json mirror


def test_mirror_lagging_one_transition_behind_is_rolled_forward_at_start(desk: Any) -> None:
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    before_second = desk.config_path.read_bytes()
    desk.tick()
    code, _, err = override(desk, "--to", "trial")
    assert code == 0, err
    desk.config_path.write_bytes(before_second)  # killed after the history append, before the mirror
    assert mirror(desk.config_path)["current_phase"] == "proof"

    code, status = desk.cli_json("status")
    assert (code, status["phase"], status["pending_request"]) == (0, "trial", None)
    last = desk.history()[-1]
    assert mirror(desk.config_path)["current_phase"] == "trial"
    assert mirror(desk.config_path)["history_head"] == {"seq": last["seq"], "hash": last["hash"]}
    assert not [line for line in desk.overrides() if line["type"] == "config_phase_request"]
    assert desk.cli("verify")[0] == 0


def test_hand_edit_of_current_phase_is_a_pending_request_not_rolled_forward(desk: Any) -> None:
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    history_before = phase_dir(desk) / HISTORY
    history_bytes = history_before.read_bytes()
    desk.edit_config({("phase_progression", "current_phase"): "trial"})
    desk.tick()

    for _ in range(2):
        code, status = desk.cli_json("status")
        assert (code, status["phase"], status["pending_request"]) == (0, "proof", {"requested_phase": "trial"})
    assert mirror(desk.config_path)["current_phase"] == "trial"
    assert history_before.read_bytes() == history_bytes
    requests = [line for line in desk.overrides() if line["type"] == "config_phase_request"]
    assert [line["requested_phase"] for line in requests] == ["trial"]
    code, check = desk.cli_json("check-trade")
    assert (code, check["phase"], check["max_trades_per_day"]) == (0, "proof", 1)


def test_lagging_mirror_that_was_also_hand_edited_is_left_as_a_request(desk: Any) -> None:
    code, _, err = override(desk, "--to", "proof")
    assert code == 0, err
    stale = json.loads(desk.config_path.read_text(encoding="utf-8"))
    desk.tick()
    code, _, err = override(desk, "--to", "trial")
    assert code == 0, err
    stale["phase_progression"]["current_phase"] = "scaling"  # the old head, and a hand edit
    desk.config_path.write_text(json.dumps(stale, indent=2), encoding="utf-8")

    code, status = desk.cli_json("status")
    assert (code, status["phase"], status["pending_request"]) == (0, "trial", {"requested_phase": "scaling"})
    assert mirror(desk.config_path)["current_phase"] == "scaling"
    assert desk.cli("verify")[0] == 0


# ---------------------------------------------------------------- the lock


def test_writer_gives_up_with_busy_after_10_seconds_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    shutil.copyfile(SHIPPED_CONFIG, config)
    (tmp_path / "logs").mkdir()
    holder = spawn("hold-lock", str(tmp_path / "logs" / ".phase.lock"), "14")
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        started = time.monotonic()
        code, out, err = run_cli(
            config, "override", "--to", "proof", "--operator", "ops", "--reason", "busy test", "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert code == 1 and "busy" in err and out == ""
    assert 9.5 <= waited < 14
    assert not (tmp_path / "logs" / "phase").exists() or not any((tmp_path / "logs" / "phase").iterdir())
    assert mirror(config).get("history_head") is None


def test_a_log_that_grew_while_a_check_was_waiting_is_not_mistaken_for_a_cut_log(desk: Desk) -> None:
    """Another process appends and mirrors the new head while this one holds an older
    snapshot of the log: after taking the lock it must look again, not cry damage."""
    desk.cli("status")
    manager = desk.manager
    with manager.history.one_read(), manager.overrides.one_read():
        manager.overrides.lines()  # this check's snapshot
        code, _, _ = desk.cli("override", "--to", "proof", "--operator", "x", "--reason", "r", "--password-stdin", stdin="wrong\n")
        assert code == 1  # the other process wrote a line and mirrored the override log's head
        manager.apply_due()
        assert manager.damage() is None
        assert manager.gate.entry_decision().allowed
