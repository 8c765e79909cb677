"""Checking and restoring the records: `verify` and `recover` (SPEC §10, §11).

A collaborator of `PhaseManager`, reached as `manager.integrity`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from trading_bot.config import EMPTY_LOG_HASH
from trading_bot.money import money_str
from trading_bot.phase.log_format import LogDamaged, LogProblem
from trading_bot.phase.record_types import HISTORY_FILE, OVERRIDES_FILE, RECOVERED, SESSION_SUMMARY

if TYPE_CHECKING:
    from trading_bot.phase.manager import PhaseManager



class Integrity:
    """Both hash chains, the mirror's heads and the session summaries, and their repair."""

    def __init__(self, manager: PhaseManager) -> None:
        self.manager = manager

    def verify(self) -> list[LogProblem]:
        """Both chains, the mirror's head, and each session summary against the journal."""
        problems: list[LogProblem] = []
        problems.extend(self.manager.history.verify())
        problems.extend(self.manager.overrides.verify())
        damaged = {problem.file for problem in problems}
        if not damaged:
            try:
                self.manager.ledger()
            except LogDamaged as error:
                problems.append(error.problem)
        for name, message in self.manager.mirror.problems().items():
            if name not in damaged:
                problems.append(LogProblem(self.manager.config_path.name, None, message))
        cached_settings = self.manager.settings_cache_problem()
        if cached_settings is not None:
            problems.append(cached_settings)
        self.manager.journal.refresh()
        for file, size in self.manager.journal.torn_tails().items():
            problems.append(LogProblem(file, None, f"torn last line (unterminated, {size} bytes); the next journal write sets it aside"))
        journal = self.manager.journal_problem()
        if journal is not None:
            problems.append(LogProblem(journal.file, journal.line, f"{journal.field}: {journal.message}"))
            return problems
        counts: dict[Any, tuple[int, Decimal]] = {}
        for trade in self.manager.journal.closed_trades:
            assert trade.exit_timestamp is not None and trade.net_pnl is not None
            session = self.manager.calendar.exit_session(trade)
            count, pnl = counts.get(session, (0, Decimal(0)))
            counts[session] = (count + 1, pnl + trade.net_pnl)
        lines = self.manager.log_lines(self.manager.history)
        for line in lines:
            if line.type != SESSION_SUMMARY:
                continue
            day = datetime.fromisoformat(line.data["date"]).date()
            count, pnl = counts.get(day, (0, Decimal(0)))
            recorded_count = line.data.get("journal_trades")
            recorded_pnl = line.data.get("journal_net_pnl")
            if recorded_count != count or recorded_pnl != money_str(pnl):
                problems.append(
                    LogProblem(
                        HISTORY_FILE,
                        line.line_no,
                        f"session {day} summary records {recorded_count} trades / {recorded_pnl}, "
                        f"the journal now has {count} / {money_str(pnl)} (journal edited after the fact?)",
                    )
                )
        return problems

    def recover(self) -> list[str]:
        """Restore damaged logs (SPEC §10), trip the breaker, and say what was done."""
        done: list[str] = []
        if self.manager.damage() is None:
            self.manager.apply_due()
        with self.manager.lock.held():
            for log in (self.manager.history, self.manager.overrides):
                if log.torn_tail() is not None and log.damage() is None:
                    path = log.move_torn_tail_aside()
                    done.append(f"{log.path.name}: torn last line moved to {path.name if path else '?'}")
            results = []
            for log in (self.manager.history, self.manager.overrides):
                result = log.recover()
                if result is not None:
                    results.append((log, result))
                    done.append(
                        f"{log.path.name}: restored from {result.restored_from} ({result.kept_lines} lines kept, "
                        f"{result.dropped_lines} dropped from line {result.dropped_from_line}); "
                        f"damaged copy kept as {result.damaged_file.name}"
                    )
            mirror_problems = self.manager.mirror.problems()
            for problem in mirror_problems.values():
                done.append(f"{problem}: the log as found is accepted and recorded")
            if results or mirror_problems:
                if OVERRIDES_FILE in mirror_problems and not any(log is self.manager.overrides for log, _ in results):
                    # The override log is accepted shorter than its head said: the lines
                    # it lost may have held wrong passwords, so the lockout restarts here.
                    self.manager.overrides.append(
                        RECOVERED,
                        {"restored_from": "log as found", "detail": mirror_problems[OVERRIDES_FILE]},
                        self.manager.now(),
                    )
                if not any(log is self.manager.history for log, _ in results):
                    self.manager.history.append(
                        RECOVERED,
                        {
                            "restored_from": "prefix" if results else "log as found",
                            "log": OVERRIDES_FILE if results or OVERRIDES_FILE in mirror_problems else HISTORY_FILE,
                            "detail": "; ".join(done),
                        },
                        self.manager.now(),
                    )
                # Only now, with the recovery recorded, may the heads vouch for the logs as
                # found: a crash before this save leaves the damage showing, not healed.
                self._accept_logs_as_found(set(mirror_problems))
                done.append("phase circuit breaker tripped: review, then `acknowledge`")
                self.manager.after_commit()
        return done

    def _accept_logs_as_found(self, failed: set[str]) -> None:
        """Point each head config.json failed on at its log's last line, and save."""
        updates: dict[tuple[str, ...], Any] = {}
        for log, key in ((self.manager.history, "history_head"), (self.manager.overrides, "overrides_head")):
            if log.path.name not in failed:
                continue
            lines = log.lines()
            updates[("phase_progression", key)] = (
                {"seq": lines[-1].seq, "hash": lines[-1].hash} if lines else {"seq": 0, "hash": EMPTY_LOG_HASH}
            )
            if log is self.manager.history and not self.manager.mirror.request_open_for(self.manager.config.current_phase):
                # The mirror named a phase from lines that are gone: it was the bot's own
                # copy, not an operator's request.
                updates[("phase_progression", "current_phase")] = self.manager.recorded_phase().value
        if updates:
            self.manager.mirror.save(updates)
