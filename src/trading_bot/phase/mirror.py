"""config.json as the phase system sees it: a mirror it keeps, and a file people edit.

The bot writes the recorded phase and both logs' heads into config.json after each
commit; an edit of `current_phase` by hand is a request, never a move; criteria edits
are recorded with before and after. A collaborator of `PhaseManager`, reached as
`manager.mirror`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trading_bot.config import EMPTY_LOG_HASH, MIRROR_FIELDS, Config, HistoryHead, UnreadableHead
from trading_bot.durable_files import read_regular
from trading_bot.errors import InputError
from trading_bot.phase.criteria_edits import criteria_snapshot
from trading_bot.phase.rules import loosened_criteria
from trading_bot.phase.chained_log import ChainedLog
from trading_bot.phase.log_format import LogLine
from trading_bot.phase.ledger import read_ledger
from trading_bot.phase.models import Phase

if TYPE_CHECKING:
    from trading_bot.phase.manager import PhaseManager

from trading_bot.phase.record_types import CONFIG_REQUEST, CONFIG_REQUEST_CANCELLED, CRITERIA_BASELINE, CRITERIA_EDIT


def reaches(lines: Sequence[LogLine], seq: int, digest: str) -> bool:
    """The log still holds line `seq` with the hash config.json recorded for it."""
    if seq == 0:
        return True
    return len(lines) >= seq and lines[seq - 1].hash == digest


def head_problem(log: ChainedLog, key: str, head: HistoryHead | UnreadableHead | None, config_name: str) -> str | None:
    """Why a log fails the head config.json records for it, or None when it reaches it.

    A head behind the log is a mirror that lags (a crash between commit and mirror); the
    bot marks an empty log with seq 0 before its first line, so no head at all beside a
    log with lines means the head was removed.
    """
    name = log.path.name
    if isinstance(head, UnreadableHead):
        return f"{name}: {key} in {config_name} is unreadable ({head.problem}); it cannot vouch for the log"
    lines = log.lines()
    if head is None:
        if not lines:
            return None
        log.reread()
        lines = log.lines()
        if lines:
            return f"{name}: {key} is missing from {config_name} but the log has {len(lines)} lines (head deleted?)"
        return None
    if not reaches(lines, head.seq, head.hash):
        log.reread()  # a snapshot older than the config we read is not a cut log
        lines = log.lines()
    if head.seq > len(lines):
        return f"{name} cut short: {key} in {config_name} records line {head.seq} but the file has {len(lines)}"
    if not reaches(lines, head.seq, head.hash):
        return f"{name} rewritten: line {head.seq} no longer has the hash {key} in {config_name} records"
    return None


class ConfigMirror:
    """config.json as the phase system keeps and reads it; one per PhaseManager."""

    def __init__(self, manager: PhaseManager) -> None:
        self.manager = manager
        self._config_key = manager.config.file_key
        self._config_fresh = True

    def cut_log(self) -> str | None:
        """config.json records each log's last line; a log that no longer reaches it was cut."""
        problems = self.problems()
        return next(iter(problems.values()), None)

    def problems(self) -> dict[str, str]:
        """Each log whose config.json head it fails: cut short, rewritten, or with its head
        missing or unreadable while the log has lines (deleting a head is no way out)."""
        progression = self.manager.config.settings.phase_progression
        problems: dict[str, str] = {}
        for log, key, head in (
            (self.manager.history, "history_head", progression.history_head),
            (self.manager.overrides, "overrides_head", progression.overrides_head),
        ):
            problem = head_problem(log, key, head, self.manager.config_path.name)
            if problem is not None:
                problems[log.path.name] = problem
        if progression.overrides_head is None and progression.history_head is not None and self.manager.overrides.path.name not in problems:
            # The override log gets its first line (the criteria baseline) before the history
            # does, and both empty logs are marked together: a history head without an
            # override head means the override log and its head were removed.
            problems[self.manager.overrides.path.name] = (
                f"{self.manager.overrides.path.name}: overrides_head is missing from {self.manager.config_path.name} "
                "while history_head is there (the log and its head removed?)"
            )
        return problems

    def pending_request(self) -> Phase | None:
        """A hand edit of `current_phase` that no command has confirmed yet."""
        if self.manager.read_only:
            return self._request_as_of()
        lines = self.manager.log_lines(self.manager.history)
        recorded = self.manager.ledger(lines).stint.phase
        requested = self.manager.config.current_phase
        if requested is recorded or self._mirror_lags(lines, requested):
            return None
        return requested

    def _request_as_of(self) -> Phase | None:
        """Seen from the past, config.json is today's: the override log says what was pending then."""
        stint_seq = self.manager.ledger(self.manager.log_lines(self.manager.history)).stint.transition_seq
        for line in reversed(self.manager.log_lines(self.manager.overrides)):
            if line.type in (CONFIG_REQUEST, CONFIG_REQUEST_CANCELLED):
                if line.type == CONFIG_REQUEST and line.data.get("stint_seq") == stint_seq:
                    return Phase(line.data["requested_phase"])
                return None
        return None

    def _mirror_lags(self, lines: Sequence[LogLine], requested: Phase) -> bool:
        """The mirror merely trails the history: it names the phase of the head it records."""
        head = self.manager.config.history_head
        if not isinstance(head, HistoryHead):
            return False
        seq = head.seq
        if seq >= len(lines) or not reaches(lines, seq, head.hash):
            return False
        phase_then = read_ledger(lines[:seq], self.manager.config.settings, self.manager.config.mode).stint.phase
        return phase_then is requested

    def reload_config(self, exact: bool = False) -> bool:
        """config.json as it is on disk now: people edit it while the bot runs, and the bot
        must never save over an edit with the copy it loaded at start. False (and the
        settings in force kept) while the file does not parse, e.g. half-way through an edit.

        The file is read again when its (inode, size, mtime) moved. `exact` (under the logs
        lock, before the mirror writes or judges a head) also compares its text with the
        text in force: an inode reused by a later replace, of the same size, within one
        mtime tick, would pass the stat."""
        try:
            stat = os.stat(self.manager.config_path)
        except OSError:
            self._config_fresh = False
            return False
        key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key == self._config_key and (not exact or (self._config_fresh and self._text_unchanged())):
            return self._config_fresh
        try:
            fresh = Config.from_env_and_json(
                self.manager.config_path, environ=self.manager.environ, settings_cache=self.manager.config.settings_cache
            )
        except (InputError, OSError):
            self._config_key = key
            self._config_fresh = False
            return False
        changed = fresh.settings.dump(exclude=MIRROR_FIELDS) != self.manager.config.settings.dump(exclude=MIRROR_FIELDS)
        self.manager.config = fresh
        self._config_key = fresh.file_key
        self._config_fresh = True
        if changed:
            self.manager.adopt_settings()
        return True

    def _text_unchanged(self) -> bool:
        try:
            text = read_regular(self.manager.config_path).decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return False
        return text.removeprefix("\ufeff") == self.manager.config.text

    def save(self, updates: dict[tuple[str, ...], Any]) -> None:
        """Write these keys into config.json (atomically) and remember the file as ours. The
        settings in memory change only once the file holds them: a refused write leaves both
        as they were."""
        self.reload_config(exact=True)  # under the lock: the keys go into the file as it is now
        updated = self.manager.config.with_updates(updates)
        updated.save()
        self.manager.config = updated
        self._config_key = self.stat_key()

    def stat_key(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.manager.config_path)
        except OSError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def write(self) -> None:
        """Mirror phase, mode and both heads into config.json; a pending hand edit is left alone."""
        if self.manager.read_only or self.cut_log() is not None:
            return  # never overwrite the evidence of a cut log
        if not self.reload_config(exact=True):
            return  # config.json does not parse right now: write nothing over the operator's edit
        lines = self.manager.history.lines()
        ledger = self.manager.ledger(lines)
        phase = ledger.stint.phase
        updates: dict[tuple[str, ...], Any] = {}
        if self.pending_request() is None and self.manager.config.current_phase is not phase:
            updates[("phase_progression", "current_phase")] = phase.value
        if phase is Phase.EXPERIENCE and self.manager.config.mode == "live" and ledger.transitions:
            last = ledger.transitions[-1]
            if last.data.get("mode") == "paper" and not self._mirror_recorded(last.seq):
                updates[("trading", "mode")] = "paper"
        for key, log_lines, recorded in (
            ("history_head", lines, self.manager.config.history_head),
            ("overrides_head", self.manager.overrides.lines(), self.manager.config.settings.phase_progression.overrides_head),
        ):
            if not log_lines:
                continue
            last = log_lines[-1]
            if not isinstance(recorded, HistoryHead) or recorded.seq != last.seq or recorded.hash != last.hash:
                updates[("phase_progression", key)] = {"seq": last.seq, "hash": last.hash}
        if not updates:
            return
        self.save(updates)

    def _mirror_recorded(self, seq: int) -> bool:
        head = self.manager.config.history_head
        return isinstance(head, HistoryHead) and head.seq >= seq

    def mark_empty_logs(self) -> None:
        """Before a log's first line, record in config.json that it is empty (seq 0): a crash
        between that line and the mirror is then a lag, and a head found missing later can
        only mean it was removed."""
        progression = self.manager.config.settings.phase_progression
        if self.manager.read_only or (progression.history_head is not None and progression.overrides_head is not None):
            return
        if self.cut_log() is not None or not self.reload_config(exact=True):
            return
        progression = self.manager.config.settings.phase_progression
        updates: dict[tuple[str, ...], Any] = {}
        for log, key, head in (
            (self.manager.history, "history_head", progression.history_head),
            (self.manager.overrides, "overrides_head", progression.overrides_head),
        ):
            if head is None and not log.lines():
                updates[("phase_progression", key)] = {"seq": 0, "hash": EMPTY_LOG_HASH}
        if not updates:
            return
        self.save(updates)

    def record_config_request(self, now: datetime) -> None:
        requested = self.pending_request()
        stint_seq = self.manager.ledger().stint.transition_seq
        last = None
        for line in reversed(self.manager.overrides.lines()):
            if line.type in (CONFIG_REQUEST, CONFIG_REQUEST_CANCELLED):
                last = line
                break
        last_open = last is not None and last.type == CONFIG_REQUEST and last.data.get("stint_seq") == stint_seq
        if requested is None:
            if last_open:
                assert last is not None
                self.manager.append_override(
                    CONFIG_REQUEST_CANCELLED,
                    {"requested_phase": last.data.get("requested_phase"), "stint_seq": stint_seq, "operator_id": "config.json"},
                    now,
                )
            return
        if last_open and last is not None and last.data.get("requested_phase") == requested.value:
            return
        self.manager.append_override(
            CONFIG_REQUEST,
            {
                "requested_phase": requested.value,
                "recorded_phase": self.manager.recorded_phase().value,
                "stint_seq": stint_seq,
                "operator_id": "config.json",
                "reason": "current_phase edited in config.json; confirm with `override` or `advance`",
            },
            now,
        )

    def record_criteria_edits(self, now: datetime) -> None:
        snapshot = criteria_snapshot(self.manager.config.settings)
        previous: dict[str, Any] | None = None
        for line in reversed(self.manager.overrides.lines()):
            if line.type == CRITERIA_BASELINE:
                previous = line.data.get("criteria")
                break
            if line.type == CRITERIA_EDIT:
                previous = line.data.get("after")
                break
        if previous is None:
            self.manager.append_override(CRITERIA_BASELINE, {"criteria": snapshot, "operator_id": "config.json"}, now)
            return
        if previous == snapshot:
            return
        loosened = loosened_criteria(previous, snapshot)
        self.manager.append_override(
            CRITERIA_EDIT,
            {
                "before": previous,
                "after": snapshot,
                "loosened": loosened,
                "counts_as_incident": bool(loosened),
                "operator_id": "config.json",
            },
            now,
        )

    def request_open_for(self, phase: Phase) -> bool:
        for line in reversed(self.manager.overrides.lines()):
            if line.type in (CONFIG_REQUEST, CONFIG_REQUEST_CANCELLED):
                return line.type == CONFIG_REQUEST and line.data.get("requested_phase") == phase.value
        return False
