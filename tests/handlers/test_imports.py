"""The handlers package keeps its layering: no import cycles inside it, nothing of the edge imported."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"
EDGE = ("bot", "wechatpy", "httpx")


def _imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at its top or inside a function (lazy imports make cycles too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _handlers_graph() -> dict[str, set[str]]:
    names = {path.stem for path in HANDLERS.glob("*.py")} - {"__init__"}
    graph = {}
    for name in names:
        imported = _imported_modules(HANDLERS / f"{name}.py")
        graph[name] = {module.split(".")[1] for module in imported if module.startswith("handlers.")} & names - {name}
    return graph


def test_no_import_cycle_among_handlers_modules() -> None:
    graph = _handlers_graph()
    assert {"commands", "help", "router", "parser"} <= graph.keys()
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle among handlers/ modules: {error.args[1]}") from None
    assert order.index("help") < order.index("commands") < order.index("router")


def test_handlers_never_import_the_edge() -> None:
    for path in HANDLERS.glob("*.py"):
        edge = {module for module in _imported_modules(path) if module.split(".")[0] in EDGE}
        assert edge == set(), f"{path.name} imports {sorted(edge)}"
