"""Database fixtures: a fresh SQLite file, and a fresh PostgreSQL schema when TEST_DATABASE_URL is set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from models.db import make_engine
from tests.conftest import fresh_postgres_schema


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    with fresh_postgres_schema() as schema:
        engine = make_engine(schema.base, connect_args={"options": f"-csearch_path={schema.name}"})
        yield engine
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_engine(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue(f"{request.param}_engine")
