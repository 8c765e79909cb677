"""The phase test desk: a real bot on the paper broker, real files, freezegun time.

Tests drive the ladder the way the bot does (entries through the validation chain,
closes that the phase system sees at once) and read the real logs back.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from trading_bot.app import Desk as AppDesk
from trading_bot.bot import TradeResult
from trading_bot.broker import PaperBroker
from trading_bot.config import Config
from trading_bot.error_handling.circuit_breaker import BreakerState
from trading_bot.logging.trade_record import TradeRecord
from trading_bot.market_calendar import MarketCalendar
from trading_bot.phase.cli import main
from trading_bot.phase.engine import MemoryLog
from trading_bot.phase.models import Phase
from trading_bot.phase.record_types import TRANSITION

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "config.json"
PASSWORD = "correct horse battery staple"
# Monday 2026-03-02, 10:00 New York (15:00 UTC, EST).
DESK_START = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
ENTRY_PRICE = Decimal("10")


class Desk:
    """A trading desk in tmp_path: config.json, logs/, a bot, a manager, a frozen clock."""

    def __init__(self, root: Path, frozen: Any, env: dict[str, str]) -> None:
        self.root = root
        self.frozen = frozen
        self.env = env
        self.config_path = root / "config.json"
        self.logs_dir = root / "logs"
        shutil.copyfile(SHIPPED_CONFIG, self.config_path)
        self.calendar = MarketCalendar()
        self.day: date = self.calendar.session_of(DESK_START)
        self.start()

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """(Re)start the desk from the files, as a restart of the process would."""
        self.broker = PaperBroker(Decimal("1000000"))
        self.app = AppDesk.open(self.config_path, environ=self.env, broker=self.broker)
        self.manager = self.app.phase
        self.bot = self.app.bot

    @property
    def config(self) -> Config:
        return self.app.config

    def edit_config(self, updates: dict[tuple[str, ...], Any]) -> None:
        """A person edits config.json by hand (then the bot restarts)."""
        Config.from_env_and_json(self.config_path, environ=self.env).with_updates(updates).save()
        self.start()

    # ---- time -----------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def at(self, moment: datetime) -> None:
        self.frozen.move_to(moment)

    def open_session(self, day: date, minutes: int = 60) -> None:
        """Move to `minutes` after the open of trading day `day`."""
        self.day = day
        self.at(self.calendar.open_of(day) + timedelta(minutes=minutes))

    def next_session(self, minutes: int = 60) -> None:
        self.open_session(self.calendar.next_trading_day(self.day), minutes)

    def tick(self, minutes: int = 1) -> None:
        self.at(self.now() + timedelta(minutes=minutes))

    # ---- trading --------------------------------------------------------------------

    def enter(self) -> TradeResult:
        return self.bot.execute_trade("AAPL", "BUY", ENTRY_PRICE)

    def close(self, entry: TradeResult, pnl: Decimal | str | int, *, emergency: bool = False) -> TradeRecord:
        assert entry.record is not None, entry.reason
        pnl = Decimal(str(pnl))
        exit_price = ENTRY_PRICE + pnl / entry.record.quantity
        self.tick()
        return self.bot.close_position(entry.record.order_id, exit_price, emergency_exit=emergency)

    def trade(self, pnl: Decimal | str | int, *, emergency: bool = False) -> TradeRecord:
        """One round trip with exactly this net P&L (entry through the full chain)."""
        entry = self.enter()
        assert entry.accepted, entry.reason
        record = self.close(entry, pnl, emergency=emergency)
        self.tick()
        return record

    def trades(self, *pnls: Decimal | str | int, per_session: int | None = None) -> None:
        """Several round trips; with `per_session`, move to the next session after that many."""
        done = 0
        for pnl in pnls:
            if per_session is not None and done == per_session:
                self.next_session()
                done = 0
            self.trade(pnl)
            done += 1

    # ---- reading back -----------------------------------------------------------------

    def history(self) -> list[dict[str, Any]]:
        return _lines(self.logs_dir / "phase" / "phase-history.jsonl")

    def overrides(self) -> list[dict[str, Any]]:
        return _lines(self.logs_dir / "phase" / "phase-overrides.jsonl")

    def transitions(self) -> list[dict[str, Any]]:
        return [line for line in self.history() if line["type"] == "transition"]

    def cli(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--config", str(self.config_path), *args], stdin=io.StringIO(stdin), stdout=out, stderr=err, environ=self.env)
        return code, out.getvalue(), err.getvalue()

    def cli_json(self, *args: str, stdin: str = "") -> tuple[int, dict[str, Any]]:
        code, out, err = self.cli(*args, "--json", stdin=stdin)
        assert out.strip(), err
        return code, json.loads(out)

    def snapshot_files(self, *, records_only: bool = False) -> dict[str, bytes]:
        """Every file under the desk, for "nothing was written" assertions. `records_only`
        leaves out the journal index (`logs/.derived/`, a cache a refused command may refresh)."""
        return {
            str(path.relative_to(self.root)): path.read_bytes()
            for path in sorted(self.root.rglob("*"))
            if path.is_file()
            and path.name != ".phase.lock"
            and not (records_only and ".derived" in path.relative_to(self.root).parts)
        }


def history_overridden_into(phase: Phase, at: datetime) -> MemoryLog:
    """A history in memory with one override from experience into `phase` (none for
    experience itself), as the engine's own tests start a stint in any phase."""
    log = MemoryLog([], at)
    if phase is not Phase.EXPERIENCE:
        payload = {
            "kind": "override",
            "from_phase": "experience",
            "to_phase": phase.value,
            "position_size": "200.00",
            "breaker": BreakerState.closed().to_json(),
            "mode": "paper",
            "operator_id": "test",
            "reason": "test",
        }
        log.append(TRANSITION, payload, at)
    return log


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    env = {"PHASE_OVERRIDE_PASSWORD": PASSWORD}
    with freeze_time(DESK_START) as frozen:
        yield Desk(tmp_path, frozen, env)


def advance_to(desk: Desk, phase: str) -> None:
    """Move the desk to a phase with a password override (a test's starting point)."""
    code, out, err = desk.cli("override", "--to", phase, "--operator", "setup", "--reason", "test setup", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    desk.start()
