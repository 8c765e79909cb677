"""Every record type the phase logs hold, named once (SPEC §10; README "Records").

The history (`phase-history.jsonl`) says what the phase is; the override log
(`phase-overrides.jsonl`) says who tried what. A reader that meets a type not listed
here still verifies its hash chain, but no rule reads it.
"""

from __future__ import annotations

# ---- phase-history.jsonl -----------------------------------------------------------------
TRANSITION = "transition"  # kind: one of the transition kinds below
SUGGESTION = "suggestion"
SIZE_CHANGE = "size_change"
BREAKER_ACK = "breaker_ack"
SESSION_SUMMARY = "session_summary"
RECOVERED = "recovered"
TORN_TAIL_MOVED = "torn_tail_moved"  # also in the override log, for its own torn tail

# Transition kinds.
ADVANCE = "advance"
DOWNGRADE = "downgrade"
OVERRIDE = "override"
RESET = "reset"

# ---- phase-overrides.jsonl ---------------------------------------------------------------
OVERRIDE_ATTEMPT = "override_attempt"  # outcome: success, wrong_password, locked_out, not_configured, refused
ADVANCE_REFUSED = "advance_refused"
ENTRY_REFUSED = "entry_refused"
EMERGENCY_EXIT = "emergency_exit"
CONFIG_REQUEST = "config_phase_request"
CONFIG_REQUEST_CANCELLED = "config_phase_request_cancelled"
CRITERIA_BASELINE = "criteria_baseline"
CRITERIA_EDIT = "criteria_edit"
JOURNAL_TORN_TAIL = "journal_torn_tail_moved"
