"""SPEC §12 performance benchmark for the phase system, on real files in a temp folder.

Prints one table, each measured figure next to its goal:

1. the pre-trade check (`PhaseManager.gate.entry_decision`: the whole §7 chain, allowed path, nothing
   changed on disk) with a small and a large trade history, and their ratio;
2. session metrics over 1,000 trades (`PerformanceTracker.session_metrics`);
3. a full rebuild (no cache) of the derived state from the journal, in lines per
   second against a plain `json.loads` loop over the same files, and its peak memory;
4. start-up with a valid derived cache (not implemented yet: printed as such).

Run from the repository root:

    python benchmarks/bench_phase.py            # 1,000,000-trade history (several minutes)
    python benchmarks/bench_phase.py --quick    # 100,000 trades, fewer repeats (CI-sized)

Every figure is a median of repeated runs. The rebuild and the plain loop each run in a
fresh child process, so their peak memory (VmHWM) is measured from a clean start.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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

GOAL_CHECK_US = 20.0
GOAL_CHECK_RATIO = 1.5
GOAL_SESSION_METRICS_MS = 5.0
GOAL_REBUILD_SPEEDUP = 2.5
GOAL_REBUILD_PEAK_MB = 150.0
GOAL_CACHED_START_S = 0.2


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


_SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AMD", "SPY", "QQQ")
_REASONS = ("take_profit", "stop_loss", "signal_exit", "trailing_stop")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _journal_line(rng: random.Random, serial: int, entry: datetime, exit_: datetime) -> bytes:
    """One closed trade in the TradeRecord shape, padded with realistic extras to ~750 bytes."""
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
        "strategy": "momentum_breakout_v3",
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
            f"{symbol}: 20-day breakout on {rng.uniform(1.2, 3.0):.2f}x volume, RSI/MACD confirm"
        ),
    }
    # Compact, as the bot writes it (orjson); padded with a notes field to the spec's size.
    raw = json.dumps(record, separators=(",", ":"))
    pad = LINE_BYTES - 1 - len(raw) - len(',"notes":""')
    if pad > 0:
        record["notes"] = ("market regime trending, sector strength positive, spread tight; " * 12)[:pad]
        raw = json.dumps(record, separators=(",", ":"))
    return raw.encode() + b"\n"


def build_fixture(
    root: Path, trades: int, layout: str, calendar: MarketCalendar, seed: int = 7, sessions: int | None = None
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
                line = _journal_line(rng, serial, entry, exit_)
                handle.write(line)
                total += len(line)
    finally:
        for handle in handles.values():
            handle.close()
    files = len(list(trades_dir.glob("*.jsonl")))
    return Fixture(root, config_path, trades_dir, serial, sessions, files, total)


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


def child(args: list[str]) -> dict[str, Any]:
    """Run this script as a fresh process for one measurement; it prints one JSON line."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
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


def child_rebuild(config_path: str, what: str, profile: bool) -> dict[str, Any]:
    """Time the derived state built from nothing; report the peak memory it took."""
    from trading_bot.config import Config
    from trading_bot.durable_files import LogsLock
    from trading_bot.logging.query_helper import TradeJournal
    from trading_bot.phase.engine import PhaseEngine
    from trading_bot.phase.chained_log import ChainedLog
    from trading_bot.phase.manager import HISTORY_FILE, OVERRIDES_FILE, PhaseManager, PhasePaths

    path = Path(config_path)
    config = Config.from_env_and_json(path, environ={})
    paths = PhasePaths.resolve(path, None, {})
    hours = config.settings.trading.hours
    calendar = MarketCalendar(hours.start_time, hours.end_time, hours.timezone)
    calendar.session_of(NOW)  # load the holiday tables outside the timing
    gc.collect()
    baseline = _peak_rss_mb()

    def rebuild() -> Any:
        if what == "manager":
            # The real restart: a fresh PhaseManager's first state() (journal, logs, replay).
            manager = PhaseManager(path, clock=FixedClock(NOW), environ={})
            return manager.state(), manager.journal
        journal = TradeJournal(paths.trades_dir)
        journal.refresh()
        lock = LogsLock(paths.logs_dir)
        history = ChainedLog(paths.phase_dir / HISTORY_FILE, lock, FixedClock(NOW)).lines()
        overrides = ChainedLog(paths.phase_dir / OVERRIDES_FILE, lock, FixedClock(NOW)).lines()
        engine = PhaseEngine(config.settings, calendar, config.mode)
        return engine.state(history, journal.closed_trades, journal.entries, overrides, NOW), journal

    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    state, journal = rebuild()
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "seconds": seconds,
        "lines": sum(cursor.line_count for cursor in journal._cursors.values()),
        "closed": len(journal.closed_trades),
        "phase": state.phase.value,
        "peak_mb": _peak_rss_mb() - baseline,
    }
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(22)
        result["profile"] = out.getvalue()
    return result


# ---------------------------------------------------------------------------- report


@dataclass
class Row:
    figure: str
    measured: str
    goal: str
    ok: bool | None  # None: no verdict (informational or not implemented)


def print_table(rows: list[Row]) -> None:
    headers = ("figure", "measured", "goal", "ok?")
    cells = [(r.figure, r.measured, r.goal, "-" if r.ok is None else ("yes" if r.ok else "NO")) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(c, widths)))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: 100,000 large trades, fewer repeats")
    parser.add_argument("--trades-large", type=int, default=None, help="large history (default 1,000,000; 100,000 with --quick)")
    parser.add_argument("--trades-small", type=int, default=1000, help="small history (default 1,000)")
    parser.add_argument("--batch", type=int, default=2000, help="calls per timed batch of the pre-trade check")
    parser.add_argument("--repeats", type=int, default=None, help="batches per figure (default 7; 5 with --quick)")
    parser.add_argument("--rebuild-repeats", type=int, default=None, help="rebuild runs (default 1; 3 with --quick)")
    parser.add_argument("--layout", choices=("month", "day", "single"), default="month",
                        help="journal files: one per month (default), one per UTC day (as the bot writes), or one")
    parser.add_argument("--workdir", type=Path, default=None, help="build the fixtures in this new or empty folder (kept) instead of a temp dir")
    parser.add_argument("--profile", action="store_true", help="print cProfile output for the measured paths")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kind, *rest = args.child
        if kind == "plain":
            result = child_plain_loop(rest[0])
        else:
            result = child_rebuild(rest[0], rest[1], rest[2] == "1")
        print(json.dumps(result))
        return 0

    large_n = args.trades_large or (100_000 if args.quick else 1_000_000)
    repeats = args.repeats or (5 if args.quick else 7)
    rebuild_repeats = args.rebuild_repeats or (3 if args.quick else 1)
    temp = None
    if args.workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="bench_phase_")
        base = Path(temp.name)
    else:
        base = args.workdir
        if base.exists() and any(base.iterdir()):
            parser.error(f"--workdir {base} is not empty; give a new or empty folder")
    rows: list[Row] = []
    profiles: list[tuple[str, str]] = []
    try:
        calendar = MarketCalendar()
        calendar.session_of(NOW)

        # ---- fixtures ----
        log(f"writing {args.trades_small:,} and {large_n:,} trades ({args.layout} files) under {base}")
        start = time.perf_counter()
        small = build_fixture(base / "small", args.trades_small, args.layout, calendar)
        large = build_fixture(base / "large", large_n, args.layout, calendar)
        # The small history again, thinly spread over the large one's sessions and files,
        # to tell the cost of more trades from the cost of more files.
        spread = build_fixture(base / "spread", args.trades_small, args.layout, calendar, sessions=large.sessions)
        log(
            f"fixtures written in {time.perf_counter() - start:.1f} s: small {small.trades:,} trades / "
            f"{small.sessions} sessions / {small.files} files; large {large.trades:,} trades / "
            f"{large.sessions} sessions / {large.files} files / {large.bytes / 1e6:.0f} MB "
            f"({large.bytes / max(1, large.trades):.0f} B per line); spread {spread.trades:,} trades / {spread.files} files"
        )

        # ---- 1. the pre-trade check ----
        figures: dict[str, float] = {}
        managers: dict[str, Any] = {}
        for label, fixture in (("small", small), ("spread", spread), ("large", large)):
            manager = new_manager(fixture)
            start = time.perf_counter()
            state = manager.state()
            first = time.perf_counter() - start
            written = len(manager.history.lines())
            decision = manager.gate.entry_decision(ENTRY)
            if not decision.allowed:
                raise SystemExit(f"the {label} fixture does not take the allowed path: {decision.reason}")
            log(f"{label}: first state() {first:.2f} s ({state.phase.value}; wrote {written} history lines)")
            rows.append(Row(
                f"first start, empty phase logs, {fixture.trades:,} trades / {fixture.files} files (rebuild + {written} history lines written)",
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

        # ---- 2. session metrics over 1,000 trades ----
        from trading_bot.performance.tracker import PerformanceTracker

        small_manager = managers["small"]
        trades = list(small_manager.journal.closed_trades)[-1000:]
        tracker = PerformanceTracker(small_manager.calendar)
        metric_ms = per_call_us(lambda: tracker.session_metrics(trades), 20, repeats) / 1000
        cold_ms = per_call_us(lambda: PerformanceTracker(MarketCalendar()).session_metrics(trades), 3, repeats) / 1000
        sessions_seen = len(tracker.session_metrics(trades))
        rows.append(Row(f"session metrics, {len(trades):,} trades / {sessions_seen} sessions (warm calendar)",
                        f"{metric_ms:.2f} ms", f"≤ {GOAL_SESSION_METRICS_MS:g} ms", metric_ms <= GOAL_SESSION_METRICS_MS))
        rows.append(Row("session metrics, same, fresh MarketCalendar (holiday tables built)", f"{cold_ms:.2f} ms", "-", None))
        log(f"session metrics {metric_ms:.2f} ms (cold calendar {cold_ms:.2f} ms)")
        if args.profile:
            profiles.append(("session_metrics, 1,000 trades", profile_text(lambda: tracker.session_metrics(trades), 20)))
        managers.clear()
        del small_manager, trades, tracker, manager, state, decision
        gc.collect()

        # ---- 3. full rebuild vs a plain json.loads loop ----
        plain = [child(["--child", "plain", str(large.trades_dir)]) for _ in range(rebuild_repeats)]
        plain_rate = statistics.median(p["lines"] / p["seconds"] for p in plain)
        log(f"plain json.loads loop: {plain_rate:,.0f} lines/s")
        results = {}
        for what in ("state", "manager"):
            runs = [child(["--child", "rebuild", str(large.config_path), what, "0"]) for _ in range(rebuild_repeats)]
            results[what] = runs
            log(f"rebuild ({what}): {statistics.median(r['seconds'] for r in runs):.2f} s, "
                f"peak +{max(r['peak_mb'] for r in runs):.0f} MB")
        build = results["state"]
        lines = build[0]["lines"]
        rate = statistics.median(r["lines"] / r["seconds"] for r in build)
        speedup = rate / plain_rate
        peak = max(r["peak_mb"] for r in build)
        restart = results["manager"]
        restart_s = statistics.median(r["seconds"] for r in restart)
        rows.append(Row(f"plain `json.loads` loop, {lines:,} lines", f"{plain_rate:,.0f} lines/s", "(reference)", None))
        rows.append(Row(f"full rebuild: TradeJournal.refresh() + phase state, {lines:,} lines",
                        f"{rate:,.0f} lines/s ({statistics.median(r['seconds'] for r in build):.2f} s)", "-", None))
        rows.append(Row("full rebuild speed / plain loop", f"{speedup:.2f}×", f"≥ {GOAL_REBUILD_SPEEDUP:g}×",
                        speedup >= GOAL_REBUILD_SPEEDUP))
        rows.append(Row("full rebuild peak memory (peak RSS growth, VmHWM)", f"{peak:,.0f} MB", f"≤ {GOAL_REBUILD_PEAK_MB:g} MB",
                        peak <= GOAL_REBUILD_PEAK_MB))
        rows.append(Row("restart without cache: fresh PhaseManager.state() (summaries already written)",
                        f"{restart_s:.2f} s, peak {max(r['peak_mb'] for r in restart):,.0f} MB", "-", None))
        if args.profile:
            prof = child(["--child", "rebuild", str(large.config_path), "state", "1"])
            profiles.append((f"full rebuild, {lines:,} lines (profiled run: {prof['seconds']:.2f} s)", prof["profile"]))

        # ---- 4. start-up with a valid derived cache ----
        rows.append(Row("start-up with a valid derived cache", "not implemented (no derived cache yet)",
                        f"≤ {GOAL_CACHED_START_S:g} s", None))
    finally:
        if temp is not None:
            temp.cleanup()

    print()
    print(f"SPEC §12 benchmark — {'quick' if args.quick else 'full'} run, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, medians of {repeats} batches of up to {args.batch} checks; rebuild runs: {rebuild_repeats}")
    print()
    print_table(rows)
    for title, text in profiles:
        print(f"\n==== profile: {title}\n{text}")
    missed = [r for r in rows if r.ok is False]
    print(f"\n{len(missed)} goal(s) missed" if missed else "\nall measured goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
