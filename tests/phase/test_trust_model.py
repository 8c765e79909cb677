"""What the config.json mirror makes detectable: a log cut short cannot hide behind a
deleted or mangled head (README, "Trust model and limits")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.phase.conftest import PASSWORD, Desk, advance_to
from trading_bot.phase.manager import PhaseManager

HISTORY = "phase-history.jsonl"
OVERRIDES = "phase-overrides.jsonl"


def phase_dir(desk: Desk) -> Path:
    return desk.logs_dir / "phase"


def config_json(desk: Desk) -> dict[str, Any]:
    return json.loads(desk.config_path.read_text(encoding="utf-8"))


def write_config_json(desk: Desk, raw: dict[str, Any]) -> None:
    desk.config_path.write_text(json.dumps(raw, indent=2), encoding="utf-8")


def drop_head(desk: Desk, key: str) -> None:
    raw = config_json(desk)
    del raw["phase_progression"][key]
    write_config_json(desk, raw)


def set_head(desk: Desk, key: str, value: Any) -> None:
    raw = config_json(desk)
    raw["phase_progression"][key] = value
    write_config_json(desk, raw)


def wrong_password(desk: Desk) -> tuple[int, str, str]:
    return desk.cli(
        "override", "--to", "proof", "--operator", "mallory", "--reason", "guessing", "--password-stdin", stdin="guess\n"
    )


def good_override(desk: Desk) -> tuple[int, str, str]:
    return desk.cli(
        "override", "--to", "proof", "--operator", "mallory", "--reason", "lockout gone?", "--password-stdin", stdin=PASSWORD + "\n"
    )


def lock_out(desk: Desk) -> bytes:
    """Five wrong passwords; returns the override log as it was before the first one."""
    assert desk.cli("status")[0] == 0
    before = (phase_dir(desk) / OVERRIDES).read_bytes()
    for _ in range(5):
        assert wrong_password(desk)[0] == 1
        desk.tick()
    code, _, err = good_override(desk)
    assert code == 1 and "locked" in err
    return before


def test_cutting_the_wrong_passwords_and_deleting_overrides_head_does_not_lift_the_lockout(desk: Desk) -> None:
    before = lock_out(desk)
    (phase_dir(desk) / OVERRIDES).write_bytes(before)
    drop_head(desk, "overrides_head")

    code, verdict = desk.cli_json("verify")
    assert code == 1 and verdict["intact"] is False
    assert any("overrides_head" in problem["reason"] for problem in verdict["problems"])
    code, check = desk.cli_json("check-trade")
    assert code == 1 and "overrides_head" in check["reason"]
    code, _, err = good_override(desk)
    assert code == 1 and "overrides_head" in err
    assert desk.transitions() == []
    assert "overrides_head" not in config_json(desk)["phase_progression"]  # the evidence is not papered over


def test_cutting_a_downgrade_and_deleting_history_head_halts_entries(desk: Desk) -> None:
    advance_to(desk, "proof")
    for _ in range(3):
        desk.trade(-5)
        desk.next_session()
    assert [line["kind"] for line in desk.transitions()] == ["override", "downgrade"]
    history = phase_dir(desk) / HISTORY
    lines = history.read_bytes().splitlines(keepends=True)
    downgrade_at = next(i for i, raw in enumerate(lines) if b'"kind":"downgrade"' in raw)
    history.write_bytes(b"".join(lines[:downgrade_at]))
    drop_head(desk, "history_head")
    journal = next((desk.logs_dir / "trades").glob("*.jsonl"))
    records = journal.read_bytes().splitlines(keepends=True)
    first_loss = next(i for i, raw in enumerate(records) if json.loads(raw).get("outcome") == "loss")
    journal.write_bytes(b"".join(records[:first_loss] + records[first_loss + 1 :]))
    desk.start()

    code, verdict = desk.cli_json("verify")
    assert code == 1
    assert any("history_head" in problem["reason"] for problem in verdict["problems"])
    refused = desk.enter()
    assert not refused.accepted and "history_head" in (refused.reason or "")
    code, status = desk.cli_json("status")
    assert code == 1 and "history_head" in status["damage"]


@pytest.mark.parametrize(
    "head",
    [{"seq": "many", "hash": "0" * 64}, {"seq": 3, "hash": "xyz"}, {"seq": -1, "hash": "0" * 64}, "gone", [1, 2], {"seq": 1}],
    ids=["seq-text", "hash-not-hex", "seq-negative", "a-string", "a-list", "hash-missing"],
)
def test_malformed_head_while_the_log_has_lines_is_damage_verify_names_it(desk: Desk, head: Any) -> None:
    advance_to(desk, "proof")
    set_head(desk, "history_head", head)

    code, verdict = desk.cli_json("verify")
    assert code == 1
    assert any("history_head" in problem["reason"] for problem in verdict["problems"])
    code, check = desk.cli_json("check-trade")
    assert code == 1 and "history_head" in check["reason"]
    code, check = desk.cli_json("check-trade", "--emergency-exit")
    assert (code, check["allowed"]) == (0, True)


def test_recover_accepts_a_log_whose_head_was_deleted_trips_the_breaker_and_records_it(desk: Desk) -> None:
    before = lock_out(desk)
    (phase_dir(desk) / OVERRIDES).write_bytes(before)
    drop_head(desk, "overrides_head")

    code, out, err = desk.cli("recover")
    assert code == 0, err
    assert "overrides_head" in out
    recovered = [line for line in desk.history() if line["type"] == "recovered"]
    assert len(recovered) == 1 and "overrides_head" in recovered[0]["detail"]
    code, status = desk.cli_json("status")
    assert code == 0 and status["circuit_breaker"]["tripped"] is True
    assert config_json(desk)["phase_progression"]["overrides_head"]["seq"] == len(desk.overrides())
    assert desk.cli("verify")[0] == 0


def test_a_fresh_desk_without_heads_and_without_logs_is_not_damage(desk: Desk) -> None:
    assert "history_head" not in config_json(desk)["phase_progression"]
    code, verdict = desk.cli_json("verify")
    assert (code, verdict["problems"]) == (0, [])
    code, check = desk.cli_json("check-trade")
    assert (code, check["allowed"]) == (0, True)
    assert config_json(desk)["phase_progression"]["overrides_head"]["seq"] == len(desk.overrides())


def test_a_crash_between_the_first_line_and_the_first_mirror_is_a_lag_not_damage(desk: Desk) -> None:
    """The bot marks each empty log in config.json (seq 0) before it writes the log's first
    line, so a desk killed between that line and the mirror rolls forward at the next start."""
    fresh = desk.config_path.read_bytes()
    assert desk.cli("status")[0] == 0
    marked = config_json(desk)["phase_progression"]
    raw = json.loads(fresh)
    raw["phase_progression"]["overrides_head"] = {"seq": 0, "hash": "0" * 64}
    raw["phase_progression"]["history_head"] = {"seq": 0, "hash": "0" * 64}
    write_config_json(desk, raw)  # as if killed right after the first append
    assert marked["overrides_head"]["seq"] >= 1

    code, verdict = desk.cli_json("verify")
    assert (code, verdict["problems"]) == (0, [])
    assert desk.cli("status")[0] == 0
    assert config_json(desk)["phase_progression"]["overrides_head"]["seq"] == len(desk.overrides())


def test_deleting_the_whole_override_log_and_its_head_is_noticed_through_the_history_head(desk: Desk) -> None:
    lock_out(desk)
    assert "history_head" in config_json(desk)["phase_progression"]  # marked when both logs were empty
    (phase_dir(desk) / OVERRIDES).unlink()
    drop_head(desk, "overrides_head")

    code, verdict = desk.cli_json("verify")
    assert code == 1 and any("overrides_head" in problem["reason"] for problem in verdict["problems"])
    code, _, err = good_override(desk)
    assert code == 1 and "overrides_head" in err


def test_a_rewritten_history_line_with_recomputed_hashes_but_an_unreadable_size_is_damage(desk: Desk) -> None:
    """The known limit is a consistent rewrite; even then an unreadable payload is one
    line of damage, never a traceback or a hang."""
    from trading_bot.phase.log_format import canonical_line, line_hash

    advance_to(desk, "proof")
    history = phase_dir(desk) / HISTORY
    previous, rewritten = "0" * 64, b""
    for raw in history.read_bytes().splitlines():
        line = json.loads(raw)
        del line["hash"]
        if line["type"] == "transition":
            line["position_size"] = "1e100000000"
        line["prev_hash"] = previous
        line["hash"] = previous = line_hash(line)
        rewritten += canonical_line(line)
    history.write_bytes(rewritten)
    set_head(desk, "history_head", {"seq": rewritten.count(b"\n"), "hash": previous})

    for command in (["status"], ["check-trade"], ["verify"]):
        code, out, err = desk.cli(*command)
        assert code == 1, (command, out, err)
        assert "Traceback" not in err and "phase-history.jsonl:" in out + err
    refused = desk.enter()
    assert not refused.accepted


def test_logs_written_and_mirrored_after_a_desk_opened_are_not_damage_to_it(desk: Desk) -> None:
    """A command opens its desk (config.json read), then another process appends to the logs
    and mirrors their heads before the command reads the logs: nothing was cut."""
    reader = PhaseManager(desk.config_path, environ=desk.env)  # config.json without heads
    assert "overrides_head" not in config_json(desk)["phase_progression"]
    assert desk.cli("status")[0] == 0  # the other process: first lines and their heads
    assert len(desk.overrides()) >= 1 and "overrides_head" in config_json(desk)["phase_progression"]

    assert reader.damage() is None


def test_a_head_really_missing_is_still_damage_after_the_second_look(desk: Desk) -> None:
    lock_out(desk)
    drop_head(desk, "overrides_head")
    damage = PhaseManager(desk.config_path, environ=desk.env).damage()
    assert damage is not None and "overrides_head is missing" in damage
