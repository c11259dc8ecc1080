"""A group an admin bound in chat (登记本群) gets the pushes of a configured one: planned, sent once (issue 13)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlmodel import Session

from bot.config import Config, parse_config
from bot.engine import Engine
from bot.services import build_pushes
from models.push_groups import stored_groups
from scheduler.calendar import WorkCalendar
from scheduler.plan import PlanGroup, plan_window
from scheduler.ticker import Ticker
from tests.handlers.test_join import WeComChat, county
from tests.scheduler.conftest import due_rows, outbox
from tests.school import TZ, start_engine

STAFF_CHAT, LEADERS_CHAT = "wrkS2", "wrkS2L"
STAFF_GROUP, LEADERS_GROUP = f"wecom-chat-{STAFF_CHAT}", f"wecom-chat-{LEADERS_CHAT}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture
def config() -> Config:
    data = county()
    data["scheduler"] = {"charts_in_digests": False}
    return parse_config(data)


@pytest.fixture
def bound(config: Config, tmp_path: Path) -> Iterator[WeComChat]:
    """The county with 城南小学's staff and leaders' chats bound in chat by the county admin (no TOML entry)."""
    engine = start_engine(config, tmp_path)
    chat = WeComChat(engine)
    assert chat.say("wu_ju", "登记本群 城南小学 城南小学安全群 教职工", chat=STAFF_CHAT).startswith("已登记本群")
    assert chat.say("wu_ju", "登记本群 城南小学 城南小学领导群 领导", chat=LEADERS_CHAT).startswith("已登记本群")
    yield chat
    engine.db.dispose()


def new_ticker(config: Config, engine: Engine) -> Ticker:
    return Ticker(config=config, db=engine.db, enqueue_push=build_pushes(config).enqueue_push)


def texts(engine: Engine, group: str) -> list[str]:
    return [json.loads(m.payload).get("content", "") for m in outbox(engine.db, group)]


def test_the_plan_lists_a_group_bound_in_chat(bound: WeComChat, config: Config) -> None:
    with Session(bound.engine.db) as session:
        groups = [PlanGroup.of_stored(group) for group in stored_groups(session)]
    assert {(g.id, g.kind, g.units, g.source) for g in groups if g.source == "chat"} == {
        (STAFF_GROUP, "staff", ("school2",), "chat"), (LEADERS_GROUP, "leaders", ("school2",), "chat"),
    }
    pushes = plan_window(config, WorkCalendar.from_config(config), first=date(2023, 12, 6), last=date(2023, 12, 6),
                         groups=groups)
    mine = {(p.kind, p.group_id, p.send_at) for p in pushes if p.group_id in (STAFF_GROUP, LEADERS_GROUP)}
    assert ("report_reminder", STAFF_GROUP, at("2023-12-06 17:00")) in mine
    assert ("leader_digest", LEADERS_GROUP, at("2023-12-06 08:00")) in mine
    assert ("overdue_digest", STAFF_GROUP, at("2023-12-06 08:30")) in mine
    # Without the database's groups the plan knows only the TOML's (the old behaviour, kept for `plan --no-db`).
    toml_only = plan_window(config, WorkCalendar.from_config(config), first=date(2023, 12, 6), last=date(2023, 12, 6))
    assert not [p for p in toml_only if p.group_id in (STAFF_GROUP, LEADERS_GROUP)]


def test_a_group_bound_in_chat_gets_the_report_reminder_on_its_day_exactly_once(
    bound: WeComChat, config: Config
) -> None:
    engine = bound.engine
    ticker, other = new_ticker(config, engine), new_ticker(config, engine)  # two processes

    before = ticker.tick(at("2023-12-06 16:59"))
    assert not [key for key in before.sent if key.startswith("report_reminder")]

    result = ticker.tick(at("2023-12-06 17:00"))
    again = other.tick(at("2023-12-06 17:01"))
    ticker.tick(at("2023-12-06 17:05"))

    key = f"report_reminder:c1:{STAFF_GROUP}:2023-12-06"
    assert key in result.sent and key not in again.sent
    [row] = due_rows(engine.db, key=key)
    assert row.state == "sent" and row.group_id == STAFF_GROUP
    [reminder] = [t for t in texts(engine, STAFF_GROUP) if "报送提醒" in t]
    assert "第2期（11-27至12-06）统计报表今天17:00截止" in reminder
    assert "城南小学" in reminder and "城关一中" not in reminder  # the group's own school only
    # The leaders' chat gets no staff reminder.
    assert not [t for t in texts(engine, LEADERS_GROUP) if "报送提醒" in t]


def test_a_leaders_group_bound_in_chat_gets_the_leaders_digest_on_its_day_exactly_once(
    bound: WeComChat, config: Config
) -> None:
    engine = bound.engine
    ticker = new_ticker(config, engine)
    ticker.tick(at("2023-12-06 07:59"))
    assert not [t for t in texts(engine, LEADERS_GROUP) if "领导日报" in t]

    first = ticker.tick(at("2023-12-06 08:00"))
    ticker.tick(at("2023-12-06 08:01"))
    new_ticker(config, engine).tick(at("2023-12-06 08:02"))  # a restart

    assert f"leader_digest:c1:{LEADERS_GROUP}:2023-12-06" in first.sent
    [digest] = [t for t in texts(engine, LEADERS_GROUP) if "领导日报" in t]
    assert "城南小学" in digest
    assert [r.state for r in due_rows(engine.db, key=f"leader_digest:c1:{LEADERS_GROUP}:2023-12-06")] == ["sent"]
    # Saturday: no daily digest; Monday's comes at 08:00.
    saturday = ticker.tick(at("2023-12-09 08:00"))
    assert not [key for key in saturday.sent if key.startswith(f"leader_digest:c1:{LEADERS_GROUP}")]
    monday = ticker.tick(at("2023-12-11 08:00"))
    assert f"leader_digest:c1:{LEADERS_GROUP}:2023-12-11" in monday.sent
    assert len([t for t in texts(engine, LEADERS_GROUP) if "领导日报" in t]) == 2
