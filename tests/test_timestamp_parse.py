"""The one timestamp parse (`clock.parse_timestamp`): its shortcut for the written form must
give exactly what the general ISO 8601 path gives, and refuse what it refuses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading_bot.clock import format_timestamp, parse_timestamp

_instants = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)).map(
    lambda naive: naive.replace(tzinfo=timezone.utc)
)


@given(_instants)
def test_the_written_form_reads_back_as_the_same_utc_instant_as_its_offset_spelling(moment: datetime) -> None:
    written = format_timestamp(moment)
    assert len(written) == 27
    parsed = parse_timestamp(written)
    assert parsed == moment and parsed.tzinfo is timezone.utc
    assert parsed == parse_timestamp(written[:-1] + "+00:00") == parse_timestamp(" " + written + " ")


@pytest.mark.parametrize(
    "text",
    [
        "1969-12-31T23:59:59.999999Z",  # before 1970
        "2026-02-30T10:00:00.000000Z",  # no such day
        "2026-03-11T24:00:00.000000Z",
        "2026-03-11T14:05:00.12345xZ",
    ],
)
def test_a_written_form_out_of_range_or_malformed_is_refused(text: str) -> None:
    assert len(text) == 27
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_the_earliest_written_instant_is_taken_and_one_microsecond_earlier_is_not() -> None:
    earliest = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert parse_timestamp("1970-01-01T00:00:00.000000Z") == earliest
    with pytest.raises(ValueError):
        parse_timestamp(format_timestamp(earliest - timedelta(microseconds=1)))
