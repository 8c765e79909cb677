"""The layers of the package: a module imports only from its own layer or below.

Every module must be listed in a layer: an unlisted one fails, so a new module is
placed on purpose rather than left where nothing can catch it.
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
        "durable_files", "high_water", "env_file", "config", "config_schema", "broker", "logging.line_parser", "logging.journal_index",
        "logging.query_helper",
        "logging.session_totals",
        "logging.structured_logger", "phase.log_format", "phase.chained_log", "phase.log_repair",
    ],
    # Pure rules: values in, values out.
    "rules": [
        "market_calendar", "nyse_closures", "risk_management.calculator", "dashboard.metrics_calculator",
        "performance.models", "performance.tracker", "phase.criteria_edits", "phase.password",
        "phase.stint", "phase.position_sizing", "phase.trade_limiter", "phase.rules",
        "phase.ledger", "entry_checks", "phase.timeline",
    ],
    # Decide and record: the phase system and the trading loop.
    "shell": ["phase.engine", "phase.snapshot", "phase.mirror", "phase.integrity", "phase.commands", "phase.entry_gate", "phase.manager", "bot", "phase.export", "phase.report"],
    # The one assembly and the commands: the only modules that know every part.
    "assembly": ["app", "phase.cli", "phase.__main__", "phase.virtual_desk", "phase.simulation", "phase.replay"],
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}
NAMES = list(LAYERS)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def imported_modules(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every trading_bot module the file imports, in every form the language allows.

    `import trading_bot.a.b`, `from trading_bot.a.b import name`, `from trading_bot.a import b`
    and `from trading_bot import a` (where `b` and `a` are modules) all count as the module
    itself; relative imports resolve against the file's place under `package`. A package
    (its empty `__init__`) is not a module that can break the layers, so it is left out.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("trading_bot."))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute_module(node, path, package)
            if base is None or not (base == "trading_bot" or base.startswith("trading_bot.")):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate, package) else base)
    return {name.removeprefix("trading_bot.") for name in found if not _is_package(name, package)}


def _absolute_module(node: ast.ImportFrom, path: Path, package: Path) -> str | None:
    """The absolute module a `from … import` reads from; None for a relative one outside `package`."""
    if node.level == 0:
        return node.module
    try:
        parts = ["trading_bot", *path.resolve().relative_to(package).parent.parts]
    except ValueError:
        return None
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def _file_of(name: str, package: Path) -> Path:
    return package.joinpath(*name.split(".")[1:])


def _is_module(name: str, package: Path) -> bool:
    return _file_of(name, package).with_suffix(".py").is_file() or _is_package(name, package)


def _is_package(name: str, package: Path) -> bool:
    return (_file_of(name, package) / "__init__.py").is_file()


def rank_of(module: str) -> int:
    """The module's layer; an unlisted module has none, and that is a failure."""
    if module not in RANK:
        pytest.fail(f"{module} is not listed in any layer of LAYERS")
    return RANK[module]


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


def test_every_module_is_listed_in_a_layer() -> None:
    present = {module_name(path) for path in SOURCES}
    assert sorted(present - set(RANK)) == []


def test_an_unlisted_module_fails_instead_of_ranking_top() -> None:
    with pytest.raises(pytest.fail.Exception, match="not listed"):
        rank_of("phase.not_a_module")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import trading_bot.app\n", {"app"}),
        ("import trading_bot.phase.manager as manager\n", {"phase.manager"}),
        ("from trading_bot.phase.manager import PhaseManager\n", {"phase.manager"}),
        ("from trading_bot import app\n", {"app"}),
        ("from trading_bot import app, bot as trading\n", {"app", "bot"}),
        ("from trading_bot.phase import manager\n", {"phase.manager"}),
        ("from trading_bot import phase\n", set()),  # a package: its __init__ is empty
        ("from trading_bot import __version__\n", set()),
        ("if True:\n    from trading_bot.phase import cli\n", {"phase.cli"}),
        ("import json\nfrom decimal import Decimal\n", set()),
    ],
)
def test_the_walker_sees_each_import_form(tmp_path: Path, source: str, expected: set[str]) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(source, encoding="utf-8")
    assert imported_modules(sample) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from . import manager\n", {"phase.manager"}),
        ("from .manager import PhaseManager\n", {"phase.manager"}),
        ("from .. import app\n", {"app"}),
        ("from ..logging.trade_record import TradeRecord\n", {"logging.trade_record"}),
    ],
)
def test_the_walker_resolves_relative_imports(tmp_path: Path, source: str, expected: set[str]) -> None:
    package = tmp_path / "trading_bot"
    (package / "phase").mkdir(parents=True)
    (package / "logging").mkdir()
    for name in ("__init__.py", "app.py", "phase/__init__.py", "phase/manager.py", "phase/sample.py", "logging/__init__.py", "logging/trade_record.py"):
        (package / name).write_text("", encoding="utf-8")
    sample = package / "phase" / "sample.py"
    sample.write_text(source, encoding="utf-8")
    assert imported_modules(sample, package) == expected


def test_a_module_import_from_a_package_above_is_caught(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from trading_bot.phase import manager\nfrom trading_bot import app\n", encoding="utf-8")
    assert max(rank_of(name) for name in imported_modules(sample)) > RANK["entry_checks"]


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from trading_bot.phase.manager import PhaseManager\nimport trading_bot.app\n", encoding="utf-8")
    assert imported_modules(sample) == {"phase.manager", "app"}
    assert max(rank_of(name) for name in imported_modules(sample)) > RANK["entry_checks"]
