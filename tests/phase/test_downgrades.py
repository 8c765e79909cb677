"""Automatic downgrades and the phase circuit breaker (SPEC §9, §14), through the real bot loop.

Every test trades on the desk (entries through the validation chain, closes the phase
system sees at once) and reads the real history and override logs back.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tests.phase.conftest import Desk, advance_to

# ---- small readers of the desk's records ------------------------------------------------


def downgrades(desk: Desk) -> list[dict[str, Any]]:
    return [line for line in desk.transitions() if line["kind"] == "downgrade"]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def phase_now(desk: Desk) -> str:
    return desk.app.state().phase.value


def size_now(desk: Desk) -> Decimal:
    return desk.app.state().size


def entry_refusals(desk: Desk) -> list[dict[str, Any]]:
    return [line for line in desk.overrides() if line["type"] == "entry_refused"]


def big_positions(desk: Desk, phase: str, size: int = 2000) -> None:
    """Let one position carry a loss above 5% of $10,000 equity (risk checks widened to match)."""
    desk.edit_config(
        {
            ("phase_progression", phase, "position_size"): size,
            ("risk_management", "max_position_pct"): 100,
            ("risk_management", "max_daily_loss_pct"): None,
        }
    )


LOWER = {"proof": ("experience", Decimal("100")), "trial": ("proof", Decimal("100")), "scaling": ("trial", Decimal("100"))}


# ---- consecutive losses -------------------------------------------------------------


@pytest.mark.parametrize("phase", ["proof", "trial", "scaling"])
def test_three_consecutive_losses_downgrade_one_phase_at_once(desk: Desk, phase: str) -> None:
    advance_to(desk, phase)
    desk.trades(-5, -5, -5, per_session=1)
    lower, size = LOWER[phase]
    assert phase_now(desk) == lower
    assert size_now(desk) == size
    [line] = downgrades(desk)
    assert (line["from_phase"], line["to_phase"]) == (phase, lower)


@pytest.mark.parametrize("phase", ["proof", "trial", "scaling"])
def test_two_consecutive_losses_do_not_downgrade(desk: Desk, phase: str) -> None:
    advance_to(desk, phase)
    desk.trades(-5, -5, per_session=1)
    assert phase_now(desk) == phase
    assert downgrades(desk) == []


@pytest.mark.parametrize(("losses", "fires"), [(3, False), (4, True)])
def test_consecutive_losses_limit_is_read_from_config(desk: Desk, losses: int, fires: bool) -> None:
    desk.edit_config({("phase_progression", "trial", "downgrade_triggers", "consecutive_losses"): 4})
    advance_to(desk, "trial")
    desk.trades(*[-5] * losses)
    assert (phase_now(desk) == "proof") is fires


def test_a_win_between_losses_resets_the_run(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5, 5, -5, -5)
    assert phase_now(desk) == "trial"
    assert downgrades(desk) == []


def test_a_breakeven_between_losses_resets_the_run(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5, 0, -5, -5)
    assert desk.history()  # the desk really traded
    assert phase_now(desk) == "trial"
    assert downgrades(desk) == []


def test_a_flagged_winning_emergency_exit_does_not_reset_the_run(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5)
    desk.trade(5, emergency=True)
    desk.trade(-5)
    assert phase_now(desk) == "proof"
    [line] = downgrades(desk)
    assert line["metrics"]["consecutive_losses"] == 3


def test_a_flagged_losing_emergency_exit_does_not_extend_the_run(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5)
    desk.trade(-5, emergency=True)
    assert phase_now(desk) == "trial"
    assert downgrades(desk) == []


def test_experience_has_no_downgrade_triggers(desk: Desk) -> None:
    desk.trades(-5, -5, -5, -5)
    assert phase_now(desk) == "experience"
    assert downgrades(desk) == []


# ---- rolling win rate -----------------------------------------------------------------

# One win, two losses, repeated: a win rate of 1/3 that never has 3 losses in a row.
LOW_RATE = [5, -5, -5] * 7


def test_rolling_win_rate_cannot_fire_on_the_first_nineteen_trades(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(*LOW_RATE[:19])
    assert phase_now(desk) == "trial"
    assert downgrades(desk) == []


def test_rolling_win_rate_fires_at_the_twentieth_trade(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(*LOW_RATE[:19])
    desk.trade(LOW_RATE[19])
    assert phase_now(desk) == "proof"
    [line] = downgrades(desk)
    assert [hit["name"] for hit in line["triggers"]] == ["rolling_win_rate"]
    assert line["metrics"]["trades"] == 20


def _twenty_with_wins(wins: int) -> list[int]:
    """20 trades with `wins` wins and never three losses in a row."""
    outcomes = [-5] * 20
    for index in range(wins):
        outcomes[(index * 20) // wins] = 5
    assert outcomes.count(5) == wins
    assert "-5, -5, -5" not in str(outcomes)
    return outcomes


@pytest.mark.parametrize(("wins", "fires"), [(10, True), (11, False), (12, False)])
def test_rolling_win_rate_fires_only_strictly_below_the_minimum(desk: Desk, wins: int, fires: bool) -> None:
    advance_to(desk, "trial")
    desk.trades(*_twenty_with_wins(wins))
    assert (phase_now(desk) == "proof") is fires
    assert len(downgrades(desk)) == (1 if fires else 0)


def test_flagged_trades_do_not_fill_the_rolling_window(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(*LOW_RATE[:19])
    desk.trade(5, emergency=True)
    assert phase_now(desk) == "trial"
    desk.trade(-5)
    assert phase_now(desk) == "proof"


def test_breakevens_count_against_the_rolling_win_rate(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(*[5, 0] * 10)  # no loss at all, but 10 wins of 20 trades
    assert phase_now(desk) == "proof"
    [line] = downgrades(desk)
    assert [hit["name"] for hit in line["triggers"]] == ["rolling_win_rate"]


# ---- daily loss -----------------------------------------------------------------------


@pytest.mark.parametrize(("pnl", "fires"), [("-499.99", False), ("-500.00", False), ("-500.01", True)])
def test_daily_loss_above_five_percent_of_opening_equity_downgrades_trial(desk: Desk, pnl: str, fires: bool) -> None:
    big_positions(desk, "trial")
    advance_to(desk, "trial")
    desk.trade(pnl)
    assert (phase_now(desk) == "proof") is fires
    if fires:
        [line] = downgrades(desk)
        assert [hit["name"] for hit in line["triggers"]] == ["max_daily_loss_pct"]


@pytest.mark.parametrize(("last", "fires"), [("-100.03", False), ("-100.04", True)])
def test_daily_loss_downgrades_scaling(desk: Desk, last: str, fires: bool) -> None:
    desk.edit_config({("risk_management", "max_daily_loss_pct"): None})
    advance_to(desk, "scaling")
    # $200 positions: the session nets -500.00 (exactly 5%) or -500.01, never three losses in a row.
    desk.trades("-199.99", "-199.99", "0.01", last)
    assert (phase_now(desk) == "trial") is fires
    if fires:
        [line] = downgrades(desk)
        assert [hit["name"] for hit in line["triggers"]] == ["max_daily_loss_pct"]


def test_daily_loss_is_the_net_of_the_sessions_stint_trades(desk: Desk) -> None:
    big_positions(desk, "trial")
    advance_to(desk, "trial")
    desk.trades(-300, 100)
    assert phase_now(desk) == "trial"
    desk.trade("-300.01")
    assert phase_now(desk) == "proof"
    [line] = downgrades(desk)
    assert [hit["name"] for hit in line["triggers"]] == ["max_daily_loss_pct"]


def test_daily_loss_is_measured_against_equity_at_the_sessions_open(desk: Desk) -> None:
    big_positions(desk, "trial")
    advance_to(desk, "trial")
    desk.trade(1000)  # equity 11,000 at the next open: the limit is $550
    desk.next_session()
    desk.trade("-550.00")
    assert phase_now(desk) == "trial"
    desk.next_session()  # equity 10,450: the limit is $522.50
    desk.trade("-522.51")
    assert phase_now(desk) == "proof"


def test_daily_loss_counts_only_the_new_stints_trades_after_a_downgrade(desk: Desk) -> None:
    desk.edit_config({("risk_management", "max_daily_loss_pct"): None})
    advance_to(desk, "scaling")
    desk.trades("-199.99", "-199.99", "0.01", "-100.04")
    assert phase_now(desk) == "trial"
    desk.cli("acknowledge", "--operator", "alice")
    desk.trade(-5)  # same session: -505.01 in all, but -5.00 in the trial stint
    assert phase_now(desk) == "trial"
    assert len(downgrades(desk)) == 1


def test_daily_loss_trigger_is_off_in_proof_by_default(desk: Desk) -> None:
    big_positions(desk, "proof")
    advance_to(desk, "proof")
    desk.trade(-600)
    assert phase_now(desk) == "proof"
    assert downgrades(desk) == []


def test_daily_loss_in_proof_fires_when_configured(desk: Desk) -> None:
    big_positions(desk, "proof")
    desk.edit_config({("phase_progression", "proof", "downgrade_triggers", "max_daily_loss_pct"): 5})
    advance_to(desk, "proof")
    desk.trade("-500.01")
    assert phase_now(desk) == "experience"


def test_a_flagged_loss_counts_in_the_daily_loss(desk: Desk) -> None:
    big_positions(desk, "trial")
    advance_to(desk, "trial")
    desk.trade(-300)
    desk.trade("-200.01", emergency=True)
    assert phase_now(desk) == "proof"
    [line] = downgrades(desk)
    assert [hit["name"] for hit in line["triggers"]] == ["max_daily_loss_pct"]


# ---- the downgrade line -----------------------------------------------------------------


def test_downgrade_is_one_transition_line_with_everything_in_it(desk: Desk) -> None:
    big_positions(desk, "trial")
    advance_to(desk, "trial")
    before = len(desk.transitions())
    desk.trades(-100, -100)
    last = desk.trade("-300.01")
    after = desk.transitions()
    assert len(after) == before + 1
    line = after[-1]
    assert line["kind"] == "downgrade"
    assert (line["from_phase"], line["to_phase"]) == ("trial", "proof")
    assert line["position_size"] == "100.00"
    assert line["breaker"]["tripped"] is True
    assert "3 consecutive losses" in line["breaker"]["reason"]
    assert line["mode"] == "paper"
    assert when(line["effective_at"]) == last.exit_timestamp
    assert {hit["name"] for hit in line["triggers"]} == {"consecutive_losses", "max_daily_loss_pct"}
    assert line["metrics"]["trades"] == 3
    assert line["metrics"]["losses"] == 3
    assert line["metrics"]["consecutive_losses"] == 3


def test_downgrade_from_trial_halves_the_size_capped_at_proofs_size(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5, -5)
    [line] = downgrades(desk)
    assert (line["previous_size"], line["position_size"]) == ("200.00", "100.00")
    entry = _enter_after_acknowledging(desk)
    assert entry.record is not None and entry.record.quantity == 10


def test_downgrade_from_scaling_at_600_is_capped_at_trials_size(desk: Desk) -> None:
    advance_to(desk, "scaling")
    desk.trades(*[1] * 10)  # 300, then 400 (double the open)
    desk.next_session()
    desk.trades(*[1] * 10)  # 500, then 600
    assert [line["to_size"] for line in desk.history() if line["type"] == "size_change"][-1] == "600.00"
    desk.trades(-5, -5, -5)
    [line] = downgrades(desk)
    assert (line["previous_size"], line["position_size"]) == ("600.00", "200.00")
    assert size_now(desk) == Decimal("200")


def test_downgrade_from_scaling_at_200_halves_to_100(desk: Desk) -> None:
    advance_to(desk, "scaling")
    desk.trades(-5, -5, -5)
    [line] = downgrades(desk)
    assert (line["previous_size"], line["position_size"]) == ("200.00", "100.00")


def test_downgrade_into_experience_uses_experiences_configured_size(desk: Desk) -> None:
    desk.edit_config({("phase_progression", "experience", "position_size"): 150})
    advance_to(desk, "proof")
    desk.trades(-5, -5, -5, per_session=1)
    [line] = downgrades(desk)
    assert line["to_phase"] == "experience"
    assert line["position_size"] == "150.00"
    assert size_now(desk) == Decimal("150")


# ---- the breaker --------------------------------------------------------------------------


def _enter_after_acknowledging(desk: Desk):  # noqa: ANN202 - a TradeResult
    code, _, err = desk.cli("acknowledge", "--operator", "alice")
    assert code == 0, err
    desk.next_session()
    entry = desk.enter()
    assert entry.accepted, entry.reason
    return entry


def test_breaker_refuses_entries_after_a_downgrade(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5, -5)
    desk.next_session()
    result = desk.enter()
    assert not result.accepted
    assert "breaker" in (result.reason or "")


def test_breaker_stays_tripped_across_a_restart(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5, -5)
    desk.start()
    desk.next_session()
    result = desk.enter()
    assert not result.accepted
    assert "breaker" in (result.reason or "")
    refusal = entry_refusals(desk)[-1]
    assert refusal["operator_id"] == "bot"
    assert refusal["reason"] == result.reason


def test_acknowledge_clears_the_breaker_and_entries_resume(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5, -5)
    desk.start()
    code, out, err = desk.cli("acknowledge", "--operator", "alice", "--note", "reviewed")
    assert code == 0, err
    ack = desk.history()[-1]
    assert ack["type"] == "breaker_ack"
    assert ack["operator_id"] == "alice"
    desk.next_session()
    assert desk.enter().accepted


def test_acknowledge_with_nothing_tripped_exits_0_and_records_nothing(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.cli("status")  # apply anything due, so only the acknowledge could write
    before = desk.snapshot_files()
    code, out, err = desk.cli("acknowledge", "--operator", "alice")
    assert code == 0, err
    assert "nothing recorded" in out
    assert desk.snapshot_files() == before


def test_an_override_does_not_clear_the_breaker(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5, -5)
    advance_to(desk, "trial")
    desk.next_session()
    result = desk.enter()
    assert not result.accepted
    assert "breaker" in (result.reason or "")


# ---- stints after a downgrade ---------------------------------------------------------------


def test_losses_that_caused_a_downgrade_do_not_count_again(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5, -5)
    _enter_after_acknowledging_and_close(desk, -5)
    assert phase_now(desk) == "proof"
    assert len(downgrades(desk)) == 1


def _enter_after_acknowledging_and_close(desk: Desk, pnl: int) -> None:
    entry = _enter_after_acknowledging(desk)
    desk.close(entry, pnl)


def test_three_new_losses_in_the_lower_stint_downgrade_again(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5, -5)
    _enter_after_acknowledging_and_close(desk, -5)
    desk.next_session()
    desk.trade(-5)
    desk.next_session()
    desk.trade(-5)
    assert phase_now(desk) == "experience"
    assert [(line["from_phase"], line["to_phase"]) for line in downgrades(desk)] == [("trial", "proof"), ("proof", "experience")]


def test_rolling_window_starts_empty_in_the_new_stint(desk: Desk) -> None:
    advance_to(desk, "scaling")
    desk.trades(*LOW_RATE[:19], -5)  # 20th trade: 6 wins of 20, and no third loss in a row
    assert phase_now(desk) == "trial"
    desk.cli("acknowledge", "--operator", "alice")
    desk.trades(*LOW_RATE[:19])  # a low rate in trial, but only 19 trades of this stint
    assert phase_now(desk) == "trial"
    assert len(downgrades(desk)) == 1


# ---- mode ---------------------------------------------------------------------------------


def test_downgrade_into_experience_forces_paper_mode_in_config(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.edit_config({("trading", "mode"): "live"})
    assert desk.bot.mode.mode == "live"
    desk.trades(-5, -5, -5, per_session=1)
    [line] = downgrades(desk)
    assert line["mode"] == "paper"
    assert desk.bot.mode.mode == "paper"
    config = json.loads(desk.config_path.read_text(encoding="utf-8"))
    assert config["trading"]["mode"] == "paper"
    assert config["phase_progression"]["current_phase"] == "experience"


def test_downgrade_into_experience_switches_a_live_bot_to_paper(desk: Desk) -> None:
    advance_to(desk, "proof")
    desk.bot.mode.switch_to_live()
    desk.trades(-5, -5, -5, per_session=1)
    assert desk.bot.mode.mode == "paper"
    config = json.loads(desk.config_path.read_text(encoding="utf-8"))
    assert config["trading"]["mode"] == "paper"


def test_downgrade_between_live_phases_keeps_live_mode(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.edit_config({("trading", "mode"): "live"})
    desk.trades(-5, -5, -5)
    [line] = downgrades(desk)
    assert line["mode"] == "live"
    assert desk.bot.mode.mode == "live"


# ---- a downgrade found late -------------------------------------------------------------------


def _write_foreign_losses(desk: Desk, start: datetime, count: int) -> list[datetime]:
    """Closed losses written by another process (no `phase` field); returns their exit times."""
    folder = desk.logs_dir / "trades"
    folder.mkdir(parents=True, exist_ok=True)
    exits = []
    lines = []
    for index in range(count):
        entered = start + timedelta(minutes=10 * index)
        exited = entered + timedelta(minutes=1)
        exits.append(exited)
        lines.append(
            json.dumps(
                {
                    "timestamp": entered.isoformat().replace("+00:00", "Z"),
                    "exit_timestamp": exited.isoformat().replace("+00:00", "Z"),
                    "symbol": "MSFT",
                    "action": "BUY",
                    "quantity": 10,
                    "price": "10",
                    "order_id": f"other-{index + 1}",
                    "outcome": "loss",
                    "net_profit_loss": "-5.00",
                    "execution_mode": "PAPER",
                }
            )
        )
    (folder / "other-process.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return exits


def test_downgrade_found_late_is_effective_at_the_triggering_close(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.cli("status")
    start = desk.now() + timedelta(minutes=5)
    exits = _write_foreign_losses(desk, start, 3)
    desk.at(exits[-1] + timedelta(hours=2))
    code, _, err = desk.cli("status")
    assert code == 0, err
    [line] = downgrades(desk)
    assert when(line["effective_at"]) == exits[2]
    assert when(line["timestamp"]) == desk.now()
    assert line["triggered_by_order"] == "other-3"


def test_downgrade_found_late_is_applied_by_the_next_pre_trade_check(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.bot.check_entry("AAPL", "BUY", Decimal("10"))
    exits = _write_foreign_losses(desk, desk.now() + timedelta(minutes=5), 3)
    desk.at(exits[-1] + timedelta(minutes=30))
    result = desk.enter()
    assert not result.accepted
    assert "breaker" in (result.reason or "")
    [line] = downgrades(desk)
    assert when(line["effective_at"]) == exits[2]


def test_trades_after_a_late_downgrade_belong_to_the_new_stint(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.cli("status")
    exits = _write_foreign_losses(desk, desk.now() + timedelta(minutes=5), 6)
    desk.at(exits[-1] + timedelta(hours=1))
    desk.cli("status")
    first, second = downgrades(desk)
    assert (first["from_phase"], first["to_phase"]) == ("trial", "proof")
    assert when(first["effective_at"]) == exits[2]
    assert (second["from_phase"], second["to_phase"]) == ("proof", "experience")
    assert when(second["effective_at"]) == exits[5]
    assert second["metrics"]["trades"] == 3


def test_a_second_late_downgrade_needs_three_new_losses(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.cli("status")
    exits = _write_foreign_losses(desk, desk.now() + timedelta(minutes=5), 5)
    desk.at(exits[-1] + timedelta(hours=1))
    desk.cli("status")
    [line] = downgrades(desk)
    assert line["to_phase"] == "proof"
    assert phase_now(desk) == "proof"


def test_restarts_after_a_downgrade_do_not_repeat_it(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.trades(-5, -5, -5)
    desk.start()
    desk.cli("status")
    desk.start()
    desk.next_session()
    desk.cli("status")
    assert len(downgrades(desk)) == 1
    assert phase_now(desk) == "proof"


def test_time_of_effect_is_not_the_time_of_writing(desk: Desk) -> None:
    advance_to(desk, "trial")
    desk.cli("status")
    exits = _write_foreign_losses(desk, desk.now() + timedelta(minutes=5), 3)
    desk.at(datetime(2026, 3, 3, 15, 0, tzinfo=timezone.utc))
    desk.cli("status")
    [line] = downgrades(desk)
    assert line["breaker"]["since"] is not None and when(line["breaker"]["since"]) == exits[2]
    assert when(line["timestamp"]) > when(line["effective_at"])
