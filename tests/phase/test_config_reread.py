"""config.json as another process left it: a process never takes a later file's (inode,
size, mtime) for the text it read, and under the lock it compares the text itself, so it
never judges a head, nor writes config.json, from a copy another writer has replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import CLOCK_START
from trading_bot.clock import FixedClock
from trading_bot.config import Config
from trading_bot.phase.manager import PhaseManager
from trading_bot.phase.record_types import ENTRY_REFUSED


def mirrored_by_another_process(config_path: Path) -> dict[str, object]:
    """What a second desk on the same files leaves in config.json: its first look writes
    the empty-log heads, an override refusal then moves `overrides_head` on."""
    other = PhaseManager(config_path, clock=FixedClock(CLOCK_START), environ={})
    other.state()
    with other.lock.held():
        other.overrides.append(ENTRY_REFUSED, {"reason": "test: a line another process wrote"})
        other.after_commit()
    return json.loads(config_path.read_text(encoding="utf-8"))["phase_progression"]["overrides_head"]


def test_a_file_replaced_after_the_read_is_read_again_before_a_head_is_judged(config_path: Path) -> None:
    config = Config.from_env_and_json(config_path, environ={})  # this process reads config.json ...
    head = mirrored_by_another_process(config_path)  # ... another one writes a line and its head ...
    manager = PhaseManager(config_path, clock=FixedClock(CLOCK_START), environ={}, config=config)  # ... before this desk is assembled
    assert manager.config.settings.phase_progression.overrides_head is None  # the copy read before
    state = manager.state()
    assert manager.damage() is None, manager.damage()
    recorded = manager.config.settings.phase_progression.overrides_head
    assert recorded is not None and (recorded.seq, recorded.hash) == (head["seq"], head["hash"])
    assert state.phase.value == "experience"
    assert json.loads(config_path.read_text(encoding="utf-8"))["phase_progression"]["overrides_head"] == head


def test_under_the_lock_an_edit_that_kept_size_and_mtime_is_still_read(config_path: Path) -> None:
    manager = PhaseManager(config_path, clock=FixedClock(CLOCK_START), environ={})
    manager.state()
    before = os.stat(config_path)
    text = config_path.read_text(encoding="utf-8")
    edited = text.replace('"starting_equity": 10000', '"starting_equity": 20000')
    assert edited != text and len(edited) == len(text)
    with open(config_path, "r+", encoding="utf-8") as handle:  # in place: the same inode
        handle.write(edited)
    os.utime(config_path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the mtime put back
    after = os.stat(config_path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert manager.mirror.reload_config() is True  # the stat alone cannot tell ...
    assert str(manager.config.settings.account.starting_equity) == "10000"
    manager.apply_due()  # ... under the lock the text is compared
    assert str(manager.config.settings.account.starting_equity) == "20000"


def test_the_key_of_a_loaded_config_is_the_file_it_read(config_path: Path) -> None:
    config = Config.from_env_and_json(config_path, environ={})
    stat = os.stat(config_path)
    assert config.file_key == (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    assert config.text == config_path.read_text(encoding="utf-8")
    replacement = config_path.with_name("config.json.new")
    replacement.write_text(config.text, encoding="utf-8")
    os.replace(replacement, config_path)
    assert config.file_key != (os.stat(config_path).st_ino, os.stat(config_path).st_size, os.stat(config_path).st_mtime_ns)
