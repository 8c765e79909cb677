"""config.json loading, validation messages and atomic saves (SPEC §2, §10, §13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from trading_bot.config import Config
from trading_bot.errors import ConfigError
from trading_bot.phase.models import Phase

D = Decimal
MINIMAL = '{"trading": {"mode": "paper"}, "phase_progression": {"current_phase": "experience"}}\n'


def load(path: Path) -> Config:
    return Config.from_env_and_json(path, environ={})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.json"
    path.write_text(text, encoding="utf-8")
    return path


def shipped_with(config_path: Path, edit: Any) -> tuple[Path, str]:
    """Apply `edit(raw)` to the shipped config, write it indented, return path and text."""
    raw = json.loads(config_path.read_text(encoding="utf-8"))
    edit(raw)
    text = json.dumps(raw, indent=2) + "\n"
    config_path.write_text(text, encoding="utf-8")
    return config_path, text


def line_of(text: str, fragment: str) -> int:
    """1-based line of the only line containing `fragment`."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if fragment in line]
    assert len(hits) == 1, hits
    return hits[0]


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(path)
    return caught.value


# --- defaults -----------------------------------------------------------------------------


def test_shipped_config_loads_with_every_spec_default(config_path: Path) -> None:
    settings = load(config_path).settings
    pp = settings.phase_progression
    assert settings.trading.mode == "paper"
    assert settings.trading.hours.start_time == time(7, 0)
    assert settings.trading.hours.end_time == time(16, 0)
    assert settings.trading.hours.timezone == "America/New_York"
    assert settings.account.starting_equity == D("10000")
    assert settings.risk_management.max_position_pct == D("5.0")
    assert settings.risk_management.max_daily_loss_pct == D("3.0")
    assert pp.current_phase is Phase.EXPERIENCE
    assert pp.experience.max_trades_per_day is None
    assert pp.experience.position_size == D("100")
    assert pp.experience.advancement_criteria.dump() == {
        "min_sessions": 20, "session_window": 20, "min_win_rate": D("0.60"),
        "min_avg_rr": D("1.5"), "max_override_incidents": 0,
    }
    assert pp.proof.max_trades_per_day == 1
    assert pp.proof.advancement_criteria.dump() == {
        "min_sessions": 30, "max_missed_days": 3, "min_trades": 50, "trade_window": 50,
        "min_win_rate": D("0.65"), "min_avg_rr": D("1.8"),
    }
    assert pp.proof.downgrade_triggers.max_daily_loss_pct is None
    assert pp.trial.position_size == D("200")
    assert pp.trial.advancement_criteria.max_drawdown_pct == D("5.0")
    assert pp.trial.downgrade_triggers.max_daily_loss_pct == D("5.0")
    assert pp.trial.downgrade_triggers.rolling_win_rate_min == D("0.55")
    assert pp.scaling.position_size_min == D("200")
    assert pp.scaling.position_size_max == D("2000")
    assert pp.scaling.max_portfolio_pct == D("5.0")
    assert pp.scaling.increase_on_win_streak is not None
    assert (pp.scaling.increase_on_win_streak.every, pp.scaling.increase_on_win_streak.amount) == (5, D("100"))
    assert pp.scaling.increase_on_win_rate is not None
    assert pp.scaling.increase_on_win_rate.dump() == {
        "sessions": 10, "min_win_rate": D("0.70"), "amount": D("200"),
    }
    assert pp.scaling.downgrade_triggers.consecutive_losses == 3


def test_minimal_config_has_the_same_settings_as_the_shipped_one(tmp_path: Path, config_path: Path) -> None:
    shipped = load(config_path).settings
    minimal_dir = tmp_path / "minimal"
    minimal_dir.mkdir()
    minimal = load(write(minimal_dir, MINIMAL)).settings
    assert minimal.dump() == shipped.dump()


def test_minimal_config_proof_daily_loss_trigger_is_off(tmp_path: Path) -> None:
    settings = load(write(tmp_path, MINIMAL)).settings
    assert settings.phase_progression.proof.downgrade_triggers.max_daily_loss_pct is None
    assert settings.phase_progression.trial.downgrade_triggers.max_daily_loss_pct == D("5.0")


# --- exact numbers, strings, null, partial blocks ------------------------------------------


def test_json_numbers_are_read_as_exact_decimals(config_path: Path) -> None:
    criteria = load(config_path).settings.phase_progression.experience.advancement_criteria
    assert type(criteria.min_win_rate) is Decimal
    assert criteria.min_win_rate.as_tuple() == D("0.60").as_tuple()


def test_numeric_strings_are_accepted(config_path: Path) -> None:
    path, _ = shipped_with(
        config_path, lambda raw: raw["phase_progression"]["proof"]["advancement_criteria"].update(min_win_rate="0.65")
    )
    assert load(path).settings.phase_progression.proof.advancement_criteria.min_win_rate == D("0.65")


def test_null_disables_a_criterion(config_path: Path) -> None:
    path, _ = shipped_with(
        config_path, lambda raw: raw["phase_progression"]["experience"]["advancement_criteria"].update(min_avg_rr=None)
    )
    assert load(path).settings.phase_progression.experience.advancement_criteria.min_avg_rr is None


def test_missing_key_in_a_block_takes_that_blocks_default(config_path: Path) -> None:
    path, _ = shipped_with(
        config_path,
        lambda raw: raw["phase_progression"]["proof"]["downgrade_triggers"].pop("max_daily_loss_pct"),
    )
    triggers = load(path).settings.phase_progression.proof.downgrade_triggers
    assert triggers.max_daily_loss_pct is None
    assert triggers.consecutive_losses == 3


def test_missing_key_in_trial_triggers_takes_the_trial_default(config_path: Path) -> None:
    path, _ = shipped_with(
        config_path,
        lambda raw: raw["phase_progression"]["trial"]["downgrade_triggers"].pop("max_daily_loss_pct"),
    )
    assert load(path).settings.phase_progression.trial.downgrade_triggers.max_daily_loss_pct == D("5.0")


# --- malformed input: one line, file:line: field.path: message ------------------------------


def test_wrong_type_names_file_line_and_field(config_path: Path) -> None:
    path, text = shipped_with(config_path, lambda raw: raw["account"].update(starting_equity="lots"))
    error = load_error(path)
    assert str(error) == f"{path}:{line_of(text, 'starting_equity')}: account.starting_equity: not a number: 'lots'"


def test_block_of_the_wrong_type_is_refused(config_path: Path) -> None:
    path, text = shipped_with(config_path, lambda raw: raw["phase_progression"].update(proof=5))
    error = load_error(path)
    assert (error.line, error.field) == (line_of(text, '"proof": 5'), "phase_progression.proof")


def test_boolean_for_a_count_is_refused(config_path: Path) -> None:
    path, text = shipped_with(
        config_path, lambda raw: raw["phase_progression"]["proof"].update(max_trades_per_day=True)
    )
    error = load_error(path)
    assert (error.line, error.field) == (
        line_of(text, '"max_trades_per_day": true'), "phase_progression.proof.max_trades_per_day"
    )


def test_unknown_phase_is_refused(config_path: Path) -> None:
    path, text = shipped_with(config_path, lambda raw: raw["phase_progression"].update(current_phase="expert"))
    error = load_error(path)
    assert str(error) == (
        f"{path}:{line_of(text, 'current_phase')}: phase_progression.current_phase: "
        "must be one of 'experience', 'proof', 'trial' or 'scaling'"
    )


def test_typo_key_inside_phase_progression_is_refused(config_path: Path) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["phase_progression"]["proof"]["advancement_criteria"]["min_win_rat"] = 0.5

    path, text = shipped_with(config_path, edit)
    error = load_error(path)
    assert (error.line, error.field) == (
        line_of(text, "min_win_rat\""), "phase_progression.proof.advancement_criteria.min_win_rat"
    )
    assert error.message.startswith("unknown key")


def test_unknown_phase_block_name_is_refused(config_path: Path) -> None:
    path, text = shipped_with(config_path, lambda raw: raw["phase_progression"].update(experiance={}))
    error = load_error(path)
    assert (error.line, error.field) == (line_of(text, "experiance"), "phase_progression.experiance")


def test_negative_threshold_is_refused(config_path: Path) -> None:
    path, text = shipped_with(
        config_path, lambda raw: raw["phase_progression"]["trial"]["advancement_criteria"].update(min_trades=-1)
    )
    line = line_of(text, '"min_trades": -1')
    error = load_error(path)
    assert str(error) == f"{path}:{line}: phase_progression.trial.advancement_criteria.min_trades: must be ≥ 0"


def test_negative_daily_loss_trigger_is_refused(config_path: Path) -> None:
    path, text = shipped_with(
        config_path,
        lambda raw: raw["phase_progression"]["scaling"]["downgrade_triggers"].update(max_daily_loss_pct=-0.5),
    )
    error = load_error(path)
    assert (error.line, error.field) == (
        line_of(text, "-0.5"), "phase_progression.scaling.downgrade_triggers.max_daily_loss_pct"
    )


def test_win_rate_above_one_is_refused(config_path: Path) -> None:
    path, text = shipped_with(
        config_path,
        lambda raw: raw["phase_progression"]["proof"]["downgrade_triggers"].update(rolling_win_rate_min="1.0001"),
    )
    error = load_error(path)
    assert str(error) == (
        f"{path}:{line_of(text, '1.0001')}: "
        "phase_progression.proof.downgrade_triggers.rolling_win_rate_min: must be between 0 and 1"
    )


def test_win_rate_of_exactly_one_is_allowed(config_path: Path) -> None:
    path, _ = shipped_with(
        config_path, lambda raw: raw["phase_progression"]["trial"]["advancement_criteria"].update(min_win_rate=1)
    )
    assert load(path).settings.phase_progression.trial.advancement_criteria.min_win_rate == D("1")


@pytest.mark.parametrize("end_time", ["06:00", "07:00"], ids=["before", "equal"])
def test_end_time_not_after_start_time_is_refused(config_path: Path, end_time: str) -> None:
    path, text = shipped_with(config_path, lambda raw: raw["trading"]["hours"].update(end_time=end_time))
    error = load_error(path)
    assert str(error) == f"{path}:{line_of(text, 'end_time')}: trading.hours.end_time: must be after start_time"


def test_invalid_json_names_the_line_of_the_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "trading": {\n    "mode": "paper",\n  }\n}\n')
    error = load_error(path)
    assert str(error) == f"{path}:4: (json): Expecting property name enclosed in double quotes"


@pytest.mark.parametrize(
    "edit",
    [
        lambda raw: raw["account"].update(starting_equity="lots"),
        lambda raw: raw["phase_progression"].update(current_phase="expert"),
        lambda raw: raw["phase_progression"]["trial"]["advancement_criteria"].update(min_trades=-1),
        lambda raw: raw["trading"]["hours"].update(end_time="06:00"),
    ],
    ids=["wrong-type", "unknown-phase", "negative", "hours"],
)
def test_config_error_is_a_single_line(config_path: Path, edit: Any) -> None:
    path, _ = shipped_with(config_path, edit)
    assert "\n" not in str(load_error(path))


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    error = load_error(tmp_path / "absent.json")
    assert (error.field, error.message) == ("(file)", "not found")


def test_failed_load_writes_nothing(config_path: Path) -> None:
    path, text = shipped_with(config_path, lambda raw: raw["phase_progression"].update(current_phase="expert"))
    before = sorted(os.listdir(path.parent))
    load_error(path)
    assert sorted(os.listdir(path.parent)) == before
    assert path.read_text(encoding="utf-8") == text


# --- unknown keys elsewhere, saves, updates -----------------------------------------------


def test_unknown_top_level_key_is_not_an_error(config_path: Path) -> None:
    path, _ = shipped_with(config_path, lambda raw: raw.update(notifications={"email": "me@example.com"}))
    assert load(path).raw["notifications"] == {"email": "me@example.com"}


def test_unknown_keys_outside_phase_progression_survive_save(config_path: Path) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["notifications"] = {"email": "me@example.com", "retries": 3}
        raw["trading"]["broker"] = "alpaca"

    path, _ = shipped_with(config_path, edit)
    load(path).save()
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["notifications"] == {"email": "me@example.com", "retries": 3}
    assert saved["trading"]["broker"] == "alpaca"


def test_save_then_load_gives_the_same_settings(config_path: Path) -> None:
    config = load(config_path)
    config.save()
    assert load(config_path).settings == config.settings


def test_failed_rename_leaves_old_file_intact_and_no_temp_file(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = config_path.read_bytes()
    listing = sorted(os.listdir(config_path.parent))
    updated = load(config_path).with_updates({("trading", "mode"): "live"})

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="simulated crash"):
        updated.save()
    monkeypatch.undo()
    assert config_path.read_bytes() == before
    assert sorted(os.listdir(config_path.parent)) == listing


def test_process_killed_before_rename_leaves_old_file_intact(config_path: Path) -> None:
    before = config_path.read_bytes()
    script = textwrap.dedent(
        f"""
        import os
        from trading_bot.config import Config

        config = Config.from_env_and_json({str(config_path)!r}, environ={{}})
        updated = config.with_updates({{("trading", "mode"): "live"}})
        os.replace = lambda *args, **kwargs: os._exit(9)
        updated.save()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == 9, result.stderr
    assert config_path.read_bytes() == before
    assert load(config_path).mode == "paper"


def test_with_updates_sets_the_key_path(config_path: Path) -> None:
    config = load(config_path)
    updated = config.with_updates({("phase_progression", "current_phase"): "proof"})
    assert updated.current_phase is Phase.PROOF
    assert config.current_phase is Phase.EXPERIENCE


def test_with_updates_creates_missing_blocks(tmp_path: Path) -> None:
    config = load(write(tmp_path, MINIMAL))
    updated = config.with_updates({("phase_progression", "history_head"): {"seq": 4, "hash": "ab" * 32}})
    assert updated.history_head is not None
    assert updated.history_head.seq == 4


def test_with_updates_revalidates(config_path: Path) -> None:
    config = load(config_path)
    with pytest.raises(ConfigError) as caught:
        config.with_updates({("phase_progression", "current_phase"): "expert"})
    assert caught.value.field == "phase_progression.current_phase"


def test_with_updates_then_save_persists_the_change(config_path: Path) -> None:
    load(config_path).with_updates({("trading", "mode"): "live"}).save()
    assert load(config_path).mode == "live"


def test_unknown_key_with_a_precise_number_stays_a_number_after_save(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"trading": {"mode": "paper"}, "phase_progression": {"current_phase": "experience"},\n'
        ' "custom": {"precise": 0.12345678901234567890}}\n',
    )
    load(path).save()
    saved = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    assert saved["custom"]["precise"] == D("0.12345678901234567890")


def test_save_fsyncs_the_temp_file_before_the_rename(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC §10: temp file in the same folder, fsync, rename — the old file is still in place at the fsync."""
    before = config_path.read_bytes()
    real_fsync = os.fsync
    synced: list[tuple[Path, int, bytes]] = []

    def watching_fsync(fd: int) -> None:
        synced.append((Path(os.readlink(f"/proc/self/fd/{fd}")), os.fstat(fd).st_size, config_path.read_bytes()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watching_fsync)
    load(config_path).with_updates({("trading", "mode"): "live"}).save()
    after = config_path.read_bytes()
    assert after != before
    temp_syncs = [(size, seen) for path, size, seen in synced if path.parent == config_path.parent and path.name != config_path.name and path != config_path.parent]
    assert temp_syncs, synced
    assert (len(after), before) in temp_syncs


# --- duplicate keys and a byte-order mark -----------------------------------------------------


DUPLICATED = """{
  "trading": {"mode": "paper"},
  "phase_progression": {
    "current_phase": "experience",
    "experience": {"advancement_criteria": {"min_sessions": 20}},
    "experience": {"advancement_criteria": {"min_sessions": 1}}
  }
}
"""


def test_a_duplicate_key_is_refused_naming_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, DUPLICATED)
    error = load_error(path)
    assert str(error).startswith(f"{path}:6: phase_progression.experience: duplicate key")


def test_a_duplicate_key_deep_inside_a_block_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '{"trading": {"mode": "paper"},\n"phase_progression": {"current_phase": "experience",\n"experience": {"advancement_criteria": {"min_sessions": 20,\n"min_sessions": 1}}}}\n')
    error = load_error(path)
    assert (error.line, error.field) == (4, "phase_progression.experience.advancement_criteria.min_sessions")


def test_the_same_key_in_two_different_blocks_is_not_a_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path, '{"trading": {"mode": "paper"}, "phase_progression": {"current_phase": "experience", "experience": {"advancement_criteria": {"min_sessions": 20}}, "proof": {"advancement_criteria": {"min_sessions": 20}}}}\n')
    assert load(path).settings.phase_progression.experience.advancement_criteria.min_sessions == 20


def test_a_duplicate_key_through_the_cli_exits_2_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, DUPLICATED)
    result = subprocess.run(
        [sys.executable, "-m", "trading_bot.phase", "--config", str(path), "validate-transition", "--to", "proof"],
        capture_output=True, text=True, env={**os.environ, "PHASE_OVERRIDE_PASSWORD": ""}, check=False,
    )
    assert result.returncode == 2
    assert result.stderr == f"{path}:6: phase_progression.experience: duplicate key (a reader sees the first, the parser would take the last)\n"


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode("utf-8"))
    assert load(path).current_phase is Phase.EXPERIENCE
