"""Errors a user can cause, each carrying where it came from so the CLI prints one line."""

from __future__ import annotations


class InputError(Exception):
    """Bad input: a file, the line where it can be found, the field, and what is wrong."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """`<file>:<line>: <field>: <message>`, control characters escaped: a key or a
        value with a newline in it must not turn one error into two lines."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return escape_controls(f"{where}: {self.field}: {self.message}")


def escape_controls(text: str) -> str:
    """Newlines, tabs and other control characters as visible escapes (`\\n`)."""
    return text.translate(_CONTROL_ESCAPES)


_CONTROL_ESCAPES = {code: repr(chr(code))[1:-1] for code in [*range(0x20), 0x7F, 0x2028, 0x2029]}


class ConfigError(InputError):
    """config.json (or .env) is malformed."""


class JournalError(InputError):
    """A trade journal line is invalid."""


class Busy(Exception):
    """Another writer held the logs lock for longer than the wait allows."""

    def __init__(self, lock_path: str, waited_seconds: float) -> None:
        self.lock_path = lock_path
        self.waited_seconds = waited_seconds
        super().__init__(f"busy: another process holds {lock_path} (waited {waited_seconds:g}s)")
