"""The printed timeline: one line per event, a run of the same refusal folded into one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from trading_bot.phase.timeline import ENTRY_REFUSED, TimelineEvent, render_timeline

AT = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)  # 10:00 EST


def refusal(minutes: int, check: str = "phase_entry_limit") -> TimelineEvent:
    return TimelineEvent(AT + timedelta(minutes=minutes), ENTRY_REFUSED, "1/1 trades this session (proof)", check=check)


def test_a_run_of_the_same_refusal_is_one_line_with_its_count_and_last_time() -> None:
    lines = render_timeline([refusal(0), refusal(1), refusal(2)], "America/New_York")
    assert lines == ["2026-03-02 10:00 EST  entry refused (×3, last 2026-03-02 10:02 EST): 1/1 trades this session (proof)"]


def test_a_single_refusal_has_no_count_and_another_reason_starts_a_new_line() -> None:
    lines = render_timeline([refusal(0), refusal(1, "phase_breaker")], "America/New_York")
    assert len(lines) == 2
    assert lines[0] == "2026-03-02 10:00 EST  entry refused: 1/1 trades this session (proof)"


def test_another_event_between_refusals_splits_the_run() -> None:
    advance = TimelineEvent(AT + timedelta(minutes=1), "advance", "advance experience → proof, size $100.00")
    lines = render_timeline([refusal(0), advance, refusal(2)], "America/New_York")
    assert [line.split("  ", 1)[1] for line in lines] == [
        "entry refused: 1/1 trades this session (proof)",
        "advance experience → proof, size $100.00",
        "entry refused: 1/1 trades this session (proof)",
    ]


def test_a_run_keeps_only_the_clauses_every_refusal_in_it_shares() -> None:
    def limit(day: int) -> TimelineEvent:
        text = f"1/1 trades this session (proof); next trade allowed 2026-03-0{day + 1} 07:00 EST (in 21h 0m)"
        return TimelineEvent(AT + timedelta(days=day), ENTRY_REFUSED, text, check="phase_entry_limit")

    lines = render_timeline([limit(2), limit(3)], "America/New_York")
    assert lines == ["2026-03-04 10:00 EST  entry refused (×2, last 2026-03-05 10:00 EST): 1/1 trades this session (proof)"]
    # One refusal, or a run that says the same throughout, keeps its whole text.
    assert render_timeline([limit(2)], "America/New_York")[0].endswith("(proof); next trade allowed 2026-03-03 07:00 EST (in 21h 0m)")
    assert render_timeline([limit(2), limit(2)], "America/New_York")[0].endswith("next trade allowed 2026-03-03 07:00 EST (in 21h 0m)")
    # Texts that differ from their first clause on are shown by the first one's first clause.
    odd = TimelineEvent(AT, ENTRY_REFUSED, "size cap; a", check="phase_entry_limit")
    other = TimelineEvent(AT, ENTRY_REFUSED, "day cap; b", check="phase_entry_limit")
    assert render_timeline([odd, other], "America/New_York")[0].endswith(": size cap")
