"""The dependency direction bot → scheduler → handlers → models, read from the source with `ast`.

A lower layer never imports a higher one (not even inside a function), and no two of our modules import
each other, directly or round a loop (imports only for type checkers do not count for loops).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "handlers", "scheduler", "bot")  # lowest first
FORBIDDEN = {  # package → packages it must not import
    "models": {"handlers", "scheduler", "bot"},
    "handlers": {"scheduler", "bot"},
    "scheduler": {"bot"},
    "bot": set(),
}


@dataclass(frozen=True, slots=True)
class Import:
    module: str  # the importing module
    target: str  # one of our modules
    line: int
    typing_only: bool  # under `if TYPE_CHECKING:`


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _our_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _typing_only_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for inner in ast.walk(child):
                    if hasattr(inner, "lineno"):
                        lines.add(inner.lineno)
    return lines


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: dict[str, Path]) -> list[str]:
    """Our modules an import statement loads (`from pkg import mod` names the submodule)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def _imports() -> list[Import]:
    known = _our_modules()
    found = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        typing_only = _typing_only_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, module, path.name == "__init__.py", known):
                    if target != module:
                        found.append(Import(module, target, node.lineno, node.lineno in typing_only))
    return found


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{item.module}:{item.line} imports {item.target}"
        for item in _imports()
        if item.target.split(".")[0] in FORBIDDEN[item.module.split(".")[0]]
    ]
    assert upward == []


def test_no_import_cycle_between_our_modules() -> None:
    graph: dict[str, set[str]] = {}
    for item in _imports():
        is_parent_package = item.module.startswith(item.target + ".")  # a submodule loads its package anyway
        if not item.typing_only and not is_parent_package:
            graph.setdefault(item.module, set()).add(item.target)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        raise AssertionError(f"import cycle: {' → '.join(error.args[1])}") from None


def test_the_scan_sees_imports() -> None:
    """The scan itself works: it finds known imports, relative and `from package import module` forms."""
    edges = {(item.module, item.target) for item in _imports()}
    assert ("bot.app", "bot.services") in edges
    assert ("bot.services", "bot.platforms.wecom") in edges  # `from bot.platforms import dingtalk, wecom`
    assert ("scheduler.ticker", "models.config") in edges
