"""`simulate`: the demo desk — a seeded strategy climbs the real ladder on a virtual clock.

The strategy is a coin with an edge that sometimes goes through a slump; everything
else is the product: the trading bot and its validation chain, the paper broker, the
phase manager's rules and records. The operator's approvals are scripted. All it
writes is dated in the past, inside the work folder.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.export import write_output
from trading_bot.phase.report import build_report
from trading_bot.phase.timeline import TimelineEvent, timeline_events
from trading_bot.phase.virtual_desk import VirtualDesk

DEFAULT_SESSIONS = 150
DEFAULT_SEED = 10
MAX_SESSIONS = 2520  # ten years of sessions
SYMBOL = "DEMO"
CENT = Decimal("0.01")
# The minimal config: every other setting takes its default, i.e. the shipped values.
DEMO_CONFIG = {"trading": {"mode": "paper"}, "phase_progression": {"current_phase": "experience"}}

Progress = Callable[[int, int, date, str], None]


class SimulationError(ValueError):
    """Bad arguments or a folder simulate must not write into (exit 2)."""


@dataclass(frozen=True)
class Attempt:
    """One trade idea: when in the session, and how it ends."""

    minutes_after_open: int
    holding_minutes: int
    move: Decimal  # exit price ÷ entry price − 1


class SeededStrategy:
    """A strategy with an edge (wins 4 of 5, winners ~2.5× losers) and occasional slumps."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.price = Decimal("20.00")
        self.slump_left = 0

    def session(self) -> list[Attempt]:
        """The next session's trade ideas; the price drifts a little between sessions."""
        rng = self.rng
        if self.slump_left == 0 and rng.random() < 0.04:
            self.slump_left = rng.randint(3, 6)
        win_chance = 0.3 if self.slump_left > 0 else 0.8
        if self.slump_left > 0:
            self.slump_left -= 1
        count = 1 + (rng.random() < 0.6) + (rng.random() < 0.3)
        attempts = []
        minute = 30
        for _ in range(count):
            won = rng.random() < win_chance
            move = Decimal(str(round(rng.uniform(0.02, 0.05), 4))) if won else -Decimal(str(round(rng.uniform(0.008, 0.02), 4)))
            holding = rng.randint(20, 90)
            attempts.append(Attempt(minute, holding, move))
            minute += holding + rng.randint(5, 30)
        drift = Decimal(str(round(rng.uniform(-0.01, 0.011), 4)))
        self.price = max(Decimal("5.00"), (self.price * (1 + drift)).quantize(CENT, rounding=ROUND_HALF_EVEN))
        return attempts


@dataclass(frozen=True)
class SimulationResult:
    workdir: Path
    config_path: Path
    first_session: date
    last_session: date
    sessions: int
    trades: int
    refused: int
    final_phase: str
    final_size: Decimal
    events: list[TimelineEvent]
    tz: tzinfo
    report_path: Path


def sessions_before(calendar: MarketCalendar, now: datetime, count: int) -> list[date]:
    """The `count` trading sessions that have closed by `now`, oldest first."""
    current = calendar.session_of(now)
    days: list[date] = []
    day = current
    while len(days) < count:
        day = calendar.previous_trading_day(day)
        days.append(day)
    days.reverse()
    return days


def default_workdir(base: Path) -> Path:
    """A new folder under `base`: simulated-desk-1, -2, … (a second run never reuses one)."""
    number = 1
    while (base / f"simulated-desk-{number}").exists():
        number += 1
    return base / f"simulated-desk-{number}"


def prepare_workdir(workdir: Path) -> Path:
    """An empty or new folder; anything else is refused so no desk is ever written over."""
    if workdir.exists():
        if not workdir.is_dir():
            raise SimulationError(f"--workdir {workdir}: is a file, not a folder")
        if any(workdir.iterdir()):
            raise SimulationError(f"--workdir {workdir}: is not empty; simulate writes a fresh desk into an empty or new folder")
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(DEMO_CONFIG, indent=2) + "\n", encoding="utf-8")
    return config_path


def check_arguments(sessions: int, seed: int) -> None:
    if not 1 <= sessions <= MAX_SESSIONS:
        raise SimulationError(f"--sessions {sessions}: must be between 1 and {MAX_SESSIONS}")
    if not 0 <= seed < 2**63:
        raise SimulationError(f"--seed {seed}: must be between 0 and 2^63 - 1")


def run_simulation(
    workdir: Path,
    *,
    now: datetime,
    sessions: int = DEFAULT_SESSIONS,
    seed: int = DEFAULT_SEED,
    progress: Progress | None = None,
) -> SimulationResult:
    """Trade `sessions` past sessions on a fresh desk in `workdir` and return what happened."""
    check_arguments(sessions, seed)
    config_path = prepare_workdir(workdir)
    calendar = MarketCalendar()
    days = sessions_before(calendar, now, sessions)
    desk = VirtualDesk(config_path, calendar.open_of(days[0]))
    calendar = desk.manager.calendar
    strategy = SeededStrategy(seed)
    trades = refused = 0
    for number, day in enumerate(days, start=1):
        opens = calendar.open_of(day)
        desk.move_to(opens + timedelta(minutes=5))
        desk.settle()
        if desk.breaker_tripped():
            desk.acknowledge_if_tripped("reviewed the downgrade overnight; strategy unchanged")
        desk.advance_if_ready()
        for attempt in strategy.session():
            desk.move_to(opens + timedelta(minutes=attempt.minutes_after_open))
            entry = desk.enter(SYMBOL, strategy.price)
            if not entry.accepted or entry.record is None:
                refused += 1
                continue
            desk.move_to(opens + timedelta(minutes=attempt.minutes_after_open + attempt.holding_minutes))
            exit_price = (strategy.price * (1 + attempt.move)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
            desk.close(entry.record.order_id, exit_price)
            trades += 1
        if progress is not None:
            progress(number, len(days), day, desk.phase().value)
    # Close the books at the end of the last session, still in the past.
    desk.move_to(calendar.session_closes_at(days[-1]))
    desk.settle()
    manager = desk.manager
    events = timeline_events(manager.history.lines(), manager.overrides.lines())
    report_path = workdir / "report.html"
    write_output(report_path, build_report(manager))
    return SimulationResult(
        workdir=workdir,
        config_path=config_path,
        first_session=days[0],
        last_session=days[-1],
        sessions=len(days),
        trades=trades,
        refused=refused,
        final_phase=desk.phase().value,
        final_size=desk.size(),
        events=events,
        tz=calendar.tz,
        report_path=report_path,
    )
