"""Scheduler fixtures: the example config run on the seed-002 campaign, a chat to make hazards, a fixed clock."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine as DbEngine
from sqlmodel import Session, select

from bot.config import Config, parse_config
from bot.engine import Engine
from bot.services import build_pushes
from models.clock import FixedClock
from models.db import make_engine
from models.tables import DuePush, OutboxMessage
from scheduler.ticker import Ticker
from tests.conftest import EXAMPLE_CONFIG
from tests.school import Chat
from tests.models.conftest import postgres_engine, sqlite_engine  # noqa: F401  (fixtures)

TZ = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    """A local Asia/Shanghai time from 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def seed002_data(**scheduler: Any) -> dict[str, Any]:
    """config.example.toml with every group working on the seed-002 campaign (winter-2018)."""
    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    for group in data["groups"]:
        group["campaign"] = "winter-2018"
    data["scheduler"] = {**data.get("scheduler", {}), "charts_in_digests": False, **scheduler}
    return data


def seed002_config(**scheduler: Any) -> Config:
    return parse_config(seed002_data(**scheduler))


def new_ticker(config: Config, db: DbEngine, **options: Any) -> Ticker:
    """A Ticker that renders pushes as the running bot does (bot/services.py)."""
    return Ticker(config=config, db=db, enqueue_push=build_pushes(config).enqueue_push, **options)


def start_engine(config: Config, db: DbEngine, data_dir: Path) -> Engine:
    """Migrate and sync the config into the database, as the app does at start-up (clock: inside winter-2018)."""
    engine = Engine(config=config, db=db, data_dir=data_dir, clock=FixedClock(at("2018-11-27 10:00")))
    engine.start()
    return engine


@pytest.fixture
def config() -> Config:
    return seed002_config()


@pytest.fixture
def engine(config: Config, tmp_path: Path) -> Iterator[Engine]:
    db = make_engine(f"sqlite:///{tmp_path / 'sched.db'}")
    yield start_engine(config, db, tmp_path / "data")
    db.dispose()


@pytest.fixture
def chat(engine: Engine) -> Chat:
    return Chat(engine, at("2018-11-27 10:00"))


def outbox(db: DbEngine, group: str | None = None) -> list[OutboxMessage]:
    with Session(db, expire_on_commit=False) as session:
        statement = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
        if group is not None:
            statement = statement.where(OutboxMessage.group_id == group)
        return list(session.exec(statement))


def due_rows(db: DbEngine, **where: Any) -> list[DuePush]:
    with Session(db, expire_on_commit=False) as session:
        statement = select(DuePush).order_by(DuePush.send_at, DuePush.key)  # type: ignore[arg-type]
        for name, value in where.items():
            statement = statement.where(getattr(DuePush, name) == value)
        return list(session.exec(statement))
