"""How config.json is validated: the pydantic models of every settings block, with their
defaults and range checks, and the error that names the file, line and key.

A process imports this module only when config.json's text is not the text it validated
last (`config.SettingsCache`); the models here are the one definition of what a valid
config is and of each default. What the rest of the bot reads are the plain, read-only
blocks of `trading_bot.config`, filled from these models by `to_runtime`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from trading_bot import config as runtime
from trading_bot.config import EMPTY_LOG_HASH, UnreadableHead
from trading_bot.errors import ConfigError
from trading_bot.input_bounds import bounded_count, bounded_money
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


_HEAD_HASH = re.compile(r"[0-9a-f]{64}")


class HistoryHead(_Strict):
    """A phase log's last line as the mirror last saw it (written by the bot); seq 0 says
    the log was empty when the bot was about to write its first line."""

    seq: int = 0
    hash: str = EMPTY_LOG_HASH


def _log_head(value: Any) -> HistoryHead | UnreadableHead | None:
    if value is None or isinstance(value, (HistoryHead, UnreadableHead)):
        return value
    if isinstance(value, runtime.HistoryHead):
        return HistoryHead(seq=value.seq, hash=value.hash)
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


def validate_settings(raw: dict[str, Any], text: str, file: str) -> runtime.Settings:
    """The settings config.json's parsed `raw` holds, as the plain blocks the bot reads;
    ConfigError naming the file, line and key of the first problem."""
    try:
        validated = Settings.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        location = [str(part) for part in first["loc"]]
        message = _message(first)
        field_path, message = _refine_path(location, message)
        line = line_of_path(text, field_path)
        raise ConfigError(file, line, ".".join(field_path) or "(root)", message) from None
    return to_runtime(validated)


def to_runtime(value: Any) -> Any:
    """A validated model as its plain twin in `trading_bot.config` (same class name, same
    fields in the same order, unknown keys of an open block kept in `extra`)."""
    if isinstance(value, BaseModel):
        twin = runtime.SETTINGS_BLOCKS[type(value).__name__]
        fields = {name: to_runtime(getattr(value, name)) for name in twin.FIELDS}
        return twin(dict(value.model_extra or {}), **fields)
    return value


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
