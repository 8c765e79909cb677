"""Settings from config.json (people edit it) and secrets from the environment / `.env`.

Numbers are read exactly: JSON numbers become `Decimal`, numeric strings are accepted.
Inside `phase_progression` an unknown key is an error, because a typo there would
silently loosen a gate; unknown keys elsewhere are kept and written back on save.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from trading_bot.durable_files import atomic_write_bytes
from trading_bot.env_file import merged_environment
from trading_bot.errors import ConfigError
from trading_bot.input_bounds import (
    MAX_JSON_DEPTH,
    MAX_NUMBER_CHARS,
    bounded_count,
    bounded_money,
    first_duplicate_key,
    json_depth_exceeds,
    number_from_text,
)
from trading_bot.money import to_decimal
from trading_bot.phase.models import Phase


def _decimal(value: Any) -> Decimal:
    return bounded_money(to_decimal(value))


def _count(value: Any) -> int:
    return bounded_count(to_decimal(value))


def _clock_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        raise ValueError("must be a time like \"07:00\"")
    hours, minutes = (int(part) for part in value.strip().split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError("must be a time between 00:00 and 23:59")
    return time(hours, minutes)


Dec = Annotated[Decimal, BeforeValidator(_decimal)]
Count = Annotated[int, BeforeValidator(_count)]
ClockTime = Annotated[time, BeforeValidator(_clock_time)]


def _non_negative(name: str, value: Decimal | int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{name}: must be ≥ 0")


def _fraction(name: str, value: Decimal | None) -> None:
    if value is not None and not (0 <= value <= 1):
        raise ValueError(f"{name}: must be between 0 and 1")


def _positive(name: str, value: Decimal | int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name}: must be > 0")


def _left_out() -> Any:
    """A block config.json leaves out is read as `{}`: every default then comes from the
    block's own fields, validated inside the one schema `Settings` builds on first use.

    Together with `defer_build`, a command builds one validator at start-up instead of one
    per block (tens of milliseconds on every command).
    """
    return Field(default_factory=dict, validate_default=True)


class _Strict(BaseModel):
    """Blocks under `phase_progression`: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @model_validator(mode="after")
    def _check_ranges(self) -> _Strict:
        for name, value in self:
            if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
                _non_negative(name, value)
            if (name.endswith("win_rate") or name.endswith("win_rate_min")) and not isinstance(value, BaseModel):
                _fraction(name, value)
        return self


class _Open(BaseModel):
    """Blocks outside `phase_progression`: unknown keys are kept."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


class DowngradeTriggers(_Strict):
    consecutive_losses: Count | None = 3
    rolling_window_trades: Count | None = 20
    rolling_win_rate_min: Dec | None = Decimal("0.55")
    max_daily_loss_pct: Dec | None = Decimal("5.0")

    @model_validator(mode="after")
    def _positive_sizes(self) -> DowngradeTriggers:
        _positive("consecutive_losses", self.consecutive_losses)
        _positive("rolling_window_trades", self.rolling_window_trades)
        return self


class ProofDowngradeTriggers(DowngradeTriggers):
    """Proof trades one small position a session; its daily-loss trigger is off by default."""

    max_daily_loss_pct: Dec | None = None


class ExperienceCriteria(_Strict):
    min_sessions: Count | None = 20
    session_window: Count = 20
    min_win_rate: Dec | None = Decimal("0.60")
    min_avg_rr: Dec | None = Decimal("1.5")
    max_override_incidents: Count | None = 0

    @model_validator(mode="after")
    def _window(self) -> ExperienceCriteria:
        if self.session_window not in (10, 20, 50, 100):
            raise ValueError("session_window: must be 10, 20, 50 or 100")
        return self


class ProofCriteria(_Strict):
    min_sessions: Count | None = 30
    max_missed_days: Count | None = 3
    min_trades: Count | None = 50
    trade_window: Count = 50
    min_win_rate: Dec | None = Decimal("0.65")
    min_avg_rr: Dec | None = Decimal("1.8")

    @model_validator(mode="after")
    def _window(self) -> ProofCriteria:
        _positive("trade_window", self.trade_window)
        return self


class TrialCriteria(_Strict):
    min_sessions: Count | None = 60
    min_trades: Count | None = 100
    trade_window: Count = 100
    min_win_rate: Dec | None = Decimal("0.70")
    min_avg_rr: Dec | None = Decimal("2.0")
    max_drawdown_pct: Dec | None = Decimal("5.0")

    @model_validator(mode="after")
    def _window(self) -> TrialCriteria:
        _positive("trade_window", self.trade_window)
        return self


class ExperienceSettings(_Strict):
    max_trades_per_day: Count | None = None
    position_size: Dec = Decimal("100")
    advancement_criteria: ExperienceCriteria = _left_out()

    @model_validator(mode="after")
    def _size(self) -> ExperienceSettings:
        _positive("position_size", self.position_size)
        _positive("max_trades_per_day", self.max_trades_per_day)
        return self


class ProofSettings(_Strict):
    max_trades_per_day: Count | None = 1
    position_size: Dec = Decimal("100")
    advancement_criteria: ProofCriteria = _left_out()
    downgrade_triggers: ProofDowngradeTriggers = _left_out()

    @model_validator(mode="after")
    def _size(self) -> ProofSettings:
        _positive("position_size", self.position_size)
        _positive("max_trades_per_day", self.max_trades_per_day)
        return self


class TrialSettings(_Strict):
    max_trades_per_day: Count | None = None
    position_size: Dec = Decimal("200")
    advancement_criteria: TrialCriteria = _left_out()
    downgrade_triggers: DowngradeTriggers = _left_out()

    @model_validator(mode="after")
    def _size(self) -> TrialSettings:
        _positive("position_size", self.position_size)
        _positive("max_trades_per_day", self.max_trades_per_day)
        return self


class WinStreakIncrease(_Strict):
    every: Count = 5
    amount: Dec = Decimal("100")

    @model_validator(mode="after")
    def _every(self) -> WinStreakIncrease:
        _positive("every", self.every)
        return self


class WinRateIncrease(_Strict):
    sessions: Count = 10
    min_win_rate: Dec = Decimal("0.70")
    amount: Dec = Decimal("200")

    @model_validator(mode="after")
    def _sessions(self) -> WinRateIncrease:
        _positive("sessions", self.sessions)
        return self


class ScalingSettings(_Strict):
    max_trades_per_day: Count | None = None
    position_size_min: Dec = Decimal("200")
    position_size_max: Dec = Decimal("2000")
    max_portfolio_pct: Dec | None = Decimal("5.0")
    increase_on_win_streak: WinStreakIncrease | None = _left_out()
    increase_on_win_rate: WinRateIncrease | None = _left_out()
    downgrade_triggers: DowngradeTriggers = _left_out()

    @model_validator(mode="after")
    def _bounds(self) -> ScalingSettings:
        _positive("position_size_min", self.position_size_min)
        _positive("max_trades_per_day", self.max_trades_per_day)
        if self.position_size_max < self.position_size_min:
            raise ValueError("position_size_max: must be ≥ position_size_min")
        return self


EMPTY_LOG_HASH = "0" * 64
_HEAD_HASH = re.compile(r"[0-9a-f]{64}")


class HistoryHead(_Strict):
    """A phase log's last line as the mirror last saw it (written by the bot); seq 0 says
    the log was empty when the bot was about to write its first line."""

    seq: int = 0
    hash: str = EMPTY_LOG_HASH


@dataclass(frozen=True)
class UnreadableHead:
    """A head that is not the `{seq, hash}` the bot writes: kept as evidence, never a check
    that silently passes (the phase system treats it as damage)."""

    problem: str


def _log_head(value: Any) -> HistoryHead | UnreadableHead | None:
    if value is None or isinstance(value, (HistoryHead, UnreadableHead)):
        return value
    if not isinstance(value, dict):
        return UnreadableHead(f"must be an object {{seq, hash}}, not {type(value).__name__}")
    if set(value) != {"seq", "hash"}:
        return UnreadableHead("must have exactly the keys seq and hash")
    seq, digest = value["seq"], value["hash"]
    if type(seq) is not int or not 0 <= seq < 2**63:
        return UnreadableHead("seq must be a whole number from 0")
    if not isinstance(digest, str) or _HEAD_HASH.fullmatch(digest) is None:
        return UnreadableHead("hash must be 64 lowercase hex digits")
    if seq == 0 and digest != EMPTY_LOG_HASH:
        return UnreadableHead("seq 0 (an empty log) must have the hash of 64 zeros")
    return HistoryHead(seq=seq, hash=digest)


LogHead = Annotated[HistoryHead | UnreadableHead | None, BeforeValidator(_log_head)]


class PhaseProgression(_Strict):
    current_phase: Phase = Phase.EXPERIENCE
    history_head: LogHead = None
    overrides_head: LogHead = None
    experience: ExperienceSettings = _left_out()
    proof: ProofSettings = _left_out()
    trial: TrialSettings = _left_out()
    scaling: ScalingSettings = _left_out()


class TradingHours(_Open):
    start_time: ClockTime = time(7, 0)
    end_time: ClockTime = time(16, 0)
    timezone: str = "America/New_York"

    @model_validator(mode="after")
    def _order(self) -> TradingHours:
        if self.end_time <= self.start_time:
            raise ValueError("end_time: must be after start_time")
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
        return self


class TradingSettings(_Open):
    mode: Literal["paper", "live"] = "paper"
    hours: TradingHours = _left_out()


class AccountSettings(_Open):
    starting_equity: Dec = Decimal("10000")

    @model_validator(mode="after")
    def _equity(self) -> AccountSettings:
        _positive("starting_equity", self.starting_equity)
        return self


class RiskSettings(_Open):
    max_position_pct: Dec | None = Decimal("5.0")
    max_daily_loss_pct: Dec | None = Decimal("3.0")

    @model_validator(mode="after")
    def _ranges(self) -> RiskSettings:
        _positive("max_position_pct", self.max_position_pct)
        _positive("max_daily_loss_pct", self.max_daily_loss_pct)
        return self


class Settings(_Open):
    trading: TradingSettings = _left_out()
    account: AccountSettings = _left_out()
    risk_management: RiskSettings = _left_out()
    phase_progression: PhaseProgression = _left_out()

    def phase_block(self, phase: Phase) -> ExperienceSettings | ProofSettings | TrialSettings | ScalingSettings:
        return getattr(self.phase_progression, phase.value)


ENV_FILE_NAME = ".env"


@dataclass
class Config:
    """Loaded settings plus the raw JSON they came from, so saves keep unknown keys."""

    path: Path
    settings: Settings
    raw: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env_and_json(
        cls,
        path: Path | str,
        *,
        environ: Mapping[str, str] | None = None,
        env_file: Path | None = None,
    ) -> Config:
        """Load config.json and the environment; a missing config file is an error."""
        path = Path(path)
        env_path = env_file if env_file is not None else path.parent / ENV_FILE_NAME
        env = merged_environment(os.environ if environ is None else environ, env_path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(str(path), None, "(file)", "not found") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(str(path), None, "(file)", f"cannot be read: {error}") from None
        return cls.from_text(path, text, env)

    @classmethod
    def from_text(cls, path: Path, text: str, env: dict[str, str] | None = None) -> Config:
        # Windows editors may start the file with a byte-order mark; it carries no setting.
        text = text.removeprefix("\ufeff")
        raw = parse_json_exact(text, str(path))
        if not isinstance(raw, dict):
            raise ConfigError(str(path), 1, "(root)", "must be a JSON object")
        settings = validate_settings(raw, text, str(path))
        return cls(path=path, settings=settings, raw=raw, env=dict(env or {}))

    @property
    def current_phase(self) -> Phase:
        return self.settings.phase_progression.current_phase

    @property
    def mode(self) -> str:
        return self.settings.trading.mode

    @property
    def history_head(self) -> HistoryHead | UnreadableHead | None:
        return self.settings.phase_progression.history_head

    def with_updates(self, updates: Mapping[tuple[str, ...], Any]) -> Config:
        """A copy with the given key paths set in the raw JSON, re-validated."""
        raw = json.loads(dump_json_exact(self.raw), parse_float=Decimal)
        for key_path, value in updates.items():
            node = raw
            for key in key_path[:-1]:
                node = node.setdefault(key, {})
            node[key_path[-1]] = value
        text = dump_json_exact(raw)
        settings = validate_settings(raw, text, str(self.path))
        return Config(path=self.path, settings=settings, raw=raw, env=self.env)

    def save(self) -> None:
        """Write atomically (temp file, fsync, rename); unknown keys survive."""
        atomic_write_bytes(self.path, dump_json_exact(self.raw).encode("utf-8"))


class _NumberOutOfBounds(ValueError):
    def __init__(self, token: str, reason: str) -> None:
        super().__init__(reason)
        self.token = token
        self.reason = reason


def _exact_float(token: str) -> Decimal:
    try:
        return number_from_text(token)
    except ValueError as error:
        raise _NumberOutOfBounds(token, str(error)) from None


def _bounded_int(token: str) -> int:
    if len(token) > MAX_NUMBER_CHARS:
        raise _NumberOutOfBounds(token, f"number written with more than {MAX_NUMBER_CHARS} characters")
    return int(token)


def parse_json_exact(text: str, file: str) -> Any:
    """JSON with every non-integer number as an exact Decimal; errors name the line.

    Numbers are bounded as they are read (a 5,000-digit integer or `1E+100000000` is an
    error, not a hang), and so is the nesting depth.
    """
    try:
        value = json.loads(text, parse_float=_exact_float, parse_int=_bounded_int)
    except json.JSONDecodeError as error:
        raise ConfigError(file, error.lineno, "(json)", error.msg) from None
    except _NumberOutOfBounds as error:
        field, line = _where_number_is(text, error.token)
        raise ConfigError(file, line, field, f"{error.reason}") from None
    except RecursionError:
        raise ConfigError(file, 1, "(json)", f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    if json_depth_exceeds(value):
        raise ConfigError(file, 1, "(json)", f"nested deeper than {MAX_JSON_DEPTH} levels")
    duplicate = first_duplicate_key(text)
    if duplicate is not None:
        field, line = duplicate
        raise ConfigError(file, line, field, "duplicate key (a reader sees the first, the parser would take the last)")
    return value


def _where_number_is(text: str, token: str) -> tuple[str, int]:
    """The key and line of a number token in JSON text (the first place it appears)."""
    keyed = re.search(r'"((?:[^"\\]|\\.)*)"\s*:\s*' + re.escape(token) + r"(?![0-9.eE+-])", text)
    if keyed is not None:
        return keyed.group(1), text.count("\n", 0, keyed.start()) + 1
    at = text.find(token)
    return "(json)", (text.count("\n", 0, at) + 1 if at >= 0 else 1)


def dump_json_exact(raw: Any) -> str:
    """JSON text with every Decimal written as the exact number it is (never a string)."""
    numbers: list[str] = []

    def mark_decimals(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: mark_decimals(item) for key, item in value.items()}
        if isinstance(value, list):
            return [mark_decimals(item) for item in value]
        if isinstance(value, Decimal):
            numbers.append(_decimal_text(value))
            return f"\u0000{len(numbers) - 1}\u0000"
        return value

    text = json.dumps(mark_decimals(raw), indent=2, ensure_ascii=False)
    text = re.sub(r'"\\u0000(\d+)\\u0000"', lambda match: numbers[int(match.group(1))], text)
    return text + "\n"


def _decimal_text(value: Decimal) -> str:
    """The number exactly as read (0.60 stays 0.60); str(Decimal) is valid JSON when finite."""
    if not value.is_finite():
        raise ValueError(f"cannot write {value} to JSON")
    return str(value)


def validate_settings(raw: dict[str, Any], text: str, file: str) -> Settings:
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        location = [str(part) for part in first["loc"]]
        message = _message(first)
        field_path, message = _refine_path(location, message)
        line = line_of_path(text, field_path)
        raise ConfigError(file, line, ".".join(field_path) or "(root)", message) from None


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; unknown keys are not allowed here)"
    if kind == "literal_error" or kind == "enum":
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}"
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return message


def _refine_path(location: list[str], message: str) -> tuple[list[str], str]:
    """Model-level checks report `name: reason`; move the name into the path."""
    match = re.match(r"^([a-z_]+): (.*)$", message)
    if match:
        return [*location, match.group(1)], match.group(2)
    return location, message


def line_of_path(text: str, path: list[str]) -> int | None:
    """The line where a key path appears in the JSON text (its deepest key found)."""
    position = 0
    found: int | None = None
    for key in path:
        match = re.compile(r'"' + re.escape(key) + r'"\s*:').search(text, position)
        if match is None:
            break
        position = match.end()
        found = match.start()
    if found is None:
        return 1 if text else None
    return text.count("\n", 0, found) + 1
