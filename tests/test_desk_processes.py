"""Four real bot processes on one desk, entering at the same instants (SPEC §10).

Each entry is decided under the logs lock from the records as they are at that
instant, so together the processes never exceed a limit. The journal is appended under
the same lock, so its line order is the order the decisions were committed in: each
test replays that order and checks every entry against what was on record before it.
"""

from __future__ import annotations

import io
import json
import multiprocessing
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from trading_bot.app import Desk
from trading_bot.broker import PaperBroker
from trading_bot.clock import FixedClock
from trading_bot.config import Config
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.cli import main

D = Decimal
PASSWORD = "processes test password"
ENV = {"PHASE_OVERRIDE_PASSWORD": PASSWORD}
BOTS = 4
FIRST_DAY = datetime(2026, 3, 2, tzinfo=timezone.utc).date()
CALENDAR = MarketCalendar()
NO_TRIGGERS = {"consecutive_losses": None, "rolling_window_trades": None, "rolling_win_rate_min": None, "max_daily_loss_pct": None}


def session_instants(count: int) -> list[datetime]:
    """Half an hour after the open of `count` consecutive trading days."""
    instants, day = [], FIRST_DAY
    for _ in range(count):
        instants.append(CALENDAR.open_of(day) + timedelta(minutes=30))
        day = CALENDAR.next_trading_day(day)
    return instants


def cli(config_path: Path, clock: FixedClock, *args: str, stdin: str = "") -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config_path), *args], stdin=io.StringIO(stdin), stdout=out, stderr=err, environ=ENV, clock=clock)
    assert code in (0, 1), err.getvalue()
    return code, out.getvalue()


def prepare(config_path: Path, phase: str, updates: dict[tuple[str, ...], Any]) -> None:
    """The desk's settings and phase before the bots start (the operator's override)."""
    if updates:
        Config.from_env_and_json(config_path, environ=ENV).with_updates(updates).save()
    clock = FixedClock(CALENDAR.open_of(FIRST_DAY) - timedelta(hours=12))
    code, _ = cli(config_path, clock, "override", "--to", phase, "--operator", "ops", "--reason", "setup", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0


Strategy = Callable[[Desk, FixedClock], None]


def bot_process(config_path: Path, instants: list[datetime], barrier: Any, strategy: Strategy) -> None:
    """One bot process: at each instant, after every bot is there, run the strategy.

    Every bot's clock stands at the same instant during a session: a record stamped
    after another bot's clock would be "in the future" for it (SPEC §13)."""
    clock = FixedClock(instants[0])
    desk = Desk.open(config_path, clock=clock, environ=ENV, broker=PaperBroker(D("100000000"), clock=clock))
    for instant in instants:
        clock.set(instant)
        barrier.wait(timeout=120)
        strategy(desk, clock)


def run_bots(config_path: Path, instants: list[datetime], strategy: Strategy) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(BOTS)
    processes = [context.Process(target=bot_process, args=(config_path, instants, barrier, strategy)) for _ in range(BOTS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
    assert [process.exitcode for process in processes] == [0] * BOTS


def journal_in_commit_order(config_path: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted((config_path.parent / "logs" / "trades").glob("*.jsonl")):
        lines.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return lines


def assert_intact(config_path: Path, clock_at: datetime) -> None:
    code, out = cli(config_path, FixedClock(clock_at), "verify", "--json")
    assert (code, json.loads(out)["intact"]) == (0, True), out


def enter_three_times(desk: Desk, clock: FixedClock) -> None:
    for _ in range(3):
        desk.enter("AAPL", "BUY", D("10"))


def test_four_bots_entering_at_the_same_instants_over_15_proof_sessions_make_exactly_15_entries(tmp_path: Path, config_path: Path) -> None:
    prepare(config_path, "proof", {})
    instants = session_instants(15)
    run_bots(config_path, instants, enter_three_times)
    opens = [line for line in journal_in_commit_order(config_path) if line["outcome"] == "open"]
    sessions = [CALENDAR.session_of(datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))) for line in opens]
    assert len(opens) == 15
    assert sorted(sessions) == [CALENDAR.session_of(instant) for instant in instants]
    assert_intact(config_path, instants[-1] + timedelta(minutes=5))


def enter_and_lose(loss_price: Decimal) -> Strategy:
    def strategy(desk: Desk, clock: FixedClock) -> None:
        for _ in range(6):
            result = desk.enter("AAPL", "BUY", D("10") if loss_price > 1 else D("1"))
            if result.record is not None:
                desk.close(result.record.order_id, loss_price)

    return strategy


def test_four_bots_never_enter_once_the_sessions_realized_loss_is_above_the_daily_limit(tmp_path: Path, config_path: Path) -> None:
    prepare(config_path, "trial", {("phase_progression", "trial", "downgrade_triggers"): NO_TRIGGERS})
    instants = session_instants(3)
    run_bots(config_path, instants, enter_and_lose(D("5")))  # $200 = 20 shares at $10; each close loses $100
    realized: dict[Any, Decimal] = {}
    equity_at_open: dict[Any, Decimal] = {}
    equity = D("10000")
    entries_per_session: dict[Any, int] = {}
    for line in journal_in_commit_order(config_path):
        stamp = line["exit_timestamp"] if line["outcome"] != "open" else line["timestamp"]
        session = CALENDAR.session_of(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
        equity_at_open.setdefault(session, equity)
        if line["outcome"] == "open":
            loss_pct = -realized.get(session, D(0)) / equity_at_open[session] * 100
            assert loss_pct <= 3, f"entry {line['order_id']} decided with the session's loss at {loss_pct}%"
            entries_per_session[session] = entries_per_session.get(session, 0) + 1
        else:
            realized[session] = realized.get(session, D(0)) + D(line["net_profit_loss"])
            equity += D(line["net_profit_loss"])
    assert len(entries_per_session) == 3
    for session, count in entries_per_session.items():  # the limit, not the strategy, stopped them
        assert -realized[session] / equity_at_open[session] * 100 > 3, (session, count)
    assert_intact(config_path, instants[-1] + timedelta(minutes=5))


def test_four_bots_never_enter_above_the_scaling_equity_cap(tmp_path: Path, config_path: Path) -> None:
    prepare(
        config_path,
        "scaling",
        {
            ("account", "starting_equity"): "4100",
            ("risk_management", "max_daily_loss_pct"): None,
            ("risk_management", "max_position_pct"): None,
            ("phase_progression", "scaling", "downgrade_triggers"): NO_TRIGGERS,
        },
    )
    instants = session_instants(2)
    run_bots(config_path, instants, enter_and_lose(D("0.9")))  # $200 = 200 shares at $1; each close loses $20
    equity = D("4100")
    opens = 0
    for line in journal_in_commit_order(config_path):
        if line["outcome"] == "open":
            notional = D(line["price"]) * line["quantity"]
            assert notional <= equity * 5 / 100, f"entry {line['order_id']} of ${notional} with equity ${equity}"
            opens += 1
        else:
            equity += D(line["net_profit_loss"])
    # 4,100 → 4,000 in five $20 losses keeps the cap at $200; the sixth leaves no valid size.
    assert opens >= 6
    assert equity < 4000
    assert_intact(config_path, instants[-1] + timedelta(minutes=5))
