"""Every number and timestamp read from a file or the command line is bounded before it
is used: out of bounds is one line on stderr, exit 2, nothing written, and never a hang."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import journal_fields
from tests.phase.conftest import PASSWORD, SHIPPED_CONFIG, Desk
from trading_bot.errors import JournalError
from trading_bot.input_bounds import COUNT_LIMIT, MAX_JSON_DEPTH, MONEY_LIMIT, first_duplicate_key, may_hold_duplicate_keys
from trading_bot.logging.trade_record import parse_trade

# Generous: a fixed build answers in well under a second; the defect hung for minutes.
HANG_TIMEOUT_SECONDS = 60


def run_phase(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The real command in its own process, so a hang is a failed test, not a stuck suite."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHASE_")}
    env["PHASE_OVERRIDE_PASSWORD"] = PASSWORD
    return subprocess.run(
        [sys.executable, "-m", "trading_bot.phase", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_TIMEOUT_SECONDS,
    )


def files_under(root: Path) -> dict[str, bytes]:
    """The records under a desk; the journal index (`logs/.derived/`, a cache) is left out."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ".phase.lock" and ".derived" not in path.relative_to(root).parts
    }


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def desk_dir(tmp_path: Path) -> Path:
    """A desk that has run once (logs, heads, a criteria baseline), outside freezegun."""
    shutil.copyfile(SHIPPED_CONFIG, tmp_path / "config.json")
    assert run_phase(tmp_path / "config.json", "status").returncode == 0
    return tmp_path


def edit_config_text(config: Path, old: str, new: str) -> None:
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new, 1), encoding="utf-8")


# ---- config.json -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('"max_trades_per_day": 1', '"max_trades_per_day": 1E+100000000', "max_trades_per_day"),
        ('"max_trades_per_day": 1', '"max_trades_per_day": "1E+100000000"', "max_trades_per_day"),
        ('"max_trades_per_day": 1', f'"max_trades_per_day": {2**64}', "max_trades_per_day"),
        ('"max_trades_per_day": 1', f'"max_trades_per_day": {COUNT_LIMIT}', "max_trades_per_day"),
        ('"max_trades_per_day": 1', '"max_trades_per_day": ' + "9" * 5000, "max_trades_per_day"),
        ('"starting_equity": 10000', '"starting_equity": 1e27', "starting_equity"),
        ('"starting_equity": 10000', f'"starting_equity": {MONEY_LIMIT}', "starting_equity"),
        ('"starting_equity": 10000', '"starting_equity": 1E-100000000', "starting_equity"),
        ('"min_win_rate": 0.60', '"min_win_rate": 0.' + "6" * 100, "min_win_rate"),
    ],
    ids=["exponent-count", "exponent-count-text", "count-2^64", "count-at-limit", "count-5000-digits",
         "money-1e27", "money-at-limit", "tiny-exponent", "100-digits"],
)
def test_out_of_bounds_config_number_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    root = desk_dir(tmp_path)
    edit_config_text(root / "config.json", old, new)
    before = files_under(root)
    for command in (["status"], ["check-trade"], ["override", "--to", "proof", "--operator", "o", "--reason", "r", "--password-stdin"]):
        result = run_phase(root / "config.json", *command, stdin=PASSWORD + "\n")
        assert_one_line_refusal(result, "config.json", field)
    assert files_under(root) == before


@pytest.mark.parametrize(
    ("value", "ok"),
    [(COUNT_LIMIT - 1, True), (COUNT_LIMIT, False)],
    ids=["just-below-2^63", "at-2^63"],
)
def test_a_count_must_fit_64_bits(config_path: Path, value: int, ok: bool) -> None:
    from trading_bot.config import Config
    from trading_bot.errors import ConfigError

    edit_config_text(config_path, '"max_trades_per_day": 1', f'"max_trades_per_day": {value}')
    if ok:
        assert Config.from_env_and_json(config_path, environ={}).settings.phase_progression.proof.max_trades_per_day == value
    else:
        with pytest.raises(ConfigError):
            Config.from_env_and_json(config_path, environ={})


@pytest.mark.parametrize(
    ("value", "ok"),
    [(MONEY_LIMIT - Decimal("0.01"), True), (MONEY_LIMIT, False)],
    ids=["just-below-10^15", "at-10^15"],
)
def test_money_in_config_must_be_below_10_to_the_15(config_path: Path, value: Decimal, ok: bool) -> None:
    from trading_bot.config import Config
    from trading_bot.errors import ConfigError

    edit_config_text(config_path, '"starting_equity": 10000', f'"starting_equity": {value}')
    if ok:
        assert Config.from_env_and_json(config_path, environ={}).settings.account.starting_equity == value
    else:
        with pytest.raises(ConfigError):
            Config.from_env_and_json(config_path, environ={})


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 990, 100_000], ids=["just-over", "990", "100000"])
def test_config_nested_too_deep_is_one_line_exit_2(tmp_path: Path, depth: int) -> None:
    root = desk_dir(tmp_path)
    edit_config_text(root / "config.json", '"trading": {', '"notes": ' + "[" * depth + "]" * depth + ',\n  "trading": {')
    before = files_under(root)
    assert_one_line_refusal(run_phase(root / "config.json", "status"), "config.json", "nest")
    assert files_under(root) == before


def test_config_nested_to_the_limit_is_read(config_path: Path) -> None:
    from trading_bot.config import Config

    depth = MAX_JSON_DEPTH - 1  # the root object is one level
    edit_config_text(config_path, '"trading": {', '"notes": ' + "[" * depth + "]" * depth + ',\n  "trading": {')
    assert Config.from_env_and_json(config_path, environ={}).raw["notes"] is not None


# ---- journal lines -----------------------------------------------------------------------


def write_journal_text(root: Path, text: str) -> None:
    trades = root / "logs" / "trades"
    trades.mkdir(parents=True, exist_ok=True)
    with open(trades / "2026-03-10.jsonl", "a", encoding="utf-8") as handle:
        handle.write(text)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (json.dumps(journal_fields(quantity="1e100000000")), "quantity"),
        (json.dumps(journal_fields(quantity="1e400")), "quantity"),
        (json.dumps(journal_fields()).replace('"quantity": 1', '"quantity": 1e400'), "(line)"),
        (json.dumps(journal_fields(price="1e26")), "price"),
        (json.dumps(journal_fields(price="1" * 5000)), "price"),
        (json.dumps(journal_fields(quantity=10**6, price="1000000000.00")), "quantity"),
        (json.dumps(journal_fields(timestamp="0001-01-01T00:00:00Z")), "timestamp"),
        (json.dumps(journal_fields(timestamp="9999-12-31T23:59:59Z")), "timestamp"),
        (json.dumps(journal_fields(note=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]])), "(line)"),
        (json.dumps(journal_fields()).replace('"AAPL"', '"AAPL", "note": ' + "[" * 990 + "]" * 990), "(line)"),
        (json.dumps(journal_fields(outcome="loss", exit_timestamp="2026-03-10T15:00:00Z", net_profit_loss="-1e100000000")), "net_profit_loss"),
    ],
    ids=["quantity-1e100000000", "quantity-1e400-text", "quantity-1e400-number", "price-1e26", "price-5000-digits",
         "position-value-1e15", "year-0001", "year-9999", "nested-42", "nested-990", "pnl-huge-exponent"],
)
def test_out_of_bounds_journal_line_is_one_line_exit_2_for_every_command_and_fails_verify(
    tmp_path: Path, line: str, field: str
) -> None:
    root = desk_dir(tmp_path)
    write_journal_text(root, line + "\n")
    before = files_under(root)
    for command in (["status"], ["check-trade"], ["acknowledge", "--operator", "o"]):
        result = run_phase(root / "config.json", *command)
        assert_one_line_refusal(result, "2026-03-10.jsonl:1", field)
    assert files_under(root) == before
    verify = run_phase(root / "config.json", "verify")
    assert verify.returncode == 1 and "2026-03-10.jsonl:1" in verify.stdout + verify.stderr
    assert "Traceback" not in verify.stderr


@pytest.mark.parametrize(
    ("quantity", "price", "ok"),
    [(999, "1000000000000.00", True), (1000, "1000000000000.00", False), (1, str(MONEY_LIMIT - Decimal("0.01")), True)],
    ids=["value-below-10^15", "value-at-10^15", "price-just-below"],
)
def test_a_position_is_worth_less_than_10_to_the_15(quantity: int, price: str, ok: bool) -> None:
    data = journal_fields(quantity=quantity, price=price)
    if ok:
        assert parse_trade(data, "j", 1).quantity == quantity
    else:
        with pytest.raises(JournalError) as error:
            parse_trade(data, "j", 1)
        assert error.value.field == "quantity"


@pytest.mark.parametrize(
    ("stamp", "ok"),
    [("1969-12-31T23:59:59.999999Z", False), ("1970-01-01T00:00:00Z", True), ("9999-12-31T23:59:59.999999Z", True)],
)
def test_journal_timestamps_are_bounded_to_1970_through_9999(stamp: str, ok: bool) -> None:
    data = journal_fields(timestamp=stamp)
    if ok:
        parse_trade(data, "j", 1)
    else:
        with pytest.raises(JournalError):
            parse_trade(data, "j", 1)


# ---- the command line --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2026-03-10T14:00:00.0000000000000000000001Z", "9" * 5000]
)
def test_out_of_bounds_as_of_is_one_line_exit_2(desk: Desk, value: str) -> None:
    before = desk.snapshot_files()
    code, out, err = desk.cli("status", "--as-of", value)
    assert (code, out) == (2, "") and err.count("\n") == 1 and "--as-of" in err
    assert desk.snapshot_files() == before


def test_a_scrypt_hash_with_a_5000_digit_cost_is_refused_in_one_line(desk: Desk) -> None:
    desk.env = {"PHASE_OVERRIDE_PASSWORD_HASH": "scrypt$" + "9" * 5000 + "$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "a" * 44}
    code, out, err = desk.cli("override", "--to", "proof", "--operator", "o", "--reason", "r", "--password-stdin", stdin="x\n")
    assert code in (1, 2) and "Traceback" not in err and err.count("\n") == 1
    assert "N" in err


# ---- duplicate keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a":1,"b":"x"}', False),
        (b'{"a": 1, "b": "x"}', False),  # json.dumps' default spacing (the original bot's lines)
        (b'{"a":1,"a":2}', True),
        (b'{"a":1,"a" :2}', True),  # a blank before the colon
        (b'{"a":1,"a"\t:2}', True),
        (b'{"a":1,"\\u0061":2}', True),  # an escape spells the same key
        (b'{"a":"x\\":","b":"\\"c\\":1"}', False),  # key-like text inside values
        (b'{"a":{"b":1}}', False),  # nested keys, all different
        (b'{"a":{"b":1},"c":{"b":2}}', False),  # one key in two objects
        (b'{"a":{"b":1,"b":2}}', True),  # a nested duplicate
        (b'[{"a":1},{"a":2}]', False),
    ],
)
def test_may_hold_duplicate_keys_is_false_only_when_none_can_hide(raw: bytes, expected: bool) -> None:
    assert may_hold_duplicate_keys(raw, json.loads(raw)) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a":1,"b":2}', None),
        ('{"a":1,\n"a":2}', ("a", 2)),
        ('{"a":{"b":1,"c":[{"b":2},{"b":3}],\n"b":4}}', ("a.b", 2)),
        ('{"a":{"c":[{"b":2,"b":3}]}}', ("a.c.b", 1)),
        ('{"k":"\\"a\\":1","a":1}', None),  # a key-like text inside a string
        ('{"a":1,"\\u0061":2}', ("a", 1)),  # an escape spells the same key
        ('[{"a":1},{"a":2}]', None),  # one key in two objects
    ],
)
def test_first_duplicate_key_finds_the_second_copy_and_its_line(text: str, expected: tuple[str, int] | None) -> None:
    assert first_duplicate_key(text) == expected
