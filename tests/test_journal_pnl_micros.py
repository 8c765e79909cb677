"""The exact micro-units of a net P&L, computed by the parsing process, equal what SQLite
computed from the stored text with the expression earlier index builds used (an index
on disk may hold rows of both, and sums them together)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

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
