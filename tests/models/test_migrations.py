"""The schema is created from empty by Alembic and matches the models."""

from __future__ import annotations

from datetime import date, datetime, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, insert, inspect, select

from models.db import current_revision, upgrade
from models.places import place_head, place_numbers
from models.tables import Hazard, metadata


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


def _row(table: Table, **given: object) -> dict[str, object]:
    """A row of a table as reflected at an older revision: `given`, and a plain value for each other required
    column without a server default (keys are given, or numbered by the database)."""
    plain: dict[type, object] = {
        str: "x", int: 0, bool: False, float: 0.0, date: date(2023, 12, 5),
        datetime: datetime(2023, 12, 5, 2, 0, tzinfo=timezone.utc),
    }
    row = dict(given)
    for column in table.columns:
        if column.name in row or column.nullable or column.server_default is not None or column.primary_key:
            continue
        try:
            python_type = column.type.python_type
        except NotImplementedError:
            python_type = str
        row[column.name] = plain.get(python_type, "x")
    return row


def test_0015_gives_the_hazards_already_stored_their_place_keys(any_engine: Engine) -> None:
    upgrade(any_engine, "0014")
    old = MetaData()
    old.reflect(any_engine, only=["campaign", "unit", "person", "hazard"])
    places = ["3号教学楼二楼东侧", "食堂（后门）", "一楼 男厕所", ""]
    with any_engine.begin() as connection:
        connection.execute(insert(old.tables["campaign"]), _row(old.tables["campaign"], id="c1"))
        connection.execute(insert(old.tables["unit"]), _row(old.tables["unit"], id="u1"))
        connection.execute(insert(old.tables["person"]), _row(old.tables["person"], id="p1", unit_id="u1"))
        connection.execute(insert(old.tables["hazard"]), [
            _row(old.tables["hazard"], campaign_id="c1", number=n, unit_id="u1", reporter_id="p1", location=place)
            for n, place in enumerate(places, 1)
        ])
    upgrade(any_engine)
    with any_engine.connect() as connection:
        rows = connection.execute(
            select(Hazard.location, Hazard.place_numbers, Hazard.place_head).order_by(Hazard.number)  # type: ignore[arg-type]
        ).all()
    assert [tuple(row) for row in rows] == [
        ("3号教学楼二楼东侧", "3,2", "号教"), ("食堂（后门）", "", "食堂"), ("一楼 男厕所", "1", "楼男"), ("", "", ""),
    ]
    assert [(place_numbers(place), place_head(place)) for place in places] == [tuple(row)[1:] for row in rows]
