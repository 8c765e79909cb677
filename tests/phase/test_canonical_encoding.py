"""The canonical encoding of a phase-log line is defined by one `json.dumps` call (the
documented check script uses it); `canonical_bytes` may take a faster encoder only where
its bytes are the same. Held here over arbitrary JSON values, floats and integers past
64 bits included, and over text that cannot be encoded at all."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_bot.phase.log_format import canonical_bytes


def _reference(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)  # every scalar value, controls included
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_values = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_text, _values, max_size=8))
def test_the_canonical_bytes_are_the_documented_json_dumps_bytes(obj: dict[str, Any]) -> None:
    assert canonical_bytes(obj) == _reference(obj)


@pytest.mark.parametrize(
    "obj",
    [
        {"small": 1.5e-05, "tiny": 1e-07, "big": 1e16, "zero": -0.0},  # floats spelled differently by orjson
        {"deep": [{"x": [0.1, {"y": 2.5}]}]},
        {"huge": 2**64, "negative": -(2**63) - 1},
        {"controls": "\x00\x1f\x7f\u2028", "escapes": "\b\f\n\r\t\"\\/"},
        {"b": {"z": 1, "a": 2}, "a": [3, 1, 2]},
    ],
)
def test_values_an_encoder_may_spell_differently_come_out_as_the_documented_bytes(obj: dict[str, Any]) -> None:
    assert canonical_bytes(obj) == _reference(obj)


def test_what_json_cannot_encode_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        canonical_bytes({"text": "\ud800"})  # a lone surrogate
    with pytest.raises(TypeError):
        canonical_bytes({"amount": object()})
