"""What autovacuum would do for the bot's own tables, on a PostgreSQL server where it is off (the leader's job).

Without autovacuum nothing ANALYZEs a table, so a filled table is planned on default guesses of its columns
(the duplicate check then read every open hazard of a unit through a one-column index), and nothing VACUUMs
one, so the dead index entries of updated rows pile up (the outbox sender's candidate query read ~1,200 of
them a pass). A round reads `pg_stat_user_tables` for the bot's tables in its schema and, for each table
autovacuum would skip (off for the server, or `autovacuum_enabled = false` for the table), applies
autovacuum's own rule: ANALYZE once the rows changed since the last one pass `threshold + scale factor ×
reltuples` (50 + 10 % by default), VACUUM once the dead rows pass 50 + 20 %. The server's settings and the
table's reloptions give the thresholds, as they would autovacuum's.

Nothing happens on SQLite: it has no dead row versions to clean up (a row is updated in place; freed pages
are reused) and its planner reads no statistics unless someone runs ANALYZE, so a never-analyzed table is
SQLite's normal case and the indexes it picks are chosen by their shape, not by stale figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, column, func, select, table
from sqlalchemy.exc import DBAPIError

from models.tables import metadata

ROUND_SECONDS = 30.0  # how often the leader runs a round (autovacuum's own naptime is 60 s)
# The longest a VACUUM or ANALYZE waits for its lock (held by another VACUUM, ANALYZE or DDL) before the table is
# left for the next round. The wait blocks no handler: their reads and writes don't conflict with that lock.
LOCK_TIMEOUT = "1s"
_BUSY_SQLSTATES = frozenset({"55P03", "57014"})  # lock_not_available, query_canceled

_STATS = table(
    "pg_stat_user_tables", column("relid"), column("schemaname"), column("relname"), column("n_mod_since_analyze"),
    column("n_dead_tup"), schema="pg_catalog",
)
_CLASS = table("pg_class", column("oid"), column("reltuples"), column("reloptions"), schema="pg_catalog")
_SETTINGS = (
    "autovacuum", "autovacuum_analyze_threshold", "autovacuum_analyze_scale_factor",
    "autovacuum_vacuum_threshold", "autovacuum_vacuum_scale_factor",
)


@dataclass(frozen=True)
class TableStats:
    """What autovacuum looks at for one table."""

    name: str
    reltuples: float  # the planner's row estimate; -1 (never vacuumed nor analyzed) counts as 0, as autovacuum has it
    modified: int  # n_mod_since_analyze
    dead: int  # n_dead_tup
    options: Mapping[str, str]  # the table's reloptions


@dataclass
class Round:
    """What one round did."""

    analyzed: list[str] = field(default_factory=list)
    vacuumed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # busy: left for the next round


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def autovacuum_is_off(engine: Engine) -> bool:
    """Whether the PostgreSQL server runs without autovacuum (False on SQLite, which needs none)."""
    if not is_postgres(engine):
        return False
    with engine.connect() as connection:
        return not _on(str(connection.execute(select(func.current_setting("autovacuum"))).scalar_one()))


def autovacuum_off_note(engine: Engine, lang: str = "en") -> str | None:
    """One line saying the bot maintains its own tables because autovacuum is off; None when it is on."""
    if not autovacuum_is_off(engine):
        return None
    if lang == "zh":
        return ("PostgreSQL 的 autovacuum 已关闭：机器人会自己定期对它的表执行 ANALYZE 和 VACUUM；"
                "更好的做法是打开 autovacuum（postgresql.conf 里 autovacuum = on）")
    return ("PostgreSQL autovacuum is off: the bot will ANALYZE and VACUUM its own tables itself; "
            "turning autovacuum on (autovacuum = on in postgresql.conf) is better")


def own_table_stats(connection: Connection) -> tuple[dict[str, str], list[TableStats]]:
    """The server's autovacuum settings, and the statistics of the bot's tables in the connection's schema."""
    settings = connection.execute(select(*(func.current_setting(name).label(name) for name in _SETTINGS))).one()
    s, c = _STATS.c, _CLASS.c
    rows = connection.execute(
        select(s.relname, c.reltuples, s.n_mod_since_analyze, s.n_dead_tup, c.reloptions)
        .join_from(_STATS, _CLASS, c.oid == s.relid)
        .where(s.schemaname == func.current_schema(), s.relname.in_(sorted(metadata.tables)))
        .order_by(s.relname)
    ).all()
    return dict(settings._mapping), [
        TableStats(
            name=row[0], reltuples=max(float(row[1]), 0.0), modified=int(row[2] or 0), dead=int(row[3] or 0),
            options=dict(option.split("=", 1) for option in row[4] or ()),
        )
        for row in rows
    ]


def needs(stats: TableStats, settings: Mapping[str, str]) -> tuple[bool, bool]:
    """(ANALYZE, VACUUM): what autovacuum would run on this table now; neither when autovacuum is on for it."""
    if _on(settings["autovacuum"]) and _on(stats.options.get("autovacuum_enabled", "on")):
        return False, False

    def limit(kind: str) -> float:
        threshold = float(stats.options.get(f"autovacuum_{kind}_threshold", settings[f"autovacuum_{kind}_threshold"]))
        scale = float(
            stats.options.get(f"autovacuum_{kind}_scale_factor", settings[f"autovacuum_{kind}_scale_factor"])
        )
        return threshold + scale * stats.reltuples

    return stats.modified > limit("analyze"), stats.dead > limit("vacuum")


def maintenance_round(engine: Engine, *, lock_timeout: str = LOCK_TIMEOUT) -> Round:
    """Analyze and vacuum the bot's tables that need it while autovacuum skips them; nothing on SQLite."""
    done = Round()
    if not is_postgres(engine):
        return done
    with engine.connect() as connection:
        settings, tables = own_table_stats(connection)
    work = [(stats.name, *needs(stats, settings)) for stats in tables]
    work = [item for item in work if item[1] or item[2]]
    if not work:
        return done
    # VACUUM cannot run inside a transaction: an autocommit connection, whose lock_timeout is a session setting
    # (reset before the connection goes back to the pool).
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"SET lock_timeout = '{lock_timeout}'")
        try:
            for name, analyze, vacuum in work:
                if _maintain(connection, name, analyze=analyze, vacuum=vacuum):
                    done.analyzed += [name] if analyze else []
                    done.vacuumed += [name] if vacuum else []
                else:
                    done.skipped.append(name)
        finally:
            connection.exec_driver_sql("RESET lock_timeout")
    return done


def _maintain(connection: Connection, name: str, *, analyze: bool, vacuum: bool) -> bool:
    """VACUUM and/or ANALYZE one table, one short statement; False when its lock was busy past the timeout."""
    table_name = connection.dialect.identifier_preparer.quote(name)
    # No TRUNCATE: giving the empty end pages back takes an ACCESS EXCLUSIVE lock, which would stop the
    # handlers' reads of the table meanwhile.
    statement = (
        f"VACUUM (TRUNCATE FALSE{', ANALYZE' if analyze else ''}) {table_name}" if vacuum else f"ANALYZE {table_name}"
    )
    try:
        connection.exec_driver_sql(statement)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) not in _BUSY_SQLSTATES:
            raise
        return False
    return True


def _on(value: str) -> bool:
    """A PostgreSQL boolean setting's text (on, true, yes, 1, t, y) as a bool."""
    return value.strip().lower() in ("on", "true", "yes", "1", "t", "y")
