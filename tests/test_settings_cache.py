"""The validated settings: the plain blocks the bot reads are exactly what the pydantic
schema validates, and the cache of them (`logs/.derived/settings.json`) is used only for
the very text and code it was made from (SPEC §12 start-up time; constitution §4)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from pydantic import BaseModel

from trading_bot import config as runtime
from trading_bot import config_schema as schema
from trading_bot.config import (
    MIRROR_FIELDS,
    SETTINGS_CACHE_FILE,
    Config,
    SettingsCache,
    UnreadableHead,
    dump_json_exact,
    parse_json_exact,
)
from trading_bot.durable_files import DERIVED_DIR
from trading_bot.errors import ConfigError
from trading_bot.phase.cli import main
from tests.conftest import SHIPPED_CONFIG

D = Decimal
CRITERIA_EXCLUDE = {"current_phase", "history_head", "overrides_head"}


def schema_models() -> list[type[BaseModel]]:
    return [
        value for name, value in vars(schema).items()
        if isinstance(value, type) and issubclass(value, BaseModel) and not name.startswith("_") and value.__module__ == schema.__name__
    ]


def validated_both_ways(text: str) -> tuple[Any, runtime.Settings]:
    """The pydantic model and the plain settings of one config text."""
    raw = parse_json_exact(text, "config.json")
    settings = schema.validate_settings(raw, text, "config.json")  # ConfigError first, as the loader gives it
    return schema.Settings.model_validate(raw), settings


def cache_in(tmp_path: Path, writable: bool = True) -> SettingsCache:
    return SettingsCache(tmp_path / "logs" / DERIVED_DIR / SETTINGS_CACHE_FILE, writable=writable)


def run_cli(config: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), *args], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# ---- the plain blocks are the schema's twins ----------------------------------------------


def test_every_schema_model_has_a_plain_twin_with_the_same_keys_in_the_same_order() -> None:
    models = schema_models()
    assert len(models) == len(runtime.SETTINGS_BLOCKS) == 18
    for model in models:
        twin = runtime.SETTINGS_BLOCKS[model.__name__]
        assert twin.FIELDS == tuple(model.model_fields), model.__name__
        assert (model.model_config.get("extra") == "allow") == (model.__name__ in {
            "Settings", "TradingSettings", "TradingHours", "AccountSettings", "RiskSettings"
        }), model.__name__


def test_the_plain_blocks_are_read_only_and_compare_by_value() -> None:
    _, settings = validated_both_ways(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    _, again = validated_both_ways(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    assert settings == again and hash(settings) == hash(again)
    with pytest.raises(AttributeError, match="read-only"):
        settings.account.starting_equity = D("1")  # type: ignore[misc]
    with pytest.raises(AttributeError, match="read-only"):
        del settings.trading.mode
    with pytest.raises(TypeError, match="takes exactly"):
        runtime.WinStreakIncrease(every=5)
    assert "starting_equity=Decimal('10000')" in repr(settings.account)
    assert settings.phase_block(runtime.Phase.PROOF) is settings.phase_progression.proof


EDGE_CONFIGS = [
    SHIPPED_CONFIG.read_text(encoding="utf-8"),
    '{"trading": {"mode": "paper"}, "phase_progression": {"current_phase": "experience"}}',
    # Unknown keys kept by open blocks: nested objects, lists, exact numbers, text, nulls.
    json.dumps({
        "trading": {"mode": "live", "symbols": ["AAPL", {"x": 1.50}], "hours": {"start_time": "9:30", "note": None}},
        "account": {"starting_equity": "25000.10", "broker": {"name": "paper", "fee": 0.005, "tags": []}},
        "risk_management": {"max_position_pct": None, "custom": True},
        "dashboard": {"port": 8080, "theme": "dark"},
        "phase_progression": {
            "current_phase": "scaling",
            "history_head": {"seq": 3, "hash": "ab" * 32},
            "overrides_head": {"seq": "three"},
            "scaling": {"increase_on_win_streak": None, "position_size_max": "2500.00"},
            "proof": {"downgrade_triggers": {"max_daily_loss_pct": 4}},
        },
    }).replace("1.5,", "1.50,"),
]


@pytest.mark.parametrize("text", EDGE_CONFIGS)
def test_plain_settings_dump_exactly_as_the_pydantic_models_do(text: str) -> None:
    model, settings = validated_both_ways(text)
    for mode in ("python", "json"):
        assert settings.dump(mode) == model.model_dump(mode=mode)
        assert settings.dump(mode, exclude=MIRROR_FIELDS) == model.model_dump(mode=mode, exclude=MIRROR_FIELDS)
        assert settings.phase_progression.dump(mode, exclude=CRITERIA_EXCLUDE) == model.phase_progression.model_dump(
            mode=mode, exclude=CRITERIA_EXCLUDE
        )
        assert settings.dump(mode, include={"account"}) == model.model_dump(mode=mode, include={"account"})


def test_an_unreadable_head_stays_evidence_in_the_plain_settings() -> None:
    _, settings = validated_both_ways(EDGE_CONFIGS[2])
    head = settings.phase_progression.overrides_head
    assert isinstance(head, UnreadableHead) and "exactly the keys" in head.problem
    assert settings.phase_progression.history_head == runtime.HistoryHead(seq=3, hash="ab" * 32)
    assert settings.trading.extra["symbols"] == ["AAPL", {"x": D("1.50")}]


# Values a person may write for a few settings, valid or not (invalid ones are skipped).
_amounts = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2, allow_nan=False, allow_infinity=False)
_fractions = st.decimals(min_value=D("0"), max_value=D("1"), places=3, allow_nan=False, allow_infinity=False)
_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=D("-1000"), max_value=D("1000")),
)
_extra = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@st.composite
def configs(draw: st.DrawFn) -> str:
    raw: dict[str, Any] = {
        "trading": {"mode": draw(st.sampled_from(["paper", "live"]))},
        "account": {"starting_equity": draw(_amounts)},
        "phase_progression": {
            "current_phase": draw(st.sampled_from(["experience", "proof", "trial", "scaling"])),
            "experience": {"advancement_criteria": {"min_win_rate": draw(_fractions), "session_window": draw(st.sampled_from([10, 20, 50, 100]))}},
            "trial": {"downgrade_triggers": {"rolling_win_rate_min": draw(st.none() | _fractions)}},
            "scaling": {"position_size_min": draw(_amounts), "position_size_max": draw(_amounts)},
        },
    }
    for block in ("trading", "account", "risk_management"):
        for key in draw(st.lists(st.sampled_from(["alpha", "beta", "gamma"]), unique=True, max_size=2)):
            raw.setdefault(block, {})[key] = draw(_extra)
    if draw(st.booleans()):
        raw["trading"]["hours"] = {"start_time": draw(st.sampled_from(["06:00", "9:30"])), "end_time": "16:00"}
    return dump_json_exact(raw)


@hypothesis_settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=configs())
def test_for_any_config_the_cache_gives_back_what_validation_gives(tmp_path: Path, text: str) -> None:
    try:
        model, settings = validated_both_ways(text)
    except ConfigError:
        return  # not a valid config: nothing to cache (the loader refuses it every time)
    for mode in ("python", "json"):
        assert settings.dump(mode) == model.model_dump(mode=mode)
    cache = cache_in(tmp_path)
    cache.save(text, settings)
    back = cache.load(text)
    assert cache.note == "used"
    assert back == settings
    assert back is not None and back.dump("json") == model.model_dump(mode="json")
    assert cache.load(text + " ") is None and cache.note == "missed: another text or other code"


# ---- when the cache is used, and when it is not ------------------------------------------


def test_a_second_load_of_the_same_text_reads_the_cache_and_an_edited_text_is_validated(config_path: Path) -> None:
    cache = cache_in(config_path.parent)
    first = Config.from_env_and_json(config_path, environ={}, settings_cache=cache)
    assert cache.note == "missed: no cache" and not cache.path.exists()  # loading writes nothing ...
    first.cache_settings()  # ... the phase system notes them when it writes anyway
    assert cache.path.exists()
    second = Config.from_env_and_json(config_path, environ={}, settings_cache=cache)
    assert cache.note == "used" and second.settings == first.settings
    raw = json.loads(config_path.read_text(encoding="utf-8"))
    raw["account"]["starting_equity"] = 12345
    config_path.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    third = Config.from_env_and_json(config_path, environ={}, settings_cache=cache)
    assert cache.note == "missed: another text or other code"
    assert third.settings.account.starting_equity == D("12345")
    third.cache_settings()
    Config.from_env_and_json(config_path, environ={}, settings_cache=cache)
    assert cache.note == "used"


def test_a_config_the_process_saves_is_cached_for_the_next_process(config_path: Path) -> None:
    cache = cache_in(config_path.parent)
    config = Config.from_env_and_json(config_path, environ={}, settings_cache=cache)
    updated = config.with_updates({("account", "starting_equity"): D("20000")})
    updated.save()
    again = Config.from_env_and_json(config_path, environ={}, settings_cache=cache)
    assert cache.note == "used"
    assert again.settings.account.starting_equity == D("20000")


@pytest.mark.parametrize(
    ("damage", "note"),
    [
        (lambda data: b"\x00garbage", "missed: unreadable"),
        (lambda data: data[: len(data) // 2], "missed: unreadable"),
        (lambda data: data.replace(b'"10000"', b'"99999"'), "missed: does not match its checksum"),
        (lambda data: data.replace(b'"format": "trading-bot', b'"format": "other'), "missed: another text or other code"),
        (lambda data: json.dumps({**json.loads(data), "digest": None, "settings": {"decimal": "1"}}).encode(), "missed: does not match"),
        (lambda data: b"[]", "missed: malformed"),
    ],
)
def test_a_damaged_cache_is_a_miss_and_the_config_is_validated_again(config_path: Path, damage: Any, note: str) -> None:
    cache = cache_in(config_path.parent)
    first = Config.from_env_and_json(config_path, environ={}, settings_cache=cache)
    first.cache_settings()
    cache.path.write_bytes(damage(cache.path.read_bytes()))
    loaded = Config.from_env_and_json(config_path, environ={}, settings_cache=cache)
    assert cache.note.startswith(note)
    assert loaded.settings == first.settings
    loaded.cache_settings()
    Config.from_env_and_json(config_path, environ={}, settings_cache=cache)
    assert cache.note == "used"  # the miss rewrote it


def forge(cache: SettingsCache, edit: Any) -> None:
    """Rewrite the cached settings and their checksum, as someone who read this code could."""
    document = json.loads(cache.path.read_bytes())
    document["settings"] = json.loads(edit(json.dumps(document["settings"])))
    document["digest"] = runtime._body_digest(document["settings"])
    cache.path.write_text(json.dumps(document), encoding="ascii")


def test_opening_a_desk_writes_no_cache_and_its_first_look_at_the_records_does(config_path: Path) -> None:
    from trading_bot.app import Desk

    desk = Desk.open(config_path, environ={})
    cache = cache_in(config_path.parent)
    assert not cache.path.exists()
    desk.state()
    assert cache.path.exists()
    assert Desk.open(config_path, environ={}).phase.settings_cache.note == "used"


def test_a_forged_cache_is_reported_by_verify_which_never_reads_it(config_path: Path) -> None:
    for _ in range(2):  # the first command writes config.json's mirror of the logs; the second changes nothing
        code, _, err = run_cli(config_path, "status")
        assert code == 0, err
    text = config_path.read_text(encoding="utf-8")
    cache = cache_in(config_path.parent)
    forge(cache, lambda body: body.replace('"max_position_pct": {"decimal": "5.0"}', '"max_position_pct": {"decimal": "50.0"}'))
    forged = cache.load(text)
    # A reader takes the forged copy, as it would take a hand edit of config.json ...
    assert forged is not None and forged.risk_management.max_position_pct == D("50.0")
    code, out, err = run_cli(config_path, "verify")
    assert code == 1  # ... and verify, which validates config.json itself, says so
    assert f"{DERIVED_DIR}/settings.json: holds other settings than config.json validates to (forged or damaged)" in out + err
    from trading_bot.phase.manager import PhaseManager

    trusting = PhaseManager(config_path, environ={})  # a library user's desk, on the forged copy
    assert trusting.config.settings.risk_management.max_position_pct == D("50.0")
    problem = trusting.settings_cache_problem()
    assert problem is not None and "forged or damaged" in problem.reason
    cache.path.unlink()
    code, out, err = run_cli(config_path, "verify")
    assert code == 0, out + err


def test_forged_criteria_in_the_cache_are_recorded_as_a_loosening_hand_edit(config_path: Path) -> None:
    for _ in range(2):
        run_cli(config_path, "status")
    forge(cache_in(config_path.parent), lambda body: body.replace('{"decimal": "0.60"}', '{"decimal": "0.10"}'))
    code, out, err = run_cli(config_path, "status", "--json")
    assert code == 0, err
    records = [json.loads(line) for line in (config_path.parent / "logs" / "phase" / "phase-overrides.jsonl").read_text().splitlines()]
    edits = [record for record in records if record["type"] == "criteria_edit"]
    assert [edit["loosened"] for edit in edits] == [["phase_progression.experience.advancement_criteria.min_win_rate"]]
    code, out, err = run_cli(config_path, "status")
    assert "override incidents 1 > allowed 0" in out
    assert "required 0.6000" in out  # config.json's own criteria again: the copy was replaced when the mirror saved


def test_an_unchanged_cache_passes_verify(config_path: Path) -> None:
    run_cli(config_path, "status")
    assert cache_in(config_path.parent).path.exists()
    code, out, err = run_cli(config_path, "verify")
    assert code == 0, out + err


def test_a_bad_config_writes_no_cache_and_the_old_cache_is_not_used_for_it(config_path: Path) -> None:
    run_cli(config_path, "status")
    cache = cache_in(config_path.parent)
    before = cache.path.read_bytes()
    text = config_path.read_text(encoding="utf-8").replace('"min_win_rate": 0.60', '"min_win_rate": 1.60', 1)
    assert text != config_path.read_text(encoding="utf-8")
    config_path.write_text(text, encoding="utf-8")
    code, _, err = run_cli(config_path, "status")
    assert code == 2 and "min_win_rate" in err and "must be between 0 and 1" in err
    assert cache.path.read_bytes() == before


def test_a_view_as_of_a_past_moment_reads_the_cache_but_never_writes_it(config_path: Path) -> None:
    code, _, err = run_cli(config_path, "status", "--as-of", "2026-01-05T15:00:00Z")
    assert code == 0, err
    assert not cache_in(config_path.parent).path.exists()
    run_cli(config_path, "status")
    assert cache_in(config_path.parent).path.exists()


def test_a_cache_that_cannot_be_written_costs_only_the_validation(config_path: Path) -> None:
    derived = config_path.parent / "logs" / DERIVED_DIR
    derived.parent.mkdir(parents=True)
    derived.write_text("not a folder", encoding="utf-8")  # nothing can be written under it
    cache = cache_in(config_path.parent)
    config = Config.from_env_and_json(config_path, environ={}, settings_cache=cache)
    config.cache_settings()
    settings = config.settings
    assert settings.account.starting_equity == D("10000")
    assert derived.read_text(encoding="utf-8") == "not a folder"
    read_only = cache_in(config_path.parent.parent / "elsewhere", writable=False)
    read_only.save(config_path.read_text(encoding="utf-8"), settings)
    assert not read_only.path.exists()


def test_a_fresh_process_on_an_unchanged_config_never_imports_pydantic(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    shutil.copyfile(SHIPPED_CONFIG, config)
    program = (
        "import io, json, sys\n"
        "from trading_bot.phase.cli import main\n"
        "code = main(sys.argv[1:], stdout=io.StringIO(), stderr=io.StringIO())\n"
        "print(json.dumps([code, 'pydantic' in sys.modules, 'trading_bot.config_schema' in sys.modules]))\n"
    )

    def imports(*args: str) -> list[Any]:
        done = subprocess.run([sys.executable, "-c", program, "--config", str(config), *args], capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    assert imports("status") == [0, True, True]  # first sight of this text: validated
    assert imports("status") == [0, False, False]
    assert imports("validate-transition", "--to", "proof", "--json")[1:] == [False, False]
    assert imports("verify") == [0, True, True]  # verify validates config.json itself
    config.write_text(config.read_text(encoding="utf-8").replace('"starting_equity": 10000', '"starting_equity": 10001'), encoding="utf-8")
    assert imports("status") == [0, True, True]
    assert imports("status") == [0, False, False]


def test_the_clock_time_in_the_cache_is_the_time_that_was_validated(config_path: Path) -> None:
    raw = json.loads(config_path.read_text(encoding="utf-8"))
    raw["trading"]["hours"]["start_time"] = "9:30"
    config_path.write_text(json.dumps(raw), encoding="utf-8")
    cache = cache_in(config_path.parent)
    Config.from_env_and_json(config_path, environ={}, settings_cache=cache).cache_settings()
    hours = Config.from_env_and_json(config_path, environ={}, settings_cache=cache).settings.trading.hours
    assert cache.note == "used"
    assert hours.start_time == time(9, 30) and hours.end_time == time(16, 0)
