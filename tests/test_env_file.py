"""The `.env` reader: the subset people write, and a located error for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from trading_bot.env_file import merged_environment, read_env_file
from trading_bot.errors import ConfigError


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def parse(tmp_path: Path, text: str) -> dict[str, str]:
    return read_env_file(write_env(tmp_path, text))


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_env_file(tmp_path / "absent.env") == {}


def test_empty_file_is_empty(tmp_path: Path) -> None:
    assert parse(tmp_path, "") == {}


def test_key_value_lines(tmp_path: Path) -> None:
    assert parse(tmp_path, "A=1\nB=two\n") == {"A": "1", "B": "two"}


def test_export_prefix_is_dropped(tmp_path: Path) -> None:
    assert parse(tmp_path, "export A=1\nexport   B=2\n") == {"A": "1", "B": "2"}


def test_key_named_export_is_a_plain_key(tmp_path: Path) -> None:
    assert parse(tmp_path, "export=1\nexported=2\n") == {"export": "1", "exported": "2"}


def test_comments_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    assert parse(tmp_path, "# a comment\n\n   \n  # indented\nA=1\n") == {"A": "1"}


def test_whitespace_around_key_and_value_is_trimmed(tmp_path: Path) -> None:
    assert parse(tmp_path, "  A  =   spaced value   \n") == {"A": "spaced value"}


def test_empty_value(tmp_path: Path) -> None:
    assert parse(tmp_path, "A=\nB=''\nC=\"\"\n") == {"A": "", "B": "", "C": ""}


def test_value_may_contain_equals_sign(tmp_path: Path) -> None:
    assert parse(tmp_path, "A=x=y==\n") == {"A": "x=y=="}


def test_inline_comment_after_unquoted_value(tmp_path: Path) -> None:
    assert parse(tmp_path, "A=value # note\nB=value\t# tab note\n") == {"A": "value", "B": "value"}


def test_hash_without_preceding_space_is_part_of_value(tmp_path: Path) -> None:
    assert parse(tmp_path, "A=abc#def\nB=#x\n") == {"A": "abc#def", "B": "#x"}


def test_value_that_is_only_a_comment_is_empty(tmp_path: Path) -> None:
    assert parse(tmp_path, "A= # nothing here\n") == {"A": ""}


def test_single_quotes_are_removed_and_content_is_literal(tmp_path: Path) -> None:
    assert parse(tmp_path, "A='  a # b \\n \"c\" '\n") == {"A": '  a # b \\n "c" '}


def test_double_quotes_are_removed_and_keep_inner_spaces_and_hash(tmp_path: Path) -> None:
    assert parse(tmp_path, 'A="  a # b  "\n') == {"A": "  a # b  "}


def test_double_quote_escapes(tmp_path: Path) -> None:
    assert parse(tmp_path, 'A="line1\\nline2 \\"q\\" back\\\\slash \\t"\n') == {
        "A": 'line1\nline2 "q" back\\slash \\t'
    }


def test_comment_after_quoted_value(tmp_path: Path) -> None:
    assert parse(tmp_path, "A=\"x\"  # note\nB='y' # note\n") == {"A": "x", "B": "y"}


def test_scrypt_hash_value_survives_unquoted(tmp_path: Path) -> None:
    value = "scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="
    assert parse(tmp_path, f"PHASE_OVERRIDE_PASSWORD_HASH={value}\n") == {
        "PHASE_OVERRIDE_PASSWORD_HASH": value
    }


def test_later_duplicate_wins(tmp_path: Path) -> None:
    assert parse(tmp_path, "A=1\nA=2\n") == {"A": "2"}


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"A=1\r\nB='2'\r\n")
    assert read_env_file(path) == {"A": "1", "B": "2"}


def test_utf8_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes("\ufeffA=1\n".encode())
    assert read_env_file(path) == {"A": "1"}


def test_line_without_equals_raises_config_error_with_line_number(tmp_path: Path) -> None:
    path = write_env(tmp_path, "A=1\n\nhunter2secret\n")
    with pytest.raises(ConfigError) as caught:
        read_env_file(path)
    assert caught.value.file == str(path)
    assert caught.value.line == 3
    assert "hunter2secret" not in str(caught.value)


@pytest.mark.parametrize("line", ["1ABC=x", "A-B=x", "A B=x", "=x", "export =x"])
def test_invalid_key_raises_config_error(tmp_path: Path, line: str) -> None:
    path = write_env(tmp_path, f"{line}\n")
    with pytest.raises(ConfigError) as caught:
        read_env_file(path)
    assert caught.value.line == 1
    assert caught.value.field == "key"


@pytest.mark.parametrize("line", ["A=\"open", "A='open", "A=\"ends with escape\\\""])
def test_unterminated_quote_raises_config_error(tmp_path: Path, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(tmp_path, f"{line}\n")
    assert caught.value.field == "A"
    assert "unterminated" in caught.value.message


def test_text_after_closing_quote_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(tmp_path, "A=\"x\"y\n")
    assert caught.value.field == "A"


def test_invalid_utf8_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"A=\xff\n")
    with pytest.raises(ConfigError):
        read_env_file(path)


def test_merged_environment_without_file_copies_environ() -> None:
    assert merged_environment({"A": "1"}, None) == {"A": "1"}


def test_merged_environment_with_missing_file_copies_environ(tmp_path: Path) -> None:
    assert merged_environment({"A": "1"}, tmp_path / "absent.env") == {"A": "1"}


def test_process_environment_wins_over_file(tmp_path: Path) -> None:
    path = write_env(tmp_path, "A=file\nB=file\n")
    assert merged_environment({"A": "shell", "C": "shell"}, path) == {
        "A": "shell",
        "B": "file",
        "C": "shell",
    }


def test_empty_environment_value_does_not_hide_file_value(tmp_path: Path) -> None:
    path = write_env(tmp_path, "A=file\n")
    assert merged_environment({"A": "", "B": ""}, path) == {"A": "file", "B": ""}


def test_merged_environment_does_not_mutate_environ(tmp_path: Path) -> None:
    path = write_env(tmp_path, "A=file\n")
    environ = {"B": "shell"}
    merged_environment(environ, path)
    assert environ == {"B": "shell"}
