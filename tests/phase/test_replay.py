"""`replay`: a real backtest's trades through the ladder, checked against the rules by hand."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import Desk
from trading_bot.clock import FixedClock
from trading_bot.phase.cli import main

NOW = datetime(2026, 12, 1, 11, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def goog_trades(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trade list a real backtesting.py run writes, on the GOOG data it ships.

    Imported here, not at collection: pandas in the pytest process would make every
    forked writer of the durability tests heavier to start.
    """
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import GOOG, SMA

    class SmaCross(Strategy):
        """backtesting.py's own example: a 10/20-day moving-average cross, always in the market."""

        def init(self) -> None:
            self.fast = self.I(SMA, self.data.Close, 10)
            self.slow = self.I(SMA, self.data.Close, 20)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.position.close()
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()
                self.sell()

    stats = Backtest(GOOG, SmaCross, cash=10_000, commission=0.002, finalize_trades=True).run()
    path = tmp_path_factory.mktemp("backtest") / "goog-sma-cross.csv"
    stats["_trades"].to_csv(path)
    return path


def run_cli(*args: str) -> tuple[int, str, str]:
    """The CLI with `args` as typed (global options before the command)."""
    out, err = io.StringIO(), io.StringIO()
    code = main([*args], stdout=out, stderr=err, stdin=io.StringIO(""), environ={}, clock=FixedClock(NOW))
    return code, out.getvalue(), err.getvalue()


def run(*args: str) -> tuple[int, str, str]:
    return run_cli("replay", *args)


def run_json(*args: str) -> list[dict]:
    code, out, err = run(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def csv_trades(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def ladder_pnl(row: dict[str, str]) -> Decimal:
    """The rule the README states: the trade's return, at the $100 of experience and proof."""
    return Decimal(100) * Decimal(row["PnL"]) / (Decimal(row["EntryPrice"]) * abs(Decimal(row["Size"])))


def outcome(pnl: Decimal) -> str:
    cents = pnl.quantize(Decimal("0.01"))
    return "win" if cents > 0 else "loss" if cents < 0 else "breakeven"


def test_the_backtest_file_is_what_backtesting_py_writes(goog_trades: Path) -> None:
    header = goog_trades.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[0] == ""  # the unnamed index column
    assert {"EntryTime", "ExitTime", "PnL", "EntryPrice", "Size"} <= set(header)
    assert len(csv_trades(goog_trades)) > 50


def test_from_proof_the_first_downgrade_is_the_third_loss_in_a_row_of_the_backtest(goog_trades: Path) -> None:
    rows = sorted(csv_trades(goog_trades), key=lambda row: (row["ExitTime"], row["EntryTime"]))
    run_of_losses, expected = 0, None
    for row in rows:
        run_of_losses = run_of_losses + 1 if outcome(ladder_pnl(row)) == "loss" else 0
        if run_of_losses == 3:
            expected = row["ExitTime"]
            break
    assert expected is not None
    events = run_json("--trades", str(goog_trades), "--from-phase", "proof")
    assert events[0]["kind"] == "override" and events[0]["to_phase"] == "proof"
    downgrade = next(event for event in events if event["kind"] == "downgrade")
    assert downgrade["at"].startswith(expected)  # 16:00 New York is still that date in UTC
    assert "3 consecutive losses" in downgrade["text"]
    assert downgrade["to_phase"] == "experience" and downgrade["position_size"] == "100.00"


def test_from_experience_the_gate_passes_at_the_close_the_rules_say(goog_trades: Path) -> None:
    """Re-derive the experience gate (§5) from the CSV alone: 20 profitable sessions, and over
    the last 20 sessions with trades a win rate ≥ 0.60 and an average R:R ≥ 1.5."""
    rows = sorted(csv_trades(goog_trades), key=lambda row: (row["ExitTime"], row["EntryTime"]))
    sessions: dict[str, dict[str, Decimal]] = {}
    expected = None
    for row in rows:
        pnl = ladder_pnl(row)
        book = sessions.setdefault(row["ExitTime"], {"pnl": Decimal(0), "n": Decimal(0), "w": Decimal(0), "l": Decimal(0), "ws": Decimal(0), "ls": Decimal(0)})
        book["pnl"] += pnl
        book["n"] += 1
        if outcome(pnl) == "win":
            book["w"] += 1
            book["ws"] += pnl
        elif outcome(pnl) == "loss":
            book["l"] += 1
            book["ls"] += -pnl
        profitable = sum(1 for b in sessions.values() if b["pnl"] > 0)
        last = list(sessions.values())[-20:]
        n, w, l = (sum(b[k] for b in last) for k in ("n", "w", "l"))
        ws, ls = (sum(b[k] for b in last) for k in ("ws", "ls"))
        rr_ok = (w > 0 and l == 0) or (w > 0 and l > 0 and (ws * l) / (ls * w) >= Decimal("1.5"))
        if profitable >= 20 and w / n >= Decimal("0.6") and rr_ok:
            expected = row["ExitTime"]
            break
    assert expected is not None
    events = run_json("--trades", str(goog_trades))
    passed = next(event for event in events if event["kind"] == "gate_passed")
    assert passed["to_phase"] == "proof" and passed["at"].startswith(expected)
    kinds = [event["kind"] for event in events]
    assert kinds.index("advance") == kinds.index("gate_passed") + 1
    advance = events[kinds.index("advance")]
    later = sorted({row["EntryTime"] for row in rows} | {row["ExitTime"] for row in rows})
    assert advance["at"][:10] == min(day for day in later if day > expected[:10]) or advance["at"][:10] == expected[:10]
    assert events[-1]["kind"] == "final"
    assert events[-1]["placed"] + events[-1]["refused"] == len(rows)


def test_text_output_names_the_timeline_the_final_phase_and_the_next_gate(goog_trades: Path) -> None:
    code, out, err = run("--trades", str(goog_trades))
    assert code == 0, err
    assert out.startswith(f"replayed {len(csv_trades(goog_trades))} trades from {goog_trades}")
    assert "advance experience → proof" in out
    assert "final: " in out and "next gate (" in out
    assert "✓" in out or "✗" in out


def test_proof_allows_one_entry_a_session_so_a_second_backtest_trade_that_day_is_refused(tmp_path: Path) -> None:
    trades = tmp_path / "plain.csv"
    trades.write_text(
        "entry_time,exit_time,pnl\n2026-03-02,2026-03-02,5\n2026-03-02T10:00:00,2026-03-02T11:00:00,4\n2026-03-03,2026-03-03,-2\n",
        encoding="utf-8",
    )
    events = run_json("--trades", str(trades), "--from-phase", "proof")
    refusals = [event for event in events if event["kind"] == "entry_refused"]
    assert len(refusals) == 1 and "1/1 trades this session (proof)" in refusals[0]["text"]
    assert events[-1]["placed"] == 2 and events[-1]["refused"] == 1


def test_date_only_entries_open_a_minute_after_the_open_and_exits_at_the_end_of_hours(tmp_path: Path) -> None:
    trades = tmp_path / "plain.csv"
    trades.write_text("entry_time,exit_time,pnl\n" + "".join(f"2026-03-{d:02d},2026-03-{d:02d},-1\n" for d in (2, 3, 4)), encoding="utf-8")
    events = run_json("--trades", str(trades), "--from-phase", "trial")
    downgrade = next(event for event in events if event["kind"] == "downgrade")
    assert downgrade["at"] == "2026-03-04T21:00:00Z"  # 16:00 EST, the end of trading hours
    assert downgrade["position_size"] == "100.00"  # half of trial's $200, capped at proof's $100


def test_a_plain_csv_pnl_is_scaled_from_100_dollars_to_the_size_in_force(tmp_path: Path) -> None:
    trades = tmp_path / "plain.csv"
    trades.write_text("entry_time,exit_time,pnl\n2026-03-02T10:00:00-05:00,2026-03-02T11:00:00-05:00,-3\n" * 1, encoding="utf-8")
    events = run_json("--trades", str(trades), "--from-phase", "trial", "--config", str(_config_with(tmp_path, {"trial": {"downgrade_triggers": {"consecutive_losses": 1}}})))
    downgrade = next(event for event in events if event["kind"] == "downgrade")
    assert downgrade["at"] == "2026-03-02T16:00:00Z"


def _config_with(folder: Path, phase_progression: dict) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps({"trading": {"mode": "paper"}, "phase_progression": {"current_phase": "experience", **phase_progression}}), encoding="utf-8")
    return path


def test_config_settings_change_the_outcome(goog_trades: Path, tmp_path: Path) -> None:
    loose = _config_with(tmp_path, {"experience": {"advancement_criteria": {"min_sessions": 5, "min_avg_rr": 1.0, "min_win_rate": 0.5}}})
    default_events = run_json("--trades", str(goog_trades))
    loose_events = run_json("--trades", str(goog_trades), "--config", str(loose))
    first_pass = lambda events: next(e["at"] for e in events if e["kind"] == "gate_passed")  # noqa: E731
    assert first_pass(loose_events) < first_pass(default_events)


def test_the_global_config_is_the_replays_settings_and_two_different_files_are_refused(goog_trades: Path, tmp_path: Path) -> None:
    loose = _config_with(tmp_path, {"experience": {"advancement_criteria": {"min_sessions": 5, "min_avg_rr": 1.0, "min_win_rate": 0.5}}})
    first_pass = lambda events: next(e["at"] for e in events if e["kind"] == "gate_passed")  # noqa: E731

    code, out, err = run_cli("--config", str(loose), "replay", "--trades", str(goog_trades), "--json")
    assert code == 0, err
    assert first_pass(json.loads(out)) == first_pass(run_json("--trades", str(goog_trades), "--config", str(loose)))
    assert first_pass(json.loads(out)) < first_pass(run_json("--trades", str(goog_trades)))
    # The same file named twice is one choice; two files are a usage error naming both.
    code, again, err = run_cli("--config", str(loose), "replay", "--trades", str(goog_trades), "--config", str(loose), "--json")
    assert (code, again) == (0, out), err
    other = tmp_path / "other" / "config.json"
    other.parent.mkdir()
    other.write_bytes(loose.read_bytes())
    code, out, err = run_cli("--config", str(loose), "replay", "--trades", str(goog_trades), "--config", str(other))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and str(loose) in err and str(other) in err


def test_desk_options_a_deskless_command_would_not_read_are_refused(goog_trades: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    code, out, err = run_cli("--config", str(tmp_path / "config.json"), "simulate", "--sessions", "3", "--workdir", str(workdir))
    assert (code, out) == (2, "") and err == "usage: simulate: --config is not read (the demo desk uses the shipped defaults, in --workdir); drop it\n"
    code, out, err = run_cli("--logs-dir", str(tmp_path / "logs"), "replay", "--trades", str(goog_trades))
    assert (code, out) == (2, "") and "--logs-dir is not read" in err and err.count("\n") == 1
    assert not workdir.exists() and not (tmp_path / "logs").exists()


def test_a_journal_folder_replays_and_is_left_untouched(desk: Desk) -> None:
    desk.trades(5, -2, 7)
    desk.next_session()
    desk.trades(4)
    before = desk.snapshot_files(records_only=True)  # `.derived/` is a cache (README)
    events = run_json("--trades", str(desk.logs_dir))
    assert events[-1]["placed"] == 4
    assert desk.snapshot_files(records_only=True) == before


def test_nothing_is_left_in_the_scratch_folder_or_beside_the_trades(goog_trades: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))  # this test's own temp folder
    used: list[Path] = []
    original = tempfile.TemporaryDirectory

    class Recorded(original):  # type: ignore[misc, valid-type]
        def __enter__(self) -> str:
            name = super().__enter__()
            used.append(Path(name))
            return name

    monkeypatch.setattr(tempfile, "TemporaryDirectory", Recorded)
    beside_before = set(goog_trades.parent.iterdir())
    assert run("--trades", str(goog_trades))[0] == 0
    assert len(used) == 1 and used[0].parent == scratch_root and used[0].name.startswith("trading-bot-replay-")
    assert list(scratch_root.iterdir()) == []
    assert set(goog_trades.parent.iterdir()) == beside_before


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,abc\n", ":2: pnl: not a number"),
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,1\n2026-03-32,2026-04-01,1\n", ":3: entry_time: not an ISO 8601"),
        ("entry_time,exit_time,pnl\n2026-03-03,2026-03-02,1\n", ":2: exit_time: is before the entry time"),
        ("entry_time,exit_time,pnl\n2026-03-02,,1\n", ":2: exit_time: is empty"),
        ("entry_time,exit_time,pnl\n2030-03-02,2030-03-02,1\n", ":2: entry_time: is in the future"),
        ("entry_time,exit_time,pnl\n1969-03-02,1969-03-03,1\n", ":2: entry_time: is before 1970"),
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,1e999999\n", ":2: pnl: exponent out of range"),
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,1e999999999\n", ":2: pnl: exponent out of range"),
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,-1e999999999\n", ":2: pnl: exponent out of range"),
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,1e-999999999\n", ":2: pnl: exponent out of range"),
        (",EntryTime,ExitTime,PnL,EntryPrice,Size\n0,2026-03-02,2026-03-03,5,10,1e999999999\n", ":2: Size: exponent out of range"),
        (",EntryTime,ExitTime,PnL,EntryPrice,Size\n0,2026-03-02,2026-03-03,5,1e999999999,10\n", ":2: EntryPrice: exponent out of range"),
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,1,9\n", ":2: column 4: is beyond the header's 3 columns"),
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,1\n2026-03-03,2026-03-03,1,\n", ":3: column 4: is beyond the header's 3 columns"),
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02\n", ":2: pnl: is missing (the row has 2 cells, the header 3)"),
        (",EntryTime,ExitTime,PnL,EntryPrice,Size\n0,2026-03-02,2026-03-03,5,10\n", ":2: Size: is missing (the row has 5 cells, the header 6)"),
        ("entry_time,exit_time,pnl,pnl\n2026-03-02,2026-03-02,1,2\n", ":1: pnl: appears twice in the header"),
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,1000000000000000\n", ":2: pnl: must be below 10^15"),
        ("entry_time,exit_time,pnl\n" + "2" * 50 + ",2026-03-02,1\n", ":2: entry_time: not an ISO 8601 date or timestamp (too long)"),
        ("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,-100\n", ":2: pnl: loses the whole position or more"),
        (",EntryTime,ExitTime,PnL,EntryPrice,Size\n0,2026-03-02,2026-03-03,5,0,10\n", ":2: EntryPrice: must be above zero"),
        ("when,profit\n2026-03-02,1\n", ":1: (header): needs EntryTime"),
        ("entry_time,exit_time,pnl\n", ":2: (rows): no trades"),
        ("", ":1: (header): empty file"),
    ],
)
def test_bad_rows_are_exit_2_naming_file_row_and_column(tmp_path: Path, content: str, where: str) -> None:
    trades = tmp_path / "trades.csv"
    trades.write_text(content, encoding="utf-8")
    code, out, err = run("--trades", str(trades))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"{trades}{where}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trades.csv"]


def test_a_missing_trade_file_or_bad_config_is_exit_2(tmp_path: Path) -> None:
    code, _, err = run("--trades", str(tmp_path / "none.csv"))
    assert code == 2 and "none.csv" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "config.json"
    bad.write_text('{"phase_progression": {"current_phase": "experience", "typo": 1}}', encoding="utf-8")
    trades = tmp_path / "t.csv"
    trades.write_text("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,1\n", encoding="utf-8")
    code, _, err = run("--trades", str(trades), "--config", str(bad))
    assert code == 2 and err.startswith(str(bad)) and len(err.strip().splitlines()) == 1


def test_a_weekend_entry_is_refused_by_the_trading_hours_check_as_a_live_bot_would_be(tmp_path: Path) -> None:
    trades = tmp_path / "weekend.csv"
    trades.write_text("entry_time,exit_time,pnl\n2026-03-07,2026-03-09,2\n2026-03-09,2026-03-09,3\n", encoding="utf-8")  # Saturday; Monday
    events = run_json("--trades", str(trades))
    refusals = [event for event in events if event["kind"] == "entry_refused"]
    assert [event["text"] for event in refusals] == ["outside trading hours (07:00–16:00 EST on trading days)"]
    assert (events[-1]["placed"], events[-1]["refused"]) == (1, 1)


def test_a_time_without_a_zone_is_market_time(tmp_path: Path) -> None:
    trades = tmp_path / "naive.csv"
    trades.write_text(
        "entry_time,exit_time,pnl\n" + "".join(f"2026-07-0{d}T09:30:00,2026-07-0{d}T15:30:00,-1\n" for d in (1, 2, 6)), encoding="utf-8"
    )
    events = run_json("--trades", str(trades), "--from-phase", "proof")
    downgrade = next(event for event in events if event["kind"] == "downgrade")
    assert downgrade["at"] == "2026-07-06T19:30:00Z"  # 15:30 EDT


def test_a_loss_just_short_of_the_whole_position_replays(tmp_path: Path) -> None:
    trades = tmp_path / "plain.csv"
    trades.write_text("entry_time,exit_time,pnl\n2026-03-02,2026-03-02,-99.99\n", encoding="utf-8")
    events = run_json("--trades", str(trades))
    assert (events[-1]["placed"], events[-1]["refused"]) == (1, 0)


def test_a_repeated_identical_row_is_two_trades(tmp_path: Path) -> None:
    """Two positions opened and closed together are two identical rows in a trade list."""
    row = "2026-03-02T10:00:00-05:00,2026-03-02T11:00:00-05:00,2\n"
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    once.write_text("entry_time,exit_time,pnl\n" + row, encoding="utf-8")
    twice.write_text("entry_time,exit_time,pnl\n" + row + row, encoding="utf-8")
    assert run_json("--trades", str(once))[-1]["placed"] == 1
    final = run_json("--trades", str(twice))[-1]
    assert final["placed"] == 2 and final["refused"] == 0
    code, out, _ = run("--trades", str(twice))
    assert code == 0 and "replayed 2 trades" in out


def test_a_header_with_an_unnamed_extra_column_takes_rows_of_its_width(tmp_path: Path) -> None:
    trades = tmp_path / "plain.csv"
    trades.write_text("entry_time,exit_time,pnl,\n2026-03-02,2026-03-02,1,\n", encoding="utf-8")
    assert run_json("--trades", str(trades))[-1]["placed"] == 1
