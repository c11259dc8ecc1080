"""The one INSERT … ON CONFLICT helper, for SQLite and PostgreSQL (both spell it the same way).

Every upsert of the bot goes through `insert_on_conflict`: the statement is built once per
(dialect, table, conflict target, update columns, returning) and cached, and the values go in as
parameters, so SQLAlchemy reuses the compiled form (building a statement per row was most of a
10,000-push fan-out's time). RETURNING, not rowcount, tells which rows were new: psycopg reports
-1 for ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

Bind = Session | Connection | Engine


def dialect_of(bind: Bind) -> str:
    """'postgresql' or 'sqlite' (any other dialect is refused by `insert_on_conflict`)."""
    if isinstance(bind, Session):
        return bind.get_bind().dialect.name
    if isinstance(bind, Connection):
        return bind.dialect.name
    return bind.dialect.name


def insert_on_conflict(
    dialect: str,
    table: type[SQLModel],
    *,
    conflict: Sequence[str],
    update: Sequence[str] = (),
    increment: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> Any:
    """INSERT INTO table … ON CONFLICT (conflict) DO NOTHING, or DO UPDATE SET the `update` columns to
    the inserted values and the `increment` columns to their stored value + 1; RETURNING the named columns
    (of the rows inserted or updated). Cached."""
    return _statement(dialect, table, tuple(conflict), tuple(update), tuple(increment), tuple(returning))


@functools.cache
def _statement(
    dialect: str,
    table: type[SQLModel],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
    increment: tuple[str, ...],
    returning: tuple[str, ...],
) -> Any:
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:
        raise ValueError(f"no INSERT … ON CONFLICT for the {dialect!r} dialect")
    columns = table_of(table).c
    if update or increment:
        changes: dict[str, Any] = {name: statement.excluded[name] for name in update}
        changes.update({name: columns[name] + 1 for name in increment})
        statement = statement.on_conflict_do_update(index_elements=list(conflict), set_=changes)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(conflict))
    if returning:
        statement = statement.returning(*(columns[name] for name in returning))
    return statement


def table_of(model: type[SQLModel]) -> Table:
    """The Core `Table` of a SQLModel table class (SQLModel sets `__table__` at run time but does not declare it)."""
    table = inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table
