"""The line format of the hash-chained phase logs (`phase-history.jsonl`, `phase-overrides.jsonl`).

Pure: bytes and objects in, lines and problems out; no files, no clock. `chained_log`
appends and reads a log with it, `log_repair` repairs one.

The history is the authoritative record of the phase ladder, so every line is chained to
the one before it: any edit (the last line's included), deletion, insertion or reordering
is detected, a crash can only ever leave an unterminated last line, and nothing is ever
rewritten in place.

Line encoding
-------------
Each line of the file is one JSON object followed by ``"\\n"``. The object has at least:

- ``seq``: integer, 1 for the first line of the file, then +1 per line;
- ``timestamp``: UTC, formatted ``%Y-%m-%dT%H:%M:%S.%fZ`` (``2026-03-11T14:05:00.123456Z``);
- ``type``: a non-empty string naming the kind of record;
- ``prev_hash``: the previous line's ``hash`` (64 zeros, ``"0" * 64``, for the first line);
- ``hash``: the SHA-256, in lowercase hex, of the canonical UTF-8 encoding of the object
  *without* its ``hash`` key.

The other keys are the record's payload (JSON-native values only; money is written as
strings). The canonical encoding of an object ``obj`` is::

    json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

and the line written is the canonical encoding of the object *including* ``hash``,
followed by ``"\\n"``. A line that is not byte-for-byte in that form counts as edited.
An operator can check a whole file with::

    import hashlib, json, sys
    prev, data = "0" * 64, open(sys.argv[1], "rb").read()
    for n, raw in enumerate(data.split(b"\\n")[:-1], start=1):
        obj = json.loads(raw)
        claimed = obj.pop("hash")
        body = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(body.encode("utf-8")).hexdigest() == claimed, f"line {n}: hash"
        assert obj["seq"] == n and obj["prev_hash"] == prev, f"line {n}: chain"
        prev = claimed
    print("intact" if data.endswith(b"\\n") or not data else "torn last line")

A chain kept beside the data cannot stop someone who rewrites the whole file and
recomputes every hash; `config.json` records the head (``seq`` and ``hash``) so a history
cut short is noticed there.

Files beside a log ``<name>``: ``<name>.torn-<UTC yyyymmddTHHMMSSffffff>`` (an
unterminated last line moved aside), ``<name>.damaged-<stamp>`` (a damaged log set aside by
`recover`) and ``<name>.checkpoint`` (an atomic full copy, written at each session close).
"""


from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from trading_bot.clock import ensure_utc, format_timestamp, parse_timestamp
from trading_bot.input_bounds import MAX_JSON_DEPTH, json_depth_exceeds, raw_json_may_nest_too_deep

GENESIS_HASH: Final = "0" * 64
RESERVED_KEYS: Final = frozenset({"seq", "timestamp", "type", "prev_hash", "hash"})
TORN_REASON: Final = "torn last line (unterminated)"
STAMP_RAISED_FROM: Final = "stamp_raised_from"

_HEX64 = re.compile(r"[0-9a-f]{64}")
# orjson reads integers up to unsigned 64 bits exactly; beyond that it returns a float and
# the re-encoded line would no longer match its hash.
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1



@dataclass(frozen=True, slots=True)
class LogLine:
    """One verified line: its chain fields, the full parsed object and its 1-based line number."""

    seq: int
    timestamp: datetime
    type: str
    data: dict[str, Any]
    hash: str
    prev_hash: str
    line_no: int


@dataclass(frozen=True, slots=True)
class LogProblem:
    """Where a log fails its checks (``line`` is None when the whole file is concerned)."""

    file: str
    line: int | None
    reason: str

    def one_line(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.reason}"





class LogDamaged(Exception):
    """A terminated line fails its checks: new entries halt until `recover` is run."""

    def __init__(self, problem: LogProblem) -> None:
        self.problem = problem
        super().__init__(problem.one_line())


# orjson writes the same bytes as the `json.dumps` call below (sorted keys, no spaces,
# UTF-8 unescaped, the same escapes) 30 times faster, for every object without a float:
# floats it spells otherwise (`1.5e-05` is its `0.000015`), and what it cannot encode
# (integers past 64 bits, non-string keys) is left to `json` itself. A property test holds
# the two to the same bytes.
def canonical_bytes(obj: dict[str, Any]) -> bytes:
    """The canonical UTF-8 encoding of an object (sorted keys, no spaces, no ASCII escaping)."""
    if not _holds_float(obj):
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_NO_FLOAT_INSIDE = frozenset({str, int, bool, type(None)})


def _holds_float(value: Any) -> bool:
    """Whether a float is anywhere inside (dict and list subclasses looked into too)."""
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.values() if isinstance(node, dict) else node
        for item in items:
            if item.__class__ in _NO_FLOAT_INSIDE:
                continue
            if isinstance(item, float):
                return True
            if isinstance(item, (dict, list, tuple)):
                stack.append(item)
    return False


def canonical_line(obj: dict[str, Any]) -> bytes:
    """The exact bytes written for a full line object (``hash`` included): encoding + newline."""
    return canonical_bytes(obj) + b"\n"


def line_hash(obj_without_hash: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical encoding of a line object that has no ``hash`` key."""
    return hashlib.sha256(canonical_bytes(obj_without_hash)).hexdigest()


def stamp_no_earlier_than(
    moment: datetime, last: datetime | None, payload: dict[str, Any]
) -> tuple[datetime, dict[str, Any]]:
    """A line is never stamped before the line it follows: a clock that stepped back, or a
    record dated in the past (a session summary at its close), takes the last line's
    instant, and the instant asked for is kept as `stamp_raised_from`."""
    moment = ensure_utc(moment)
    if last is None or moment >= last:
        return moment, payload
    return last, {**payload, STAMP_RAISED_FROM: format_timestamp(moment)}


def check_payload(payload: dict[str, Any]) -> None:
    """Reject what could not round-trip through the encoding, before anything is written.

    TypeError for a value that is not JSON-native; ValueError for a reserved key, a
    non-finite float, an integer orjson cannot read exactly or text that is not UTF-8.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    clashes = RESERVED_KEYS.intersection(payload)
    if clashes:
        raise ValueError(f"payload uses reserved keys: {', '.join(sorted(clashes))}")
    _check_json_native(payload, "payload")
    canonical_bytes(payload)  # surfaces lone surrogates (UnicodeEncodeError is a ValueError)


def _check_json_native(value: object, where: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ValueError(f"{where}: integer out of the 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: non-finite number")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_native(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a string")
            _check_json_native(item, f"{where}.{key}")
        return
    raise TypeError(f"{where}: {type(value).__name__} is not a JSON-native value")


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX64.fullmatch(value) is not None


def parse_log_timestamp(value: object) -> datetime | None:
    """A log line's instant: the product's one parse, and written in UTC (`Z` or +00:00)."""
    if not isinstance(value, str) or not value.endswith(("Z", "+00:00")):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _content_hash(raw: bytes, obj: dict[str, Any], claimed: str) -> tuple[bool, str]:
    """(is the line canonical, hash of its content without ``hash``).

    For a canonical line the hashed bytes are the line minus its own ``"hash":"…"`` member,
    so one encoding per line checks both; a line cannot contain its own hash elsewhere.
    """
    if canonical_bytes(obj) == raw:
        member = b'"hash":"' + claimed.encode("ascii") + b'"'
        at = raw.find(member)
        if raw[at - 1 : at] == b",":
            body = raw[: at - 1] + raw[at + len(member) :]
        else:
            body = raw[:at] + raw[at + len(member) + 1 :]
        return True, hashlib.sha256(body).hexdigest()
    without = dict(obj)
    del without["hash"]
    try:
        return False, line_hash(without)
    except ValueError:
        return False, ""


def check_line(
    raw: bytes, line_no: int, expected_seq: int | None, expected_prev: str | None
) -> tuple[LogLine | None, list[str], int | None, str | None]:
    """Check one terminated line against its predecessor.

    Returns the verified line (None if anything failed), the reasons it failed, and its own
    ``seq`` and ``hash`` fields (when readable) so the next line can be checked against them.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, ["not valid JSON"], None, None
    if not isinstance(obj, dict):
        return None, ["not a JSON object"], None, None
    if raw_json_may_nest_too_deep(raw) and json_depth_exceeds(obj):
        return None, [f"nested deeper than {MAX_JSON_DEPTH} levels"], None, None
    reasons: list[str] = []
    seq = obj.get("seq")
    if type(seq) is not int:
        reasons.append("seq is missing or not an integer")
        seq = None
    elif expected_seq is not None and seq != expected_seq:
        reasons.append(f"seq is {seq}, expected {expected_seq}")
    prev_hash = obj.get("prev_hash")
    if not _is_hex64(prev_hash):
        reasons.append("prev_hash is missing or not 64 hex digits")
    elif expected_prev is not None and prev_hash != expected_prev:
        reasons.append("prev_hash does not match the previous line's hash")
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind:
        reasons.append("type is missing or not a non-empty string")
    moment = parse_log_timestamp(obj.get("timestamp"))
    if moment is None:
        reasons.append("timestamp is missing or not a UTC ISO 8601 time between 1970 and 9999")
    claimed = obj.get("hash")
    if not _is_hex64(claimed):
        reasons.append("hash is missing or not 64 hex digits")
        claimed = None
    else:
        canonical, actual = _content_hash(raw, obj, claimed)
        if actual != claimed:
            reasons.append("hash does not match the line's content")
        if not canonical:
            reasons.append("line is not in the canonical encoding")
    if reasons:
        return None, reasons, seq, claimed
    line = LogLine(
        seq=seq,  # type: ignore[arg-type]  # checked above
        timestamp=moment,  # type: ignore[arg-type]
        type=kind,  # type: ignore[arg-type]
        data=obj,
        hash=claimed,  # type: ignore[arg-type]
        prev_hash=prev_hash,  # type: ignore[arg-type]
        line_no=line_no,
    )
    return line, reasons, seq, claimed


@dataclass(frozen=True, slots=True)
class Scan:
    """A full, independent check of a log's bytes."""

    lines: list[LogLine]
    problems: list[LogProblem]
    terminated: int
    torn: bytes


def scan_all(data: bytes, file: str) -> Scan:
    """Check every line against its predecessor, reporting every problem, not just the first."""
    lines: list[LogLine] = []
    problems: list[LogProblem] = []
    expected_seq: int | None = 1
    expected_prev: str | None = GENESIS_HASH
    pos = 0
    line_no = 0
    while (end := data.find(b"\n", pos)) >= 0:
        line_no += 1
        line, reasons, seq, claimed = check_line(data[pos:end], line_no, expected_seq, expected_prev)
        if line is not None:
            lines.append(line)
        else:
            problems.append(LogProblem(file, line_no, "; ".join(reasons)))
        # Follow the line's own fields so one bad line yields one problem, not a cascade.
        expected_seq = None if seq is None else seq + 1
        expected_prev = claimed
        pos = end + 1
    torn = data[pos:]
    if torn:
        problems.append(LogProblem(file, line_no + 1, TORN_REASON))
    return Scan(lines, problems, line_no, torn)


def build_line(
    kind: str, payload: dict[str, Any], seq: int, prev_hash: str, moment: datetime
) -> tuple[dict[str, Any], bytes]:
    obj: dict[str, Any] = {
        "seq": seq,
        "timestamp": format_timestamp(moment),
        "type": kind,
        "prev_hash": prev_hash,
        **payload,
    }
    obj["hash"] = line_hash(obj)
    return obj, canonical_line(obj)



def check_type(kind: object) -> None:
    if not isinstance(kind, str):
        raise TypeError(f"type must be a string, got {type(kind).__name__}")
    if not kind:
        raise ValueError("type must not be empty")
