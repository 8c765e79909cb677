"""The layers of the package: a module imports only from its own layer or below.

A module not listed here is taken as part of the top layer (the assembly): it may
import anything, and nothing listed may import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "trading_bot"

LAYERS: dict[str, list[str]] = {
    # The shared words: imported by everyone, importing nothing above.
    "vocabulary": [
        "clock", "money", "errors", "phase.models", "error_handling.circuit_breaker",
        "logging.trade_record", "mode_switcher", "input_bounds", "phase.record_types",
    ],
    # Settings and the records on disk: reading, appending, the lock.
    "records": [
        "durable_files", "env_file", "config", "broker", "logging.query_helper",
        "logging.structured_logger", "phase.log_format", "phase.chained_log", "phase.log_repair",
    ],
    # Pure rules: values in, values out.
    "rules": [
        "market_calendar", "risk_management.calculator", "dashboard.metrics_calculator",
        "performance.models", "performance.tracker", "phase.criteria_edits", "phase.password",
        "phase.stint", "phase.position_sizing", "phase.trade_limiter", "phase.rules",
        "phase.ledger", "entry_checks", "phase.timeline",
    ],
    # Decide and record: the phase system and the trading loop.
    "shell": ["phase.engine", "phase.mirror", "phase.integrity", "phase.commands", "phase.entry_gate", "phase.manager", "bot", "phase.export", "phase.report"],
    # The one assembly and the commands: the only modules that know every part.
    "assembly": ["app", "phase.cli", "phase.__main__", "phase.virtual_desk", "phase.simulation", "phase.replay"],
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}
TOP = len(LAYERS) - 1
NAMES = list(LAYERS)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def imported_modules(path: Path) -> set[str]:
    """Every trading_bot module the file imports (a `from package import name` counts as package.name)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("trading_bot."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trading_bot"):
            found.add(node.module)
    return {name.removeprefix("trading_bot.") for name in found if name != "trading_bot"}


def rank_of(module: str) -> int:
    return RANK.get(module, TOP)


SOURCES = sorted(path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py")


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(path) for path in SOURCES])
def test_module_imports_only_its_own_layer_or_below(path: Path) -> None:
    module = module_name(path)
    upward = sorted(
        f"{other} ({NAMES[rank_of(other)]})" for other in imported_modules(path) if rank_of(other) > rank_of(module)
    )
    assert upward == [], f"{module} ({NAMES[rank_of(module)]}) imports from above: {upward}"


def test_every_listed_module_exists() -> None:
    present = {module_name(path) for path in SOURCES}
    assert sorted(set(RANK) - present) == []


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from trading_bot.phase.manager import PhaseManager\nimport trading_bot.app\n", encoding="utf-8")
    assert imported_modules(sample) == {"phase.manager", "app"}
    assert max(rank_of(name) for name in imported_modules(sample)) > RANK["entry_checks"]
