"""SPEC §12 performance benchmark for the phase system, on real files in a temp folder.

Prints one table, each measured figure next to its goal and, for times, as a ratio to a
plain `json.loads` loop over the same journal files measured in the same run:

1. whole processes on a 100,000-trade desk (2,520 daily files): `status`,
   `validate-transition --json` and a ten-year CSV `export`, warm (the command ran once
   before on the same files), with their peak memory; the first `status` of a desk with
   no derived state; the bot's start in process (`Desk.open` + first `state()`); and
   the bytes a `status` reads after one trade is appended;
2. the pre-trade check (`PhaseManager.gate.entry_decision`: the whole §7 chain, allowed
   path, nothing changed on disk) with a small and a large trade history, and their ratio;
3. session metrics over 1,000 trades (`PerformanceTracker.session_metrics`);
4. a full rebuild (derived state deleted, a fresh `PhaseManager.state()`), in lines per
   second against the plain loop, and its peak memory.

Run from the repository root:

    python benchmarks/bench_phase.py            # 1,000,000-trade history (several minutes)
    python benchmarks/bench_phase.py --quick    # 100,000 trades, fewer repeats

Every figure is a median of repeated runs. Each whole-process command, the rebuild and the
plain loop run in fresh child processes, so peak memory is measured from a clean start.
Child processes read the project's compiled bytecode, written once before the first
measurement, as on any machine where the package is installed.
"""

from __future__ import annotations

import argparse
import cProfile
import compileall
import gc
import io
import json
import math
import os
import platform
import pstats
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = REPO_ROOT / "config.json"
if str(REPO_ROOT / "src") not in sys.path:  # runs from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT / "src"))

from trading_bot.clock import FixedClock  # noqa: E402
from trading_bot.market_calendar import MarketCalendar  # noqa: E402
from trading_bot.entry_checks import OrderIntent  # noqa: E402

# The current session of the benchmark: 2026-03-10 is a Tuesday; 16:00 UTC is 12:00 EDT,
# inside the default 07:00-16:00 trading hours. The history ends in the session before.
NOW = datetime(2026, 3, 10, 16, 0, tzinfo=timezone.utc)
# The order the pre-trade check decides: $100 of a $10 stock, paper, at NOW (inside hours).
ENTRY = OrderIntent(symbol="AAPL", action="BUY", price=Decimal("10"), dollars=Decimal("100"), at=NOW, mode="paper")
LINE_BYTES = 750  # SPEC §12: 750-byte journal lines
MIN_TRADES_PER_SESSION = 8  # "several trades per session" for small histories
MAX_SESSIONS = 2520  # ten years of NYSE sessions: large histories are denser, not longer
DESK_TRADES = 100_000  # the whole-process figures' desk (SPEC §12: 100,000 trades, 2,520 daily files)
DERIVED_DIR = ".derived"  # <logs>/.derived/: the journal index and the state snapshot, when present

GOAL_CHECK_US = 20.0
GOAL_CHECK_RATIO = 1.5
GOAL_SESSION_METRICS_MS = 5.0
GOAL_REBUILD_SPEEDUP = 2.5
GOAL_REBUILD_PEAK_MB = 150.0
GOAL_STATUS_S = 0.4
GOAL_STATUS_MB = 60.0
GOAL_VALIDATE_S = 0.4
GOAL_EXPORT_S = 0.6
GOAL_BOT_START_S = 0.2
GOAL_FIRST_START_S = 1.5
GOAL_APPENDED_READ_BYTES = 8192  # "reads only the new line": one 750-byte line, with a page of slack


# ---------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Fixture:
    root: Path
    config_path: Path
    trades_dir: Path
    trades: int
    sessions: int
    files: int
    bytes: int
    first_session: date
    last_session: date


_SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AMD", "SPY", "QQQ")
_REASONS = ("take_profit", "stop_loss", "signal_exit", "trailing_stop")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _journal_line(rng: random.Random, serial: int, entry: datetime, exit_: datetime, session: date | None) -> bytes:
    """One closed trade in the TradeRecord shape, padded with realistic extras to ~750 bytes.

    `session`: the entry's and the exit's session, recorded as this product's bot records
    them; None writes a line as the original bot did (the calendar then places it)."""
    symbol = _SYMBOLS[serial % len(_SYMBOLS)]
    price = Decimal(rng.randrange(2_000, 60_000)) / 100
    quantity = rng.randrange(1, 10)
    win = rng.random() < 0.62
    pnl_cents = rng.randrange(150, 420) if win else -rng.randrange(60, 200)
    pnl = Decimal(pnl_cents) / 100
    stop = (price * Decimal("0.99")).quantize(Decimal("0.01"))
    target = (price * Decimal("1.02")).quantize(Decimal("0.01"))
    exit_price = (price + pnl / quantity).quantize(Decimal("0.01"))
    record: dict[str, Any] = {
        "timestamp": _iso(entry),
        "symbol": symbol,
        "action": "BUY",
        "quantity": quantity,
        "price": str(price),
        "total_value": str(price * quantity),
        "order_id": f"ord-{serial:09d}",
        "execution_mode": "PAPER",
        "outcome": "win" if win else "loss",
        "phase": "experience",
        "emergency_exit": False,
        "manual_override": False,
        "operator_id": "bot",
        "stop_loss": str(stop),
        "target": str(target),
        "exit_timestamp": _iso(exit_),
        "net_profit_loss": str(pnl),
        "profit_loss": str(pnl + Decimal("0.02")),
        "exit_price": str(exit_price),
        "exit_reason": _REASONS[serial % len(_REASONS)] if not win else "take_profit",
        "strategy": "breakout_v3",
        "commission": "0.01",
        "slippage": "0.01",
        "indicators": {
            "rsi_14": round(rng.uniform(20, 80), 2),
            "macd": round(rng.uniform(-2, 2), 4),
            "macd_signal": round(rng.uniform(-2, 2), 4),
            "atr_14": round(rng.uniform(0.5, 6), 3),
            "volume_ratio": round(rng.uniform(0.5, 3), 2),
        },
        "decision_reasoning": (
            f"{symbol}: breakout on {rng.uniform(1.2, 3.0):.2f}x volume"
        ),
    }
    if session is not None:
        record["session"] = record["exit_session"] = session.isoformat()
    # Compact, as the bot writes it (orjson); padded with a notes field to the spec's size.
    raw = json.dumps(record, separators=(",", ":"))
    pad = LINE_BYTES - 1 - len(raw) - len(',"notes":""')
    if pad > 0:
        record["notes"] = ("market regime trending, sector strength positive, spread tight; " * 12)[:pad]
        raw = json.dumps(record, separators=(",", ":"))
    return raw.encode() + b"\n"


def build_fixture(
    root: Path, trades: int, layout: str, calendar: MarketCalendar, seed: int = 7, sessions: int | None = None,
    recorded_sessions: bool = True,
) -> Fixture:
    """A config copy and `logs/trades/*.jsonl` holding `trades` closed trades before NOW."""
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "config.json"
    shutil.copyfile(SHIPPED_CONFIG, config_path)
    trades_dir = root / "logs" / "trades"
    trades_dir.mkdir(parents=True, exist_ok=True)
    if sessions is None:
        sessions = max(1, min(MAX_SESSIONS, math.ceil(trades / MIN_TRADES_PER_SESSION)))
    days: list[date] = []
    day = calendar.session_of(NOW)
    while len(days) < sessions:
        day = calendar.previous_trading_day(day)
        days.append(day)
    days.reverse()
    rng = random.Random(seed)
    handles: dict[str, Any] = {}
    total = 0
    serial = 0
    try:
        for index, day in enumerate(days):
            count = trades * (index + 1) // sessions - trades * index // sessions
            if count == 0:
                continue
            open_at = calendar.open_of(day)
            span = 9 * 3600 - 20 * 60  # 07:00 to 15:40 local; exits stay before 16:00
            step = span / count
            session_trades = []
            for k in range(count):
                entry = open_at + timedelta(seconds=int(k * step) + rng.randrange(0, max(1, int(step // 2))))
                session_trades.append((entry + timedelta(seconds=rng.randrange(30, 1200)), entry))
            session_trades.sort()  # the bot writes a closed record when the trade closes
            for exit_, entry in session_trades:
                serial += 1
                if layout == "single":
                    name = "trades.jsonl"
                elif layout == "day":  # what StructuredTradeLogger writes: one file per UTC date
                    name = f"{exit_.date().isoformat()}.jsonl"
                else:
                    name = f"trades-{exit_.strftime('%Y-%m')}.jsonl"
                handle = handles.get(name)
                if handle is None:
                    if layout == "day":
                        for old in handles.values():
                            old.close()
                        handles.clear()
                    handle = handles[name] = open(trades_dir / name, "ab", buffering=1 << 20)
                line = _journal_line(rng, serial, entry, exit_, day if recorded_sessions else None)
                handle.write(line)
                total += len(line)
    finally:
        for handle in handles.values():
            handle.close()
    files = len(list(trades_dir.glob("*.jsonl")))
    return Fixture(root, config_path, trades_dir, serial, sessions, files, total, days[0], days[-1])


def fresh_copy(fixture: Fixture, root: Path) -> Fixture:
    """The same config and journal in a new folder, with no phase logs and no derived state:
    what a desk looks like the first time the product opens it."""
    root.mkdir(parents=True)
    shutil.copyfile(fixture.config_path, root / "config.json")
    shutil.copytree(fixture.trades_dir, root / "logs" / "trades")
    return Fixture(root, root / "config.json", root / "logs" / "trades", fixture.trades, fixture.sessions, fixture.files,
                   fixture.bytes, fixture.first_session, fixture.last_session)


def append_one_trade(fixture: Fixture, layout: str, now: datetime, recorded_sessions: bool = True) -> int:
    """One closed trade a minute before `now`, written as the bot writes it; returns its bytes.

    `now` is the real clock's: the whole-process commands run on it, and a trade dated in a
    session the phase history has already summarised would be a different question."""
    exit_ = now.replace(microsecond=0) - timedelta(minutes=1)
    entry = exit_ - timedelta(minutes=5)
    session = MarketCalendar().session_of(entry) if recorded_sessions else None
    line = _journal_line(random.Random(fixture.trades), fixture.trades + 1, entry, exit_, session)
    if layout == "single":
        name = "trades.jsonl"
    elif layout == "day":
        name = f"{exit_.date().isoformat()}.jsonl"
    else:
        name = f"trades-{exit_.strftime('%Y-%m')}.jsonl"
    with open(fixture.trades_dir / name, "ab") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    return len(line)


def closed_trades_of(fixture: Fixture) -> list[Any]:
    """The fixture's trades as the product reads a journal line, whatever it keeps in memory."""
    from trading_bot.logging.trade_record import parse_trade

    trades = []
    for path in sorted(fixture.trades_dir.glob("*.jsonl")):
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                trades.append(parse_trade(json.loads(line), str(path), number))
    return [trade for trade in trades if trade.is_closed]


def new_manager(fixture: Fixture) -> Any:
    from trading_bot.phase.manager import PhaseManager

    return PhaseManager(fixture.config_path, clock=FixedClock(NOW), environ={})


# ---------------------------------------------------------------------------- timing


def per_call_us(call: Callable[[], Any], batch: int, repeats: int) -> float:
    """Median over `repeats` batches of the mean time of one call, in microseconds.

    A call slow enough that a batch would take over half a second gets a smaller batch,
    so a slow layout (thousands of journal files) still finishes in reasonable time.
    """
    call()
    start = time.perf_counter()
    for _ in range(5):
        call()
    warm = (time.perf_counter() - start) / 5
    batch = max(10, min(batch, int(0.5 / warm) if warm > 0 else batch))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batch):
            call()
        samples.append((time.perf_counter() - start) / batch)
    return statistics.median(samples) * 1e6


def profile_text(call: Callable[[], Any], times: int, limit: int = 18) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(times):
        call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(limit)
    return out.getvalue()


def child_environment() -> dict[str, str]:
    """The environment of every child process: this checkout's sources first on the path,
    and Python free to read and write its compiled bytecode as on any installed machine,
    even where the caller's shell sets PYTHONDONTWRITEBYTECODE (this project's sandbox does:
    there every process would compile the project from source, about 0.14 s of CPU)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_bytecode() -> None:
    """Compile the project's modules once, as `pip install` does for an installed package;
    an editable checkout gets the same on its first run, unless bytecode writing is off."""
    if not compileall.compile_dir(str(REPO_ROOT / "src" / "trading_bot"), quiet=1):
        raise SystemExit("could not compile the project's modules")


def child(args: list[str]) -> dict[str, Any]:
    """Run this script as a fresh process for one measurement; it prints one JSON line."""
    env = child_environment()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak_rss_mb() -> float:
    """The process's peak resident set so far, in MB.

    VmHWM belongs to the address space, so it starts afresh at exec; ru_maxrss does not
    on Linux (a child would inherit the benchmark parent's peak), so it is only a fallback.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def child_plain_loop(trades_dir: str) -> dict[str, Any]:
    files = sorted(Path(trades_dir).glob("*.jsonl"))
    lines = 0
    start = time.perf_counter()
    for path in files:
        with open(path) as handle:
            for line in handle:
                json.loads(line)
                lines += 1
    return {"seconds": time.perf_counter() - start, "lines": lines}


def remove_derived_state(config_path: Path) -> None:
    """Delete `<logs>/.derived/` (whatever the product keeps there): deleting it must only cost time."""
    shutil.rmtree(config_path.parent / "logs" / DERIVED_DIR, ignore_errors=True)


def child_rebuild(config_path: str, lines: str, profile: bool) -> dict[str, Any]:
    """Time the product's own rebuild from the files alone (derived state deleted first):
    a fresh `PhaseManager`'s first `state()`, whatever index and fold it runs underneath."""
    from trading_bot.phase.manager import PhaseManager

    path = Path(config_path)
    remove_derived_state(path)
    MarketCalendar().session_of(NOW)  # the calendar's first use, outside the timing
    gc.collect()
    baseline = _peak_rss_mb()
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    state = PhaseManager(path, clock=FixedClock(NOW), environ={}).state()
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - start
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    result: dict[str, Any] = {
        "seconds": seconds,
        "lines": int(lines),
        "phase": state.phase.value,
        "peak_mb": _peak_rss_mb() - baseline,
        # Parser processes the rebuild may start: the largest one's peak RSS (pages it
        # shares with this process after a fork count in both).
        "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / scale,
    }
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(22)
        result["profile"] = out.getvalue()
    return result


def child_bot_start(config_path: str) -> dict[str, Any]:
    """The bot's start in its own process: `Desk.open` + the first `desk.state()`, timed after
    the imports (a deploy pays those once, and they are the `status` figure's business)."""
    start = time.perf_counter()
    from trading_bot.app import Desk

    imports = time.perf_counter() - start
    start = time.perf_counter()
    desk = Desk.open(config_path)
    state = desk.state()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "imports": imports, "phase": state.phase.value, "peak_mb": _peak_rss_mb()}


# A tiny stdlib-only parent for the whole-process commands: os.wait4's peak RSS of a child
# starts from its parent's peak at the fork (Linux), so the parent must be small — not
# the benchmark, which holds whole histories in memory.
RUNNER = r"""
import json, os, subprocess, sys, time
spec = json.loads(sys.argv[1])
results = []
for _ in range(spec["runs"]):
    with open(spec["stdout"], "wb") as out, open(spec["stderr"], "wb") as err:
        start = time.perf_counter()
        child = subprocess.Popen(spec["argv"], cwd=spec["cwd"], stdout=out, stderr=err, env=spec["env"])
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    results.append({"seconds": seconds, "peak_mb": usage.ru_maxrss / scale, "exit": child.returncode})
print(json.dumps(results))
"""


def run_command(fixture: Fixture, args: Sequence[str], runs: int, scratch: Path, ok_exits: Sequence[int] = (0,)) -> list[dict[str, Any]]:
    """`python -m trading_bot.phase --config … ARGS` as whole processes, `runs` times in a row."""
    env = child_environment()
    spec = {
        "argv": [sys.executable, "-m", "trading_bot.phase", "--config", str(fixture.config_path), *args],
        "cwd": str(fixture.root),
        "env": env,
        "runs": runs,
        "stdout": str(scratch / "stdout.txt"),
        "stderr": str(scratch / "stderr.txt"),
    }
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(spec)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"runner for {list(args)} failed:\n{done.stderr}")
    results: list[dict[str, Any]] = json.loads(done.stdout)
    for result in results:
        if result["exit"] not in ok_exits:
            stderr = (scratch / "stderr.txt").read_text(encoding="utf-8", errors="replace").strip()
            raise RuntimeError(f"`{' '.join(args)}` exited {result['exit']}: {stderr}")
    return results


_READ_CALL = re.compile(r"^(?:read|pread64|readv|preadv|preadv2)\(\d+<([^>]*)>.*\)\s+=\s+(\d+)$")


def journal_bytes_read(fixture: Fixture, args: Sequence[str], scratch: Path) -> int | None:
    """Bytes one whole-process command reads from files in the journal folder, counted from
    its read system calls (strace, each descriptor shown with its path); None without strace.

    Counting the process's total reads (`/proc/<pid>/io`) cannot tell a command that reads
    the new line from one that re-reads the whole journal every time: both read one line
    more than the same command with nothing appended."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    env = child_environment()
    traces = Path(tempfile.mkdtemp(prefix="reads-", dir=scratch))
    # -ff: one file per thread or process, so no call is split across interleaved lines.
    done = subprocess.run(
        [strace, "-ff", "-qq", "-y", "-e", "trace=read,pread64,readv,preadv,preadv2", "-o", str(traces / "trace"),
         sys.executable, "-m", "trading_bot.phase", "--config", str(fixture.config_path), *args],
        cwd=fixture.root, env=env, capture_output=True, check=False,
    )
    files = sorted(traces.glob("trace.*"))
    if done.returncode not in (0, 1) or not files:
        return None  # ptrace not allowed here, say
    folder = str(fixture.trades_dir.resolve()) + os.sep
    total = 0
    for file in files:
        with open(file, encoding="utf-8", errors="replace") as calls:
            for call in calls:
                match = _READ_CALL.match(call.strip())
                if match is not None and match.group(1).startswith(folder):
                    total += int(match.group(2))
    shutil.rmtree(traces)
    return total


def median_of(results: Sequence[dict[str, Any]], key: str) -> float:
    return statistics.median(result[key] for result in results)


# ---------------------------------------------------------------------------- report


@dataclass
class Row:
    figure: str
    measured: str
    goal: str
    ok: bool | None  # None: no verdict (informational)
    vs_loop: str = "-"  # a time as a multiple of the plain json.loads loop over the same files


def print_table(rows: list[Row]) -> None:
    headers = ("figure", "measured", "× loop", "goal", "ok?")
    cells = [(r.figure, r.measured, r.vs_loop, r.goal, "-" if r.ok is None else ("yes" if r.ok else "NO")) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(c, widths)))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine_facts() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{os.cpu_count()} CPUs, load average {load} (1, 5, 15 min), Python {sys.version.split()[0]}, "
            f"{platform.system()} {platform.release()}, {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")


def times_loop(seconds: float, loop_seconds: float) -> str:
    return f"{seconds / loop_seconds:.2f}×" if loop_seconds > 0 else "-"


def whole_process_rows(
    desk: Fixture, layout: str, base: Path, runs: int, first_runs: int, loop_s: float, recorded_sessions: bool
) -> list[Row]:
    """The operator's and the bot's view: commands as whole processes, and the bot's start."""
    rows: list[Row] = []
    scratch = base / "runs"
    scratch.mkdir(exist_ok=True)
    shape = f"{desk.trades:,} trades / {desk.files} files"

    # The first start: a desk that has never been opened (no phase logs, no derived state).
    first = []
    for number in range(first_runs):
        copy = fresh_copy(desk, base / f"first-start-{number}")
        first.extend(run_command(copy, ["status"], 1, scratch))
        shutil.rmtree(copy.root)
    first_s = median_of(first, "seconds")
    log(f"first status, no derived state: {first_s:.2f} s, peak {median_of(first, 'peak_mb'):.0f} MB")
    rows.append(Row(f"first start: `status`, whole process, no phase logs and no derived state, {shape}",
                    f"{first_s:.2f} s, {median_of(first, 'peak_mb'):,.0f} MB", f"≤ {GOAL_FIRST_START_S:g} s",
                    first_s <= GOAL_FIRST_START_S, times_loop(first_s, loop_s)))

    # Warm: each command ran once before on the same files, so whatever the product keeps is in place.
    run_command(desk, ["status"], 2, scratch)
    status = run_command(desk, ["status"], runs, scratch)
    status_s, status_mb = median_of(status, "seconds"), median_of(status, "peak_mb")
    log(f"status, warm: {status_s:.3f} s, peak {status_mb:.0f} MB")
    rows.append(Row(f"`status`, whole process, warm, {shape}", f"{status_s:.3f} s", f"≤ {GOAL_STATUS_S:g} s",
                    status_s <= GOAL_STATUS_S, times_loop(status_s, loop_s)))
    rows.append(Row("`status`, whole process, warm: peak RSS", f"{status_mb:,.0f} MB", f"≤ {GOAL_STATUS_MB:g} MB",
                    status_mb <= GOAL_STATUS_MB))

    run_command(desk, ["status", "--json"], 1, scratch)
    next_phase = json.loads((scratch / "stdout.txt").read_text(encoding="utf-8"))["next_phase"] or "scaling"
    validate_args = ["validate-transition", "--to", next_phase, "--json"]
    run_command(desk, validate_args, 1, scratch, ok_exits=(0, 1))
    validate = run_command(desk, validate_args, runs, scratch, ok_exits=(0, 1))
    validate_s = median_of(validate, "seconds")
    log(f"validate-transition --to {next_phase}, warm: {validate_s:.3f} s")
    rows.append(Row(f"`validate-transition --to {next_phase} --json`, whole process, warm", f"{validate_s:.3f} s, {median_of(validate, 'peak_mb'):,.0f} MB",
                    f"≤ {GOAL_VALIDATE_S:g} s", validate_s <= GOAL_VALIDATE_S, times_loop(validate_s, loop_s)))

    output = base / "export" / "sessions.csv"
    output.parent.mkdir(exist_ok=True)
    export_args = ["export", "--start", desk.first_session.isoformat(), "--end", desk.last_session.isoformat(), "--output", str(output)]
    run_command(desk, export_args, 1, scratch)
    export = run_command(desk, export_args, runs, scratch)
    export_s = median_of(export, "seconds")
    exported = output.read_bytes().count(b"\n") - 1
    log(f"export, warm: {export_s:.3f} s ({exported:,} session rows)")
    rows.append(Row(f"`export` CSV {desk.first_session} … {desk.last_session} ({exported:,} sessions) to a file, whole process, warm",
                    f"{export_s:.3f} s, {median_of(export, 'peak_mb'):,.0f} MB", f"≤ {GOAL_EXPORT_S:g} s",
                    export_s <= GOAL_EXPORT_S, times_loop(export_s, loop_s)))

    starts = [child(["--child", "bot-start", str(desk.config_path)]) for _ in range(runs)]
    start_s = median_of(starts, "seconds")
    log(f"bot start in process, warm: {start_s:.3f} s (+ imports {median_of(starts, 'imports'):.3f} s)")
    rows.append(Row("bot start, warm, in process: `Desk.open` + first `desk.state()` (imports not counted)",
                    f"{start_s:.3f} s (imports {median_of(starts, 'imports'):.3f} s), {median_of(starts, 'peak_mb'):,.0f} MB",
                    f"≤ {GOAL_BOT_START_S:g} s", start_s <= GOAL_BOT_START_S, times_loop(start_s, loop_s)))

    # One appended trade: what the next `status` reads from the journal folder.
    journal_bytes = sum(path.stat().st_size for path in desk.trades_dir.glob("*.jsonl"))
    unchanged = journal_bytes_read(desk, ["status"], scratch)
    appended = append_one_trade(desk, layout, datetime.now(timezone.utc), recorded_sessions)
    after = journal_bytes_read(desk, ["status"], scratch)
    if unchanged is None or after is None:
        rows.append(Row("one appended trade, then `status`: journal bytes read", "not measurable here (no strace)",
                        "≈ the new line", None))
        return rows
    log(f"journal bytes read by status: {unchanged:,} B unchanged; {after:,} B after one appended {appended} B line "
        f"(journal {journal_bytes + appended:,} B)")
    rows.append(Row(f"warm `status`, nothing appended: bytes read from the journal folder (journal {journal_bytes / 1e6:,.1f} MB)",
                    f"{unchanged:,} B", "-", None))
    rows.append(Row(f"one appended trade ({appended} B), then `status`: bytes read from the journal folder",
                    f"{after:,} B", f"≤ {GOAL_APPENDED_READ_BYTES:,} B (about the new line)", after <= GOAL_APPENDED_READ_BYTES))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 large trades, fewer repeats (a few minutes)")
    parser.add_argument("--trades-large", type=int, default=None, help="large history (default 1,000,000; 100,000 with --quick)")
    parser.add_argument("--trades-small", type=int, default=1000, help="small history (default 1,000)")
    parser.add_argument("--desk-trades", type=int, default=DESK_TRADES, help=f"the whole-process figures' desk (default {DESK_TRADES:,})")
    parser.add_argument("--batch", type=int, default=2000, help="calls per timed batch of the pre-trade check")
    parser.add_argument("--repeats", type=int, default=None, help="batches per figure (default 7; 5 with --quick)")
    parser.add_argument("--runs", type=int, default=None, help="whole-process runs per figure (default 7; 5 with --quick)")
    parser.add_argument("--first-runs", type=int, default=3, help="first starts, each on a fresh copy of the desk (default 3)")
    parser.add_argument("--rebuild-repeats", type=int, default=None, help="rebuild runs (default 1; 3 with --quick)")
    parser.add_argument("--layout", choices=("month", "day", "single"), default="day",
                        help="journal files: one per UTC day, as the bot writes them (default), one per month, or one")
    parser.add_argument("--original-bot-lines", action="store_true",
                        help="journal lines without the recorded sessions this product's bot writes (the calendar places them)")
    parser.add_argument("--workdir", type=Path, default=None, help="build the fixtures in this new or empty folder (kept) instead of a temp dir")
    parser.add_argument("--profile", action="store_true", help="print cProfile output for the measured paths")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kind, *rest = args.child
        if kind == "plain":
            result = child_plain_loop(rest[0])
        elif kind == "bot-start":
            result = child_bot_start(rest[0])
        else:
            result = child_rebuild(rest[0], rest[1], rest[2] == "1")
        print(json.dumps(result))
        return 0

    facts_at_start = machine_facts()
    large_n = args.trades_large or (100_000 if args.quick else 1_000_000)
    repeats = args.repeats or (5 if args.quick else 7)
    runs = args.runs or (5 if args.quick else 7)
    rebuild_repeats = args.rebuild_repeats or (3 if args.quick else 1)
    temp = None
    if args.workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="bench_phase_")
        base = Path(temp.name)
    else:
        base = args.workdir
        if base.exists() and any(base.iterdir()):
            parser.error(f"--workdir {base} is not empty; give a new or empty folder")
        base.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    profiles: list[tuple[str, str]] = []
    try:
        calendar = MarketCalendar()
        calendar.session_of(NOW)

        # ---- fixtures ----
        log(f"writing {args.trades_small:,} and {large_n:,} trades ({args.layout} files) under {base}")
        start = time.perf_counter()
        recorded = not args.original_bot_lines
        small = build_fixture(base / "small", args.trades_small, args.layout, calendar, recorded_sessions=recorded)
        large = build_fixture(base / "large", large_n, args.layout, calendar, recorded_sessions=recorded)
        # The small history again, thinly spread over the large one's sessions and files,
        # to tell the cost of more trades from the cost of more files.
        spread = build_fixture(base / "spread", args.trades_small, args.layout, calendar, sessions=large.sessions, recorded_sessions=recorded)
        # The whole-process desk: the large history's files when it has the desk's size.
        if large.trades == args.desk_trades:
            desk = fresh_copy(large, base / "desk")
        else:
            desk = build_fixture(base / "desk", args.desk_trades, args.layout, calendar, recorded_sessions=recorded)
        log(
            f"fixtures written in {time.perf_counter() - start:.1f} s: small {small.trades:,} trades / "
            f"{small.sessions} sessions / {small.files} files; large {large.trades:,} trades / "
            f"{large.sessions} sessions / {large.files} files / {large.bytes / 1e6:.0f} MB "
            f"({large.bytes / max(1, large.trades):.0f} B per line); spread {spread.trades:,} trades / {spread.files} files; "
            f"desk {desk.trades:,} trades / {desk.files} files"
        )

        compile_bytecode()

        # ---- the plain json.loads loop: the yardstick every time is compared with ----
        desk_loop = [child(["--child", "plain", str(desk.trades_dir)]) for _ in range(rebuild_repeats)]
        desk_loop_s = median_of(desk_loop, "seconds")
        if large.trades == desk.trades:
            large_loop = desk_loop
        else:
            large_loop = [child(["--child", "plain", str(large.trades_dir)]) for _ in range(rebuild_repeats)]
        plain_rate = statistics.median(p["lines"] / p["seconds"] for p in large_loop)
        log(f"plain json.loads loop: desk {desk_loop_s:.3f} s; large {plain_rate:,.0f} lines/s")
        rows.append(Row(f"plain `json.loads` loop over the desk's {desk.trades:,} lines / {desk.files} files (fresh process)",
                        f"{desk_loop_s:.3f} s", "(the yardstick)", None, "1.00×"))

        # ---- 1. whole processes, on the desk ----
        rows.extend(whole_process_rows(desk, args.layout, base, runs, args.first_runs, desk_loop_s, recorded))

        # ---- 2. the pre-trade check ----
        figures: dict[str, float] = {}
        managers: dict[str, Any] = {}
        for label, fixture in (("small", small), ("spread", spread), ("large", large)):
            manager = new_manager(fixture)
            start = time.perf_counter()
            state = manager.state()
            first = time.perf_counter() - start
            history = fixture.root / "logs" / "phase" / "phase-history.jsonl"
            written = history.read_bytes().count(b"\n") if history.exists() else 0
            decision = manager.gate.entry_decision(ENTRY)
            if not decision.allowed:
                raise SystemExit(f"the {label} fixture does not take the allowed path: {decision.reason}")
            log(f"{label}: first state() {first:.2f} s ({state.phase.value}; wrote {written} history lines)")
            rows.append(Row(
                f"first state() in process, empty phase logs, {fixture.trades:,} trades / {fixture.files} files ({written} history lines written)",
                f"{first:.2f} s", "-", None,
            ))
            gc.collect()
            figures[label] = per_call_us(lambda m=manager: m.gate.entry_decision(ENTRY), args.batch, repeats)
            log(f"{label}: entry_decision {figures[label]:.1f} µs")
            managers[label] = manager
            if args.profile and label != "spread":
                profiles.append((f"entry_decision, {fixture.trades:,} trades, {fixture.files} files",
                                 profile_text(lambda m=manager: m.gate.entry_decision(ENTRY), min(args.batch, 500))))
        ratio = figures["large"] / figures["small"]
        spread_ratio = figures["large"] / figures["spread"]
        rows.append(Row(f"pre-trade check, {small.trades:,} trades ({small.files} files)", f"{figures['small']:.1f} µs",
                        f"≤ {GOAL_CHECK_US:g} µs", figures["small"] <= GOAL_CHECK_US))
        rows.append(Row(f"pre-trade check, {large.trades:,} trades ({large.files} files)", f"{figures['large']:.1f} µs",
                        f"≤ {GOAL_CHECK_US:g} µs", figures["large"] <= GOAL_CHECK_US))
        rows.append(Row("pre-trade check ratio large / small", f"{ratio:.2f}×", f"≤ {GOAL_CHECK_RATIO:g}×",
                        ratio <= GOAL_CHECK_RATIO))
        rows.append(Row(f"pre-trade check, {spread.trades:,} trades spread over {spread.files} files", f"{figures['spread']:.1f} µs",
                        "-", None))
        rows.append(Row(f"ratio large / same files with {spread.trades:,} trades (history size alone)", f"{spread_ratio:.2f}×",
                        "-", None))

        # ---- 3. session metrics over 1,000 trades ----
        from trading_bot.performance.tracker import PerformanceTracker

        small_manager = managers["small"]
        trades = closed_trades_of(small)[-1000:]
        tracker = PerformanceTracker(small_manager.calendar)
        metric_ms = per_call_us(lambda: tracker.session_metrics(trades), 20, repeats) / 1000
        cold_ms = per_call_us(lambda: PerformanceTracker(MarketCalendar()).session_metrics(trades), 3, repeats) / 1000
        sessions_seen = len(tracker.session_metrics(trades))
        rows.append(Row(f"session metrics, {len(trades):,} trades / {sessions_seen} sessions (warm calendar)",
                        f"{metric_ms:.2f} ms", f"≤ {GOAL_SESSION_METRICS_MS:g} ms", metric_ms <= GOAL_SESSION_METRICS_MS))
        rows.append(Row("session metrics, same, fresh MarketCalendar", f"{cold_ms:.2f} ms", "-", None))
        log(f"session metrics {metric_ms:.2f} ms (cold calendar {cold_ms:.2f} ms)")
        if args.profile:
            profiles.append(("session_metrics, 1,000 trades", profile_text(lambda: tracker.session_metrics(trades), 20)))
        managers.clear()
        del small_manager, trades, tracker, manager, state, decision
        gc.collect()

        # ---- 4. full rebuild vs the plain loop ----
        build = [child(["--child", "rebuild", str(large.config_path), str(large.trades), "0"]) for _ in range(rebuild_repeats)]
        rebuild_s = median_of(build, "seconds")
        rate = statistics.median(r["lines"] / r["seconds"] for r in build)
        speedup = rate / plain_rate
        peak = max(r["peak_mb"] for r in build)
        workers = max(r["workers_mb"] for r in build)
        log(f"rebuild: {rebuild_s:.2f} s, peak +{peak:.0f} MB")
        rows.append(Row(f"plain `json.loads` loop, {large.trades:,} lines / {large.files} files", f"{plain_rate:,.0f} lines/s", "(reference)", None))
        rows.append(Row(f"full rebuild: derived state deleted, fresh PhaseManager.state(), {large.trades:,} lines",
                        f"{rate:,.0f} lines/s ({rebuild_s:.2f} s)", "-", None,
                        times_loop(rebuild_s, large.trades / plain_rate)))
        rows.append(Row("full rebuild speed / plain loop", f"{speedup:.2f}×", f"≥ {GOAL_REBUILD_SPEEDUP:g}×",
                        speedup >= GOAL_REBUILD_SPEEDUP))
        workers_note = f" (+ its largest worker process: {workers:,.0f} MB peak RSS)" if workers else ""
        rows.append(Row(f"full rebuild peak memory (peak RSS growth, VmHWM), {large.trades:,} trades", f"{peak:,.0f} MB{workers_note}",
                        f"≤ {GOAL_REBUILD_PEAK_MB:g} MB", peak <= GOAL_REBUILD_PEAK_MB))
        if args.profile:
            prof = child(["--child", "rebuild", str(large.config_path), str(large.trades), "1"])
            profiles.append((f"full rebuild, {large.trades:,} lines (profiled run: {prof['seconds']:.2f} s)", prof["profile"]))
    finally:
        if temp is not None:
            temp.cleanup()

    print()
    print(f"SPEC §12 benchmark — {'quick' if args.quick else 'full'} run; {args.layout} journal files"
          f"{' of original-bot lines (no recorded sessions)' if args.original_bot_lines else ''}; "
          f"whole-process figures: medians of {runs} runs (first start: {args.first_runs}); pre-trade check: "
          f"medians of {repeats} batches of up to {args.batch} checks; rebuild runs: {rebuild_repeats}")
    print(f"machine at start: {facts_at_start}")
    print(f"machine at end:   {machine_facts()}")
    print()
    print_table(rows)
    for title, text in profiles:
        print(f"\n==== profile: {title}\n{text}")
    missed = [r for r in rows if r.ok is False]
    print(f"\n{len(missed)} goal(s) missed: " + "; ".join(r.figure for r in missed) if missed else "\nall measured goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
