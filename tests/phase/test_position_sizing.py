"""Position size (SPEC §6), through the real bot loop: the size each entry is placed at.

The desk enters at $10 a share, so an entry's quantity is its dollar size ÷ 10.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.phase.conftest import PASSWORD, Desk, advance_to
from trading_bot.config import ScalingSettings, WinStreakIncrease
from trading_bot.phase.position_sizing import streak_at_step


def size_now(desk: Desk) -> Decimal:
    return desk.app.state().size


def size_changes(desk: Desk) -> list[dict[str, Any]]:
    return [line for line in desk.history() if line["type"] == "size_change"]


def entered_quantity(desk: Desk) -> int:
    entry = desk.enter()
    assert entry.accepted, entry.reason
    assert entry.record is not None
    return entry.record.quantity


def scaling_from_an_open(desk: Desk) -> None:
    """Scaling entered on one day, trading from the next session: $200 in force at its open."""
    advance_to(desk, "scaling")
    desk.next_session()


def wins(count: int) -> list[int]:
    return [1] * count


# ---- the phases' sizes ------------------------------------------------------------------


def test_experience_enters_at_its_configured_position_size(desk: Desk) -> None:
    desk.edit_config({("phase_progression", "experience", "position_size"): 250})
    assert entered_quantity(desk) == 25


def test_experience_default_size_is_100(desk: Desk) -> None:
    assert entered_quantity(desk) == 10


def test_proof_enters_at_100(desk: Desk) -> None:
    advance_to(desk, "proof")
    assert entered_quantity(desk) == 10


def test_trial_enters_at_200(desk: Desk) -> None:
    advance_to(desk, "trial")
    assert entered_quantity(desk) == 20


def test_scaling_starts_at_200(desk: Desk) -> None:
    advance_to(desk, "scaling")
    assert entered_quantity(desk) == 20


# ---- the winning-streak step ----------------------------------------------------------------


def test_four_wins_keep_the_starting_size(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(4))
    assert size_now(desk) == Decimal("200")
    assert size_changes(desk) == []


def test_fifth_consecutive_win_adds_100(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(5))
    assert size_now(desk) == Decimal("300")
    assert entered_quantity(desk) == 30


def test_size_step_is_recorded_with_its_reason(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(5))
    [line] = size_changes(desk)
    assert (line["from_size"], line["to_size"]) == ("200.00", "300.00")
    assert "5 consecutive wins" in line["reason"]
    assert line["phase"] == "scaling"


def test_sixth_win_adds_nothing(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(6))
    assert size_now(desk) == Decimal("300")
    assert len(size_changes(desk)) == 1


def test_tenth_consecutive_win_adds_another_100(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(10))
    assert size_now(desk) == Decimal("400")
    assert "10 consecutive wins" in size_changes(desk)[-1]["reason"]


def scaling_rules(streak_rule: WinStreakIncrease | None) -> ScalingSettings:
    return ScalingSettings(
        max_trades_per_day=None, position_size_min=Decimal("200"), position_size_max=Decimal("2000"),
        max_portfolio_pct=None, increase_on_win_streak=streak_rule, increase_on_win_rate=None, downgrade_triggers=None,
    )


@pytest.mark.parametrize(
    ("streak", "due"), [(0, False), (4, False), (5, True), (6, False), (9, False), (10, True), (11, False)]
)
def test_a_streak_stands_at_a_step_only_on_a_multiple_of_every(streak: int, due: bool) -> None:
    """The question the fold asks of each scaling close before it looks up a size."""
    assert streak_at_step(scaling_rules(WinStreakIncrease(every=5, amount=Decimal("100"))), streak) is due


def test_no_streak_stands_at_a_step_without_the_rule() -> None:
    assert not any(streak_at_step(scaling_rules(None), streak) for streak in range(12))


@pytest.mark.parametrize("breaker", [-5, 0], ids=["loss", "breakeven"])
def test_a_loss_or_breakeven_resets_the_winning_streak(desk: Desk, breaker: int) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(4), breaker, *wins(4))
    assert size_now(desk) == Decimal("200")
    desk.trade(1)
    assert size_now(desk) == Decimal("300")


def test_a_flagged_win_does_not_extend_the_streak(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(4))
    desk.trade(1, emergency=True)
    assert size_now(desk) == Decimal("200")
    desk.trade(1)
    assert size_now(desk) == Decimal("300")


def test_a_flagged_loss_does_not_break_the_streak(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(4))
    desk.trade(-1, emergency=True)
    desk.trade(1)
    assert size_now(desk) == Decimal("300")


# ---- the bounds -------------------------------------------------------------------------------


def test_size_never_exceeds_double_the_size_at_the_sessions_open(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(15))
    assert size_now(desk) == Decimal("400")
    assert [line["to_size"] for line in size_changes(desk)] == ["300.00", "400.00"]


def test_the_double_cap_lifts_at_the_next_sessions_open(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(15))
    desk.next_session()
    desk.trades(*wins(5))
    assert size_now(desk) == Decimal("500")


def test_double_cap_holds_in_the_session_the_stint_began(desk: Desk) -> None:
    advance_to(desk, "scaling")  # the first history line, mid-session: at the open, $100 or at most $200
    desk.trades(*wins(15))
    assert size_now(desk) <= Decimal("400")


def test_size_never_exceeds_2000(desk: Desk) -> None:
    desk.edit_config(
        {
            ("account", "starting_equity"): 100000,
            ("phase_progression", "scaling", "increase_on_win_streak", "amount"): 1000,
        }
    )
    scaling_from_an_open(desk)
    desk.trades(*wins(25), per_session=5)
    assert [line["to_size"] for line in size_changes(desk)] == ["400.00", "800.00", "1600.00", "2000.00"]
    assert size_now(desk) == Decimal("2000")
    assert entered_quantity(desk) == 200


# ---- 5% of equity, at every check ------------------------------------------------------------------


def _recorded_600(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(10))  # 300, 400
    desk.next_session()
    desk.trades(*wins(10))  # 500, 600; equity 10,020
    assert size_changes(desk)[-1]["to_size"] == "600.00"


def test_equity_cap_limits_a_recorded_600_to_5_percent_of_equity(desk: Desk) -> None:
    _recorded_600(desk)
    assert size_now(desk) == Decimal("501.00")
    assert entered_quantity(desk) == 50


def test_equity_cap_follows_equity_at_every_check(desk: Desk) -> None:
    _recorded_600(desk)
    entry = desk.enter()
    desk.close(entry, -20, emergency=True)  # equity back to 10,000; the streak is untouched
    assert size_now(desk) == Decimal("500")
    assert size_changes(desk)[-1]["to_size"] == "600.00"


@pytest.mark.parametrize(("equity", "allowed"), [("3999.99", False), ("4000", True), ("4000.01", True)])
def test_equity_cap_below_the_scaling_minimum_refuses_entries(desk: Desk, equity: str, allowed: bool) -> None:
    advance_to(desk, "scaling")
    desk.edit_config({("account", "starting_equity"): Decimal(equity)})
    result = desk.enter()
    assert result.accepted is allowed, result.reason
    if allowed:
        assert result.record is not None and result.record.quantity == 20
    else:
        assert "below the scaling minimum" in (result.reason or "")


def test_equity_cap_of_150_refuses_with_that_reason(desk: Desk) -> None:
    advance_to(desk, "scaling")
    desk.edit_config({("account", "starting_equity"): 3000})
    result = desk.enter()
    assert not result.accepted
    assert result.reason is not None and "$150.00" in result.reason and "$200.00" in result.reason
    [refusal] = [line for line in desk.overrides() if line["type"] == "entry_refused"]
    assert refusal["reason"] == result.reason


# ---- the win-rate step ---------------------------------------------------------------------------


def _win_rate_only(desk: Desk) -> None:
    desk.edit_config({("phase_progression", "scaling", "increase_on_win_streak"): None})
    scaling_from_an_open(desk)


def _sessions(desk: Desk, sessions: list[list[int]]) -> None:
    """One list of P&Ls per session; then move to the next session and let the bot check."""
    for index, pnls in enumerate(sessions):
        if index:
            desk.next_session()
        desk.trades(*pnls)
    desk.next_session()
    desk.bot.check_entry("AAPL", "BUY", Decimal("10"))


# 7 wins in 10 sessions of one trade each, never three losses in a row: exactly 0.70.
SEVENTY = [[1], [-1], [1], [1], [-1], [1], [1], [-1], [1], [1]]
# 9 wins of 13 trades in 10 sessions: 0.6923.
BELOW_SEVENTY = [[1, -1], [1], [1, -1], [1], [1, -1], [1], [-1], [1], [1], [1]]


def test_win_rate_step_needs_ten_sessions_with_trades(desk: Desk) -> None:
    _win_rate_only(desk)
    _sessions(desk, [[1]] * 9)
    assert size_now(desk) == Decimal("200")
    assert size_changes(desk) == []


def test_win_rate_of_0_70_over_ten_sessions_adds_200_at_the_close(desk: Desk) -> None:
    _win_rate_only(desk)
    _sessions(desk, SEVENTY)
    assert size_now(desk) == Decimal("400")
    [line] = size_changes(desk)
    assert (line["from_size"], line["to_size"]) == ("200.00", "400.00")
    assert "win rate" in line["reason"]


def test_win_rate_below_0_70_over_ten_sessions_adds_nothing(desk: Desk) -> None:
    _win_rate_only(desk)
    _sessions(desk, BELOW_SEVENTY)
    assert size_now(desk) == Decimal("200")
    assert size_changes(desk) == []


def test_win_rate_step_waits_for_the_sessions_close(desk: Desk) -> None:
    _win_rate_only(desk)
    _sessions(desk, SEVENTY[:9])
    desk.trades(*SEVENTY[9])  # the tenth session, still open
    assert size_now(desk) == Decimal("200")


# ---- stints and sizes ----------------------------------------------------------------------------


def test_a_progress_reset_keeps_the_size(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(5))
    code, _, err = desk.cli(
        "override", "--reset-progress", "--operator", "alice", "--reason", "new strategy", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 0, err
    desk.start()
    assert desk.transitions()[-1]["kind"] == "reset"
    assert desk.transitions()[-1]["position_size"] == "300.00"
    assert entered_quantity(desk) == 30


def test_the_streak_starts_again_after_a_progress_reset(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(3))
    code, _, err = desk.cli(
        "override", "--reset-progress", "--operator", "alice", "--reason", "new strategy", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 0, err
    desk.start()
    desk.trades(*wins(2))
    assert size_now(desk) == Decimal("200")


def test_entering_a_phase_by_override_starts_at_its_size(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(5))
    advance_to(desk, "trial")
    assert entered_quantity(desk) == 20


def test_reentering_scaling_by_override_starts_at_200(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(5))
    advance_to(desk, "trial")
    advance_to(desk, "scaling")
    assert size_now(desk) == Decimal("200")


def test_downgrade_from_scaling_at_300_halves_to_150(desk: Desk) -> None:
    scaling_from_an_open(desk)
    desk.trades(*wins(5), -1, -1, -1)
    assert desk.app.state().phase.value == "trial"
    assert size_now(desk) == Decimal("150")
    desk.cli("acknowledge", "--operator", "alice")
    assert entered_quantity(desk) == 15


def test_downgrade_from_trial_sets_proofs_100(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-1, -1, -1)
    desk.cli("acknowledge", "--operator", "alice")
    desk.next_session()
    assert entered_quantity(desk) == 10


# ---- dollars to whole shares --------------------------------------------------------------------------


def test_dollars_become_whole_shares_rounded_down(desk: Desk) -> None:
    entry = desk.bot.execute_trade("AAPL", "BUY", Decimal("33.33"))
    assert entry.accepted, entry.reason
    assert entry.record is not None and entry.record.quantity == 3


def test_exactly_one_share_is_placed(desk: Desk) -> None:
    entry = desk.bot.execute_trade("AAPL", "BUY", Decimal("100"))
    assert entry.accepted, entry.reason
    assert entry.record is not None and entry.record.quantity == 1


def test_an_order_rounding_to_zero_shares_is_refused_clearly(desk: Desk) -> None:
    entry = desk.bot.execute_trade("AAPL", "BUY", Decimal("100.01"))
    assert not entry.accepted
    assert entry.reason == "$100.00 buys 0 whole shares at $100.01; order refused"
    [refusal] = [line for line in desk.overrides() if line["type"] == "entry_refused"]
    assert refusal["operator_id"] == "bot"
    assert refusal["reason"] == entry.reason
