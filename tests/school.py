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


def start_engine(config: Config, directory: Path) -> Engine:
    """A started engine on a fresh SQLite database under `directory` (dispose its `db` when done)."""
    db = make_engine(f"sqlite:///{directory / 'test.db'}")
    engine = Engine(config=config, db=db, data_dir=directory / "data", clock=FixedClock(START))
    engine.start()
    return engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = start_engine(make_config(), tmp_path)
    yield engine
    engine.db.dispose()


@pytest.fixture
def chat(engine: Engine) -> Chat:
    return Chat(engine, START)


REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：12月10日"


# Two schools under a county bureau, each with departments, its own people (a 王建国 in both), its own
# groups and buildings of the same names (both have a 食堂), plus a county admin and a county leaders' group.
TWO_SCHOOLS = {
    **SCHOOL,
    "units": [
        {"id": "bureau", "name": "县教育局"},
        {"id": "school", "name": "城关一中", "parent": "bureau"},
        {"id": "security", "name": "安全保卫处", "parent": "school", "aliases": ["保卫处"]},
        {"id": "logistics", "name": "总务基建处", "parent": "school", "aliases": ["总务处", "后勤"]},
        {"id": "teaching", "name": "教务处", "parent": "school"},
        {"id": "school2", "name": "城南小学", "parent": "bureau"},
        {"id": "s2_security", "name": "城南小学保卫科", "parent": "school2", "aliases": ["保卫处"]},
        {"id": "s2_logistics", "name": "城南小学后勤处", "parent": "school2", "aliases": ["总务处", "后勤"]},
    ],
    "people": [
        {"id": "zhang_wei", "name": "张伟", "unit": "teaching", "roles": ["teacher"]},
        {"id": "wang_jianguo", "name": "王建国", "unit": "logistics", "roles": ["unit_head"]},
        {"id": "li_na", "name": "李娜", "unit": "security", "roles": ["safety_officer"]},
        {"id": "zhao_min", "name": "赵敏", "unit": "school", "roles": ["leader"]},
        {"id": "liu_yang", "name": "刘洋", "unit": "school", "roles": ["admin"]},
        {"id": "zhou_tao", "name": "周涛", "unit": "school2", "roles": ["teacher"]},
        {"id": "wang_jianguo2", "name": "王建国", "unit": "s2_logistics", "roles": ["unit_head"]},
        {"id": "qian_hong", "name": "钱红", "unit": "s2_logistics", "roles": ["teacher"]},
        {"id": "ma_li", "name": "马丽", "unit": "s2_security", "roles": ["safety_officer"]},
        {"id": "sun_li", "name": "孙丽", "unit": "school2", "roles": ["leader"]},
        {"id": "he_jun", "name": "何军", "unit": "school2", "roles": ["admin"]},
        {"id": "wu_ju", "name": "吴菊", "unit": "bureau", "roles": ["admin", "leader"]},
    ],
    "groups": [
        {"id": "staff", "name": "一中安全工作群", "platform": "console", "units": ["school"], "campaign": "c1"},
        {"id": "leaders", "name": "一中领导群", "platform": "console", "kind": "leaders", "units": ["school"],
         "campaign": "c1"},
        {"id": "s2", "name": "城南小学群", "platform": "console", "units": ["school2"], "campaign": "c1"},
        {"id": "s2_leaders", "name": "城南小学领导群", "platform": "console", "kind": "leaders", "units": ["school2"],
         "campaign": "c1"},
        {"id": "county", "name": "县局领导群", "platform": "console", "kind": "leaders", "units": ["bureau"],
         "campaign": "c1"},
    ],
    "buildings": [
        {"id": "b1", "name": "3号教学楼", "unit": "school", "aliases": ["三号教学楼"]},
        {"id": "b2", "name": "食堂", "unit": "school"},
        {"id": "s2_b1", "name": "3号教学楼", "unit": "school2"},
        {"id": "s2_b2", "name": "食堂", "unit": "school2", "aliases": ["餐厅"]},
    ],
}


@pytest.fixture
def two_schools(tmp_path: Path) -> Iterator[Chat]:
    """A chat with the two-school county (TWO_SCHOOLS); any chat id that is no group is a private chat."""
    engine = start_engine(parse_config(TWO_SCHOOLS), tmp_path)
    yield Chat(engine, datetime(2023, 12, 5, 10, 0, tzinfo=TZ))
    engine.db.dispose()
