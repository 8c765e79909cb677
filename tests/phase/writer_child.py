"""Child-process entry points for test_durability.py, run as `python writer_child.py ROLE ...`.

Each role imports once, prints "ready" (or "held") on stdout and then does its work on
real files, so the parent can kill it, race it against another process, or wait on it.

  transitions CONFIG              imports and warms up once, then for each "fork N" line on
                                  stdin forks a writer that loops override --to proof /
                                  --to experience / --reset-progress through the real CLI
                                  and SIGKILLs itself at its N-th write point (see
                                  `kill_at`); prints "started PID" and, once it is gone,
                                  "ended EXITCODE" (-9 for SIGKILL)
  bot-transitions CONFIG          like `transitions`, but for each "fork START N" line the
                                  forked writer runs the desk's TradingBot on a
                                  PaperBroker (one FixedClock from START): acknowledge,
                                  override --to proof, then losing round trips (one per
                                  session) until the bot's own close downgrades -- repeat
  bot CONFIG OPS START            after "go" on stdin: the desk's TradingBot on a
                                  PaperBroker enters, closes and gets refused, OPS operations
  cli CONFIG OPS START            after "go" on stdin: status, check-trade, acknowledge and a
                                  wrong-password override, OPS operations in turn
  hold-lock LOCK_PATH SECONDS     hold the logs lock (filelock) for SECONDS
  catch-up CONFIG NOW POINT       open the desk at the instant NOW (ISO) and apply what is
                                  due, SIGKILLing itself at its POINT-th write point; exits 0
                                  if the catch-up finished first

`bot` and `cli` print one JSON summary line at the end; any unexpected outcome exits 3
with the reason on stderr.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

TRANSITIONS = (["--to", "proof"], ["--to", "experience"], ["--reset-progress"])


def _fail(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    os._exit(3)


def _ready(word: str = "ready") -> None:
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


def kill_at(point: int) -> None:
    """SIGKILL this process at its `point`-th write point: a crash at a chosen place, not
    after a guessed delay. Write points are the `os.write` and `os.fsync` calls every
    durable write goes through; an `os.write` chosen as the point first writes half its
    bytes, as a crash in the middle of an append leaves them."""
    real_write, real_fsync = os.write, os.fsync
    calls = 0

    def reached() -> bool:
        nonlocal calls
        calls += 1
        return calls == point

    def write(fd: int, data: Any) -> int:
        if reached():
            view = memoryview(data)
            real_write(fd, view[: max(1, len(view) // 2)])
            os.kill(os.getpid(), signal.SIGKILL)
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        if reached():
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)

    os.write = write  # type: ignore[assignment]
    os.fsync = fsync  # type: ignore[assignment]


def _wait_for_go() -> None:
    if sys.stdin.readline().strip() != "go":
        _fail("expected 'go' on stdin")


def transitions(config: str) -> None:
    from trading_bot.phase.cli import main

    password = os.environ["PHASE_OVERRIDE_PASSWORD"]
    # Warm up (lazy imports, the holiday calendar, first reads) without writing anything,
    # so every forked writer starts at full speed and a kill can land anywhere in a write.
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for args in (["verify"], ["status", "--as-of", now]):
        main(["--config", config, *args], stdout=io.StringIO(), stderr=io.StringIO())
    _ready()
    for line in sys.stdin:
        words = line.split()
        if words[:1] != ["fork"]:
            break
        pid = os.fork()
        if pid == 0:
            kill_at(int(words[1]))
            _transition_loop(main, config, password)
        _ready(f"started {pid}")
        _, status = os.waitpid(pid, 0)
        _ready(f"ended {os.waitstatus_to_exitcode(status)}")


def _transition_loop(main: Any, config: str, password: str) -> None:
    """The forked writer: transitions through the real CLI until it is killed."""
    index = 0
    while True:
        action = TRANSITIONS[index % len(TRANSITIONS)]
        index += 1
        out, err = io.StringIO(), io.StringIO()
        argv = ["--config", config, "override", *action, "--operator", "killer", "--reason", "durability", "--password-stdin"]
        code = main(argv, stdin=io.StringIO(password + "\n"), stdout=out, stderr=err)
        if code == 0 or (code == 2 and "already in" in err.getvalue()):
            continue
        _fail(f"override {action} exited {code}: {err.getvalue().strip()}")


def bot_transitions(config: str) -> None:
    from trading_bot.bot import TradingBot  # noqa: F401  (warm the imports before forking)
    from trading_bot.broker import PaperBroker  # noqa: F401
    from trading_bot.phase.cli import main
    from trading_bot.app import Desk  # noqa: F401

    password = os.environ["PHASE_OVERRIDE_PASSWORD"]
    # Warm up (lazy imports, the holiday calendar, first reads and writes) on a scratch desk,
    # so every forked writer starts at full speed and a kill can land anywhere in a write.
    scratch = Path(tempfile.mkdtemp(prefix="bot-warmup-"))
    try:
        shutil.copyfile(config, scratch / "config.json")
        _bot_transition_loop(main, str(scratch / "config.json"), password, datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc), cycles=1)
    finally:
        shutil.rmtree(scratch)
    _ready()
    for line in sys.stdin:
        words = line.split()
        if words[:1] != ["fork"]:
            break
        pid = os.fork()
        if pid == 0:
            kill_at(int(words[2]))
            _bot_transition_loop(main, config, password, datetime.fromisoformat(words[1]))
        _ready(f"started {pid}")
        _, status = os.waitpid(pid, 0)
        _ready(f"ended {os.waitstatus_to_exitcode(status)}")


def _bot_transition_loop(main: Any, config: str, password: str, start: datetime, cycles: int | None = None) -> None:
    """The forked writer: downgrades made by the bot loop itself, until it is killed."""
    from trading_bot.bot import TradingBot
    from trading_bot.broker import PaperBroker
    from trading_bot.clock import FixedClock
    from trading_bot.config import Config
    from trading_bot.market_calendar import MarketCalendar
    from trading_bot.app import Desk
    from trading_bot.phase.models import Phase

    calendar = MarketCalendar()
    clock = FixedClock(start)
    desk = Desk.open(config, clock=clock, broker=PaperBroker(Decimal("1000000"), clock=clock))
    manager, trading = desk.phase, desk.bot

    def tick(minutes: int = 2) -> None:
        clock.set(clock.now() + timedelta(minutes=minutes))

    def next_session() -> None:
        day = calendar.next_trading_day(calendar.session_of(clock.now()))
        clock.set(calendar.open_of(day) + timedelta(minutes=30))

    def cli(*args: str, stdin: str = "") -> tuple[int, str]:
        err = io.StringIO()
        code = main(["--config", config, *args], stdin=io.StringIO(stdin), stdout=io.StringIO(), stderr=err, clock=clock)
        return code, err.getvalue()

    while cycles is None or cycles > 0:
        cycles = None if cycles is None else cycles - 1
        code, err = cli("acknowledge", "--operator", "killer")
        if code != 0:
            _fail(f"acknowledge exited {code}: {err.strip()}")
        tick()
        code, err = cli(
            "override", "--to", "proof", "--operator", "killer", "--reason", "durability", "--password-stdin",
            stdin=password + "\n",
        )
        if code != 0 and not (code == 2 and "already in" in err):
            _fail(f"override exited {code}: {err.strip()}")
        for _ in range(4):  # three losses downgrade (fewer if a killed writer left some)
            next_session()
            entry = trading.execute_trade("AAPL", "BUY", Decimal("10"))
            if not entry.accepted or entry.record is None:
                _fail(f"entry refused at {clock.now()}: {entry.reason}")
            tick()
            trading.close_position(entry.record.order_id, Decimal("9"))
            tick()
            if manager.recorded_phase() is not Phase.PROOF:
                break
        else:
            _fail(f"no downgrade after four losses in proof at {clock.now()}")
        tick()


def bot(config: str, ops: int, start: str) -> None:
    from trading_bot.bot import TradingBot
    from trading_bot.broker import PaperBroker
    from trading_bot.clock import FixedClock
    from trading_bot.config import Config
    from trading_bot.app import Desk

    clock = FixedClock(datetime.fromisoformat(start))
    desk = Desk.open(config, clock=clock, broker=PaperBroker(Decimal("1000000"), clock=clock))
    manager, trading = desk.phase, desk.bot
    _ready()
    _wait_for_go()
    began = time.time()
    journal_lines = refused = 0
    open_order: str | None = None
    for index in range(ops):
        clock.set(clock.now() + timedelta(milliseconds=1))
        step = index % 3
        if step == 0:
            result = trading.execute_trade("AAPL", "BUY", Decimal("10"))
            if not result.accepted or result.record is None:
                _fail(f"op {index}: entry refused: {result.reason}")
            open_order = result.record.order_id
            journal_lines += 1
        elif step == 1:
            assert open_order is not None
            price = Decimal("11") if index % 2 else Decimal("9.50")
            trading.close_position(open_order, price)
            open_order = None
            journal_lines += 1
        else:
            result = trading.execute_trade("AAPL", "BUY", Decimal("10"), dollars=Decimal("5000"))
            if result.accepted:
                _fail(f"op {index}: an oversized entry was accepted")
            refused += 1
    print(json.dumps({"journal_lines": journal_lines, "refused": refused, "began": began, "ended": time.time()}), flush=True)


def cli(config: str, ops: int, start: str) -> None:
    from trading_bot.clock import FixedClock
    from trading_bot.phase.cli import main

    moment = datetime.fromisoformat(start)
    _ready()
    _wait_for_go()
    began = time.time()
    counts = {"status": 0, "check-trade": 0, "acknowledge": 0, "override": 0}
    for index in range(ops):
        clock = FixedClock(moment + timedelta(milliseconds=100 * index))
        out, err = io.StringIO(), io.StringIO()
        step = index % 4
        if step == 0:
            name, args, stdin, expected = "status", ["status", "--json"], "", 0
        elif step == 1:
            name, args, stdin, expected = "check-trade", ["check-trade", "--json"], "", 0
        elif step == 2:
            name, args, stdin, expected = "acknowledge", ["acknowledge", "--operator", "cli"], "", 0
        else:
            name, expected = "override", 1
            args = ["override", "--to", "proof", "--operator", "cli", "--reason", "race", "--password-stdin"]
            stdin = "not the password\n"
        code = main(["--config", config, *args], stdin=io.StringIO(stdin), stdout=out, stderr=err, clock=clock)
        if code != expected:
            _fail(f"op {index} {name} exited {code}, expected {expected}: {err.getvalue().strip()} | {out.getvalue().strip()[:2000]}")
        if "--json" in args:
            json.loads(out.getvalue())
        counts[name] += 1
    print(json.dumps({"counts": counts, "began": began, "ended": time.time()}), flush=True)


def hold_lock(lock_path: str, seconds: float) -> None:
    from filelock import FileLock

    lock = FileLock(lock_path)
    lock.acquire()
    _ready("held")
    time.sleep(seconds)
    lock.release()


def catch_up(config: str, now: str, point: int) -> None:
    from trading_bot.clock import FixedClock
    from trading_bot.phase.manager import PhaseManager

    manager = PhaseManager(config, clock=FixedClock(datetime.fromisoformat(now)), environ={})
    kill_at(point)
    manager.apply_due()


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "transitions":
        transitions(rest[0])
    elif role == "bot-transitions":
        bot_transitions(rest[0])
    elif role == "bot":
        bot(rest[0], int(rest[1]), rest[2])
    elif role == "cli":
        cli(rest[0], int(rest[1]), rest[2])
    elif role == "hold-lock":
        hold_lock(rest[0], float(rest[1]))
    elif role == "catch-up":
        catch_up(rest[0], rest[1], int(rest[2]))
    else:
        _fail(f"unknown role {role!r}")
