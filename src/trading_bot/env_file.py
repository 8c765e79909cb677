"""A small `.env` reader, so the override password can live in a file next to the bot.

Only the subset people actually write is accepted; anything else is a `ConfigError`
naming the file and line, so a typo never silently drops a variable. Error messages
never echo a line's content: a malformed line may well be a pasted secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from trading_bot.durable_files import read_regular
from trading_bot.errors import ConfigError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_EXPORT = re.compile(r"export\s+")
# An inline comment in an unquoted value starts at a '#' preceded by whitespace:
# `A=b#c` and `A=#c` keep the '#', `A=b #c` and `A= #c` do not.
_INLINE_COMMENT = re.compile(r"\s#")
_DOUBLE_QUOTE_ESCAPES = {"n": "\n", '"': '"', "\\": "\\"}


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a `.env` file into a dict; a missing file is an empty one.

    Accepted lines: blank, `# comment`, `KEY=VALUE` and `export KEY=VALUE`. Values may
    be unquoted (trimmed, a ` #` starts a comment), single-quoted (taken literally), or
    double-quoted (`\\n`, `\\"` and `\\\\` are unescaped; any other backslash is kept).
    Values do not span lines. A repeated key keeps its last value, as a shell would.
    """
    path = Path(path)
    try:
        text = read_regular(path).decode("utf-8-sig")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "encoding", "not valid UTF-8") from None

    values: dict[str, str] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        parsed = _parse_line(raw.rstrip("\r"), str(path), number)
        if parsed is not None:
            key, value = parsed
            values[key] = value
    return values


def merged_environment(environ: Mapping[str, str], env_file: Path | None) -> dict[str, str]:
    """The process environment laid over the `.env` file's values.

    The environment wins because the operator's shell is the more deliberate setting:
    a file sits around for months, a variable exported for one command was meant now.
    An *empty* environment value does not hide a file value, because SPEC §8 treats an
    empty value as unset (an accidental `export X=$UNSET` must not mask the file).
    """
    merged = read_env_file(env_file) if env_file is not None else {}
    for key, value in environ.items():
        if value != "" or key not in merged:
            merged[key] = value
    return merged


def _parse_line(line: str, file: str, number: int) -> tuple[str, str] | None:
    """One line to `(key, value)`, or None for blank and comment lines."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    export = _EXPORT.match(stripped)
    if export is not None:
        stripped = stripped[export.end():]
    if "=" not in stripped:
        raise ConfigError(file, number, "line", "expected KEY=VALUE (no '=' found)")
    key, rest = stripped.split("=", 1)
    key = key.strip()
    if not _KEY.match(key):
        raise ConfigError(
            file, number, "key",
            "not a valid variable name (letters, digits and '_', not starting with a digit)",
        )
    return key, _parse_value(rest, file, number, key)


def _parse_value(raw: str, file: str, number: int, key: str) -> str:
    """The value after '=': quoted values lose their quotes, unquoted ones their comment."""
    rest = raw.strip()
    if rest.startswith('"'):
        value, end = _double_quoted(rest, file, number, key)
    elif rest.startswith("'"):
        end = rest.find("'", 1)
        if end < 0:
            raise ConfigError(file, number, key, "unterminated single quote")
        value, end = rest[1:end], end + 1
    else:
        comment = _INLINE_COMMENT.search(raw)
        return (raw if comment is None else raw[: comment.start()]).strip()
    tail = rest[end:].strip()
    if tail and not tail.startswith("#"):
        raise ConfigError(file, number, key, "unexpected text after the closing quote")
    return value


def _double_quoted(rest: str, file: str, number: int, key: str) -> tuple[str, int]:
    """Unescape a double-quoted value; returns it and the index just past the closing quote."""
    out: list[str] = []
    i = 1
    while i < len(rest):
        char = rest[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\" and i + 1 < len(rest) and rest[i + 1] in _DOUBLE_QUOTE_ESCAPES:
            out.append(_DOUBLE_QUOTE_ESCAPES[rest[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    raise ConfigError(file, number, key, "unterminated double quote")
