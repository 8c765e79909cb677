"""`python -m trading_bot.phase`: the operator's commands. Parses, calls the manager, formats.

Exit codes: 0 success / ready / allowed; 1 refused / not ready / damage / busy; 2 bad
usage or bad input (one line on stderr, nothing on stdout, nothing written); 141 the
reader of stdout went away (`status | true`): nothing said, as for a SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from trading_bot.app import Desk
from trading_bot.clock import CLOCK_TOLERANCE, SYSTEM_CLOCK, Clock, format_timestamp, parse_timestamp
from trading_bot.errors import Busy, InputError, escape_controls
from trading_bot.market_calendar import format_countdown, format_local
from trading_bot.money import money_str
from trading_bot.phase.log_format import LogDamaged
from trading_bot.phase.manager import PhaseManager, PhaseRefused, PhaseUsageError
from trading_bot.phase.models import GateResult, Phase
from trading_bot.phase.rules import triggers_for
from trading_bot.entry_checks import CODE_LIMIT, EntryDecision

# Each command imports what only it needs (export, report, replay, the simulation, the
# bot) inside its function: `status` is typed dozens of times a day and must start fast.

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_OUTPUT_CLOSED = 128 + 13  # what a shell reports for a writer ended by SIGPIPE
_NOT_UTF8 = "standard input is not UTF-8 text; nothing recorded"


class UsageError(Exception):
    """Bad command-line usage: exit 2 with one line."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--password` must never pass for `--password-stdin`
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(without_typed_values(message))

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if status:
            raise UsageError((message or "").strip() or "bad usage")
        raise _HelpShown()


class _HelpShown(Exception):
    pass


_NOT_SHOWN = "(what was typed is not shown: it may be a password; passwords are read from a prompt or --password-stdin)"


def without_typed_values(message: str) -> str:
    """An argparse message with nothing the operator typed in it: a mistaken argument
    may be a password (`--password hunter2` before the command name, say)."""
    if message.startswith("unrecognized arguments"):
        return f"unrecognized arguments {_NOT_SHOWN}"
    if message.startswith("ambiguous option"):
        return f"ambiguous option {_NOT_SHOWN}"
    argument, _, detail = message.partition(": ")
    if not argument.startswith("argument ") or not detail:
        return message
    if "explicit argument" in detail:
        return f"{argument}: takes no value {_NOT_SHOWN}"
    if detail.startswith("invalid choice"):
        choices = detail[detail.find("(choose from") :] if "(choose from" in detail else ""
        return f"{argument}: invalid choice {_NOT_SHOWN} {choices}".rstrip()
    if detail.startswith("invalid ") and " value: " in detail:
        return f"{argument}: {detail.split(' value: ')[0]} value {_NOT_SHOWN}"
    return message


@dataclass
class Io:
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")


def _phase(value: str) -> Phase:
    try:
        return Phase(value)
    except ValueError:
        raise argparse.ArgumentTypeError("unknown phase (experience, proof, trial or scaling)") from None


def _moment(value: str) -> datetime:
    text = value.strip()
    if not (text.endswith("Z") or text.endswith("z") or "+" in text[10:] or "-" in text[10:]):
        raise argparse.ArgumentTypeError("give an ISO 8601 time with a time zone (Z or an offset such as -05:00)")
    try:
        return parse_timestamp(text)
    except ValueError as error:
        reason = "not an ISO 8601 timestamp" if str(error).startswith("not an ISO") else f"the timestamp {error}"
        raise argparse.ArgumentTypeError(reason) from None


def _day(option: str) -> Callable[[str], date]:
    def parse(value: str) -> date:
        from trading_bot.phase.export import ExportRangeError, parse_day

        try:
            return parse_day(option, value)
        except ExportRangeError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix(f"{option}: ")) from None

    return parse


def default_operator() -> str:
    """The CLI's operator id when none is given: the login name (SPEC §14)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "operator"


# What each command's exit code means, as the README's command table says it; `--help`
# prints it under the options.
EXIT_CODES: dict[str, str] = {
    "status": "0; 1 if the phase logs are damaged",
    "validate-transition": "0 ready, 1 not (or not the next phase)",
    "advance": "0; 1 refused (recorded); 2 no terminal and no --yes (nothing recorded)",
    "override": "0; 1 refused (recorded); 2 --to the current phase or no way to read the password",
    "acknowledge": "0 (nothing recorded if nothing was tripped); 1 the phase logs are damaged",
    "check-trade": "0 allowed, 1 refused",
    "verify": "0 intact, 1 otherwise",
    "recover": "0",
    "hash-password": "0; 2 empty or mismatched",
    "export": "0; 2 reversed range, bad date, unwritable output or one on the desk's records",
    "report": "0; 2 unwritable output or one on the desk's records",
    "replay": "0; 2 a bad row (file, row and column named)",
    "simulate": "0; 2 a non-empty --workdir or bad numbers",
}
_EVERY_EXIT = (
    "exit 2 is always bad usage or bad input (one line on stderr, nothing written); exit 1 also when a writer "
    "cannot get the logs lock within 10 s (busy); 141 when standard output is closed"
)


def build_parser() -> _Parser:
    parser = _Parser(
        prog="python -m trading_bot.phase",
        description="Phase progression: status and control.",
        epilog=_EVERY_EXIT,
    )
    # No default here: whether the operator named a config.json is asked by the commands that
    # build their own desk (`_settings_named`); the others fall back to ./config.json.
    parser.add_argument("--config", type=Path, default=None, metavar="PATH", help="config.json (default ./config.json)")
    parser.add_argument("--logs-dir", type=Path, default=None, metavar="DIR", help="logs folder (default: logs/ beside the config)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=summary, epilog=f"exit: {EXIT_CODES[name]}")

    def as_of(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--as-of", type=_moment, default=None, metavar="T", help="see the records as they were then (ISO 8601 with Z or an offset; read-only)")

    def as_json(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--json", action="store_true", help="one JSON object instead of text")

    def to_phase(sub: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup, summary: str, required: bool) -> None:
        sub.add_argument("--to", type=_phase, required=required, metavar="P", help=f"{summary}: experience, proof, trial or scaling")

    status = command("status", "phase, size, entries, breaker, readiness")
    as_json(status)
    as_of(status)

    validate = command("validate-transition", "evaluate the gate for the next phase")
    to_phase(validate, "the next phase", True)
    as_json(validate)
    as_of(validate)

    advance = command("advance", "advance one phase after the gates pass")
    to_phase(advance, "the next phase", True)
    advance.add_argument("--operator", default=None, metavar="ID", help="who advances (default: your login name)")
    advance.add_argument("--yes", action="store_true", help="confirm without a prompt (needed without a terminal)")

    override = command("override", "move to any phase or reset the stint (password)")
    target = override.add_mutually_exclusive_group(required=True)
    to_phase(target, "the phase to move to", False)
    target.add_argument("--reset-progress", action="store_true", help="start a new stint of the current phase")
    override.add_argument("--operator", required=True, metavar="ID", help="who overrides")
    override.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded)")
    override.add_argument("--password-stdin", action="store_true", help="read the password from standard input, not a prompt")

    acknowledge = command("acknowledge", "clear a tripped phase breaker")
    acknowledge.add_argument("--operator", required=True, metavar="ID", help="who reviewed the trip")
    acknowledge.add_argument("--note", default=None, metavar="TEXT", help="what was reviewed (recorded)")

    check = command("check-trade", "would a new entry be allowed now")
    check.add_argument("--emergency-exit", action="store_true", help="ask about an emergency exit instead (always allowed)")
    as_json(check)
    as_of(check)

    verify = command("verify", "check both hash chains, the config.json head and every session summary")
    as_json(verify)
    as_of(verify)

    export = command("export", "sessions of a date range as CSV or JSON")
    export.add_argument("--start", type=_day("--start"), required=True, metavar="DATE", help="first day, YYYY-MM-DD (inclusive)")
    export.add_argument("--end", type=_day("--end"), required=True, metavar="DATE", help="last day, YYYY-MM-DD (inclusive)")
    export.add_argument("--format", choices=("csv", "json"), default="csv", metavar="csv|json", help="default csv")
    export.add_argument("--output", type=Path, default=None, metavar="PATH", help="write here (atomically) instead of stdout")
    as_of(export)

    report = command("report", "one self-contained HTML page: equity, phases, gate, sessions")
    report.add_argument("--output", type=Path, default=None, metavar="PATH", help="where to write it (default: report.html beside config.json)")
    as_of(report)

    replay_cmd = command("replay", "what-if: run a backtest's trades or a journal through the ladder")
    replay_cmd.add_argument("--trades", type=Path, required=True, metavar="PATH", help="a CSV trade list or a journal folder")
    replay_cmd.add_argument("--config", dest="replay_config", type=Path, default=None, metavar="C", help="settings to replay under (default: the shipped defaults)")
    replay_cmd.add_argument("--json", action="store_true", help="the timeline as a JSON list of events (the last is the final state)")
    replay_cmd.add_argument("--from-phase", type=_phase, default=None, metavar="P", help="start the ladder here instead of experience")

    simulate = command("simulate", "the demo: a seeded strategy climbs the ladder on a fresh desk")
    simulate.add_argument("--sessions", type=int, default=None, metavar="N", help="past trading sessions to trade (default: the demo's 150)")
    simulate.add_argument("--seed", type=int, default=None, metavar="S", help="the strategy's seed (default: the demo's 10)")
    simulate.add_argument("--workdir", type=Path, default=None, metavar="DIR", help="an empty or new folder (default: a new simulated-desk-N here)")

    command("recover", "restore damaged phase logs")
    hash_password = command("hash-password", "make a PHASE_OVERRIDE_PASSWORD_HASH value")
    hash_password.add_argument("--password-stdin", action="store_true", help="read the password from standard input, not a prompt")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Run one command in-process and return its exit code (never raises SystemExit)."""
    io = Io(stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr)
    try:
        return _run(argv, io, environ, clock)
    except BrokenPipeError:
        # The reader is gone: not the operator's mistake and no file's fault. What was
        # recorded stays recorded; there is no one left to tell.
        return EXIT_OUTPUT_CLOSED


def _run(argv: Sequence[str] | None, io: Io, environ: Mapping[str, str] | None, clock: Clock) -> int:
    try:
        with contextlib.redirect_stdout(io.stdout):
            args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as error:
        io.err(f"usage: {error}")
        return EXIT_USAGE
    except _HelpShown:
        return EXIT_OK
    args.config_named = args.config is not None
    if args.config is None:
        args.config = Path("config.json")
    if args.command == "hash-password":
        try:
            return _hash_password(args, io)
        except UsageError as error:
            io.err(f"usage: {error}")
            return EXIT_USAGE
        except (EOFError, KeyboardInterrupt):
            io.err("usage: input ended before an answer was given; nothing printed")
            return EXIT_USAGE
    if args.command in DESKLESS:
        return _run_deskless(args, io, clock)
    as_of = getattr(args, "as_of", None)
    desk: Desk | None = None
    try:
        # `verify` checks the truth, never a cache: it validates config.json itself.
        desk = Desk.open(
            args.config, logs_dir=args.logs_dir, clock=clock, environ=environ, as_of=as_of,
            trust_cached_settings=args.command != "verify",
        )
        manager = desk.phase
        manager.journal.warn = io.err
        manager.noticed_by = lambda: _who_noticed(args.command)
        if as_of is not None and as_of > manager.trusted_now() + CLOCK_TOLERANCE:
            # The records cannot say how things will be: a view of the future is bad input,
            # judged like a future-dated trade (the later of the clock and the high-water).
            io.err(
                f"usage: --as-of {format_timestamp(as_of)} is after now ({format_timestamp(manager.trusted_now())}, "
                "the later of this machine's clock and the latest instant the desk recorded)"
            )
            return EXIT_USAGE
        if args.command in WRITES_OUTPUT:
            _check_output(manager, args)
        if args.command != "verify":
            manager.sync_journal()
            # One command, one full look (a stat of every journal file): its later looks,
            # under the lock too, catch what a writer appended since (the folder and the files
            # being written), and look in full again only if the command outlasts a second.
            manager.looked_in_full = True
            problem = manager.journal_problem()
            if problem is not None and not (args.command == "check-trade" and args.emergency_exit):
                raise problem  # an exit is always allowed: that answer survives a bad journal
        return COMMANDS[args.command](manager, args, io)
    except InputError as error:
        io.err(error.one_line())
        return EXIT_USAGE
    except (UsageError, PhaseUsageError) as error:
        io.err(f"usage: {error}")
        return EXIT_USAGE
    except (EOFError, KeyboardInterrupt):
        io.err("usage: input ended before an answer was given; nothing recorded")
        return EXIT_USAGE

    except Busy as error:
        _json_refusal(args, io, str(error))
        io.err(str(error))
        return EXIT_REFUSED
    except PhaseRefused as error:
        _json_refusal(args, io, str(error))
        io.err(f"refused: {error}")
        return EXIT_REFUSED
    except LogDamaged as error:
        message = f"phase log damaged: {error.problem.one_line()}"
        _json_refusal(args, io, message)
        io.err(escape_controls(message))
        return EXIT_REFUSED
    except BrokenPipeError:
        raise
    except OSError as error:
        where = error.filename or args.config
        io.err(f"{where}: (file): {error.strerror or error}")
        return EXIT_USAGE
    finally:
        if desk is not None:
            desk.phase.journal.close()  # the index file is let go of now, not whenever collected
            lag = desk.phase.mirror_behind
            if lag is not None:
                # A line was committed (a result or a refusal): the one line said it; this one
                # says config.json does not show it yet.
                io.err(
                    f"warning: {lag.filename or args.config}: (file): {lag.strerror or lag}; what was recorded "
                    "is in the phase logs, and config.json shows it once it can be written"
                )


def _json_refusal(args: argparse.Namespace, io: Io, reason: str) -> None:
    """`--json` always prints one object, a refusal included."""
    if getattr(args, "json", False):
        io.out(json.dumps({"ok": False, "reason": reason}))


def _who_noticed(command: str) -> str:
    """Named in a `clock_stepped_back` line: the command and the login that ran it."""
    return f"{command} ({default_operator()})"


def _operator(value: str | None) -> str:
    operator = default_operator() if value is None else value
    if not operator.strip():
        raise UsageError("--operator must not be empty")
    return operator


# ---- commands ----------------------------------------------------------------------


def _status(manager: PhaseManager, args: argparse.Namespace, io: Io) -> int:
    damage = manager.damage()
    state = manager.state()
    decision = manager.gate.with_journal_room(manager.gate.entry_decision())
    trading = decision.state
    next_at = _limit_lifts_at(decision)
    stint = state.ledger.stint
    pending = manager.pending_request()
    gate = state.gate()
    tz = manager.calendar.tz
    mode = manager.config.mode
    if args.json:
        payload = {
            "phase": stint.phase.value,
            "phase_since": _iso(stint.phase_since),
            "stint_since": _iso(stint.since),
            "mode": mode,
            "position_size": money_str(trading.size),
            "recorded_position_size": money_str(stint.size),
            "trades_this_session": trading.entries_used,
            "max_trades_per_day": trading.max_entries,
            "next_trade_allowed_at": _iso(next_at),
            "entries_allowed": decision.allowed,
            "entry_refusal": decision.reason,
            "entry_refusal_code": decision.code,
            "trading_status": decision.status.value,
            "circuit_breaker": {"tripped": stint.breaker.tripped, "reason": stint.breaker.reason, "since": _iso(stint.breaker.since)},
            "pending_request": None if pending is None else {"requested_phase": pending.value},
            "next_phase": None if stint.phase.next is None else stint.phase.next.value,
            "readiness": None if gate is None else gate.to_json(),
            "suggested_advance": gate is not None and gate.ready and not stint.breaker.tripped and damage is None,
            "damage": damage,
            "equity": money_str(trading.equity),
        }
        io.out(json.dumps(payload))
        return EXIT_REFUSED if damage else EXIT_OK
    io.out(f"Phase        {stint.phase.title} ({stint.phase.value})" + (f" since {format_local(stint.phase_since, tz)}" if stint.phase_since else " (no transition recorded yet)"))
    if stint.since is not None and stint.since != stint.phase_since:
        io.out(f"Stint        since {format_local(stint.since, tz)} (progress reset)")
    io.out(f"Mode         {mode}" + ("" if stint.phase.allows_live else " (paper only in this phase)"))
    size_line = f"Size         ${money_str(trading.size)}"
    if trading.size != stint.size:
        size_line += f" (recorded ${money_str(stint.size)}, capped at {manager.config.settings.phase_progression.scaling.max_portfolio_pct}% of equity)"
    io.out(size_line)
    limit = "unlimited" if trading.max_entries is None else str(trading.max_entries)
    entries = f"Entries      {trading.entries_used}/{limit} this session"
    if decision.allowed:
        entries += " — entries allowed now"
    elif next_at is not None:
        entries += f" — next entry {format_local(next_at, tz)} (in {format_countdown(next_at - state.now)})"
    io.out(entries)
    if not decision.allowed:
        io.out(f"Refused      {decision.reason}")
    if stint.breaker.tripped:
        since = format_local(stint.breaker.since, tz) if stint.breaker.since else "?"
        io.out(f"Breaker      TRIPPED since {since}: {stint.breaker.reason}")
        io.out("             review, then: python -m trading_bot.phase acknowledge --operator NAME")
    else:
        io.out("Breaker      ok")
    if pending is not None:
        io.out(f"Request      config.json asks for {pending.value}; not applied until confirmed with `override` or `advance`")
    io.out(f"Equity       ${money_str(trading.equity)}")
    triggers = triggers_for(manager.config.settings, stint.phase)
    if triggers:
        io.out("Triggers     " + "; ".join(rule.describe() for rule in triggers))
    if gate is None:
        io.out("Next phase   none: scaling is the top of the ladder")
    else:
        verdict = _verdict(gate, damage, stint.breaker.tripped)
        io.out(f"Next phase   {gate.to_phase.title} ({gate.to_phase.value}): {verdict}")
        _print_criteria(gate, io)
    if damage:
        io.out(f"DAMAGE       {damage}")
        return EXIT_REFUSED
    return EXIT_OK


def _verdict(gate: GateResult, damage: str | None, breaker_tripped: bool) -> str:
    """READY only when an `advance` would go through now: a passed gate behind damaged
    records or a tripped breaker says what to do first."""
    if not gate.ready:
        return "not ready"
    advance = f"python -m trading_bot.phase advance --to {gate.to_phase.value}"
    if damage:
        return "the gate passes on the records that could be read, but no advance until the phase logs are restored: run `recover`"
    if breaker_tripped:
        return f"the gate passes, but no advance while the breaker is tripped: `acknowledge` it, then {advance}"
    return f"READY — advance with: {advance}"


def _limit_lifts_at(decision: EntryDecision) -> datetime | None:
    """The next allowed entry, given only when the session's entry limit is the reason."""
    return decision.next_allowed_at if decision.code == CODE_LIMIT else None


def _print_criteria(gate: GateResult, io: Io) -> None:
    for criterion in gate.criteria:
        mark = "✓" if criterion.met else "✗"
        io.out(f"  {mark} {criterion.detail}")


def _validate_transition(manager: PhaseManager, args: argparse.Namespace, io: Io) -> int:
    try:
        gate = manager.validate_transition(args.to)
    except PhaseRefused as error:
        if not args.json:
            raise
        current = manager.state().phase.value
        io.out(json.dumps({"from_phase": current, "to_phase": args.to.value, "ready": False, "criteria": [], "failures": [str(error)]}))
        io.err(f"refused: {error}")
        return EXIT_REFUSED
    if args.json:
        io.out(json.dumps(gate.to_json()))
    else:
        io.out(f"{gate.from_phase.value} → {gate.to_phase.value}: {'READY' if gate.ready else 'NOT READY'}")
        _print_criteria(gate, io)
    return EXIT_OK if gate.ready else EXIT_REFUSED


def _advance(manager: PhaseManager, args: argparse.Namespace, io: Io) -> int:
    operator = _operator(args.operator)
    interactive = _is_terminal(io.stdin)
    if not args.yes and not interactive:
        raise UsageError("no terminal to confirm on: pass --yes to advance non-interactively")

    def confirm(gate: GateResult) -> bool:
        _print_criteria(gate, io)
        if args.yes:
            return True
        io.stdout.write(f"Advance {gate.from_phase.value} → {gate.to_phase.value}? [y/N] ")
        io.stdout.flush()
        answer = io.stdin.readline().strip().lower()
        return answer in ("y", "yes")

    line = manager.advance(args.to, operator, confirm)
    io.out(f"advanced to {line.data['to_phase']} (history line {line.seq}); size ${line.data['position_size']}")
    return EXIT_OK


def _override(manager: PhaseManager, args: argparse.Namespace, io: Io) -> int:
    if not args.password_stdin and not _is_terminal(io.stdin):
        raise UsageError("no terminal for the password prompt: use --password-stdin")

    # Read a piped password before anything else runs, so bytes that are not UTF-8 are
    # refused before any record is written.
    piped = _piped_line(io) if args.password_stdin else None

    def read_password() -> str:
        if piped is not None:
            return piped
        return getpass.getpass("Override password: ")

    line = manager.override(
        target=args.to,
        reset_progress=args.reset_progress,
        operator_id=args.operator,
        reason=args.reason,
        read_password=read_password,
    )
    if args.reset_progress:
        io.out(f"progress reset: new {line.data['to_phase']} stint (history line {line.seq}); size ${line.data['position_size']}")
    else:
        io.out(f"override: now in {line.data['to_phase']} (history line {line.seq}); size ${line.data['position_size']}")
    if line.data["breaker"]["tripped"]:
        io.out("note: the phase breaker is still tripped; an override does not clear it (use `acknowledge`)")
    return EXIT_OK


def _acknowledge(manager: PhaseManager, args: argparse.Namespace, io: Io) -> int:
    line = manager.acknowledge(_operator(args.operator), args.note)
    if line is None:
        io.out("breaker not tripped; nothing recorded")
    else:
        io.out(f"breaker cleared by {args.operator} (history line {line.seq})")
    return EXIT_OK


def _check_trade(manager: PhaseManager, args: argparse.Namespace, io: Io) -> int:
    decision = manager.gate.with_journal_room(manager.gate.entry_decision())
    state = decision.state
    payload = {
        "allowed": decision.allowed,
        "reason": decision.reason,
        "code": decision.code,
        "status": decision.status.value,
        "phase": state.phase.value,
        "position_size": money_str(state.size),
        "trades_this_session": state.entries_used,
        "max_trades_per_day": state.max_entries,
        "next_trade_allowed_at": _iso(_limit_lifts_at(decision)),
    }
    if args.emergency_exit:
        # Exits are never blocked: not by the breaker, the limit, or damaged records.
        payload.update(
            allowed=True,
            reason="emergency exits are always allowed (and recorded in the override log)",
            code=None,
            next_trade_allowed_at=None,
            entries_halted=None if decision.allowed else decision.reason,
        )
    if args.json:
        io.out(json.dumps(payload))
    elif payload["allowed"]:
        what = "emergency exit" if args.emergency_exit else f"new entry of up to ${payload['position_size']}"
        halted = f"; new entries are refused: {payload['entries_halted']}" if payload.get("entries_halted") else ""
        io.out(f"allowed: {what} ({payload['phase']}){halted}")
    else:
        io.out(f"refused: {payload['reason']}")
    return EXIT_OK if payload["allowed"] else EXIT_REFUSED


def _verify(manager: PhaseManager, args: argparse.Namespace, io: Io) -> int:
    problems = manager.verify()
    if args.json:
        io.out(json.dumps({"intact": not problems, "problems": [{"file": p.file, "line": p.line, "reason": p.reason} for p in problems]}))
    elif not problems:
        io.out("intact: both hash chains, the config.json head and every session summary check out")
    else:
        for problem in problems:
            io.out(problem.one_line())
    return EXIT_OK if not problems else EXIT_REFUSED


def _recover(manager: PhaseManager, args: argparse.Namespace, io: Io) -> int:
    done = manager.recover()
    if not done:
        io.out("nothing to recover: both phase logs are intact")
    for line in done:
        io.out(line)
    return EXIT_OK


def _piped_line(io: Io) -> str:
    """One line from standard input, refused unless it is UTF-8 text (a process whose
    locale decodes with surrogateescape hands odd bytes on as lone surrogates)."""
    try:
        line = io.stdin.readline().rstrip("\r\n")
        line.encode("utf-8")
    except UnicodeError:
        raise UsageError(_NOT_UTF8) from None
    return line


def _export(manager: PhaseManager, args: argparse.Namespace, io: Io) -> int:
    from trading_bot.phase.export import ExportRangeError, build_export, check_range, write_output

    try:
        check_range(args.start, args.end)
    except ExportRangeError as error:
        raise UsageError(str(error)) from None
    export = build_export(manager, args.start, args.end)
    text = export.render(args.format)
    if args.output is None:
        io.stdout.write(text)
    else:
        write_output(args.output, text)
        io.out(f"exported {len(export.sessions)} sessions ({args.start.isoformat()} … {args.end.isoformat()}) to {args.output}")
    return EXIT_OK


def _report(manager: PhaseManager, args: argparse.Namespace, io: Io) -> int:
    from trading_bot.phase.export import write_output
    from trading_bot.phase.report import build_report

    target = _output_target(manager, args)
    assert target is not None
    write_output(target, build_report(manager))
    io.out(f"report: {target}")
    return EXIT_OK


def _output_target(manager: PhaseManager, args: argparse.Namespace) -> Path | None:
    """Where export or report writes: its --output, the report's default, or stdout (None)."""
    if args.output is not None:
        return args.output
    from trading_bot.phase.report import default_report_path

    return default_report_path(manager) if args.command == "report" else None


def _check_output(manager: PhaseManager, args: argparse.Namespace) -> None:
    """Checked before the journal sync, so a refused --output records nothing."""
    from trading_bot.phase.export import check_output_path

    target = _output_target(manager, args)
    if target is not None:
        paths = manager.paths
        check_output_path(target, config_path=manager.config_path, record_folders=(paths.logs_dir, paths.trades_dir, paths.phase_dir))


def _simulate(args: argparse.Namespace, io: Io, clock: Clock) -> int:
    from trading_bot.phase.simulation import DEFAULT_SEED, DEFAULT_SESSIONS, default_workdir, run_simulation
    from trading_bot.phase.timeline import render_timeline

    sessions = DEFAULT_SESSIONS if args.sessions is None else args.sessions
    seed = DEFAULT_SEED if args.seed is None else args.seed
    workdir = args.workdir if args.workdir is not None else default_workdir(Path.cwd())
    show_progress = _is_terminal(io.stderr)

    def progress(number: int, total: int, day: date, phase: str) -> None:
        io.stderr.write(f"\rsession {number}/{total}  {day.isoformat()}  {phase:<10}")
        io.stderr.flush()

    result = run_simulation(workdir, now=clock.now(), sessions=sessions, seed=seed, progress=progress if show_progress else None)
    if show_progress:
        io.stderr.write("\r" + " " * 40 + "\r")
    io.out(f"simulated {result.sessions} sessions, {result.first_session.isoformat()} … {result.last_session.isoformat()} (seed {seed}), into {result.workdir}")
    for line in render_timeline(result.events, result.tz):
        io.out("  " + line)
    io.out(f"final: {result.final_phase}, size ${result.final_size:.2f}; {result.trades} trades, {result.refused} entries refused")
    io.out(f"report: {result.report_path}")
    io.out(f"desk: {result.config_path} (try: cd {result.workdir} && python -m trading_bot.phase status)")
    return EXIT_OK


def _replay(args: argparse.Namespace, io: Io, clock: Clock) -> int:
    from trading_bot.phase.replay import replay
    from trading_bot.phase.timeline import render_timeline

    show_progress = _is_terminal(io.stderr)

    def progress(step: int, total: int) -> None:
        if step % 50 == 0 or step == total:
            io.stderr.write(f"\rreplaying {step}/{total}")
            io.stderr.flush()

    result = replay(args.trades, now=clock.now(), config=_replay_settings(args), from_phase=args.from_phase, progress=progress if show_progress else None)
    if show_progress:
        io.stderr.write("\r" + " " * 30 + "\r")
    if args.json:
        io.out(json.dumps(result.to_json(), ensure_ascii=False))
        return EXIT_OK
    span = "" if result.first is None or result.last is None else f" ({result.first.date().isoformat()} … {result.last.date().isoformat()})"
    io.out(f"replayed {result.trades} trades from {result.source}{span}: {result.placed} placed, {result.refused} entries refused")
    for line in render_timeline(result.events, result.tz):
        io.out("  " + line)
    io.out(f"final: {result.final_phase.value}, size ${result.final_size:.2f}")
    if result.gate is not None:
        io.out(f"next gate ({result.gate.to_phase.value}): {'READY' if result.gate.ready else 'not ready'}")
        _print_criteria(result.gate, io)
    return EXIT_OK


def _replay_settings(args: argparse.Namespace) -> Path | None:
    """The settings a replay runs under: its own `--config`, else the one the global
    `--config` names, else None (the shipped defaults). Two different files are refused:
    a what-if under settings the operator did not mean is worse than no answer."""
    if not args.config_named:
        return args.replay_config
    if args.replay_config is not None and args.replay_config != args.config:
        raise UsageError(
            f"replay: two settings files named ({args.config} before the command, {args.replay_config} after it); name one"
        )
    return args.config


def _refuse_unread_desk_options(args: argparse.Namespace) -> None:
    """A desk option the command would not read is refused rather than ignored: `simulate`
    builds its demo desk from the shipped defaults, and neither command opens a logs folder."""
    if args.logs_dir is not None:
        raise UsageError(f"{args.command}: --logs-dir is not read by this command (it works in a folder of its own); drop it")
    if args.command == "simulate" and args.config_named:
        raise UsageError("simulate: --config is not read (the demo desk uses the shipped defaults, in --workdir); drop it")


def _run_deskless(args: argparse.Namespace, io: Io, clock: Clock) -> int:
    """Commands that build their own desk (a demo or a scratch folder) instead of opening one."""
    from trading_bot.phase.simulation import SimulationError

    try:
        _refuse_unread_desk_options(args)
        return DESKLESS[args.command](args, io, clock)
    except InputError as error:
        io.err(error.one_line())
        return EXIT_USAGE
    except (UsageError, SimulationError) as error:
        io.err(f"usage: {error}")
        return EXIT_USAGE
    except BrokenPipeError:
        raise
    except OSError as error:
        io.err(f"{error.filename or '?'}: (file): {error.strerror or error}")
        return EXIT_USAGE


def _hash_password(args: argparse.Namespace, io: Io) -> int:
    if args.password_stdin or not _is_terminal(io.stdin):
        password = _piped_line(io)
    else:
        password = getpass.getpass("New override password: ")
        again = getpass.getpass("Repeat it: ")
        if password != again:
            io.err("usage: the two passwords differ; nothing printed")
            return EXIT_USAGE
    if not password:
        io.err("usage: the password must not be empty")
        return EXIT_USAGE
    from trading_bot.phase.password import make_password_hash

    io.out(make_password_hash(password))
    return EXIT_OK


COMMANDS: dict[str, Callable[[PhaseManager, argparse.Namespace, Io], int]] = {
    "status": _status,
    "validate-transition": _validate_transition,
    "advance": _advance,
    "override": _override,
    "acknowledge": _acknowledge,
    "check-trade": _check_trade,
    "verify": _verify,
    "recover": _recover,
    "export": _export,
    "report": _report,
}

WRITES_OUTPUT = ("export", "report")

DESKLESS: dict[str, Callable[[argparse.Namespace, Io, Clock], int]] = {
    "simulate": _simulate,
    "replay": _replay,
}


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment).replace(".000000Z", "Z")
