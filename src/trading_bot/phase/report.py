"""`report`: one self-contained HTML page of the desk — equity, phases, gate, sessions.

No script, font, stylesheet or image is fetched: the chart is inline SVG and the styles
are inline CSS, so the file opens offline and prints. Every value that comes from a
file is escaped. The numbers are the export's and the gate's (one definition, §4).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path

from trading_bot.logging.journal_index import moment_of
from trading_bot.logging.session_totals import closes_in_order, closes_seen, totals_by_session
from trading_bot.market_calendar import format_local
from trading_bot.money import money_str, ratio_str
from trading_bot.phase.engine import PhaseState
from trading_bot.phase.export import Export, SessionRow, avg_rr_of, describe_transition, export_from_state, win_rate_of
from trading_bot.phase.ledger import Ledger, effective_time
from trading_bot.phase.manager import PhaseManager
from trading_bot.phase.models import Phase
from trading_bot.phase.stint import StintProgress

LATEST_SESSIONS = 60
WIDTH, HEIGHT = 960, 340
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 34, 40
# Shades differ in lightness and each band carries its name, so colour is never needed.
BAND_FILL = {Phase.EXPERIENCE: "#f2f2f2", Phase.PROOF: "#dde8f3", Phase.TRIAL: "#f6e7c8", Phase.SCALING: "#dcefd9"}
MARKS = {"advance": "▲", "downgrade": "▼", "override": "◆", "reset": "●"}


def esc(value: object) -> str:
    """Every value from a file goes through here (operator ids, reasons, notes)."""
    return html.escape("" if value is None else str(value), quote=True)


@dataclass(frozen=True)
class EquityPoint:
    at: datetime
    equity: Decimal
    with_paper: Decimal


@dataclass(frozen=True)
class EquityCurve:
    """The points the chart draws (at most `limit`, the last always among them) and the
    lowest and highest value over every close and the starting equity (the chart's scale)."""

    points: list[EquityPoint]
    low: Decimal
    high: Decimal


def equity_curve(manager: PhaseManager, ledger: Ledger, starting: Decimal, closes: int, limit: int = 1500) -> EquityCurve:
    """Equity after each close (§4: experience is simulated money), and the same with it,
    streamed in close order: only the drawn points are kept. A close whose record names no
    phase takes the phase in force at its entry."""
    step = closes / limit
    wanted = list(range(closes)) if closes <= limit else [int(i * step) for i in range(limit - 1)] + [closes - 1]
    points: list[EquityPoint] = []
    equity = paper = low = high = starting
    next_wanted = iter(wanted)
    pick = next(next_wanted, -1)
    experience = Phase.EXPERIENCE.value
    for position, (exit_us, entry_us, phase, pnl) in enumerate(closes_in_order(manager.journal, manager.as_of)):
        if phase is None:
            phase = ledger.phase_at(moment_of(entry_us)).value
        if phase != experience:
            equity += pnl
        paper += pnl
        low, high = min(low, equity, paper), max(high, equity, paper)
        if position == pick:
            points.append(EquityPoint(moment_of(exit_us), equity, paper))
            pick = next(next_wanted, -1)
    return EquityCurve(points, low, high)


def equity_svg(state: PhaseState, curve: EquityCurve, start: datetime, end: datetime, tz: tzinfo) -> str:
    """The equity curve over the whole history, phases as labelled bands, transitions marked."""
    span = max((end - start).total_seconds(), 1.0)
    low, high = curve.low, curve.high
    if high == low:
        high = low + 1
    pad = (high - low) / 10
    low, high = low - pad, high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> float:
        return LEFT + plot_w * max(0.0, min(1.0, (moment - start).total_seconds() / span))

    def y(value: Decimal) -> float:
        return TOP + plot_h * float((high - value) / (high - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="Equity curve with phase bands" font-family="sans-serif" font-size="11">',
        "<title>Equity over the whole history, with the phase in force as labelled bands</title>",
    ]
    changes = list(state.ledger.phase_changes) or [(start, Phase.EXPERIENCE)]
    bands: list[tuple[datetime, datetime, Phase]] = []
    first_at = changes[0][0]
    if first_at > start:
        bands.append((start, first_at, Phase.EXPERIENCE))
    for index, (at, phase) in enumerate(changes):
        until = changes[index + 1][0] if index + 1 < len(changes) else end
        bands.append((max(at, start), until, phase))
    for band_start, band_end, phase in bands:
        x0, x1 = x(band_start), x(band_end)
        if x1 - x0 <= 0:
            continue
        parts.append(
            f'<rect x="{x0:.1f}" y="{TOP}" width="{x1 - x0:.1f}" height="{plot_h}" fill="{BAND_FILL[phase]}" '
            f'stroke="#999" stroke-width="0.5"><title>{esc(phase.title)} ({esc(phase.value)})</title></rect>'
        )
        label = phase.title if x1 - x0 > 7 * len(phase.title) else phase.value[0].upper()
        if x1 - x0 >= 9:
            parts.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{TOP - 6}" text-anchor="middle" font-weight="bold">{esc(label)}</text>')
    for tick in range(5):
        value = low + (high - low) * tick / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#ccc" stroke-dasharray="2,3"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">${esc(money_str(value))}</text>')
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 12}">{esc(format_local(start, tz))}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 12}" text-anchor="end">{esc(format_local(end, tz))}</text>')
    thin = curve.points
    if thin:
        starting = state.settings.account.starting_equity
        paper = f"M{x(start):.1f},{y(starting):.1f} " + " ".join(f"L{x(p.at):.1f},{y(p.with_paper):.1f}" for p in thin)
        real = f"M{x(start):.1f},{y(starting):.1f} " + " ".join(f"L{x(p.at):.1f},{y(p.equity):.1f}" for p in thin)
        parts.append(f'<path d="{paper}" fill="none" stroke="#777" stroke-width="1.2" stroke-dasharray="5,3"><title>including simulated (experience) P&amp;L</title></path>')
        parts.append(f'<path d="{real}" fill="none" stroke="#000" stroke-width="2"><title>equity (SPEC §4: experience is simulated money)</title></path>')
    for line in state.ledger.transitions:
        at = effective_time(line)
        kind = str(line.data.get("kind"))
        mx = x(at)
        parts.append(
            f'<g class="mark"><title>{esc(format_local(at, tz))}: {esc(describe_transition(line))}</title>'
            f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#000" stroke-width="1" stroke-dasharray="1,2"/>'
            f'<text x="{mx:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle" font-size="13">{esc(MARKS.get(kind, "■"))}</text></g>'
        )
    parts.append(
        f'<text x="{LEFT + 4}" y="{TOP + 14}">— equity   - - incl. simulated experience P&amp;L   '
        f"{esc(' '.join(f'{mark} {kind}' for kind, mark in MARKS.items()))}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)


STYLE = """
body{font-family:sans-serif;margin:2em auto;max-width:1000px;color:#000;background:#fff}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #999}
table{border-collapse:collapse;width:100%;font-size:.9em} th,td{border:1px solid #bbb;padding:3px 6px;text-align:right}
th{background:#eee} td.text,th.text{text-align:left} .met{font-weight:bold}
dl{display:grid;grid-template-columns:12em auto;gap:2px 1em} dt{font-weight:bold}
@media print{body{margin:0;max-width:none} h2{break-after:avoid} tr{break-inside:avoid}}
"""


def drawdown_text(progress: StintProgress) -> str:
    """The stint's max drawdown, or why it cannot be measured (a peak at or below zero)."""
    drawdown = progress.drawdown_pct()
    if drawdown is None:
        return f"not measurable (equity peak ${esc(money_str(progress.unmeasured_peak() or Decimal(0)))} is not above zero)"
    return f"{esc(ratio_str(drawdown))}%"


def render_report(manager: PhaseManager, state: PhaseState) -> str:
    """The page for the desk's records as the manager sees them now (or at --as-of)."""
    tz = manager.calendar.tz
    seen = closes_seen(manager.journal, manager.as_of)
    stint = state.ledger.stint
    first_times = [at for at, _ in state.ledger.phase_changes]
    if seen.earliest_entry is not None:
        first_times.append(seen.earliest_entry)
    start = min(first_times) if first_times else state.now
    end = max(state.now, start)
    export = export_from_state(manager, state, manager.calendar.session_of(start), manager.calendar.session_of(end))
    curve = equity_curve(manager, state.ledger, state.settings.account.starting_equity, seen.count)
    decision = manager.gate.entry_decision()
    gate = state.gate()
    tally = state.progress.tally
    rate, rr = tally.win_rate(), tally.avg_rr()
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Trading desk report — {esc(stint.phase.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Trading desk report</h1>",
        f"<p>Records as of {esc(format_local(state.now, tz))}; {seen.count} closed trades, {len(export.sessions)} sessions with activity.</p>",
        "<h2>Now</h2><dl>",
        f"<dt>Phase</dt><dd>{esc(stint.phase.title)} ({esc(stint.phase.value)})"
        + (f" since {esc(format_local(stint.phase_since, tz))}" if stint.phase_since else "")
        + "</dd>",
        f"<dt>Position size</dt><dd>${esc(money_str(decision.state.size))}</dd>",
        f"<dt>Equity</dt><dd>${esc(money_str(state.progress.equity))}</dd>",
        "<dt>Breaker</dt><dd>"
        + (f"TRIPPED: {esc(stint.breaker.reason)}" if stint.breaker.tripped else "ok")
        + "</dd>",
        f"<dt>New entries</dt><dd>{'allowed' if decision.allowed else 'refused: ' + esc(decision.reason)}</dd>",
        "</dl>",
        "<h2>This stint</h2><dl>",
        f"<dt>Since</dt><dd>{esc(format_local(stint.since, tz)) if stint.since else 'the first record'}</dd>",
        f"<dt>Closed trades</dt><dd>{tally.counted} ({tally.wins} wins, {tally.losses} losses, {tally.breakevens} breakeven)</dd>",
        f"<dt>Win rate</dt><dd>{esc(ratio_str(rate.value)) if rate.value is not None else esc(rate.detail)}</dd>",
        f"<dt>Average R:R</dt><dd>{esc(ratio_str(rr.value)) if rr.value is not None else esc(rr.detail)}</dd>",
        f"<dt>Max drawdown</dt><dd>{drawdown_text(state.progress)}</dd>",
        "</dl>",
        "<h2>Next gate</h2>",
    ]
    if gate is None:
        out.append("<p>Scaling is the top of the ladder.</p>")
    else:
        out.append(f"<p>{esc(gate.to_phase.title)} ({esc(gate.to_phase.value)}): <b>{'READY' if gate.ready else 'not ready'}</b></p>")
        out.append('<table><tr><th class="text">criterion</th><th>met</th><th>actual</th><th>required</th><th class="text">detail</th></tr>')
        for criterion in gate.criteria:
            mark = "✓ yes" if criterion.met else "✗ no"
            out.append(
                f'<tr><td class="text">{esc(criterion.name)}</td><td class="met">{mark}</td><td>{esc(criterion.actual)}</td>'
                f'<td>{esc(criterion.required)}</td><td class="text">{esc(criterion.detail)}</td></tr>'
            )
        out.append("</table>")
    out.append("<h2>Equity and phases</h2>")
    out.append(equity_svg(state, curve, start, end, tz))
    out.append(_transitions_table(export, tz))
    out.append(sessions_table(export.sessions))
    out.append(_months_table(manager, export))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _transitions_table(export: Export, tz: tzinfo) -> str:
    rows = ['<h2>Transitions</h2><table><tr><th class="text">when</th><th class="text">what</th><th class="text">by</th></tr>']
    for line in export.transitions:
        rows.append(
            f'<tr><td class="text">{esc(format_local(effective_time(line), tz))}</td>'
            f'<td class="text">{esc(describe_transition(line))}</td><td class="text">{esc(line.data.get("operator_id"))}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def sessions_table(sessions: list[SessionRow]) -> str:
    """Newest first, and only the latest ones: the months table covers the rest."""
    latest = list(reversed(sessions))[:LATEST_SESSIONS]
    title = "Sessions, newest first" + (f" (the latest {LATEST_SESSIONS} of {len(sessions)})" if len(sessions) > LATEST_SESSIONS else "")
    rows = [
        f"<h2>{title}</h2><table><tr><th class=\"text\">date</th><th class=\"text\">phase</th><th>trades</th><th>wins</th>"
        "<th>losses</th><th>win rate</th><th>R:R</th><th>P&amp;L</th><th>size</th><th class=\"text\">notes</th></tr>"
    ]
    for row in latest:
        d = row.to_json()
        rows.append(
            "<tr>"
            + f'<td class="text">{esc(d["date"])}</td><td class="text">{esc(d["phase"])}</td>'
            + "".join(f"<td>{esc(d[key] if d[key] is not None else '—')}</td>" for key in ("trades", "wins", "losses", "win_rate", "avg_rr", "total_pnl", "position_size"))
            + f'<td class="text">{esc(d["notes"])}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def _month(session: date) -> str:
    return session.strftime("%Y-%m")


def _months_table(manager: PhaseManager, export: Export) -> str:
    """Every month in one row, so a ten-year history stays a small page; each month's
    closes are summed in the journal index (by the session each counts in)."""
    by_month = totals_by_session(manager.journal, manager.calendar, as_of=manager.as_of, key=_month).groups
    sessions_by_month: dict[str, int] = {}
    for row in export.sessions:
        key = _month(row.metrics.date)
        sessions_by_month[key] = sessions_by_month.get(key, 0) + 1
    rows = [
        '<h2>Months, newest first</h2><table><tr><th class="text">month</th><th>sessions</th><th>trades</th><th>wins</th>'
        "<th>losses</th><th>win rate</th><th>R:R</th><th>P&amp;L</th></tr>"
    ]
    for month in sorted(set(by_month) | set(sessions_by_month), reverse=True):
        totals = by_month.get(month)
        if totals is None:
            counted = wins = losses = 0
            rate = rr = "—"
            pnl = Decimal(0)
        else:
            counted, wins, losses, pnl = totals.counted, totals.wins, totals.losses, totals.net_pnl
            win_rate, avg_rr = win_rate_of(totals).value, avg_rr_of(totals).value
            rate = "—" if win_rate is None else ratio_str(win_rate)
            rr = "—" if avg_rr is None else ratio_str(avg_rr)
        rows.append(
            f'<tr><td class="text">{esc(month)}</td><td>{sessions_by_month.get(month, 0)}</td><td>{counted}</td>'
            f"<td>{wins}</td><td>{losses}</td><td>{esc(rate)}</td><td>{esc(rr)}</td><td>{esc(money_str(pnl))}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def build_report(manager: PhaseManager) -> str:
    return render_report(manager, manager.state())


def default_report_path(manager: PhaseManager) -> Path:
    """Beside config.json, where the desk's other files are."""
    return manager.config_path.resolve().parent / "report.html"
