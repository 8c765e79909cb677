"""`export`: session rows, JSON shape, agreement with the gates, refusals, atomic output."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from conftest import PASSWORD, Desk, advance_to
from trading_bot.phase.export import CSV_COLUMNS, ExportRangeError, parse_day

MARCH = ("--start", "2026-03-01", "--end", "2026-03-31")


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _export_json(desk: Desk, *args: str) -> dict:
    code, out, err = desk.cli("export", *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_csv_has_the_spec_columns_and_one_row_per_session_with_activity_ascending(desk: Desk) -> None:
    desk.trades(10, -5, 7)
    desk.next_session()
    desk.trades(3, -2)
    code, out, err = desk.cli("export", *MARCH)
    assert code == 0, err
    assert out.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = _rows(out)
    assert [row["date"] for row in rows] == ["2026-03-02", "2026-03-03"]
    first = rows[0]
    assert (first["phase"], first["trades"], first["wins"], first["losses"]) == ("experience", "3", "2", "1")
    assert first["win_rate"] == "0.6667"  # 2/3, four places, half-even
    assert first["avg_rr"] == "1.7000"  # mean win 8.50 / mean loss 5.00
    assert first["total_pnl"] == "12.00"
    assert first["position_size"] == "100.00"


def test_a_session_with_an_entry_but_no_close_is_a_row_with_no_ratios(desk: Desk) -> None:
    desk.enter()
    rows = _rows(desk.cli("export", *MARCH)[1])
    assert len(rows) == 1
    assert (rows[0]["trades"], rows[0]["win_rate"], rows[0]["avg_rr"], rows[0]["total_pnl"]) == ("0", "", "", "0.00")


def test_range_is_inclusive_and_sessions_outside_it_are_left_out(desk: Desk) -> None:
    desk.trades(1)
    desk.next_session()
    desk.trades(2)
    desk.next_session()
    desk.trades(3)
    rows = _rows(desk.cli("export", "--start", "2026-03-03", "--end", "2026-03-03")[1])
    assert [(row["date"], row["total_pnl"]) for row in rows] == [("2026-03-03", "2.00")]


def test_a_downgrade_names_itself_in_the_notes_and_the_row_has_the_phase_at_the_close(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.next_session()
    desk.trade(-1)
    desk.next_session()
    desk.trade(-1)
    desk.next_session()
    desk.trade(-1)  # third loss in a row: proof → experience at this close
    data = _export_json(desk, *MARCH)
    last = data["sessions"][-1]
    assert last["phase"] == "experience"
    assert "downgrade proof → experience" in last["notes"]
    assert "3 consecutive losses" in last["notes"]
    assert data["sessions"][0]["phase"] == "proof"
    assert [t["kind"] for t in data["transitions"]] == ["override", "downgrade"]
    assert data["current_phase"] == "experience"


def test_json_has_the_spec_shape_with_money_and_ratios_as_strings_and_counts_as_ints(desk: Desk) -> None:
    desk.trades("10.005", "-4.125", 3)
    data = _export_json(desk, *MARCH)
    assert set(data) >= {"range", "current_phase", "sessions", "transitions", "overrides", "summary"}
    assert data["range"] == {"start": "2026-03-01", "end": "2026-03-31"}
    session = data["sessions"][0]
    assert set(session) >= {"date", "phase", "trades", "wins", "losses", "win_rate", "avg_rr", "total_pnl", "position_size", "notes"}
    assert isinstance(session["trades"], int) and isinstance(session["wins"], int)
    summary = data["summary"]
    assert summary == {
        "sessions": 1,
        "trades": 3,
        "trades_closed": 3,
        "wins": 2,
        "losses": 1,
        "breakevens": 0,
        "win_rate": "0.6667",
        "avg_rr": summary["avg_rr"],
        "total_pnl": session["total_pnl"],
    }
    assert summary["avg_rr"] == "1.5764"  # mean win 13.005/2 = 6.5025 / mean loss 4.125 = 1.57636…
    assert summary["total_pnl"] == "8.88"


def test_flagged_trades_count_in_pnl_and_trades_closed_but_not_in_the_summary_trade_count(desk: Desk) -> None:
    desk.trade(5)
    desk.trade(-3, emergency=True)
    data = _export_json(desk, *MARCH)
    assert data["sessions"][0]["trades"] == 2
    assert data["summary"]["trades"] == 1
    assert data["summary"]["trades_closed"] == 2
    assert data["summary"]["total_pnl"] == "2.00"


def test_summary_numbers_agree_with_validate_transition_for_the_same_trades(desk: Desk) -> None:
    pnls = [12, -5, 9, 7, -4, 11]
    for index in range(20):
        desk.trade(pnls[index % len(pnls)])
        desk.trade(pnls[(index + 3) % len(pnls)])
        desk.next_session()
    code, gate = desk.cli_json("validate-transition", "--to", "proof")
    criteria = {c["name"]: c for c in gate["criteria"]}
    data = _export_json(desk, *MARCH)
    first = data["sessions"][0]["date"]
    last = data["sessions"][-1]["date"]
    data = _export_json(desk, "--start", first, "--end", last)
    assert len(data["sessions"]) == 20
    assert criteria["win_rate"]["actual"] == data["summary"]["win_rate"]
    assert criteria["avg_rr"]["actual"] == data["summary"]["avg_rr"]
    profitable = sum(1 for row in data["sessions"] if row["total_pnl"][0] != "-" and row["total_pnl"] != "0.00")
    assert criteria["profitable_sessions"]["actual"] == profitable


def test_no_password_or_password_hash_ever_appears_in_an_export(desk: Desk, tmp_path: Path) -> None:
    desk.cli("override", "--to", "proof", "--operator", "ann", "--reason", "r", "--password-stdin", stdin="wrong one\n")
    advance_to(desk, "proof")
    desk.next_session()
    desk.trade(4)
    for fmt in ("csv", "json"):
        code, out, err = desk.cli("export", *MARCH, "--format", fmt)
        assert code == 0, err
        assert PASSWORD not in out and "wrong one" not in out
        assert "scrypt$" not in out
    data = _export_json(desk, *MARCH)
    outcomes = [line.get("outcome") for line in data["overrides"] if line["type"] == "override_attempt"]
    assert outcomes == ["wrong_password", "success"]
    assert all("hash" not in line and "prev_hash" not in line for line in data["overrides"] + data["transitions"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--start", "2026-03-31", "--end", "2026-03-01"), "--end 2026-03-01 is before --start 2026-03-31"),
        (("--start", "2026-02-30", "--end", "2026-03-01"), "argument --start: not an ISO 8601 date"),
        (("--start", "2026-03-01", "--end", "yesterday"), "argument --end: not an ISO 8601 date"),
        (("--start", "9" * 60, "--end", "2026-03-01"), "argument --start: not an ISO 8601 date"),
        (("--start", "2026-03-01T10:00", "--end", "2026-03-02"), "argument --start: not an ISO 8601 date (YYYY-MM-DD or YYYYMMDD)"),
        (("--start", "2026-W10", "--end", "2026-03-31"), "argument --start: not an ISO 8601 date (YYYY-MM-DD or YYYYMMDD)"),
        (("--start", "2026-03-01", "--end", "2026-03-31T00:00:00"), "argument --end: not an ISO 8601 date (YYYY-MM-DD or YYYYMMDD)"),
        (("--start", "1969-12-31", "--end", "2026-03-02"), "before 1970-01-01"),
    ],
)
def test_bad_range_is_exit_2_one_line_and_nothing_written(desk: Desk, args: tuple[str, ...], fragment: str) -> None:
    desk.trade(3)
    desk.next_session()  # a summary is due: a command that ran would write it
    before = desk.snapshot_files(records_only=True)  # the journal index is a cache (README)
    code, out, err = desk.cli("export", *args)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert fragment in err
    assert "yesterday" not in err and "2026-02-30" not in err  # what was typed is not repeated
    assert desk.snapshot_files(records_only=True) == before


@pytest.mark.parametrize("where", ["missing-folder/out.csv", "a-folder"])
def test_unwritable_output_is_exit_2_one_line_and_nothing_written(desk: Desk, where: str) -> None:
    desk.trade(3)
    desk.next_session()
    (desk.root / "a-folder").mkdir()
    before = desk.snapshot_files()
    code, out, err = desk.cli("export", *MARCH, "--output", str(desk.root / where))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "(file)" in err
    assert desk.snapshot_files() == before


def test_output_file_holds_exactly_what_stdout_would_and_replaces_an_old_file(desk: Desk) -> None:
    desk.trades(3, -1)
    target = desk.root / "march.json"
    target.write_text("old contents", encoding="utf-8")
    _, printed, _ = desk.cli("export", *MARCH, "--format", "json")
    code, out, err = desk.cli("export", *MARCH, "--format", "json", "--output", str(target))
    assert code == 0, err
    assert "to " + str(target) in out
    assert target.read_text(encoding="utf-8") == printed
    assert not list(desk.root.glob(".march.json.*.tmp"))


def test_as_of_writes_nothing_and_sees_the_records_as_they_were(desk: Desk) -> None:
    desk.trade(3)
    noon = desk.now()
    desk.next_session()
    desk.trade(-2)
    desk.next_session()
    before = desk.snapshot_files()
    as_of = (noon + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, err = desk.cli("export", *MARCH, "--as-of", as_of)
    assert code == 0, err
    assert [row["date"] for row in _rows(out)] == ["2026-03-02"]
    assert desk.snapshot_files() == before


def test_dates_are_read_with_iso_8601_basic_and_extended_forms() -> None:
    assert parse_day("--start", "2026-03-02") == date(2026, 3, 2)
    assert parse_day("--start", "20260302") == date(2026, 3, 2)
    assert parse_day("--start", "1970-01-01") == date(1970, 1, 1)
    with pytest.raises(ExportRangeError):
        parse_day("--start", "2026-03-02T00:00:00+00:00")


@pytest.mark.parametrize(
    "text",
    [
        "2026-W10",
        "2026-W10-1",
        "2026W101",
        "2026-061",
        "2026061",
        "2026-03",
        "2026",
        "202603",
        "2026-03-02T00:00:00",
        "2026-03-02T00:00:00Z",
        "2026-03-02 00:00",
        " 2026-03-02",
        "2026-03-02 ",
        "2026-3-2",
        "2026-03-020",
        "202603021",
        "2026/03/02",
        "\uff12\uff10\uff12\uff16-03-02",
        "2026-13-01",
        "0000-01-01",
    ],
)
def test_only_the_two_forms_the_error_names_are_accepted(text: str) -> None:
    with pytest.raises(ExportRangeError, match=r"^--start: not an ISO 8601 date \(YYYY-MM-DD or YYYYMMDD\)$"):
        parse_day("--start", text)


def test_a_week_date_is_refused_by_the_command_and_nothing_is_written(desk: Desk) -> None:
    desk.trade(3)
    desk.next_session()
    before = desk.snapshot_files()
    code, out, err = desk.cli("export", "--start", "2026-W10", "--end", "2026-03-31")
    assert (code, out) == (2, "")
    assert err.strip() == "usage: argument --start: not an ISO 8601 date (YYYY-MM-DD or YYYYMMDD)"
    assert desk.snapshot_files() == before
