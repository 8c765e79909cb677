"""The exact micro-units of a net P&L, computed by the parsing process, equal what SQLite
computed from the stored text with the expression earlier index builds used (an index
on disk may hold rows of both, and sums them together); the outcome a close must name is
judged from them as the exact parse judges it."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.conftest import journal_fields
from tests.test_journal_index import _exact_row, _fast
from trading_bot.logging.journal_index import pnl_micros

# The definition in SQL, as the index computed it when each row was inserted.
_BODY = "replace(net_pnl, '-', '')"
_POINT = f"instr({_BODY}, '.')"
SQL_PNL_MICROS = (
    "CASE WHEN net_pnl NOT GLOB '*[^0-9.-]*' AND instr(substr(net_pnl, 2), '-') = 0"
    f" AND {_BODY} GLOB '[0-9]*' AND ("
    f"({_POINT} = 0 AND length({_BODY}) <= 12) OR ({_POINT} BETWEEN 2 AND 13"
    f" AND length({_BODY}) - {_POINT} BETWEEN 1 AND 6 AND instr(substr({_BODY}, {_POINT} + 1), '.') = 0))"
    f" THEN (CASE WHEN {_POINT} = 0 THEN CAST({_BODY} AS INTEGER) * 1000000"
    f" ELSE CAST(substr({_BODY}, 1, {_POINT} - 1) AS INTEGER) * 1000000"
    f" + CAST(substr(substr({_BODY}, {_POINT} + 1) || '00000', 1, 6) AS INTEGER) END)"
    " * (CASE WHEN net_pnl GLOB '-*' THEN -1 ELSE 1 END) END"
)

_CONNECTION = sqlite3.connect(":memory:")


def _sql(text: str | None) -> int | None:
    (value,) = _CONNECTION.execute(f"SELECT {SQL_PNL_MICROS} FROM (SELECT ? AS net_pnl)", (text,)).fetchone()
    return value


# Stored text is always the text of a Decimal, which never holds a NUL character (SQLite's
# text functions stop at one, Python's do not).
_NUMBERISH = st.text(alphabet="0123456789.-+eE ", max_size=24)
_ANY_TEXT = st.text(max_size=24).filter(lambda text: "\x00" not in text)
_DECIMAL_TEXT = st.decimals(allow_nan=False, allow_infinity=False).map(str)
_PLAIN = st.from_regex(r"-?[0-9]{0,14}(\.[0-9]{0,8})?", fullmatch=True)


@given(st.one_of(st.none(), _NUMBERISH, _ANY_TEXT, _DECIMAL_TEXT, _PLAIN))
@example("999999999999.999999")
@example("1000000000000")
@example("-0")
@example("-0.000000")
@example("0.0000001")
@example("00012.5")
@example("1.")
@example(".5")
@example("-.5")
@example("--5")
@example("5-")
@example("1.2.3")
@example("1E+2")
@example("-")
@example("")
@example("١٢")  # digits of another script
def test_the_parsing_process_computes_the_micro_units_sqlite_computed(text: str | None) -> None:
    assert pnl_micros(text) == _sql(text)


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("999999999999.999999", 999_999_999_999_999_999),
        ("1000000000000", None),
        ("999999999999", 999_999_999_999_000_000),
        ("0.000001", 1),
        ("0.0000001", None),
        ("-0.00001", -10),
        ("1E+2", None),
        (None, None),
    ],
)
def test_micro_units_are_kept_only_up_to_12_integer_digits_and_6_decimals(text: str | None, micros: int | None) -> None:
    assert pnl_micros(text) == micros
    if micros is not None:
        assert Decimal(micros).scaleb(-6) == Decimal(text)


_CLOSE_OUTCOMES = ["win", "loss", "breakeven"]


@given(
    pnl=st.one_of(
        st.integers(-2_000_000, 2_000_000).map(lambda micros: str(Decimal(micros).scaleb(-6))),
        st.from_regex(r"-?0\.00[45][0-9]{0,5}", fullmatch=True),
        st.decimals(min_value=-2, max_value=2, allow_nan=False, places=7).map(str),
    ),
    outcome=st.sampled_from(_CLOSE_OUTCOMES),
)
def test_a_close_must_name_the_outcome_its_pnl_implies_as_the_exact_parse_decides(pnl: str, outcome: str) -> None:
    raw = json.dumps(
        journal_fields(outcome=outcome, exit_timestamp="2026-03-10T15:00:00Z", net_profit_loss=pnl)
    ).encode()
    assert _fast(raw) == _exact_row(raw)


@pytest.mark.parametrize(
    ("pnl", "implied"),
    [
        ("0.004999", "breakeven"),
        ("0.005", "breakeven"),  # exactly half a cent rounds to the even cent: zero
        ("0.005001", "win"),
        ("0.0050001", "win"),  # 7 decimals: no micro-units, the exact rule decides
        ("-0.004999", "breakeven"),
        ("-0.005", "breakeven"),
        ("-0.005001", "loss"),
        ("0.015", "win"),
        ("0.999999", "win"),
        ("1", "win"),
        ("-1", "loss"),
        ("0", "breakeven"),
    ],
)
@pytest.mark.parametrize("outcome", _CLOSE_OUTCOMES)
def test_the_outcome_a_pnl_implies_at_half_a_cent(pnl: str, implied: str, outcome: str) -> None:
    raw = json.dumps(
        journal_fields(outcome=outcome, exit_timestamp="2026-03-10T15:00:00Z", net_profit_loss=pnl)
    ).encode()
    row = _fast(raw)
    assert row == _exact_row(raw)
    assert isinstance(row, list) == (outcome == implied)
