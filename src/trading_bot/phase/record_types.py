"""Every record type of the two phase logs, named once (the `type` field of a line).

`phase-history.jsonl` holds the phase ladder itself; `phase-overrides.jsonl` holds
attempts, refusals and edits around it. A reader or writer of either log takes the
names from here, so a type is never spelled two ways.
"""

from __future__ import annotations

from typing import Final

HISTORY_FILE: Final = "phase-history.jsonl"
OVERRIDES_FILE: Final = "phase-overrides.jsonl"

# ---- phase-history.jsonl
TRANSITION: Final = "transition"
SUGGESTION: Final = "suggestion"
SIZE_CHANGE: Final = "size_change"
BREAKER_ACK: Final = "breaker_ack"
SESSION_SUMMARY: Final = "session_summary"
RECOVERED: Final = "recovered"
# Written to whichever log had the torn tail.
TORN_TAIL_MOVED: Final = "torn_tail_moved"

# The `kind` of a transition.
ADVANCE: Final = "advance"
DOWNGRADE: Final = "downgrade"
OVERRIDE: Final = "override"
RESET: Final = "reset"

# ---- phase-overrides.jsonl
OVERRIDE_ATTEMPT: Final = "override_attempt"
ADVANCE_REFUSED: Final = "advance_refused"
ENTRY_REFUSED: Final = "entry_refused"
EMERGENCY_EXIT: Final = "emergency_exit"
CONFIG_REQUEST: Final = "config_phase_request"
CONFIG_REQUEST_CANCELLED: Final = "config_phase_request_cancelled"
CRITERIA_BASELINE: Final = "criteria_baseline"
CRITERIA_EDIT: Final = "criteria_edit"
JOURNAL_TORN_TAIL: Final = "journal_torn_tail_moved"
CLOCK_STEPPED_BACK: Final = "clock_stepped_back"
