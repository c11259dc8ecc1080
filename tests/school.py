"""A small school for handler and engine tests in a temporary SQLite database, driven as a chat."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from bot.config import Config, parse_config
from bot.engine import Engine
from handlers.messages import Attachment, Inbound, Reply
from models.clock import FixedClock
from models.db import make_engine

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2023, 12, 5, 10, 0, tzinfo=TZ)  # inside campaign c1, whatever the wall clock says

SCHOOL = {
    "timezone": "Asia/Shanghai",
    "deadlines": {"general_days": 7, "major_days": 30},
    "policy": {"withdraw_minutes": 30},
    "campaigns": [
        {
            "id": "c1",
            "name": "冬春安全整治大会战",
            "start": "2023-11-21",
            "end": "2024-05-10",
            "reporting": {"every_days": 10, "first": "2023-11-26", "at": "17:00"},
            "phases": [
                {"name": "动员部署", "start": "2023-11-21", "end": "2023-11-26", "deliverable": "实施方案"},
                {"name": "自查自改", "start": "2023-11-26", "end": "2024-04-20", "deliverable": "阶段性情况"},
                {"name": "总结提高", "start": "2024-04-21", "end": "2024-05-10", "deliverable": "工作总结"},
            ],
            "milestones": [
                {"name": "阶段性情况", "date": "2023-12-19"},
                {"name": "工作总结", "date": "2024-04-22"},
            ],
        }
    ],
    "units": [
        {"id": "school", "name": "城关一中"},
        {"id": "security", "name": "安全保卫处", "parent": "school", "aliases": ["保卫处"]},
        {"id": "logistics", "name": "总务基建处", "parent": "school", "aliases": ["总务处", "后勤"]},
        {"id": "teaching", "name": "教务处", "parent": "school"},
        {"id": "school2", "name": "城南小学"},
    ],
    "people": [
        {"id": "zhang_wei", "name": "张伟", "unit": "teaching", "roles": ["teacher"]},
        {"id": "chen_jing", "name": "陈静", "unit": "teaching", "roles": ["teacher"]},
        {"id": "wang_jianguo", "name": "王建国", "unit": "logistics", "roles": ["unit_head"]},
        {"id": "xu_qiang", "name": "徐强", "unit": "logistics", "roles": ["teacher"]},
        {"id": "li_na", "name": "李娜", "unit": "security", "roles": ["safety_officer"]},
        {"id": "zhao_min", "name": "赵敏", "unit": "school", "roles": ["leader"]},
        {"id": "liu_yang", "name": "刘洋", "unit": "school", "roles": ["admin"]},
        {"id": "sun_li", "name": "孙丽", "unit": "school2", "roles": ["leader"]},
        {"id": "zhou_tao", "name": "周涛", "unit": "school2", "roles": ["teacher"]},
    ],
    "groups": [
        {"id": "staff", "name": "一中安全工作群", "platform": "console", "units": ["school"], "campaign": "c1"},
        {"id": "s2", "name": "城南小学群", "platform": "console", "units": ["school2"], "campaign": "c1"},
    ],
    "buildings": [
        {"id": "b1", "name": "3号教学楼", "unit": "school", "aliases": ["三号教学楼"]},
        {"id": "b2", "name": "食堂", "unit": "school"},
    ],
}


class Chat:
    """Sends messages through the real engine path and returns the bot's reply text.

    The chat owns the engine's clock: it stands at `start`, and `now` / `advance` move both.
    """

    def __init__(self, engine: Engine, start: datetime) -> None:
        self.engine = engine
        self.clock = FixedClock(start, TZ)
        engine.clock = self.clock
        self._ids = itertools.count(1)
        self.last: list[Reply] = []

    @property
    def now(self) -> datetime:
        return self.clock.now()

    @now.setter
    def now(self, at: datetime) -> None:
        self.clock.set(at)

    def say(
        self,
        person: str,
        text: str,
        *,
        group: str = "staff",
        photos: tuple[Attachment, ...] = (),
        msg_id: str | None = None,
    ) -> str:
        msg = Inbound(
            platform="console",
            msg_id=msg_id or f"m{next(self._ids)}",
            chat_id=group,
            sender_id=person,
            text=text,
            received_at=self.now,
            attachments=photos,
        )
        self.last = self.engine.handle_sync(msg)
        return "\n".join(reply.text for reply in self.last)

    def advance(self, **delta: float) -> None:
        self.clock.advance(**delta)

    def session(self) -> Session:
        return Session(self.engine.db)


def make_config(**overrides: object) -> Config:
    data = {**SCHOOL, **overrides}
    return parse_config(data)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    config = make_config()
    db = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    engine = Engine(config=config, db=db, data_dir=tmp_path / "data", clock=FixedClock(START))
    engine.start()
    yield engine
    db.dispose()


@pytest.fixture
def chat(engine: Engine) -> Chat:
    return Chat(engine, START)


REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：12月10日"
