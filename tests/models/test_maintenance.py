"""The leader's ANALYZE and VACUUM of the bot's own tables where autovacuum would not run (models/maintenance.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, Engine, text

from models.maintenance import TableStats, autovacuum_is_off, autovacuum_off_note, maintenance_round, needs
from models.tables import metadata

DEFAULTS = {
    "autovacuum": "on", "autovacuum_analyze_threshold": "50", "autovacuum_analyze_scale_factor": "0.1",
    "autovacuum_vacuum_threshold": "50", "autovacuum_vacuum_scale_factor": "0.2",
}


def _stats(**changes: object) -> TableStats:
    fields: dict[str, object] = {"name": "hazard", "reltuples": 1000.0, "modified": 0, "dead": 0, "options": {}}
    return TableStats(**{**fields, **changes})  # type: ignore[arg-type]  # the fields' types vary by key


def test_autovacuums_rule_past_50_plus_10_percent_for_analyze_and_20_percent_for_vacuum() -> None:
    off = {**DEFAULTS, "autovacuum": "off"}
    assert needs(_stats(modified=150, dead=250), off) == (False, False)  # 50 + 10 % of 1,000; 50 + 20 %
    assert needs(_stats(modified=151, dead=251), off) == (True, True)
    assert needs(_stats(reltuples=0.0, modified=51), off) == (True, False)
    # The table's reloptions set its own thresholds, as they do autovacuum's.
    options = {"autovacuum_analyze_threshold": "0", "autovacuum_vacuum_scale_factor": "0.01"}
    assert needs(_stats(modified=101, dead=61, options=options), off) == (True, True)


def test_nothing_is_needed_where_autovacuum_runs() -> None:
    busy = _stats(modified=10_000, dead=10_000)
    assert needs(busy, DEFAULTS) == (False, False)
    assert needs(_stats(modified=10_000, options={"autovacuum_enabled": "true"}), DEFAULTS) == (False, False)
    # Off for the table alone, or for the server (a table's "on" does not start it then).
    assert needs(_stats(modified=10_000, dead=10_000, options={"autovacuum_enabled": "false"}), DEFAULTS) == (True, True)
    assert needs(_stats(modified=10_000, options={"autovacuum_enabled": "on"}), {**DEFAULTS, "autovacuum": "off"}) == (
        True, False
    )


def test_nothing_happens_on_sqlite(sqlite_engine: Engine) -> None:
    metadata.create_all(sqlite_engine)
    with sqlite_engine.begin() as connection:
        for i in range(200):
            connection.execute(text("INSERT INTO directory_version (id, version) VALUES (:id, 0)"), {"id": i + 2})
        connection.execute(text("DELETE FROM directory_version"))
    done = maintenance_round(sqlite_engine)
    assert (done.analyzed, done.vacuumed, done.skipped) == ([], [], [])
    assert not autovacuum_is_off(sqlite_engine) and autovacuum_off_note(sqlite_engine) is None
    with sqlite_engine.connect() as connection:  # no ANALYZE ran: SQLite keeps no statistics
        assert connection.execute(text("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")).all() == []


def _write(engine: Engine, statement: str, rows: int | None = None) -> None:
    """Run a write and have its session report the rows it changed to the statistics at once (not within ~1 s)."""
    with engine.begin() as connection:
        if rows is None:
            connection.execute(text(statement))
        else:
            connection.execute(text(statement), [{"i": i} for i in range(rows)])
        connection.execute(text("SELECT pg_stat_force_next_flush()"))


def _counts(connection: Connection, table: str) -> tuple[int, int, int]:
    """(ANALYZEs, VACUUMs, dead rows) of a table, as pg_stat_user_tables has them now."""
    connection.execute(text("SELECT pg_stat_clear_snapshot()"))
    row = connection.execute(
        text("SELECT analyze_count, vacuum_count, n_dead_tup FROM pg_stat_user_tables "
             "WHERE schemaname = current_schema() AND relname = :table"),
        {"table": table},
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


@pytest.fixture
def tables_without_autovacuum(postgres_engine: Engine) -> Engine:
    """The bot's tables in a fresh schema, autovacuum off for the two the tests fill (whatever the server's)."""
    metadata.create_all(postgres_engine)
    with postgres_engine.begin() as connection:
        for table in ("platform_api_calls", "directory_version"):
            connection.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    return postgres_engine


def test_a_round_analyzes_a_table_past_the_threshold_and_not_one_below_it(tables_without_autovacuum: Engine) -> None:
    engine = tables_without_autovacuum
    _write(engine, "INSERT INTO platform_api_calls (platform, month, kind, calls) VALUES ('wecom', '2026-12', "
                   "'kind' || :i, 1)", 120)  # past 50 + 10 % of 0 (never analyzed)
    _write(engine, "INSERT INTO directory_version (id, version) VALUES (:i, 0)", 30)  # below
    done = maintenance_round(engine)
    assert (done.analyzed, done.vacuumed, done.skipped) == (["platform_api_calls"], [], [])
    with engine.connect() as connection:
        assert _counts(connection, "platform_api_calls")[:2] == (1, 0)
        assert _counts(connection, "directory_version")[:2] == (0, 0)
        assert connection.execute(  # the planner now knows the rows
            text("SELECT reltuples FROM pg_class WHERE oid = 'platform_api_calls'::regclass")
        ).scalar_one() == 120
    assert maintenance_round(engine).analyzed == []  # nothing changed since


def test_a_round_vacuums_dead_rows(tables_without_autovacuum: Engine) -> None:
    engine = tables_without_autovacuum
    _write(engine, "INSERT INTO platform_api_calls (platform, month, kind, calls) VALUES ('wecom', '2026-12', "
                   "'kind' || :i, 1)", 200)
    assert maintenance_round(engine).analyzed == ["platform_api_calls"]  # reltuples 200
    _write(engine, "UPDATE platform_api_calls SET calls = calls + 1 WHERE kind < 'kind5'")  # ~110 dead: past 50 + 40
    with engine.connect() as connection:
        dead = _counts(connection, "platform_api_calls")[2]
    assert dead > 90
    done = maintenance_round(engine)
    assert (done.analyzed, done.vacuumed, done.skipped) == (["platform_api_calls"], ["platform_api_calls"], [])
    with engine.connect() as connection:
        assert _counts(connection, "platform_api_calls") == (2, 1, 0)


def test_a_table_another_session_holds_is_left_for_the_next_round(tables_without_autovacuum: Engine) -> None:
    engine = tables_without_autovacuum
    _write(engine, "INSERT INTO directory_version (id, version) VALUES (:i, 0)", 80)
    with engine.begin() as holder:  # what a concurrent ANALYZE, VACUUM or index build holds
        holder.execute(text("LOCK TABLE directory_version IN SHARE UPDATE EXCLUSIVE MODE"))
        done = maintenance_round(engine, lock_timeout="50ms")
        assert (done.analyzed, done.skipped) == ([], ["directory_version"])
    assert maintenance_round(engine).analyzed == ["directory_version"]


def test_tables_autovacuum_takes_care_of_are_left_alone(postgres_engine: Engine) -> None:
    """With autovacuum on for the server, a table with the default settings is autovacuum's; where the server's
    autovacuum is off (this one's may be), the round does what autovacuum would have done."""
    metadata.create_all(postgres_engine)
    _write(postgres_engine, "INSERT INTO directory_version (id, version) VALUES (:i, 0)", 80)
    server_off = autovacuum_is_off(postgres_engine)
    done = maintenance_round(postgres_engine)
    assert done.analyzed == (["directory_version"] if server_off else [])
    assert (autovacuum_off_note(postgres_engine) is not None) == server_off
