"""Settings from config.json (people edit it) and secrets from the environment / `.env`.

Numbers are read exactly: JSON numbers become `Decimal`, numeric strings are accepted.
Inside `phase_progression` an unknown key is an error, because a typo there would
silently loosen a gate; unknown keys elsewhere are kept and written back on save.

What is valid, and every default, is defined once, by the pydantic models of
`trading_bot.config_schema`. The bot reads the plain, read-only blocks below, which those
models fill. A process that finds config.json holding the very text validated last takes
the blocks from `SettingsCache` and never imports pydantic: that is most of a command's
start-up time (SPEC §12).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from trading_bot.durable_files import atomic_write_bytes, open_regular, read_regular
from trading_bot.env_file import merged_environment
from trading_bot.errors import ConfigError
from trading_bot.input_bounds import (
    MAX_JSON_DEPTH,
    MAX_NUMBER_CHARS,
    first_duplicate_key,
    json_depth_exceeds,
    number_from_text,
)
from trading_bot.phase.models import Phase

EMPTY_LOG_HASH = "0" * 64
# config.json's mirror of the records, not settings: no rule reads them.
MIRROR_FIELDS = {"phase_progression": {"current_phase", "history_head", "overrides_head"}}


@dataclass(frozen=True)
class UnreadableHead:
    """A head that is not the `{seq, hash}` the bot writes: kept as evidence, never a check
    that silently passes (the phase system treats it as damage)."""

    problem: str


# ---- the validated settings, as the bot reads them ------------------------------------


class SettingsBlock:
    """One validated block of config.json: read-only attributes named as its keys, in the
    order `config_schema` declares them, plus `extra` (the unknown keys an open block keeps)."""

    __slots__ = ("extra",)
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, extra: Mapping[str, Any] | None = None, **values: Any) -> None:
        if values.keys() != set(self.FIELDS):
            raise TypeError(f"{type(self).__name__} takes exactly {', '.join(self.FIELDS)}")
        for name in self.FIELDS:
            object.__setattr__(self, name, values[name])
        object.__setattr__(self, "extra", dict(extra or {}))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"settings are read-only: {type(self).__name__}.{name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"settings are read-only: {type(self).__name__}.{name}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values() and self.extra == other.extra  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        shown = [f"{name}={getattr(self, name)!r}" for name in self.FIELDS]
        shown += [f"{name}={value!r}" for name, value in self.extra.items()]
        return f"{type(self).__name__}({', '.join(shown)})"

    def dump(
        self, mode: str = "python", *, include: set[str] | None = None, exclude: Mapping[str, Any] | set[str] | None = None
    ) -> dict[str, Any]:
        """The block as a dict, field by field and then its unknown keys. `mode="json"`
        writes numbers, times and phases as JSON strings. `include` names top-level keys
        to keep; `exclude` names keys to drop (a set), or maps a key to what to drop
        inside it (a nested set or mapping)."""
        dumped: dict[str, Any] = {}
        for name in (*self.FIELDS, *self.extra):
            if include is not None and name not in include:
                continue
            inner = _excluded_inside(exclude, name)
            if inner is True:
                continue
            value = getattr(self, name) if name in self.FIELDS else self.extra[name]
            dumped[name] = _dumped(value, mode, inner)
        return dumped


def _excluded_inside(exclude: Mapping[str, Any] | set[str] | None, name: str) -> Any:
    """True to drop the key; else what to drop inside its value (None: nothing)."""
    if exclude is None:
        return None
    if isinstance(exclude, (set, frozenset)):
        return True if name in exclude else None
    inner = exclude.get(name)
    return True if inner is True or inner is Ellipsis else inner


def _dumped(value: Any, mode: str, exclude: Any) -> Any:
    if isinstance(value, SettingsBlock):
        return value.dump(mode, exclude=exclude)
    if isinstance(value, UnreadableHead):
        return {"problem": value.problem}
    if isinstance(value, dict):
        return {key: _dumped(item, mode, None) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dumped(item, mode, None) for item in value]
    if mode == "json":
        if isinstance(value, Phase):
            return value.value
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, time):
            return value.isoformat()
    return value


class DowngradeTriggers(SettingsBlock):
    __slots__ = FIELDS = ("consecutive_losses", "rolling_window_trades", "rolling_win_rate_min", "max_daily_loss_pct")
    consecutive_losses: int | None
    rolling_window_trades: int | None
    rolling_win_rate_min: Decimal | None
    max_daily_loss_pct: Decimal | None


class ProofDowngradeTriggers(DowngradeTriggers):
    __slots__ = ()


class ExperienceCriteria(SettingsBlock):
    __slots__ = FIELDS = ("min_sessions", "session_window", "min_win_rate", "min_avg_rr", "max_override_incidents")
    min_sessions: int | None
    session_window: int
    min_win_rate: Decimal | None
    min_avg_rr: Decimal | None
    max_override_incidents: int | None


class ProofCriteria(SettingsBlock):
    __slots__ = FIELDS = ("min_sessions", "max_missed_days", "min_trades", "trade_window", "min_win_rate", "min_avg_rr")
    min_sessions: int | None
    max_missed_days: int | None
    min_trades: int | None
    trade_window: int
    min_win_rate: Decimal | None
    min_avg_rr: Decimal | None


class TrialCriteria(SettingsBlock):
    __slots__ = FIELDS = ("min_sessions", "min_trades", "trade_window", "min_win_rate", "min_avg_rr", "max_drawdown_pct")
    min_sessions: int | None
    min_trades: int | None
    trade_window: int
    min_win_rate: Decimal | None
    min_avg_rr: Decimal | None
    max_drawdown_pct: Decimal | None


class ExperienceSettings(SettingsBlock):
    __slots__ = FIELDS = ("max_trades_per_day", "position_size", "advancement_criteria")
    max_trades_per_day: int | None
    position_size: Decimal
    advancement_criteria: ExperienceCriteria


class ProofSettings(SettingsBlock):
    __slots__ = FIELDS = ("max_trades_per_day", "position_size", "advancement_criteria", "downgrade_triggers")
    max_trades_per_day: int | None
    position_size: Decimal
    advancement_criteria: ProofCriteria
    downgrade_triggers: ProofDowngradeTriggers


class TrialSettings(SettingsBlock):
    __slots__ = FIELDS = ("max_trades_per_day", "position_size", "advancement_criteria", "downgrade_triggers")
    max_trades_per_day: int | None
    position_size: Decimal
    advancement_criteria: TrialCriteria
    downgrade_triggers: DowngradeTriggers


class WinStreakIncrease(SettingsBlock):
    __slots__ = FIELDS = ("every", "amount")
    every: int
    amount: Decimal


class WinRateIncrease(SettingsBlock):
    __slots__ = FIELDS = ("sessions", "min_win_rate", "amount")
    sessions: int
    min_win_rate: Decimal
    amount: Decimal


class ScalingSettings(SettingsBlock):
    __slots__ = FIELDS = (
        "max_trades_per_day", "position_size_min", "position_size_max", "max_portfolio_pct",
        "increase_on_win_streak", "increase_on_win_rate", "downgrade_triggers",
    )
    max_trades_per_day: int | None
    position_size_min: Decimal
    position_size_max: Decimal
    max_portfolio_pct: Decimal | None
    increase_on_win_streak: WinStreakIncrease | None
    increase_on_win_rate: WinRateIncrease | None
    downgrade_triggers: DowngradeTriggers


class HistoryHead(SettingsBlock):
    """A phase log's last line as the mirror last saw it (written by the bot); seq 0 says
    the log was empty when the bot was about to write its first line."""

    __slots__ = FIELDS = ("seq", "hash")
    seq: int
    hash: str

    def __init__(self, extra: Mapping[str, Any] | None = None, *, seq: int = 0, hash: str = EMPTY_LOG_HASH) -> None:  # noqa: A002
        super().__init__(extra, seq=seq, hash=hash)


class PhaseProgression(SettingsBlock):
    __slots__ = FIELDS = ("current_phase", "history_head", "overrides_head", "experience", "proof", "trial", "scaling")
    current_phase: Phase
    history_head: HistoryHead | UnreadableHead | None
    overrides_head: HistoryHead | UnreadableHead | None
    experience: ExperienceSettings
    proof: ProofSettings
    trial: TrialSettings
    scaling: ScalingSettings


class TradingHours(SettingsBlock):
    __slots__ = FIELDS = ("start_time", "end_time", "timezone")
    start_time: time
    end_time: time
    timezone: str


class TradingSettings(SettingsBlock):
    __slots__ = FIELDS = ("mode", "hours")
    mode: str  # "paper" or "live"
    hours: TradingHours


class AccountSettings(SettingsBlock):
    __slots__ = FIELDS = ("starting_equity",)
    starting_equity: Decimal


class RiskSettings(SettingsBlock):
    __slots__ = FIELDS = ("max_position_pct", "max_daily_loss_pct")
    max_position_pct: Decimal | None
    max_daily_loss_pct: Decimal | None


class Settings(SettingsBlock):
    __slots__ = FIELDS = ("trading", "account", "risk_management", "phase_progression")
    trading: TradingSettings
    account: AccountSettings
    risk_management: RiskSettings
    phase_progression: PhaseProgression

    def phase_block(self, phase: Phase) -> ExperienceSettings | ProofSettings | TrialSettings | ScalingSettings:
        return getattr(self.phase_progression, phase.value)  # type: ignore[no-any-return]


# Each block by its class name: `config_schema.to_runtime` and `SettingsCache` build them.
SETTINGS_BLOCKS: dict[str, type[SettingsBlock]] = {
    block.__name__: block
    for block in (
        DowngradeTriggers, ProofDowngradeTriggers, ExperienceCriteria, ProofCriteria, TrialCriteria,
        ExperienceSettings, ProofSettings, TrialSettings, WinStreakIncrease, WinRateIncrease, ScalingSettings,
        HistoryHead, PhaseProgression, TradingHours, TradingSettings, AccountSettings, RiskSettings, Settings,
    )
}


def validate_settings(raw: dict[str, Any], text: str, file: str) -> Settings:
    """Validate config.json's parsed `raw` (pydantic, imported here and only here)."""
    from trading_bot.config_schema import validate_settings as validated

    return validated(raw, text, file)


# ---- the validated settings of the text validated last ---------------------------------

SETTINGS_CACHE_FILE = "settings.json"
_CACHE_FORMAT = "trading-bot validated settings"
# The code that decides what a config.json means: a change to any of them (or another
# pydantic) changes every key, so a cache written by other code is never read.
_VALIDATING_MODULES = ("config.py", "config_schema.py", "input_bounds.py", "money.py", "phase/models.py")


class SettingsCache:
    """`logs/.derived/settings.json`: the settings validated from one config.json text.

    Keyed by the SHA-256 of that exact text and of the code that validates it (see
    `_VALIDATING_MODULES`), and checked against its own checksum; anything else — another
    text, other code, damage, a file that is not this format — is a miss, and the caller
    validates config.json in full. The content is a pure function of its key, so an atomic
    replace is all a writer needs: two writers can only write the same settings. Like every
    derived file it may be deleted at any moment, and `verify` never trusts it.
    """

    _code_digest: ClassVar[bytes | None] = None
    _code_digest_known: ClassVar[bool] = False

    def __init__(self, path: Path, *, writable: bool = True) -> None:
        self.path = Path(path)
        self.writable = writable
        self.note = "not read"  # what the last load found, for people and tests

    @classmethod
    def _code(cls) -> bytes | None:
        if not cls._code_digest_known:
            cls._code_digest_known = True
            digest = hashlib.sha256(_CACHE_FORMAT.encode("ascii"))
            package = Path(__file__).resolve().parent
            try:
                spec = importlib.util.find_spec("pydantic")
                origin = None if spec is None else spec.origin
                if origin is None:
                    return None
                for path in (*(package / name for name in _VALIDATING_MODULES), Path(origin).with_name("version.py")):
                    digest.update(path.read_bytes())
                    digest.update(b"\0")
            except (OSError, ImportError, ValueError):
                return None
            cls._code_digest = digest.digest()
        return cls._code_digest

    def key(self, text: str) -> str | None:
        code = self._code()
        if code is None:
            return None
        return hashlib.sha256(code + text.encode("utf-8", "surrogatepass")).hexdigest()

    def load(self, text: str) -> Settings | None:
        """The settings validated from exactly `text` by this code, or None."""
        key = self.key(text)
        if key is None:
            self.note = "off: the validating code cannot be read"
            return None
        try:
            document = json.loads(read_regular(self.path))
        except FileNotFoundError:
            self.note = "missed: no cache"
            return None
        except (OSError, ValueError) as error:
            self.note = f"missed: unreadable ({error})"
            return None
        try:
            if document["format"] != _CACHE_FORMAT or document["key"] != key:
                self.note = "missed: another text or other code"
                return None
            body = document["settings"]
            if document["digest"] != _body_digest(body):
                self.note = "missed: does not match its checksum"
                return None
            settings = _decoded(body)
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            self.note = f"missed: malformed ({type(error).__name__})"
            return None
        if type(settings) is not Settings:
            self.note = "missed: not settings"
            return None
        self.note = "used"
        return settings

    def save(self, text: str, settings: Settings) -> None:
        """Best effort: a cache that cannot be written costs the next start a validation."""
        key = self.key(text)
        if key is None or not self.writable:
            return
        try:
            body = _encoded(settings)
            document = {"format": _CACHE_FORMAT, "key": key, "settings": body, "digest": _body_digest(body)}
            atomic_write_bytes(self.path, json.dumps(document, ensure_ascii=True).encode("ascii"))
        except (OSError, TypeError, ValueError):
            return


def _body_digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, ensure_ascii=True, sort_keys=True).encode("ascii")).hexdigest()


def _encoded(value: Any) -> Any:
    """A settings value as JSON that names each type it stands for (no value is guessed back)."""
    if value is None or value.__class__ in (bool, int, str):
        return value
    if isinstance(value, SettingsBlock):
        fields = {name: _encoded(getattr(value, name)) for name in value.FIELDS}
        return {"block": [type(value).__name__, fields, {key: _encoded(item) for key, item in value.extra.items()}]}
    if isinstance(value, Phase):
        return {"phase": value.value}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, time):
        return {"time": value.isoformat()}
    if isinstance(value, UnreadableHead):
        return {"unreadable": value.problem}
    if isinstance(value, list):
        return {"list": [_encoded(item) for item in value]}
    if isinstance(value, dict) and all(key.__class__ is str for key in value):
        return {"object": {key: _encoded(item) for key, item in value.items()}}
    raise TypeError(f"a settings value of type {type(value).__name__} is not cached")


def _decoded(node: Any) -> Any:
    if node is None or node.__class__ in (bool, int, str):
        return node
    if node.__class__ is not dict or len(node) != 1:
        raise ValueError("not a cached settings value")
    ((tag, body),) = node.items()
    if tag == "block":
        name, fields, extra = body
        block = SETTINGS_BLOCKS[name]
        return block({key: _decoded(item) for key, item in extra.items()}, **{key: _decoded(item) for key, item in fields.items()})
    if tag == "decimal" and body.__class__ is str:
        number = Decimal(body)
        if number.is_finite():
            return number
    elif tag == "phase":
        return Phase(body)
    elif tag == "time" and body.__class__ is str:
        return time.fromisoformat(body)
    elif tag == "unreadable" and body.__class__ is str:
        return UnreadableHead(body)
    elif tag == "list" and body.__class__ is list:
        return [_decoded(item) for item in body]
    elif tag == "object" and body.__class__ is dict:
        return {key: _decoded(item) for key, item in body.items()}
    raise ValueError(f"not a cached settings value: {tag!r}")


ENV_FILE_NAME = ".env"


@dataclass
class Config:
    """Loaded settings plus the raw JSON they came from, so saves keep unknown keys."""

    path: Path
    settings: Settings
    raw: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    settings_cache: SettingsCache | None = field(default=None, compare=False, repr=False)
    # The text these settings were validated from, until `cache_settings` notes them.
    uncached_text: str | None = field(default=None, compare=False, repr=False)
    # The text raw and settings come from (what `save` writes, once changed), and the file's
    # (inode, size, mtime) as it was opened to read that text: never a later file's.
    text: str = field(default="", compare=False, repr=False)
    file_key: tuple[int, int, int] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_env_and_json(
        cls,
        path: Path | str,
        *,
        environ: Mapping[str, str] | None = None,
        env_file: Path | None = None,
        settings_cache: SettingsCache | None = None,
    ) -> Config:
        """Load config.json and the environment; a missing config file is an error."""
        path = Path(path)
        env_path = env_file if env_file is not None else path.parent / ENV_FILE_NAME
        env = merged_environment(os.environ if environ is None else environ, env_path)
        try:
            # The key is taken from the open file before it is read: a replace after the
            # open cannot lend its key to this text (an edit in place only costs a re-read).
            with open_regular(path) as handle:
                stat = os.fstat(handle.fileno())
                text = handle.read().decode("utf-8")
        except FileNotFoundError:
            raise ConfigError(str(path), None, "(file)", "not found") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(str(path), None, "(file)", f"cannot be read: {error.strerror if isinstance(error, OSError) and error.strerror else error}") from None
        config = cls.from_text(path, text, env, settings_cache=settings_cache)
        config.file_key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        return config

    @classmethod
    def from_text(
        cls, path: Path, text: str, env: dict[str, str] | None = None, *, settings_cache: SettingsCache | None = None
    ) -> Config:
        # Windows editors may start the file with a byte-order mark; it carries no setting.
        text = text.removeprefix("\ufeff")
        raw = parse_json_exact(text, str(path))
        if not isinstance(raw, dict):
            raise ConfigError(str(path), 1, "(root)", "must be a JSON object")
        settings = None if settings_cache is None else settings_cache.load(text)
        uncached = None
        if settings is None:
            settings = validate_settings(raw, text, str(path))
            uncached = text
        return cls(
            path=path, settings=settings, raw=raw, env=dict(env or {}), settings_cache=settings_cache, uncached_text=uncached, text=text
        )

    def cache_settings(self) -> None:
        """Note validated settings for the next process. Called by a process that writes
        anyway (the phase system under the logs lock), so opening a desk writes nothing."""
        if self.uncached_text is not None and self.settings_cache is not None:
            self.settings_cache.save(self.uncached_text, self.settings)
        self.uncached_text = None

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
        return Config(path=self.path, settings=settings, raw=raw, env=self.env, settings_cache=self.settings_cache, text=text)

    def save(self) -> None:
        """Write atomically (temp file, fsync, rename); unknown keys survive. The settings
        are noted for the next process, which then reads them without validating again."""
        text = self.text = dump_json_exact(self.raw)
        atomic_write_bytes(self.path, text.encode("utf-8"))
        if self.settings_cache is not None:
            self.settings_cache.save(text, self.settings)


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
