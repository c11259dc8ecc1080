"""Drafts, duplicates and several hazards per message, played through the simulator (the console platform on the
real app with the example config), with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from bot.app import build_engine, create_app
from bot.config import load_config
from models.clock import FixedClock
from models.tables import AttachmentFile, Hazard, HazardEvent, ReportDraft
from tests.conftest import CAMPAIGN_NOW

SIM_URL = "http://127.0.0.1:8000"
MONDAY = datetime.fromisoformat(CAMPAIGN_NOW)  # 2026-12-07 10:00, inside winter-2026 (… 2027-05-10)


@pytest.fixture
def sim(config_path: Path) -> Iterator[tuple[TestClient, FixedClock]]:
    config = load_config(config_path)
    clock = FixedClock(MONDAY)
    with TestClient(create_app(config, build_engine(config, clock=clock)), base_url=SIM_URL) as client:
        yield client, clock


def say(client: TestClient, text: str, *, person: str = "zhang_wei", group: str = "staff",
        photo: bytes | None = None) -> str:
    files = {"photo": ("scene.png", photo, "image/png")} if photo is not None else None
    response = client.post(
        "/sim/api/messages", data={"person_id": person, "group_id": group, "text": text}, files=files
    )
    assert response.status_code == 200, response.text
    return "\n".join(reply["text"] for reply in response.json()["replies"])


def db(client: TestClient) -> Session:
    return Session(client.app.state.engine.db)  # type: ignore[attr-defined]


def hazards(client: TestClient) -> list[Hazard]:
    with db(client) as session:
        return list(session.exec(select(Hazard).order_by(Hazard.number)))  # type: ignore[arg-type]


def count(client: TestClient, table: type) -> int:
    with db(client) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def test_a_mistyped_owner_is_confirmed_before_it_is_stored(sim) -> None:  # type: ignore[no-untyped-def]
    client, _ = sim
    reply = say(client, "隐患\n部位：图书馆二楼\n问题：书架不稳\n责任人：王建图")
    lines = reply.splitlines()
    assert len(lines) <= 6 and "没有登记" in reply
    assert lines[0] == "我理解的是：部位「图书馆二楼」，问题「书架不稳」，责任人「王建图」。"
    assert lines[1] == "没有找到「王建图」。您是想写：王建国（总务基建处）吗？"
    assert hazards(client) == [] and count(client, ReportDraft) == 1
    reply = say(client, "是")
    assert reply.startswith("已登记隐患 #1") and "责任人：王建国（总务基建处）" in reply
    (hazard,) = hazards(client)
    assert (hazard.responsible_id, hazard.unit_id, hazard.location) == ("wang_jianguo", "logistics", "图书馆二楼")
    assert count(client, ReportDraft) == 0


def test_a_mistyped_owner_in_plain_words_is_corrected_by_the_name_alone(sim) -> None:  # type: ignore[no-untyped-def]
    client, _ = sim
    reply = say(client, "图书馆二楼书架不稳，王建图负责")
    assert "王建国" in reply and hazards(client) == []
    assert say(client, "李娜").startswith("已登记隐患 #1")
    assert hazards(client)[0].responsible_id == "li_na"


def test_a_past_date_without_a_year_is_asked_about(sim) -> None:  # type: ignore[no-untyped-def]
    client, _ = sim
    # On 2026-12-07, 12月1日 has passed this year; the next one (2027-12-01) is after the campaign's end.
    reply = say(client, "图书馆二楼灭火器过期了，12月1日前弄好")
    assert reply.splitlines()[1] == "期限12月1日今年已经过去了，明年的12月1日又晚于本次排查整治的结束日期 2027-05-10。"
    assert "请直接回复 2027-05-10 或之前的新期限，例如：12月14日" in reply and len(reply.splitlines()) <= 6
    assert hazards(client) == []
    reply = say(client, "12月20日")
    assert reply.startswith("已登记隐患 #1") and "期限：2026-12-20" in reply
    assert hazards(client)[0].deadline == date(2026, 12, 20)


def test_a_missing_place_is_asked_for_alone_and_the_answer_fills_it(sim) -> None:  # type: ignore[no-untyped-def]
    client, _ = sim
    reply = say(client, "隐患 灭火器过期了")
    assert "问题「灭火器过期」" in reply and "没找到隐患在哪里（部位）" in reply and hazards(client) == []
    assert say(client, "食堂后门").startswith("已登记隐患 #1")
    (hazard,) = hazards(client)
    assert (hazard.location, hazard.problem, hazard.building_id) == ("食堂后门", "灭火器过期", "s1-canteen")


def test_a_photo_first_then_doubtful_words_make_one_hazard_with_the_photo(sim, tiny_png: bytes) -> None:  # type: ignore[no-untyped-def]
    client, clock = sim
    assert say(client, "", photo=tiny_png).startswith("收到1张照片")
    clock.advance(minutes=2)
    assert "没找到隐患在哪里" in say(client, "灭火器过期了")
    clock.advance(minutes=15)  # longer than a lone photo waits: the draft keeps it
    reply = say(client, "实验楼三楼")
    assert "已登记隐患 #1" in reply and "已附上刚才的1张照片" in reply
    with db(client) as session:
        photo = session.exec(select(AttachmentFile)).one()
        assert photo.hazard_id == session.exec(select(Hazard)).one().id


def test_a_duplicate_is_offered_for_merging_and_merged_into_its_history(sim, tiny_png: bytes) -> None:  # type: ignore[no-untyped-def]
    client, _ = sim
    assert say(client, "隐患\n部位：实验楼三楼\n问题：插座老化冒火花\n责任人：王建国").startswith("已登记隐患 #1")
    reply = say(client, "实验楼三楼插座老化，有火花", person="chen_jing", photo=tiny_png)
    assert "可能与 #1 重复（实验楼三楼 插座老化冒火花）" in reply
    assert "回复「新的」仍登记，或「同 #1」补充到 #1" in reply
    assert len(hazards(client)) == 1
    reply = say(client, "同 #1", person="chen_jing")
    assert "已补充到隐患 #1" in reply and "没有新编号" in reply and "已附上1张照片" in reply
    assert len(hazards(client)) == 1
    with db(client) as session:
        events = session.exec(select(HazardEvent).order_by(HazardEvent.id)).all()  # type: ignore[arg-type]
        assert [(e.action, e.actor_id) for e in events] == [("report", "zhang_wei"), ("same", "chen_jing")]
        photo = session.exec(select(AttachmentFile)).one()
        assert (photo.hazard_id, photo.event_id) == (hazards(client)[0].id, events[1].id)
    assert "陈静 同一隐患再报" in say(client, "#1")


def test_a_duplicate_answered_new_gets_its_own_number(sim) -> None:  # type: ignore[no-untyped-def]
    client, _ = sim
    say(client, "隐患\n部位：食堂后厨\n问题：插座老化\n责任人：王建国")
    assert "可能与 #1 重复" in say(client, "隐患\n部位：食堂后厨\n问题：插座老化\n责任人：王建国")
    assert say(client, "新的").startswith("已登记隐患 #2")
    assert len(hazards(client)) == 2


def test_cancel_drops_the_draft_and_nothing_is_stored(sim) -> None:  # type: ignore[no-untyped-def]
    client, _ = sim
    say(client, "隐患\n部位：操场\n问题：单杠松动\n责任人：王建图")
    assert say(client, "取消") == "好的，已取消，这条隐患没有登记。"
    assert say(client, "确认") == "现在没有等您确认的隐患。要上报请发：隐患 部位：…，问题：…"
    assert hazards(client) == [] and count(client, ReportDraft) == 0


def test_a_draft_expires_after_thirty_minutes(sim) -> None:  # type: ignore[no-untyped-def]
    client, clock = sim
    say(client, "隐患\n部位：操场\n问题：单杠松动\n责任人：王建图")
    clock.advance(minutes=31)
    assert say(client, "是") == "刚才的隐患超过30分钟没有确认，已作废、没有登记，请重新发送。"
    assert hazards(client) == [] and count(client, ReportDraft) == 0
    say(client, "隐患\n部位：操场\n问题：单杠松动\n责任人：王建图")
    clock.advance(minutes=29)
    assert say(client, "是").startswith("已登记隐患 #1")


def test_a_draft_belongs_to_its_sender_and_group(sim) -> None:  # type: ignore[no-untyped-def]
    client, _ = sim
    say(client, "隐患\n部位：操场\n问题：单杠松动\n责任人：王建图")
    assert say(client, "确认", person="li_na").startswith("现在没有等您确认的隐患")
    assert say(client, "确认", group="leaders", person="zhang_wei").startswith("现在没有等您确认的隐患")
    assert hazards(client) == []
    assert say(client, "确认").startswith("已登记隐患 #1")


def test_two_hazards_in_one_message_are_confirmed_together(sim) -> None:  # type: ignore[no-untyped-def]
    client, _ = sim
    reply = say(client, "隐患\n1. 图书馆二楼灭火器过期，王建国负责\n2. 体育馆东侧围墙裂缝")
    assert reply.splitlines()[0] == "这条消息里有2条隐患，还没有登记："
    assert reply.splitlines()[1].startswith("1. 图书馆二楼 灭火器过期（责任人王建国）")
    assert reply.splitlines()[2].startswith("2. 体育馆东侧围墙 裂缝")
    assert "回复「确认」一起登记这2条（每条各得一个编号）" in reply
    assert hazards(client) == []
    reply = say(client, "确认")
    assert reply.startswith("已登记2条隐患：") and "#1 图书馆二楼 灭火器过期｜王建国" in reply and "#2 体育馆东侧围墙 裂缝" in reply
    assert [(h.number, h.location) for h in hazards(client)] == [(1, "图书馆二楼"), (2, "体育馆东侧围墙")]
