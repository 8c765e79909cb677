"""The fast reading of a journal line (`line_parser.plain_row`, the first step of
`parse_row`) makes exactly the row or the refusal of the exact parse, for every line: the
lines the bot and the benchmark write, and every odd case around them.

The reference is the exact parse written plainly from its rules: decode, refuse nesting
deeper than the limit and repeated keys, `parse_trade`, `row_from_record`. Rows are
compared value by value with their Python types (an int is not a bool, a text not a number).
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.test_benchmark_smoke import load_benchmark
from trading_bot.errors import JournalError
from trading_bot.input_bounds import MAX_JSON_DEPTH, first_duplicate_key, json_depth_exceeds
from trading_bot.logging.journal_index import parse_row, row_from_record
from trading_bot.logging.line_parser import plain_row
from trading_bot.logging.trade_record import KNOWN_FIELDS, TradeRecord, parse_trade
from trading_bot.phase.models import Phase

_journal_line = load_benchmark()._journal_line


def _exact(raw: bytes) -> list[Any] | tuple[str, int | None, str, str]:
    """The exact parse of a line, from its rules alone (no shortcut of any kind)."""

    def refused(field: str, message: str) -> tuple[str, int | None, str, str]:
        return ("d", 7, field, message)

    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return refused("(line)", f"not valid JSON ({error.msg})")
    if json_depth_exceeds(data):
        return refused("(line)", f"nested deeper than {MAX_JSON_DEPTH} levels")
    duplicate = first_duplicate_key(raw.decode("utf-8"))
    if duplicate is not None:
        return refused(duplicate[0], "duplicate key (a reader sees the first, the parser would take the last)")
    try:
        record = parse_trade(data, "d", 7)
    except JournalError as error:
        return (error.file, error.line, error.field, error.message)
    return row_from_record(record, "n", 7, 0)


def _typed(parsed: Any) -> Any:
    """A row as (type, value) pairs, a refusal as its four parts."""
    if isinstance(parsed, JournalError):
        return (parsed.file, parsed.line, parsed.field, parsed.message)
    if isinstance(parsed, tuple):
        return parsed
    return [(type(value), value) for value in parsed]


def _assert_as_exact(raw: bytes) -> list[Any] | JournalError:
    parsed = parse_row(raw, "n", "d", 7, 0)
    assert _typed(parsed) == _typed(_exact(raw))
    fast = plain_row(raw, "n", 7, 0)
    assert fast is None or _typed(fast) == _typed(parsed), "the fast reading made a row the exact parse does not"
    return parsed


def _line(fields: dict[str, Any]) -> bytes:
    """Compact, as orjson writes a line (and, unlike orjson, any integer)."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def _closed(**fields: Any) -> dict[str, Any]:
    """A closed win in the bot's field order, with its sessions, unless fields say otherwise."""
    record: dict[str, Any] = {
        "timestamp": "2026-03-10T14:00:00Z", "symbol": "AAPL", "action": "BUY", "quantity": 3, "price": "10.00",
        "total_value": "30.00", "order_id": "o-1", "execution_mode": "PAPER", "outcome": "win", "phase": "experience",
        "emergency_exit": False, "manual_override": False, "operator_id": "bot", "stop_loss": "9.90",
        "target": "10.20", "exit_timestamp": "2026-03-10T15:00:00Z", "net_profit_loss": "1.50",
        "profit_loss": "1.52", "session": "2026-03-10", "exit_session": "2026-03-10",
    }
    record.update(fields)
    return {key: value for key, value in record.items() if value is not _ABSENT}


_ABSENT = object()


# ---- lines as they are written: the fast reading takes them ---------------------------------


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    serial=st.integers(1, 10**9),
    entry=st.datetimes(datetime(1970, 1, 1), datetime(2200, 1, 1), timezones=st.just(timezone.utc)),
    minutes=st.integers(0, 6 * 24 * 60),
    recorded=st.booleans(),
)
def test_benchmark_lines_are_read_fast_as_the_exact_parse_reads_them(
    seed: int, serial: int, entry: datetime, minutes: int, recorded: bool
) -> None:
    entry = entry.replace(microsecond=0)
    exit_ = entry + timedelta(minutes=minutes)
    raw = _journal_line(random.Random(seed), serial, entry, exit_, entry.date() if recorded else None).rstrip(b"\n")
    _assert_as_exact(raw)
    assert plain_row(raw, "n", 7, 0) is not None


_AMOUNT_TEXTS = st.decimals(min_value=Decimal("-99999"), max_value=Decimal("99999"), places=2).map(str)


@st.composite
def bot_records(draw: st.DrawFn) -> TradeRecord:
    """A record as the bot writes it: microsecond instants, amounts in cents or finer."""
    entry = draw(st.datetimes(datetime(1970, 1, 1), datetime(2200, 1, 1), timezones=st.just(timezone.utc)))
    record = TradeRecord(
        timestamp=entry,
        symbol=draw(st.sampled_from(["AAPL", "MSFT", "BRK.B", "ÆØÅ"])),
        action=draw(st.sampled_from(["BUY", "SELL"])),
        quantity=draw(st.integers(1, 10**6)),
        price=Decimal(draw(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("9999"), places=4).map(str))),
        order_id=draw(st.text(min_size=1, max_size=12)),
        stop_loss=draw(st.none() | _AMOUNT_TEXTS.map(Decimal)),
        target=draw(st.none() | _AMOUNT_TEXTS.map(Decimal)),
        execution_mode=draw(st.sampled_from(["paper", "live"])),
        phase=draw(st.none() | st.sampled_from(list(Phase))),
        emergency_exit=draw(st.booleans()),
        operator_id=draw(st.none() | st.text(max_size=8)),
        session=draw(st.none() | st.integers(-1, 7).map(lambda days: entry.date() - timedelta(days=days))),
        extra=draw(st.dictionaries(st.text(max_size=6).filter(lambda key: key not in KNOWN_FIELDS), _JSON, max_size=3)),
    )
    if draw(st.booleans()):
        exit_at = entry + timedelta(microseconds=draw(st.integers(0, 10**11)))
        if draw(st.booleans()):
            record = record.rejected(at=exit_at, reason="broker said no")
        else:
            record = record.closed(exit_timestamp=exit_at, net_pnl=Decimal(draw(_AMOUNT_TEXTS)))
    return record


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bot_records())
def test_lines_the_bot_writes_are_read_as_the_exact_parse_reads_them(record: TradeRecord) -> None:
    raw = orjson.dumps(record.to_json_dict())  # as `structured_logger` appends them
    assert isinstance(_assert_as_exact(raw), list)
    assert plain_row(raw, "n", 7, 0) is not None


# ---- every odd case --------------------------------------------------------------------------


def _nested(depth: int, bracket: str) -> Any:
    """A value nested `depth` levels deep in arrays or objects."""
    value: Any = 1
    for _ in range(depth):
        value = [value] if bracket == "[" else {"k": value}
    return value


# Just within and just beyond the depth limit inside a field (the line is a level above it).
_NESTINGS = st.builds(_nested, st.sampled_from([MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH]), st.sampled_from(["[", "{"]))
_ODD_AMOUNTS = st.one_of(
    _NESTINGS,
    st.from_regex(r"-?(0|[1-9][0-9]{0,16})(\.[0-9]{1,20})?", fullmatch=True),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([
        "0.0000001", "-0.0000001", "0.000001", "0.0000000", "0.00000010", "100.0000001", "1e-7", "1E+2", "007.5",
        "+5", " 5", "5 ", "5_0", "٥", "NaN", "Infinity", "-0", "0", "0.0", "-0.00", "", "-", ".5", "5.", "5|1",
        "999999999999999.999999999999999999", "1000000000000000", "999999999999999", "0.000000000000000001",
        "0.0000000000000000001", True, False, None, [], {}, 1e15, 999999999999999.9, 5e-7, 0.5,
    ]),
)
_PNL_NEAR_HALF_CENT = st.sampled_from([
    "0.005", "-0.005", "0.0050", "0.00500001", "-0.00500001", "0.004999", "0.0049999999", "0.015", "-0.015",
    "0.025", "0.995", "-0.995", "1", "-1", "0", "-0", "0.00", "1e-2", 0.005, -0.005, 0.0051, "999999999999.999999",
    "1000000000000", "0.0000005",
])
_MOMENTS = st.datetimes(datetime(1969, 12, 25), datetime(2100, 1, 1))
_STAMPS = st.one_of(
    _NESTINGS,
    st.builds(
        datetime.strftime,
        _MOMENTS,
        st.sampled_from([
            "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S+00:00", "%Y-%m-%dT%H:%M:%S+05:30",
            "%Y-%m-%dT%H:%M:%S-03:00", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%Sz", "%Y-%m-%d %H:%M:%SZ",
            "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f+00:00", "%Y-%m-%dt%H:%M:%SZ", " %Y-%m-%dT%H:%M:%SZ",
            "%Y-%m-%dT%H:%MZ", "%Y%m%dT%H%M%SZ",
        ]),
    ),
    st.builds(
        lambda moment, fraction: moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z",
        _MOMENTS,
        st.sampled_from([".5", ".123", ".12345", ".123456", ".1234567", ".000000", ".", "。123456"]),
    ),
    st.sampled_from([
        "2026-02-30T14:00:00Z", "2026-03-10T24:00:00Z", "2026-03-10T14:60:00Z", "2026-03-10T14:00:60Z",
        "1969-12-31T23:59:59Z", "1969-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59-01:00", "2026-03-10", "",
        "２０２６-03-10T14:00:00Z", "2026-03-10T14:00:00.123456Z ", "2026-03-10T14:00:00.12345Z", "2026-W11-2T14:00:00Z",
        5, None, True, ["2026-03-10T14:00:00Z"],
    ]),
)
_MODES = st.sampled_from(["PAPER", "paper", "Paper", "LIVE", "live", "LiVe", "", None, 0, False, "x", 1, "PAPER "])
_PHASES = st.sampled_from([*[phase.value for phase in Phase], "PROOF", "expert", None, 1, ""])
_FLAGS = st.sampled_from([True, False, None, 0, 1, "true", 1.0])
_TEXTS = st.one_of(st.text(max_size=5), st.sampled_from([None, 5, True, [], {}, ""]))


@st.composite
def _session_near(draw: st.DrawFn, stamp_field: str, line: dict[str, Any]) -> Any:
    """A session date a few days around the instant of `stamp_field`, or something odd."""
    stamp = line.get(stamp_field)
    day = date(2026, 3, 10)
    if isinstance(stamp, str):
        try:
            day = date.fromisoformat(stamp[:10])
        except ValueError:
            pass
    choice = draw(st.integers(0, 9))
    if choice < 7 and date(1, 1, 10) < day < date(9999, 12, 20):
        return (day - timedelta(days=draw(st.sampled_from([-3, -2, -1, 0, 1, 6, 7, 8, 9])))).isoformat()
    return draw(st.sampled_from(["2026-W11-2", "2026-3-10", "20260310", "2026-02-30", 5, None, "２０２６-03-10"]))


@st.composite
def odd_lines(draw: st.DrawFn) -> bytes:
    """A closed or open line with a few of its fields changed, dropped or added, then
    written with the spacing, escapes, order or key repeats of some other writer."""
    line = _closed(outcome=draw(st.sampled_from(["win", "loss", "breakeven", "rejected", "open", None, "won", 3])))
    if line["outcome"] == "loss":
        line["net_profit_loss"] = "-1.50"
    elif line["outcome"] == "breakeven":
        line["net_profit_loss"] = "0.00"
    changes = {
        "timestamp": _STAMPS, "exit_timestamp": _STAMPS, "symbol": _TEXTS, "action": _TEXTS, "order_id": _TEXTS,
        "operator_id": _TEXTS, "quantity": st.one_of(st.integers(-2, 10**16), st.sampled_from([2.0, "2", True, 2.5, 10**15, 10**15 - 1, 2**64, 2**63])),
        "price": _ODD_AMOUNTS, "stop_loss": _ODD_AMOUNTS, "target": _ODD_AMOUNTS, "net_profit_loss": _ODD_AMOUNTS | _PNL_NEAR_HALF_CENT,
        "profit_loss": _ODD_AMOUNTS | _PNL_NEAR_HALF_CENT, "execution_mode": _MODES, "phase": _PHASES,
        "emergency_exit": _FLAGS, "manual_override": _FLAGS, "outcome": st.sampled_from(["win", "loss", "breakeven", "rejected", "open", None, "WIN"]),
    }
    for field in draw(st.lists(st.sampled_from(sorted(changes)), max_size=4, unique=True)):
        line[field] = draw(changes[field])
    for field in draw(st.lists(st.sampled_from(sorted(KNOWN_FIELDS)), max_size=2, unique=True)):
        line.pop(field, None)
    if draw(st.booleans()):
        line["session"] = draw(_session_near("timestamp", line))
    if draw(st.booleans()):
        line["exit_session"] = draw(_session_near("exit_timestamp", line))
    for key, value in draw(st.dictionaries(st.text(max_size=5), _JSON, max_size=3)).items():
        line.setdefault(key, value)
    if draw(st.booleans()):
        keys = list(line)
        random.Random(draw(st.integers(0, 1000))).shuffle(keys)
        line = {key: line[key] for key in keys}
    writer = draw(st.sampled_from(["orjson", "spaced", "ascii", "indented", "tabbed", "space before colon"]))
    if writer == "orjson":
        # orjson writes no integer beyond 64 bits: json writes the same compact text.
        raw = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()
    elif writer == "spaced":
        raw = json.dumps(line, ensure_ascii=False).encode()
    elif writer == "ascii":
        raw = json.dumps(line, separators=(",", ":")).encode()
    elif writer == "indented":
        raw = json.dumps(line, ensure_ascii=False, separators=(", ", ": ")).replace("{", "{ ").encode()
    elif writer == "tabbed":
        raw = json.dumps(line, ensure_ascii=False, separators=(",\t", ":\t")).encode()
    else:
        raw = json.dumps(line, ensure_ascii=False, separators=(",", " : ")).encode()
    return draw(_damaged(raw))


@st.composite
def _damaged(draw: st.DrawFn, raw: bytes) -> bytes:
    """The line as written, or with a key repeated (top level or nested), a key spelled
    with an escape, an integer beyond 64 bits, invalid UTF-8, deep nesting, or cut short."""
    damage = draw(st.sampled_from(["none"] * 6 + ["repeat", "repeat nested", "escape", "big int", "utf-8", "deep", "cut"]))
    if damage == "repeat":
        key = draw(st.sampled_from(sorted(KNOWN_FIELDS) + ["note"]))
        return raw[:1] + f'"{key}":"x",'.encode() + raw[1:]
    if damage == "repeat nested":
        return raw[:-1] + b',"nest":{"a":1,"b":[{"c":2,"c":3}],"a":4}}'
    if damage == "escape":
        return raw.replace(b'"symbol"', b'"sym\\u0062ol"', 1)
    if damage == "big int":
        number = draw(st.sampled_from([b"18446744073709551615", b"18446744073709551616", b"-9223372036854775809", b"1" + b"0" * 30]))
        field = draw(st.sampled_from([b'"quantity"', b'"price"', b'"net_profit_loss"', b'"note"']))
        return raw[:-1] + b"," + field + b":" + number + b"}"
    if damage == "utf-8":
        return raw.replace(b'"AAPL"', b'"AA\xffPL"', 1)
    if damage == "deep":
        depth = draw(st.sampled_from([MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH]))
        nest = draw(st.sampled_from([b"[", b'{"k":']))
        close = b"]" if nest == b"[" else b"}"
        return raw[:-1] + b',"deep":' + nest * depth + b"1" + close * depth + b"}"
    if damage == "cut":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    return raw


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(odd_lines())
@example(b"[1, 2]")
@example(b'"a line"')
@example(b"null")
@example(b"17")
@example(b"{}")
def test_odd_lines_get_the_row_or_the_refusal_of_the_exact_parse(raw: bytes) -> None:
    _assert_as_exact(raw)


_SESSIONS = st.builds(
    lambda day, days_before: (day - timedelta(days=days_before)).isoformat(),
    st.sampled_from([date(2026, 3, 10), date(2026, 3, 9), date(1970, 1, 1), date(2024, 2, 29)]),
    st.integers(-2, 8),
)
_ANY_VALUE = st.one_of(_JSON, _NESTINGS, _ODD_AMOUNTS, _PNL_NEAR_HALF_CENT, _STAMPS, _SESSIONS, _MODES, _PHASES, _FLAGS, _TEXTS)


@st.composite
def lines_with_a_field_or_two_changed(draw: st.DrawFn) -> bytes:
    """A line the fast reading takes with one or two known fields changed to any value or
    dropped: most stay close enough to be read fast, so each field's every check is met."""
    outcome = draw(st.sampled_from(["win", "loss", "breakeven", "rejected", "open"]))
    pnl = {"loss": "-1.50", "breakeven": "0.00"}.get(outcome, "1.50")
    line = _closed(outcome=outcome, net_profit_loss=pnl, exit_session=_ABSENT if outcome == "open" else "2026-03-10")
    for field in draw(st.lists(st.sampled_from(sorted(KNOWN_FIELDS)), min_size=1, max_size=2, unique=True)):
        if draw(st.integers(0, 9)) == 0:
            line.pop(field, None)
        else:
            line[field] = draw(_ANY_VALUE)
    return _line(line)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines_with_a_field_or_two_changed())
def test_a_line_with_a_known_field_or_two_changed_gets_the_row_or_the_refusal_of_the_exact_parse(raw: bytes) -> None:
    _assert_as_exact(raw)


# ---- each rule at, just below and just above its threshold ------------------------------------


def _accepted(raw: bytes) -> bool:
    return isinstance(_assert_as_exact(raw), list)


@pytest.mark.parametrize(
    ("quantity", "price", "accepted"),
    [
        (4, "249999999999999.75", True),  # worth 999,999,999,999,999
        # Worth a hair below 10^15, but the product is rounded to 28 digits first: refused.
        (4, "249999999999999.999999999999999999", False),
        (1, "999999999999999.999999999999999999", False),
        (3, "333333333333333.333333333333333333", False),
        (1, "999999999999999.999999999999", True),
        (4, "250000000000000", False),  # worth exactly 10^15
        (4, "250000000000000.01", False),
        (999_999_999_999_999, "1", True),
        (10**15, "1", False),
        (999_999_999_999_999, "1.000000000000000001", True),  # rounded to 999999999999999.0010000000000
        (1, "0.000001", True),
        (1, "0.0000001", True),  # below a millionth: the exact parse writes it 1E-7
        (1, "0.000000000000000001", True),
        (1, "0.0000000000000000001", False),  # finer than 10^-18
        (1, "0", False),
        (1, "0.00", False),
        (1, "-0.01", False),
    ],
)
def test_the_worth_of_a_trade_and_its_price_at_their_bounds(quantity: int, price: str, accepted: bool) -> None:
    assert _accepted(_line(_closed(quantity=quantity, price=price))) is accepted


@pytest.mark.parametrize(
    ("amount", "accepted"),
    [
        ("999999999999999", True), ("1000000000000000", False), ("999999999999999.9999999999999", True),
        # 29 significant digits: its size is taken rounded to 28, which is 10^15.
        ("999999999999999.99999999999995", False), ("999999999999999.999999999999999999", False),
        ("-999999999999999", True), ("-1000000000000000", False), ("1.123456789012345678", True),
        ("1.1234567890123456789", True), (999_999_999_999_999, True), (10**15, False), (-(10**15), False),
        (999999999999999.9, True), (1e15, False), (0.1, True), (5e-07, True), ("5E-7", True), ("1e2", True),
    ],
)
def test_stop_and_target_amounts_at_their_bounds(amount: Any, accepted: bool) -> None:
    assert _accepted(_line(_closed(stop_loss=amount))) is accepted
    assert _accepted(_line(_closed(target=amount))) is accepted


@pytest.mark.parametrize(
    ("pnl", "outcome"),
    [
        ("0.005", "breakeven"), ("0.0050001", "win"), ("0.0049999", "breakeven"), ("-0.005", "breakeven"),
        ("-0.0050001", "loss"), ("-0.0049999", "breakeven"), ("0.015", "win"), ("-0.015", "loss"),
        ("0.025", "win"), ("0.0250000001", "win"), ("999999999999.999999", "win"), ("1000000000000.5", "win"),
        ("0.00", "breakeven"), ("-0", "breakeven"), (0.005, "breakeven"), (0.0051, "win"), (1, "win"),
        ("999999999999999.9999999999999", "win"), ("-999999999999999.99999999999995", None),
    ],
)
def test_the_outcome_a_net_pnl_implies_at_half_a_cent(pnl: Any, outcome: str | None) -> None:
    for named in ("win", "loss", "breakeven"):
        assert _accepted(_line(_closed(outcome=named, net_profit_loss=pnl))) is (named == outcome)
    # A net P&L is what counts; the gross one only when the net is absent.
    assert _accepted(_line(_closed(outcome="win", net_profit_loss=None, profit_loss=pnl))) is (outcome == "win")
    assert not _accepted(_line(_closed(outcome="win", net_profit_loss=None, profit_loss=None)))


@pytest.mark.parametrize(
    ("quantity", "accepted"),
    [
        (1, True), (0, False), (-1, False), (999_999_999_999_999, True), (10**15, False), (2.0, True), (2.5, False),
        (True, False), ("2", True), (2**63, False), (2**64, False),
    ],
)
def test_the_quantity_at_its_bounds(quantity: Any, accepted: bool) -> None:
    assert _accepted(_line(_closed(quantity=quantity, price="0.000000000000001"))) is accepted


@pytest.mark.parametrize(
    ("entry", "exit_", "accepted"),
    [
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", True),
        ("1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", False),
        ("1969-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z", False),
        ("2026-03-10T14:00:00.000001Z", "2026-03-10T14:00:00.000001Z", True),
        ("2026-03-10T14:00:00.000001Z", "2026-03-10T14:00:00Z", False),
        ("2026-03-10T14:00:00Z", "2026-03-10T13:59:59.999999Z", False),
        ("2026-03-10T14:00:00+00:00", "2026-03-10T15:00:00Z", True),
        ("2026-03-10T16:00:00+02:00", "2026-03-10T15:00:00Z", True),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z", True),
        ("2026-02-29T14:00:00Z", "2026-03-10T15:00:00Z", False),
        ("2024-02-29T14:00:00Z", "2024-02-29T15:00:00Z", True),
    ],
)
def test_instants_at_their_bounds(entry: str, exit_: str, accepted: bool) -> None:
    raw = _line(_closed(timestamp=entry, exit_timestamp=exit_, session=_ABSENT, exit_session=_ABSENT))
    assert _accepted(raw) is accepted


@pytest.mark.parametrize(("days_before", "accepted"), [(-2, False), (-1, True), (0, True), (7, True), (8, False)])
def test_recorded_sessions_at_a_week_before_and_a_day_after(days_before: int, accepted: bool) -> None:
    day = (date(2026, 3, 10) - timedelta(days=days_before)).isoformat()
    assert _accepted(_line(_closed(session=day))) is accepted
    assert _accepted(_line(_closed(exit_session=day))) is accepted
    assert _accepted(_line(_closed(session=day, exit_timestamp=None, outcome="open", exit_session=_ABSENT))) is accepted


@pytest.mark.parametrize(("depth", "accepted"), [(MAX_JSON_DEPTH - 2, True), (MAX_JSON_DEPTH - 1, True), (MAX_JSON_DEPTH, False)])
def test_nesting_at_the_limit(depth: int, accepted: bool) -> None:
    # The line is level 1: `depth` more levels below it.
    raw = _line(_closed())[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
    assert _accepted(raw) is accepted


@pytest.mark.parametrize(
    ("field", "line"),
    [
        ("profit_loss", _closed()),  # the net P&L is read, the gross one is not
        ("net_profit_loss", _closed(outcome="rejected")),
        ("profit_loss", _closed(outcome="rejected")),
        ("net_profit_loss", _closed(outcome="open", exit_timestamp=_ABSENT, exit_session=_ABSENT)),
        ("profit_loss", _closed(outcome="open", exit_timestamp=_ABSENT, exit_session=_ABSENT)),
        ("exit_timestamp", _closed(outcome="open", exit_session=_ABSENT)),
    ],
)
@pytest.mark.parametrize(("depth", "accepted"), [(MAX_JSON_DEPTH - 1, True), (MAX_JSON_DEPTH, False)])
@pytest.mark.parametrize("bracket", ["[", "{"])
def test_nesting_in_a_known_field_the_line_does_not_use_is_counted_too(
    field: str, line: dict[str, Any], depth: int, accepted: bool, bracket: str
) -> None:
    """A known field the exact parse does not read on this line still nests inside it."""
    assert _accepted(_line({**line, field: _nested(depth, bracket)})) is accepted


def test_nesting_in_an_array_of_the_other_fields_is_counted_too() -> None:
    objects = b'{"k":' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH
    assert not _accepted(_line(_closed())[:-1] + b',"deep":' + objects + b"}")
    flat = b"[" + b",".join([b"[1]", b'{"a":2}'] * 40) + b"]"
    assert _accepted(_line(_closed())[:-1] + b',"many":' + flat + b"}")


def test_an_empty_stop_or_target_is_refused_though_an_absent_one_is_not() -> None:
    assert not _accepted(_line(_closed(stop_loss="")))
    assert not _accepted(_line(_closed(target="")))
    assert _accepted(_line(_closed(stop_loss=None, target=_ABSENT)))


def test_the_other_fields_keep_their_order_and_their_values() -> None:
    raw = b'{"z":1,"timestamp":"2026-03-10T14:00:00Z","a":{"y":[1,2.5,"\xc3\xa9"],"x":null},"symbol":"A","action":"B",' \
          b'"quantity":1,"price":"1","order_id":"o","m":-0.0}'
    row = _assert_as_exact(raw)
    assert isinstance(row, list) and row[18] == '{"z":1,"a":{"y":[1,2.5,"é"],"x":null},"m":-0.0}'
    assert plain_row(raw, "n", 7, 0) is not None


@pytest.mark.parametrize("field", sorted(KNOWN_FIELDS))
def test_every_known_field_leaves_the_other_fields(field: str) -> None:
    """A field the exact parse knows is never kept among the others, whatever line holds it."""
    # Values an open line may hold (an open line has no exit session, its outcome is open).
    value = {"outcome": "open", "exit_session": None}.get(field, _closed().get(field, "x"))
    opened = {"timestamp": "2026-03-10T14:00:00Z", "symbol": "A", "action": "BUY", "quantity": 1, "price": "1", "order_id": "o"}
    row = _assert_as_exact(_line({**opened, field: value, "note": 1}))
    assert isinstance(row, list) and row[18] == '{"note":1}'
