"""Saying at start that the bot maintains its own tables (PostgreSQL without autovacuum), and the leader's job."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bot.cli import main
from bot.maintenance import maintenance_service, run_round, say_if_autovacuum_is_off
from models.db import make_engine
from models.maintenance import autovacuum_is_off
from models.tables import metadata
from tests.conftest import EXAMPLE_CONFIG, fresh_postgres_schema, with_local_storage


@pytest.fixture
def postgres_schema() -> Iterator[tuple[str, Engine]]:
    """A fresh schema: the URL that uses it, and an engine on it."""
    with fresh_postgres_schema() as schema:
        engine = make_engine(schema.url)
        yield schema.url, engine
        engine.dispose()


def test_check_config_says_when_the_bot_will_vacuum_its_own_tables(
    postgres_schema: tuple[str, Engine], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, engine = postgres_schema
    path = tmp_path / "config.toml"
    path.write_text(with_local_storage(EXAMPLE_CONFIG.read_text(encoding="utf-8"), db_url=url,
                                       data_dir=str(tmp_path / "data")), encoding="utf-8")
    off = autovacuum_is_off(engine)  # the server's setting, which a test cannot change
    assert main(["check-config", str(path), "--lang", "en"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "autovacuum" in line]
    assert lines == ([("note: PostgreSQL autovacuum is off: the bot will ANALYZE and VACUUM its own tables itself; "
                       "turning autovacuum on (autovacuum = on in postgresql.conf) is better")] if off else [])
    assert main(["check-config", str(path)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "autovacuum" in line]
    assert lines == ([("提示：PostgreSQL 的 autovacuum 已关闭：机器人会自己定期对它的表执行 ANALYZE 和 VACUUM；"
                       "更好的做法是打开 autovacuum（postgresql.conf 里 autovacuum = on）")] if off else [])


def test_check_config_on_sqlite_says_nothing_of_autovacuum(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(config_path), "--lang", "en"]) == 0
    assert "autovacuum" not in capsys.readouterr().out


def test_serve_logs_the_line_and_the_leader_logs_what_it_analyzed(
    postgres_schema: tuple[str, Engine], caplog: pytest.LogCaptureFixture
) -> None:
    _, engine = postgres_schema
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE directory_version SET (autovacuum_enabled = false)"))
        connection.execute(text("INSERT INTO directory_version (id, version) SELECT n, 0 FROM generate_series(1, 80) n"))
        connection.execute(text("SELECT pg_stat_force_next_flush()"))
    caplog.set_level(logging.INFO, logger="bot.maintenance")
    say_if_autovacuum_is_off(engine)
    assert any("will ANALYZE and VACUUM its own tables" in r.message for r in caplog.records) == autovacuum_is_off(engine)
    assert "directory_version" in run_round(engine).analyzed
    assert any(r.message.startswith("maintenance: analyzed ") and "directory_version" in r.message
               for r in caplog.records)
    assert maintenance_service(engine, is_leader=lambda: True) is not None


def test_there_is_no_maintenance_job_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert maintenance_service(engine, is_leader=lambda: True) is None
    engine.dispose()
