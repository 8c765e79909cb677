"""A crash's unterminated journal line: reported by verify, set aside and recorded by the next write."""

from __future__ import annotations

from tests.phase.conftest import Desk


def _tear_journal(desk: Desk) -> bytes:
    desk.trade(30)
    path = next((desk.logs_dir / "trades").glob("*.jsonl"))
    fragment = b'{"timestamp": "2026-03-02T15:10:00Z", "symbol": "AA'
    with open(path, "ab") as handle:
        handle.write(fragment)
    return fragment


def test_verify_reports_a_torn_journal_line(desk: Desk) -> None:
    _tear_journal(desk)
    code, payload = desk.cli_json("verify")
    assert code == 1
    assert any("torn last line" in problem["reason"] for problem in payload["problems"])


def test_next_journal_write_sets_the_torn_line_aside_and_records_it(desk: Desk) -> None:
    fragment = _tear_journal(desk)
    desk.start()
    desk.trade(30)
    kept = list((desk.logs_dir / "trades").glob("*.jsonl.torn-*"))
    assert [path.read_bytes() for path in kept] == [fragment]
    records = [line for line in desk.overrides() if line["type"] == "journal_torn_tail_moved"]
    assert len(records) == 1 and records[0]["recovery_file"].endswith(kept[0].name)
    assert desk.cli("verify")[0] == 0
