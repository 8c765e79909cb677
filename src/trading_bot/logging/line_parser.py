"""The fast reading of one journal line in the shape this bot writes, as an index row.

A rebuild reads every line of the journal, so this is where its CPU goes. A line is
decoded once (orjson); its known fields are taken out of the decoded object one by one
(what is left is the row's `extra`) and checked with the fewest steps this interpreter
runs: the amounts of a line by one regular expression, instants and sessions by looking up
dates and clock times read before. Whatever is not plainly in that shape gets None, and
the exact parse (`parse_trade`) decides: this reading never accepts a line the exact parse
refuses, and makes of every line it accepts the row the exact parse makes.

msgspec was measured for the checks and left out: converting the decoded line into a
Struct of the known fields cost more per benchmark line than these checks (109,000 against
96,000 instructions), and the fields outside the Struct (the `extra`) and the test for
repeated keys still need the whole decoded object, so it could not replace the decoding.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any, Final

import orjson

from trading_bot.input_bounds import MAX_JSON_DEPTH
from trading_bot.logging.trade_record import OUTCOMES, outcome_for
from trading_bot.phase.models import Phase

_MONEY_LIMIT: Final = 10**15
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_DAY_US: Final = 86_400_000_000

# A net P&L written plainly with at most 12 integer digits and 6 decimals, as exact integer
# micro-units (NULL otherwise), stored beside its text: its sums are exact integers, so
# per-session totals are one query on one covering index (`session_totals.py`). Computed by
# the process that parses the line: in SQL it cost the inserting process half its time.
_PNL_SHAPE = re.compile(r"(-?)([0-9]{1,12})(?:\.([0-9]{1,6}))?")


def pnl_micros(net_pnl: str | None) -> int | None:
    """The stored text of a net P&L as exact integer micro-units, or None when it has more
    than 12 integer digits or 6 decimals, an exponent, or is absent."""
    if net_pnl is None:
        return None
    found = _PNL_SHAPE.fullmatch(net_pnl)
    if found is None:
        return None
    sign, units, decimals = found.groups()
    micros = int(units) * 1_000_000
    if decimals is not None:
        micros += int(decimals.ljust(6, "0"))
    return -micros if sign else micros


def _outcome_of_micros(micros: int) -> str:
    """`outcome_for` of an amount held in micro-units: rounded half to even at the cent,
    exactly half a cent is breakeven, anything beyond it a win or a loss."""
    if micros > 5_000:
        return "win"
    if micros < -5_000:
        return "loss"
    return "breakeven"


# An amount written plainly: below 10^15 in size, at most 18 decimals, no leading zeros or
# exponent. Such text is a valid, bounded amount and the text of its own Decimal, but for
# amounts below a millionth (a Decimal writes those with an exponent: lines holding
# `0.000000` anywhere in their amounts are left to the exact parse) and for amounts of more
# than 28 digits (the exact parse compares their size rounded to 28, which may reach 10^15:
# amounts written with more than 29 characters are left to it too).
_AMOUNT = r"-?+(?:0|[1-9][0-9]{0,14}+)(?:\.[0-9]{1,18}+)?+"
# A price is above 0.
_PRICE = r"(?:[1-9][0-9]{0,14}+(?:\.[0-9]{1,18}+)?+|0\.(?=[0-9]{1,18}\|)0*[1-9][0-9]*)"
_TINY = "0.000000"
_LONGEST: Final = 29
# Below this quantity a price written in so many characters is surely worth below 10^15.
_QUANTITY_SURELY_WITHIN: Final = tuple(10 ** max(15 - characters, 0) for characters in range(_LONGEST + 1))
# The price, stop and target of a line (an absent one empty), joined by `|`.
_PRICE_STOP_TARGET = re.compile(f"{_PRICE}\\|(?:{_AMOUNT})?+\\|(?:{_AMOUNT})?+").fullmatch
_ONE_AMOUNT = re.compile(_AMOUNT).fullmatch

_OUTCOME_NAMES: Final = frozenset(OUTCOMES)
_PHASE_NAMES: Final = frozenset(phase.value for phase in Phase)
# The execution modes as written, lowered; a falsy mode is paper (as the exact parse reads it).
_MODES: Final = {"PAPER": "paper", "paper": "paper", "LIVE": "live", "live": "live", "": "paper"}

# A journal repeats a few thousand dates, at most a day's clock times and a few thousand
# P&L amounts: each is read once. Bounded, so lines of arbitrary text cannot grow them.
_MEMO_LIMIT: Final = 100_000
_DATE_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CLOCK_FORM = re.compile(r"T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{6}))?Z")
# `YYYY-MM-DD` -> its ordinal; `THH:MM:SSZ` -> microseconds since midnight (a fraction is
# added to its whole second); P&L text -> (micro-units or None, the outcome it implies).
# Only what was read valid is kept.
_ORDINALS: dict[str, int] = {}
_CLOCKS: dict[str, int] = {}
_PNLS: dict[str, tuple[int | None, str]] = {}


def _ordinal(text: str) -> int | None:
    """The ordinal of a date written `YYYY-MM-DD`; None for anything else, even what
    `date.fromisoformat` would take (the exact parse decides those)."""
    ordinal = _ORDINALS.get(text)
    if ordinal is not None or _DATE_FORM.fullmatch(text) is None:
        return ordinal
    try:
        ordinal = date.fromisoformat(text).toordinal()
    except ValueError:
        return None
    if len(_ORDINALS) < _MEMO_LIMIT:
        _ORDINALS[text] = ordinal
    return ordinal


def _instant(text: str) -> tuple[int, int] | None:
    """The day ordinal and microseconds since 1970 of a `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`
    instant (how this bot writes them) from 1970 on; None for anything else."""
    ordinal = _ordinal(text[:10])
    if ordinal is None or ordinal < _EPOCH_ORDINAL:
        return None
    clock = _CLOCKS.get(text[10:])
    if clock is not None:
        return ordinal, (ordinal - _EPOCH_ORDINAL) * _DAY_US + clock
    if len(text) == 27 and text[19] == "." and text[26] == "Z":
        # The bot's own form: the whole second as read before, then six ASCII digits.
        clock = _CLOCKS.get(text[10:19] + "Z")
        fraction = text[20:26]
        if clock is not None and fraction.isascii() and fraction.isdigit():
            return ordinal, (ordinal - _EPOCH_ORDINAL) * _DAY_US + clock + int(fraction)
    found = _CLOCK_FORM.fullmatch(text, 10)
    if found is None:
        return None
    hours, minutes, seconds, fraction = found.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 59:
        return None
    clock = ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1_000_000
    if len(_CLOCKS) < _MEMO_LIMIT:
        _CLOCKS[text[10:19] + "Z"] = clock
    if fraction is not None:
        clock += int(fraction)
    return ordinal, (ordinal - _EPOCH_ORDINAL) * _DAY_US + clock


def _pnl_facts(value: Any) -> tuple[str, int | None, str] | None:
    """The stored text of a plainly written P&L, its micro-units (None beyond 12 integer
    digits or 6 decimals) and the outcome it implies; None when the exact parse decides."""
    kind = value.__class__
    if kind is not str and kind is not int and kind is not float:
        return None
    text = f"{value}"
    if _ONE_AMOUNT(text) is None or _TINY in text or len(text) > _LONGEST:
        return None
    micros = pnl_micros(text)
    implied = outcome_for(Decimal(text)) if micros is None else _outcome_of_micros(micros)
    if kind is str and len(_PNLS) < _MEMO_LIMIT:
        _PNLS[text] = (micros, implied)
    return text, micros, implied


def _key_count(node: dict[str, Any] | list[Any]) -> int:
    """Keys in decoded JSON, nested ones included."""
    if node.__class__ is dict:
        count = len(node)
        children = node.values()  # type: ignore[union-attr]
    else:
        count = 0
        children = node
    for child in children:
        kind = child.__class__
        if kind is dict or kind is list:
            count += _key_count(child)
    return count


def keys_surely_distinct(raw: bytes, data: Any) -> bool:
    """A cheap sufficient test that no object in a line repeats a key.

    Every written key ends in a quote followed by its colon, possibly after spacing, so
    the colons after a quote or a space bound the keys written from above; if that bound
    does not exceed the keys decoded, none collapsed. Otherwise the exact test decides.
    """
    if data.__class__ is not dict and data.__class__ is not list:
        return True
    if 9 in raw or 13 in raw or 10 in raw:
        return False  # a tab, carriage return or newline: the exact test decides
    return raw.count(b'":') + raw.count(b" :") <= _key_count(data)


def _may_nest_too_deep(written: bytes) -> bool:
    """Whether the JSON text of the other fields could nest deeper than the limit (more
    brackets than levels allowed). Mostly answered without counting: with no array and at
    most one inner object it cannot."""
    # Bytes are looked for by their value: a one-byte `bytes` argument costs `find` and
    # `in` a failed attempt to read it as an integer first.
    inner = written.find(_OPEN_BRACE, 1)
    if _OPEN_BRACKET not in written and (inner < 0 or written.find(_OPEN_BRACE, inner + 1) < 0):
        return False
    return written.count(b"{") + written.count(b"[") > MAX_JSON_DEPTH


_NESTED: Final = (dict, list)
_OPEN_BRACE: Final = ord("{")
_OPEN_BRACKET: Final = ord("[")


def plain_row(raw: bytes, name: str, line: int, offset: int) -> list[Any] | None:
    """The index row of a journal line in the shape this bot writes, with every check of
    `parse_trade` made; None for anything else (the exact parse then decides).

    Steps are written out rather than looped or factored where a rebuild runs them a
    million times: each call and each loop turn is a measurable share of a line."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    # A line written exactly as orjson writes its value holds no repeated key (one would
    # have collapsed): the usual case, settled by one write instead of counting keys.
    try:
        if orjson.dumps(data) != raw and not keys_surely_distinct(raw, data):
            return None
    except orjson.JSONEncodeError:
        return None  # nested deeper than orjson writes: far beyond the limit
    # The known fields leave the decoded line: what remains is its `extra`.
    take = data.pop
    timestamp = take("timestamp", None)
    symbol = take("symbol", None)
    action = take("action", None)
    quantity = take("quantity", None)
    price = take("price", None)
    order_id = take("order_id", None)
    outcome = take("outcome", None)
    exit_timestamp = take("exit_timestamp", None)
    net_pnl = take("net_profit_loss", None)
    gross_pnl = take("profit_loss", None)
    stop = take("stop_loss", None)
    target = take("target", None)
    mode = take("execution_mode", None)
    phase = take("phase", None)
    emergency = take("emergency_exit", None)
    manual = take("manual_override", None)
    operator_id = take("operator_id", None)
    session = take("session", None)
    exit_session = take("exit_session", None)
    # A P&L or exit a line does not use is not read, but nests inside the line all the same:
    # held in an array or object, its depth is for the exact parse to judge.
    if net_pnl.__class__ in _NESTED or gross_pnl.__class__ in _NESTED or exit_timestamp.__class__ in _NESTED:
        return None
    if type(timestamp) is not str or type(symbol) is not str or type(action) is not str:
        return None
    if type(order_id) is not str or not symbol or not action or not order_id:
        return None
    if type(quantity) is not int or not 0 < quantity < _MONEY_LIMIT:
        return None
    entry_day = _ORDINALS.get(timestamp[:10])
    clock = _CLOCKS.get(timestamp[10:])
    if entry_day is None or clock is None or entry_day < _EPOCH_ORDINAL:
        entry = _instant(timestamp)
        if entry is None:
            return None
        entry_day, entry_us = entry
    else:
        entry_us = (entry_day - _EPOCH_ORDINAL) * _DAY_US + clock
    if outcome is None:
        outcome = "open"
    elif type(outcome) is not str or outcome not in _OUTCOME_NAMES:
        return None
    if mode is None:
        mode = "paper"
    elif type(mode) is not str:
        return None
    else:
        mode = _MODES.get(mode)
        if mode is None:
            return None
    if phase is not None and (type(phase) is not str or phase not in _PHASE_NAMES):
        return None
    if emergency is True:
        emergency = 1
    elif emergency is False or emergency is None:
        emergency = 0
    else:
        return None
    if manual is True:
        manual = 1
    elif manual is False or manual is None:
        manual = 0
    else:
        return None
    if operator_id is not None and type(operator_id) is not str:
        return None
    if session is not None:
        if type(session) is not str:
            return None
        session = _ORDINALS.get(session) or _ordinal(session)
        if session is None or not -1 <= entry_day - session <= 7:
            return None
    exit_us = pnl = micros = None
    if outcome != "open":
        if type(exit_timestamp) is not str:
            return None
        exit_day = _ORDINALS.get(exit_timestamp[:10])
        clock = _CLOCKS.get(exit_timestamp[10:])
        if exit_day is None or clock is None or exit_day < _EPOCH_ORDINAL:
            exit_at = _instant(exit_timestamp)
            if exit_at is None:
                return None
            exit_day, exit_us = exit_at
        else:
            exit_us = (exit_day - _EPOCH_ORDINAL) * _DAY_US + clock
        if exit_us < entry_us:
            return None
        if exit_session is not None:
            if type(exit_session) is not str:
                return None
            exit_session = _ORDINALS.get(exit_session) or _ordinal(exit_session)
            if exit_session is None or not -1 <= exit_day - exit_session <= 7:
                return None
        if outcome != "rejected":
            pnl = gross_pnl if net_pnl is None else net_pnl
            facts = _PNLS.get(pnl) if type(pnl) is str else None
            if facts is None:
                full = _pnl_facts(pnl)
                if full is None:
                    return None
                pnl, micros, implied = full
            else:
                micros, implied = facts
            if implied != outcome:
                return None
    elif exit_session is not None:
        return None  # a session of an exit that is not there: the exact parse refuses it
    texts = f"{price}|{'' if stop is None else stop}|{'' if target is None else target}"
    # An empty stop or target reads as absent above, but the exact parse refuses it.
    if _PRICE_STOP_TARGET(texts) is None or _TINY in texts or stop == "" or target == "":
        return None
    # Three amounts written in at most 31 characters (two are separators) are short enough.
    if len(texts) > _LONGEST + 2 and max(map(len, texts.split("|"))) > _LONGEST:
        return None
    if type(price) is not str or (stop is not None and type(stop) is not str) or (
        target is not None and type(target) is not str
    ):
        # Written as JSON numbers: their texts (as above) are those of their Decimals.
        price, stop, target = [part or None for part in texts.split("|")]
    # Worth below 10^15 when the quantity is below 10^(15 - characters of the price); else
    # the exact comparison decides.
    if quantity >= _QUANTITY_SURELY_WITHIN[len(price)] and Decimal(price) * quantity >= _MONEY_LIMIT:
        return None
    extra = None
    if data:
        written = orjson.dumps(data)
        # The known fields are plain values: only the others can nest.
        if _may_nest_too_deep(written):
            return None
        extra = written.decode()
    return [
        entry_us, symbol, action, quantity, price, order_id, outcome, exit_us, pnl, stop, target, mode,
        phase, emergency, manual, operator_id, session, exit_session, extra, name, line, offset, micros,
    ]
