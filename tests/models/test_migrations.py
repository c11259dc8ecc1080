"""The schema is created from empty by Alembic and matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from models.db import current_revision, upgrade
from models.tables import metadata


def test_upgrade_from_empty_creates_every_table(any_engine: Engine) -> None:
    upgrade(any_engine)
    tables = set(inspect(any_engine).get_table_names())
    assert set(metadata.tables) <= tables
    assert current_revision(any_engine) is not None


def test_migrations_match_the_models(any_engine: Engine) -> None:
    upgrade(any_engine)
    with any_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        assert compare_metadata(context, metadata) == []


def test_upgrade_is_idempotent(sqlite_engine: Engine) -> None:
    upgrade(sqlite_engine)
    upgrade(sqlite_engine)
    assert current_revision(sqlite_engine) is not None


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
