"""The operator's commands: validate, advance, override (with the password), acknowledge.

Each command settles what it can before any prompt, takes the logs lock, re-reads the
records, and commits one history line (the commit point) followed by its override-log
line. A collaborator of `PhaseManager`, reached as `manager.commands`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from trading_bot.market_calendar import format_local
from trading_bot.money import money_str
from trading_bot.phase.engine import PhaseState, metrics_snapshot
from trading_bot.phase.log_format import LogDamaged, LogLine
from trading_bot.phase.ledger import entry_size
from trading_bot.phase.record_types import ADVANCE, ADVANCE_REFUSED, BREAKER_ACK, OVERRIDE, OVERRIDE_ATTEMPT, RECOVERED, RESET, TRANSITION
from trading_bot.phase.models import GateResult, Phase

if TYPE_CHECKING:
    from trading_bot.phase.manager import PhaseManager


class PhaseRefused(Exception):
    """An operator command was refused (exit 1); the reason is one line."""


class PhaseUsageError(Exception):
    """The command itself is wrong (exit 2); nothing was recorded."""


class OperatorCommands:
    """What the operator may do to the phase; every attempt leaves one override-log line."""

    def __init__(self, manager: PhaseManager) -> None:
        self.manager = manager

    def validate_transition(self, target: Phase) -> GateResult:
        state = self.manager.state()
        current = state.phase
        if target is not current.next:
            raise PhaseRefused(_one_at_a_time(current, target))
        gate = state.gate()
        assert gate is not None
        return gate

    def advance(
        self,
        target: Phase,
        operator_id: str,
        confirm: Callable[[GateResult], bool],
    ) -> LogLine:
        """Advance one rung after a fresh evaluation, the operator's yes, and a re-check."""
        state = self.manager.state()
        current = state.phase
        refusal = self._advance_blocker(state)
        if refusal is not None:
            self._record_advance_refusal(operator_id, target, [refusal])
            raise PhaseRefused(refusal)
        if target is not current.next:
            self._record_advance_refusal(operator_id, target, [_one_at_a_time(current, target)])
            raise PhaseRefused(_one_at_a_time(current, target))
        gate = state.gate()
        assert gate is not None
        if not gate.ready:
            self._record_advance_refusal(operator_id, target, gate.failures)
            raise PhaseRefused("gate not passed: " + "; ".join(gate.failures))
        if not confirm(gate):
            self._record_advance_refusal(operator_id, target, ["operator answered no at the confirmation prompt"])
            raise PhaseRefused("advance cancelled by the operator")
        with self.manager.lock.held():
            self.manager._state_key = None
            state = self.manager.state()
            refusal = self._advance_blocker(state)
            gate = state.gate()
            if refusal is None and (state.phase is not current or gate is None or not gate.ready):
                refusal = "the records changed while confirming and the gate no longer passes"
            if refusal is not None:
                self._record_advance_refusal(operator_id, target, [refusal])
                raise PhaseRefused(refusal)
            assert gate is not None
            line = self._commit_transition(
                kind=ADVANCE,
                target=target,
                size=entry_size(self.manager.config.settings, target),
                operator_id=operator_id,
                reason=f"gates passed for {current.value} → {target.value}",
                extra={"criteria": [c.to_json() for c in gate.criteria], "metrics": metrics_snapshot(state.progress)},
            )
        return line

    def _advance_blocker(self, state: PhaseState) -> str | None:
        damage = self.manager.damage()
        if damage is not None:
            return damage
        if state.ledger.stint.breaker.tripped:
            return f"phase circuit breaker tripped ({state.ledger.stint.breaker.reason}); acknowledge it first"
        return None

    def _record_advance_refusal(self, operator_id: str, target: Phase, failures: list[str]) -> None:
        try:
            self.manager.append_override(
                ADVANCE_REFUSED,
                {"operator_id": operator_id, "to_phase": target.value, "failures": failures, "reason": "; ".join(failures)},
                self.manager.now(),
            )
        except LogDamaged:
            pass

    def override(
        self,
        *,
        target: Phase | None,
        reset_progress: bool,
        operator_id: str,
        reason: str,
        read_password: Callable[[], str],
    ) -> LogLine:
        """Move to any phase (or reset the stint) with the password; every attempt is one line."""
        if reset_progress == (target is not None):
            raise PhaseUsageError("give exactly one of --to or --reset-progress")
        if not reason.strip():
            raise PhaseUsageError("--reason must not be empty")
        if not operator_id.strip():
            raise PhaseUsageError("--operator must not be empty")
        if target is self.manager.ledger().stint.phase:
            raise PhaseUsageError(f"already in {target.value}; use --reset-progress to start a new stint")
        state = self.manager.state()
        current = state.phase
        if target is current:
            raise PhaseUsageError(f"already in {current.value}; use --reset-progress to start a new stint")
        action = action_name(reset_progress, target or current)
        # Everything that refuses without a password is settled before the prompt, and the
        # prompt itself runs without the lock, so a slow typist never blocks the bot.
        damage = self.manager.damage()
        if damage is not None:
            with self.manager.lock.held():
                if self.manager.overrides.damage() is None:
                    self._record_attempt(operator_id, action, reason, "refused", damage)
            raise PhaseRefused(damage)
        self._refuse_if_locked_out(operator_id, action, reason)
        # Imported here: only an override reads a password (every other command starts faster).
        from trading_bot.phase.password import BadPasswordHash, PasswordNotConfigured, password_matches, secret_from_environment

        try:
            secret = secret_from_environment(self.manager.config.env)
        except (PasswordNotConfigured, BadPasswordHash) as error:
            with self.manager.lock.held():
                self._record_attempt(operator_id, action, reason, "not_configured", str(error))
            raise PhaseRefused(str(error)) from None
        candidate = read_password()
        if not candidate:
            raise PhaseUsageError("empty password; nothing recorded")
        matched = password_matches(candidate, secret)
        del candidate
        with self.manager.lock.held():
            self._refuse_if_locked_out(operator_id, action, reason)
            if not matched:
                self._record_attempt(operator_id, action, reason, "wrong_password", "wrong password")
                raise PhaseRefused("wrong password")
            self.manager._state_key = None
            state = self.manager.state()
            stint = state.ledger.stint
            if state.phase is not current:
                moved = f"the phase changed to {state.phase.value} while the password was typed; nothing applied"
                self._record_attempt(operator_id, action, reason, "refused", moved)
                raise PhaseRefused(moved)
            if reset_progress:
                line = self._commit_transition(kind=RESET, target=current, size=stint.size, operator_id=operator_id, reason=reason)
            else:
                assert target is not None
                line = self._commit_transition(
                    kind=OVERRIDE,
                    target=target,
                    size=entry_size(self.manager.config.settings, target),
                    operator_id=operator_id,
                    reason=reason,
                )
            self._record_attempt(operator_id, action, reason, "success", "override applied", history_seq=line.seq)
        return line

    def _refuse_if_locked_out(self, operator_id: str, action: str, reason: str) -> None:
        """5 wrong passwords in 15 minutes lock overrides for 15 minutes (from the override log)."""
        from trading_bot.phase.password import PasswordAttempt, lockout_state

        with self.manager.lock.held():
            attempts = [
                PasswordAttempt(line.timestamp, "recovered" if line.type == RECOVERED else line.data["outcome"])
                for line in self.manager.overrides.lines()
                if line.type == RECOVERED
                or (line.type == OVERRIDE_ATTEMPT and line.data.get("outcome") in ("success", "wrong_password", "locked_out"))
            ]
            locked = lockout_state(attempts, self.manager.now())
            if locked.locked_until is None:
                return
            cause = "a recovery of the override log" if locked.after_recovery else "5 wrong passwords"
            message = f"overrides locked until {format_local(locked.locked_until, self.manager.calendar.tz)} after {cause}"
            self._record_attempt(operator_id, action, reason, "locked_out", message)
        raise PhaseRefused(message)

    def _record_attempt(self, operator_id: str, action: str, reason: str, outcome: str, detail: str, history_seq: int | None = None) -> None:
        payload: dict[str, Any] = {
            "operator_id": operator_id,
            "action": action,
            "reason": reason,
            "outcome": outcome,
            "detail": detail,
        }
        if history_seq is not None:
            payload["history_seq"] = history_seq
        self.manager.append_override(OVERRIDE_ATTEMPT, payload, self.manager.now())

    def acknowledge(self, operator_id: str, note: str | None) -> LogLine | None:
        """Clear a tripped breaker; with nothing tripped, record nothing."""
        with self.manager.lock.held():
            state = self.manager.state()
            if self.manager.history.damage() is not None:
                raise PhaseRefused(f"phase log damaged: {self.manager.history.damage().one_line()}; run `recover` first")  # type: ignore[union-attr]
            breaker = state.ledger.stint.breaker
            if not breaker.tripped:
                return None
            line = self.manager.history.append(
                BREAKER_ACK,
                {"operator_id": operator_id, "note": note, "cleared_reason": breaker.reason},
                self.manager.now(),
            )
            self.manager.after_commit()
        return line

    def _commit_transition(
        self,
        *,
        kind: str,
        target: Phase,
        size: Decimal,
        operator_id: str,
        reason: str,
        extra: Mapping[str, Any] | None = None,
    ) -> LogLine:
        """One history line carries the new phase, size, breaker and mode (the commit point)."""
        stint = self.manager.ledger().stint
        mode = "paper" if target is Phase.EXPERIENCE else self.manager.config.mode
        payload = {
            "kind": kind,
            "from_phase": stint.phase.value,
            "to_phase": target.value,
            "position_size": money_str(size),
            "previous_size": money_str(stint.size),
            "breaker": stint.breaker.to_json(),
            "mode": mode,
            "operator_id": operator_id,
            "reason": reason,
            **(extra or {}),
        }
        line = self.manager.history.append(TRANSITION, payload, self.manager.now())
        if mode == "paper" and self.manager.config.mode == "live":
            self.manager.config = self.manager.config.with_updates({("trading", "mode"): "paper"})
        self.manager.after_commit()
        return line


def _one_at_a_time(current: Phase, target: Phase) -> str:
    """The spec's sentence, then what this particular target is: the same rung, a step down,
    a skipped rung or the top, and the command that does what the operator seems to want."""
    refusal = "phases advance one at a time; use override"
    if current.next is None:
        down = "" if target is current else f"; to step down: override --to {target.value}"
        return f"{refusal} ({current.value} is the top of the ladder: there is no phase to advance to{down})"
    if target is current:
        return (
            f"{refusal} (already in {current.value}, and the next phase is {current.next.value}; "
            f"to start a new {current.value} stint: override --reset-progress)"
        )
    if target.rank < current.rank:
        return (
            f"{refusal} ({current.value} → {target.value} is a step down: advance only climbs, "
            f"and the next phase is {current.next.value}; to step down: override --to {target.value})"
        )
    return f"{refusal} (from {current.value} the next phase is {current.next.value}, not {target.value}; to skip a rung: override --to {target.value})"


def action_name(reset: bool, target: Phase) -> str:
    return "reset_progress" if reset else f"to:{target.value}"
