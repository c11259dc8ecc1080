"""All SQL lives in models/: no module outside it builds a query (read from the source with `ast`).

A module of bot/, scheduler/ or handlers/ may import `Session` or `Engine` from sqlalchemy/sqlmodel to pass
them on, but not the constructs that build statements (select, insert, update, delete, text, func, …),
nor the dialects' inserts; it calls a named query function of models/ instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "scheduler", "handlers")
QUERY_CONSTRUCTS = frozenset({
    "select", "insert", "update", "delete", "text", "func", "literal_column", "column", "table", "bindparam",
    "and_", "or_", "not_", "case", "exists", "union", "union_all", "join", "outerjoin", "tuple_", "cast", "col",
})
SQL_LIBRARIES = ("sqlalchemy", "sqlmodel")


def _is_sql_module(name: str) -> bool:
    return name.split(".")[0] in SQL_LIBRARIES


def sql_constructs_imported(source: str) -> list[tuple[int, str]]:
    """(line, what) of each query construct a module's source imports from sqlalchemy or sqlmodel."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and _is_sql_module(node.module):
            if "dialects" in node.module.split("."):  # a dialect's own insert (… on conflict) or functions
                names = ", ".join(sorted(alias.name for alias in node.names))
                found.append((node.lineno, f"from {node.module} import {names}"))
                continue
            found += [
                (node.lineno, f"from {node.module} import {alias.name}")
                for alias in node.names if alias.name in QUERY_CONSTRUCTS or alias.name == "*"
            ]
        elif isinstance(node, ast.Import):
            # `import sqlalchemy as sa` then `sa.select(...)`: the whole library is in reach.
            found += [(node.lineno, f"import {alias.name}") for alias in node.names if _is_sql_module(alias.name)]
    return found


def _modules() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]


def test_no_module_outside_models_builds_sql() -> None:
    offenders = []
    for path in _modules():
        relative = path.relative_to(ROOT).as_posix()
        for line, what in sql_constructs_imported(path.read_text(encoding="utf-8")):
            offenders.append(f"{relative}:{line}: {what}")
    assert offenders == [], "move these queries into a named function of models/:\n" + "\n".join(offenders)


def test_the_scan_sees_query_constructs() -> None:
    """The scan itself works on every spelling, and lets the plumbing types through."""
    source = (
        "from sqlmodel import Session, select\n"
        "from sqlalchemy import Engine, update\n"
        "from sqlalchemy.dialects.postgresql import insert as pg_insert\n"
        "import sqlalchemy as sa\n"
        "from sqlalchemy import Connection\n"
        "from sqlalchemy.pool import NullPool\n"
    )
    found = [what for _, what in sql_constructs_imported(source)]
    assert found == [
        "from sqlmodel import select",
        "from sqlalchemy import update",
        "from sqlalchemy.dialects.postgresql import insert",
        "import sqlalchemy",
    ]
    # and it reads the real query modules: models/ builds SQL, so the scan finds it there.
    assert any(sql_constructs_imported(path.read_text(encoding="utf-8")) for path in (ROOT / "models").glob("*.py"))
