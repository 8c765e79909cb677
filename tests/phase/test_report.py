"""`report`: a self-contained page with the chart, the gate, the sessions — and escaping."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import PASSWORD, Desk, advance_to
from trading_bot.dashboard.metrics_calculator import Ratio
from trading_bot.performance.models import SessionMetrics
from trading_bot.phase.export import SessionRow
from trading_bot.phase.models import Phase
from trading_bot.phase.report import LATEST_SESSIONS, sessions_table


def _report(desk: Desk, *args: str) -> str:
    target = desk.root / "out.html"
    code, out, err = desk.cli("report", "--output", str(target), *args)
    assert code == 0, err
    assert out.strip() == f"report: {target}"
    return target.read_text(encoding="utf-8")


def _svg(page: str) -> ElementTree.Element:
    match = re.search(r"<svg.*?</svg>", page, re.S)
    assert match is not None
    return ElementTree.fromstring(match.group(0))


def _climb_with_a_downgrade(desk: Desk, *, acknowledge: bool = False) -> None:
    """Two sessions of experience, three losing proof sessions, then experience again."""
    desk.trades(10, -5)
    desk.next_session()
    desk.trades(4)
    advance_to(desk, "proof")
    for pnl in (-2, -2, -2):
        desk.next_session()
        desk.trade(pnl)
    if acknowledge:
        for _ in range(3):
            desk.next_session()
        assert desk.cli("acknowledge", "--operator", "ann")[0] == 0
        desk.trade(6)


def test_the_page_fetches_nothing_no_script_no_stylesheet_no_font_no_image(desk: Desk) -> None:
    _climb_with_a_downgrade(desk)
    page = _report(desk)
    lowered = page.lower()
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "url(", "src="):
        assert forbidden not in lowered
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]  # a namespace name, not a fetch


def test_the_chart_has_labelled_phase_bands_and_every_transition_marked_with_its_reason(desk: Desk) -> None:
    _climb_with_a_downgrade(desk, acknowledge=True)
    svg = _svg(_report(desk))
    ns = "{http://www.w3.org/2000/svg}"
    labels = [text.text for text in svg.iter(f"{ns}text")]
    assert labels.count("Experience") + labels.count("E") == 2
    assert labels.count("Proof of Concept") + labels.count("P") == 1
    band_titles = [rect.find(f"{ns}title").text for rect in svg.iter(f"{ns}rect")]
    assert band_titles == ["Experience (experience)", "Proof of Concept (proof)", "Experience (experience)"]
    marks = [group.find(f"{ns}title").text for group in svg.iter(f"{ns}g")]
    assert len(marks) == 2
    assert "override experience → proof: test setup" in marks[0]
    assert "downgrade proof → experience: 3 consecutive losses" in marks[1]
    paths = list(svg.iter(f"{ns}path"))
    assert len(paths) == 2  # equity, and equity with the simulated experience P&L


def test_the_equity_curve_follows_the_journal_and_counts_experience_as_simulated(desk: Desk) -> None:
    desk.trades(10)
    advance_to(desk, "proof")
    desk.next_session()
    desk.trade(7)
    svg = _svg(_report(desk))
    ns = "{http://www.w3.org/2000/svg}"
    real = next(p for p in svg.iter(f"{ns}path") if p.get("stroke") == "#000").get("d")
    ys = [float(point.split(",")[1]) for point in re.findall(r"[ML][\d.]+,[\d.]+", real)]
    assert ys[0] == ys[1]  # the experience win leaves equity where it started
    assert ys[2] < ys[1]  # the proof win lifts it (higher is smaller y)


def test_current_phase_size_breaker_and_the_gate_with_both_numbers(desk: Desk) -> None:
    desk.trades(10, -5)
    page = _report(desk)
    assert "Experience (experience)" in page
    assert "$100.00" in page
    assert "<dt>Breaker</dt><dd>ok</dd>" in page
    assert "✗ no" in page and "✓ yes" in page
    assert "profitable sessions 1 &lt; required 20" in page
    assert "<dt>Win rate</dt><dd>0.5000</dd>" in page
    assert "<dt>Max drawdown</dt><dd>0.0000%</dd>" in page


def test_a_tripped_breaker_is_shown(desk: Desk) -> None:
    _climb_with_a_downgrade(desk)
    page = _report(desk)
    assert "TRIPPED: downgraded proof → experience" in page


def test_operator_text_with_html_shows_as_text(desk: Desk) -> None:
    operator = "<script>alert('id')</script>"
    reason = "<img src=x onerror=alert(1)> & \"quotes\""
    code, _, err = desk.cli("override", "--to", "proof", "--operator", operator, "--reason", reason, "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    page = _report(desk)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#x27;id&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quotes&quot;" in page
    _svg(page)  # still well-formed


def test_sessions_newest_first_and_long_histories_keep_the_latest_plus_months(desk: Desk) -> None:
    for _ in range(LATEST_SESSIONS + 5):
        desk.trade(3)
        desk.next_session()
    page = _report(desk)
    table = page.split("<h2>Sessions")[1].split("</table>")[0]
    dates = re.findall(r'<td class="text">(\d{4}-\d\d-\d\d)</td>', table)
    assert len(dates) == LATEST_SESSIONS
    assert dates == sorted(dates, reverse=True)
    assert f"the latest {LATEST_SESSIONS} of {LATEST_SESSIONS + 5}" in page
    months = page.split("<h2>Months")[1].split("</table>")[0]
    rows = re.findall(r'<td class="text">(\d{4}-\d\d)</td><td>(\d+)</td>', months)
    assert [month for month, _ in rows] == sorted((month for month, _ in rows), reverse=True)
    assert sum(int(count) for _, count in rows) == LATEST_SESSIONS + 5


def test_default_output_is_beside_config_json(desk: Desk) -> None:
    desk.trade(1)
    code, out, err = desk.cli("report")
    assert code == 0, err
    assert (desk.root / "report.html").exists()
    assert out.strip() == f"report: {desk.root / 'report.html'}"


def test_as_of_writes_nothing_to_the_records(desk: Desk) -> None:
    desk.trade(3)
    desk.next_session()  # a summary is due
    before = desk.snapshot_files()
    page = _report(desk, "--as-of", "2026-03-02T16:00:00Z")
    after = desk.snapshot_files()
    after.pop("out.html")
    assert after == before
    assert "1 closed trades" in page


@pytest.mark.parametrize("where", ["missing/out.html", "."])
def test_unwritable_output_is_exit_2_one_line_and_nothing_written(desk: Desk, where: str) -> None:
    desk.trade(3)
    desk.next_session()
    before = desk.snapshot_files()
    code, out, err = desk.cli("report", "--output", str(desk.root / where))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert desk.snapshot_files() == before


def test_an_empty_desk_still_renders(tmp_path: Path, desk: Desk) -> None:
    page = _report(desk)
    assert "0 closed trades" in page
    _svg(page)


@pytest.mark.parametrize(("count", "shown", "note"), [(LATEST_SESSIONS - 1, LATEST_SESSIONS - 1, False), (LATEST_SESSIONS, LATEST_SESSIONS, False), (LATEST_SESSIONS + 1, LATEST_SESSIONS, True)])
def test_the_session_table_keeps_at_most_the_latest_sessions(count: int, shown: int, note: bool) -> None:
    none = Ratio(None, "no closed trades")
    rows = [
        SessionRow(SessionMetrics(date(2020, 1, 1) + timedelta(days=n), Phase.EXPERIENCE, 0, 0, 0, 0, none, none, Decimal(0), (), 0), Decimal(100), ())
        for n in range(count)
    ]
    table = sessions_table(rows)
    assert table.count("<tr><td") == shown
    assert ("the latest" in table) is note
